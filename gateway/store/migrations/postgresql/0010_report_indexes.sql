-- PostgreSQL form of ../0010_report_indexes.sql: the same tables and columns (tests/test_store_engines.py).
-- What the dashboard, the summaries and the listings need on two years of data:
-- every figure is aggregated in SQL over a period, none scans a big table.

-- First-callback ratings counted per UTC hour, by unit and by kind: a period's
-- satisfaction sums a few hundred rows a day instead of joining every rating to its
-- item. Hours, not days, so that a local day of any whole-hour zone is a whole
-- number of rows. Triggers keep the counts with every change to a rating (and to
-- an item's unit or kind); the counts of the ratings already stored are filled in here.
CREATE TABLE rating_unit_hours (
    hour        TEXT NOT NULL,               -- YYYY-MM-DDTHH, UTC
    unit_id     INTEGER NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (hour, unit_id, score)
);

CREATE TABLE rating_kind_hours (
    hour        TEXT NOT NULL,               -- YYYY-MM-DDTHH, UTC
    kind_code   TEXT NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (hour, kind_code, score)
);

-- The same per UTC day: a long period sums whole days and only its two edge days by hour.
CREATE TABLE rating_unit_days (
    day         TEXT NOT NULL,               -- YYYY-MM-DD, UTC
    unit_id     INTEGER NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (day, unit_id, score)
);

CREATE TABLE rating_kind_days (
    day         TEXT NOT NULL,               -- YYYY-MM-DD, UTC
    kind_code   TEXT NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (day, kind_code, score)
);

INSERT INTO rating_unit_hours (hour, unit_id, score, n)
    SELECT substr(r.rated_at, 1, 13), i.unit_id, r.score, COUNT(*)
    FROM ratings r JOIN served_items i ON i.id = r.item_id
    WHERE r.round = 1 GROUP BY 1, 2, 3;

INSERT INTO rating_kind_hours (hour, kind_code, score, n)
    SELECT substr(r.rated_at, 1, 13), i.kind_code, r.score, COUNT(*)
    FROM ratings r JOIN served_items i ON i.id = r.item_id
    WHERE r.round = 1 GROUP BY 1, 2, 3;

INSERT INTO rating_unit_days (day, unit_id, score, n)
    SELECT substr(hour, 1, 10), unit_id, score, SUM(n) FROM rating_unit_hours GROUP BY 1, 2, 3;

INSERT INTO rating_kind_days (day, kind_code, score, n)
    SELECT substr(hour, 1, 10), kind_code, score, SUM(n) FROM rating_kind_hours GROUP BY 1, 2, 3;

-- The triggers of the SQLite form, as PL/pgSQL: one function adds a rating's count
-- (delta +1 or -1) to the four tables; each trigger keeps SQLite's name and event.
CREATE FUNCTION rating_counts_add(p_unit INTEGER, p_kind TEXT, p_at TEXT, p_score INTEGER,
                                  p_delta INTEGER) RETURNS void LANGUAGE sql AS $$
    INSERT INTO rating_unit_hours AS t (hour, unit_id, score, n)
        VALUES (substr(p_at, 1, 13), p_unit, p_score, p_delta)
        ON CONFLICT (hour, unit_id, score) DO UPDATE SET n = t.n + EXCLUDED.n;
    INSERT INTO rating_kind_hours AS t (hour, kind_code, score, n)
        VALUES (substr(p_at, 1, 13), p_kind, p_score, p_delta)
        ON CONFLICT (hour, kind_code, score) DO UPDATE SET n = t.n + EXCLUDED.n;
    INSERT INTO rating_unit_days AS t (day, unit_id, score, n)
        VALUES (substr(p_at, 1, 10), p_unit, p_score, p_delta)
        ON CONFLICT (day, unit_id, score) DO UPDATE SET n = t.n + EXCLUDED.n;
    INSERT INTO rating_kind_days AS t (day, kind_code, score, n)
        VALUES (substr(p_at, 1, 10), p_kind, p_score, p_delta)
        ON CONFLICT (day, kind_code, score) DO UPDATE SET n = t.n + EXCLUDED.n;
$$;

CREATE FUNCTION ratings_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    item served_items%ROWTYPE;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.round = 1 THEN
        SELECT * INTO item FROM served_items WHERE id = OLD.item_id;
        IF FOUND THEN
            PERFORM rating_counts_add(item.unit_id, item.kind_code, OLD.rated_at, OLD.score, -1);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.round = 1 THEN
        SELECT * INTO item FROM served_items WHERE id = NEW.item_id;
        IF FOUND THEN
            PERFORM rating_counts_add(item.unit_id, item.kind_code, NEW.rated_at, NEW.score, 1);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ratings_count_insert AFTER INSERT ON ratings
    FOR EACH ROW WHEN (NEW.round = 1) EXECUTE FUNCTION ratings_count();
CREATE TRIGGER ratings_count_delete AFTER DELETE ON ratings
    FOR EACH ROW WHEN (OLD.round = 1) EXECUTE FUNCTION ratings_count();
CREATE TRIGGER ratings_count_update AFTER UPDATE OF item_id, round, score, rated_at ON ratings
    FOR EACH ROW EXECUTE FUNCTION ratings_count();

CREATE FUNCTION served_items_count_move() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    FOR r IN SELECT rated_at, score FROM ratings WHERE item_id = NEW.id AND round = 1 LOOP
        PERFORM rating_counts_add(OLD.unit_id, OLD.kind_code, r.rated_at, r.score, -1);
        PERFORM rating_counts_add(NEW.unit_id, NEW.kind_code, r.rated_at, r.score, 1);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER served_items_count_move AFTER UPDATE OF unit_id, kind_code ON served_items
    FOR EACH ROW EXECUTE FUNCTION served_items_count_move();

-- Items by status and when they were served (the queue; how a period's items ended).
CREATE INDEX served_items_status_served ON served_items(status, served_at);

-- An item's order (each rating looks it up).
CREATE INDEX rectification_orders_item ON rectification_orders(item_id, status);

-- Orders opened in a period, by status.
CREATE INDEX rectification_orders_created ON rectification_orders(created_at, status);

-- Callback outcomes over a period.
CREATE INDEX callback_attempts_started ON callback_attempts(started_at, channel, outcome);

-- Texts by status and when they were created.
CREATE INDEX sms_messages_status_created ON sms_messages(status, created_at);
