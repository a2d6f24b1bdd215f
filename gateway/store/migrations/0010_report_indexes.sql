-- What the dashboard, the summaries and the listings need on two years of data:
-- every figure is aggregated in SQL over a period, none scans a big table.

-- First-callback ratings counted per UTC hour, by unit and by kind: a period's
-- satisfaction sums a few hundred rows a day instead of joining every rating to its
-- item. Hours, not days, so that a local day of any whole-hour zone is a whole
-- number of rows. Triggers keep the counts with every change to a rating (and to
-- an item's unit or kind); the counts of the ratings already stored are filled in here.
-- Inside a trigger no line ends with a semicolon: migrations are split into
-- statements at the lines that do, so each inner statement's ";" starts the next line.
CREATE TABLE rating_unit_hours (
    hour        TEXT NOT NULL,               -- YYYY-MM-DDTHH, UTC
    unit_id     INTEGER NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (hour, unit_id, score)
) WITHOUT ROWID;

CREATE TABLE rating_kind_hours (
    hour        TEXT NOT NULL,               -- YYYY-MM-DDTHH, UTC
    kind_code   TEXT NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (hour, kind_code, score)
) WITHOUT ROWID;

-- The same per UTC day: a long period sums whole days and only its two edge days by hour.
CREATE TABLE rating_unit_days (
    day         TEXT NOT NULL,               -- YYYY-MM-DD, UTC
    unit_id     INTEGER NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (day, unit_id, score)
) WITHOUT ROWID;

CREATE TABLE rating_kind_days (
    day         TEXT NOT NULL,               -- YYYY-MM-DD, UTC
    kind_code   TEXT NOT NULL,
    score       INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (day, kind_code, score)
) WITHOUT ROWID;

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

CREATE TRIGGER ratings_count_insert AFTER INSERT ON ratings WHEN NEW.round = 1
BEGIN
    INSERT INTO rating_unit_hours (hour, unit_id, score, n)
        SELECT substr(NEW.rated_at, 1, 13), unit_id, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id
        ON CONFLICT (hour, unit_id, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_kind_hours (hour, kind_code, score, n)
        SELECT substr(NEW.rated_at, 1, 13), kind_code, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id
        ON CONFLICT (hour, kind_code, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_unit_days (day, unit_id, score, n)
        SELECT substr(NEW.rated_at, 1, 10), unit_id, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id
        ON CONFLICT (day, unit_id, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_kind_days (day, kind_code, score, n)
        SELECT substr(NEW.rated_at, 1, 10), kind_code, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id
        ON CONFLICT (day, kind_code, score) DO UPDATE SET n = n + 1
    ;END;

CREATE TRIGGER ratings_count_delete AFTER DELETE ON ratings WHEN OLD.round = 1
BEGIN
    UPDATE rating_unit_hours SET n = n - 1
        WHERE hour = substr(OLD.rated_at, 1, 13) AND score = OLD.score
        AND unit_id = (SELECT unit_id FROM served_items WHERE id = OLD.item_id)
    ;UPDATE rating_kind_hours SET n = n - 1
        WHERE hour = substr(OLD.rated_at, 1, 13) AND score = OLD.score
        AND kind_code = (SELECT kind_code FROM served_items WHERE id = OLD.item_id)
    ;UPDATE rating_unit_days SET n = n - 1
        WHERE day = substr(OLD.rated_at, 1, 10) AND score = OLD.score
        AND unit_id = (SELECT unit_id FROM served_items WHERE id = OLD.item_id)
    ;UPDATE rating_kind_days SET n = n - 1
        WHERE day = substr(OLD.rated_at, 1, 10) AND score = OLD.score
        AND kind_code = (SELECT kind_code FROM served_items WHERE id = OLD.item_id)
    ;END;

CREATE TRIGGER ratings_count_update AFTER UPDATE OF item_id, round, score, rated_at ON ratings
BEGIN
    UPDATE rating_unit_hours SET n = n - 1
        WHERE OLD.round = 1 AND hour = substr(OLD.rated_at, 1, 13) AND score = OLD.score
        AND unit_id = (SELECT unit_id FROM served_items WHERE id = OLD.item_id)
    ;UPDATE rating_kind_hours SET n = n - 1
        WHERE OLD.round = 1 AND hour = substr(OLD.rated_at, 1, 13) AND score = OLD.score
        AND kind_code = (SELECT kind_code FROM served_items WHERE id = OLD.item_id)
    ;INSERT INTO rating_unit_hours (hour, unit_id, score, n)
        SELECT substr(NEW.rated_at, 1, 13), unit_id, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id AND NEW.round = 1
        ON CONFLICT (hour, unit_id, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_kind_hours (hour, kind_code, score, n)
        SELECT substr(NEW.rated_at, 1, 13), kind_code, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id AND NEW.round = 1
        ON CONFLICT (hour, kind_code, score) DO UPDATE SET n = n + 1
    ;UPDATE rating_unit_days SET n = n - 1
        WHERE OLD.round = 1 AND day = substr(OLD.rated_at, 1, 10) AND score = OLD.score
        AND unit_id = (SELECT unit_id FROM served_items WHERE id = OLD.item_id)
    ;UPDATE rating_kind_days SET n = n - 1
        WHERE OLD.round = 1 AND day = substr(OLD.rated_at, 1, 10) AND score = OLD.score
        AND kind_code = (SELECT kind_code FROM served_items WHERE id = OLD.item_id)
    ;INSERT INTO rating_unit_days (day, unit_id, score, n)
        SELECT substr(NEW.rated_at, 1, 10), unit_id, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id AND NEW.round = 1
        ON CONFLICT (day, unit_id, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_kind_days (day, kind_code, score, n)
        SELECT substr(NEW.rated_at, 1, 10), kind_code, NEW.score, 1
        FROM served_items WHERE id = NEW.item_id AND NEW.round = 1
        ON CONFLICT (day, kind_code, score) DO UPDATE SET n = n + 1
    ;END;

CREATE TRIGGER served_items_count_move AFTER UPDATE OF unit_id, kind_code ON served_items
BEGIN
    UPDATE rating_unit_hours SET n = n - 1
        WHERE (hour, unit_id, score) IN (
            SELECT substr(rated_at, 1, 13), OLD.unit_id, score FROM ratings
            WHERE item_id = OLD.id AND round = 1)
    ;UPDATE rating_kind_hours SET n = n - 1
        WHERE (hour, kind_code, score) IN (
            SELECT substr(rated_at, 1, 13), OLD.kind_code, score FROM ratings
            WHERE item_id = OLD.id AND round = 1)
    ;INSERT INTO rating_unit_hours (hour, unit_id, score, n)
        SELECT substr(rated_at, 1, 13), NEW.unit_id, score, 1 FROM ratings
        WHERE item_id = NEW.id AND round = 1
        ON CONFLICT (hour, unit_id, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_kind_hours (hour, kind_code, score, n)
        SELECT substr(rated_at, 1, 13), NEW.kind_code, score, 1 FROM ratings
        WHERE item_id = NEW.id AND round = 1
        ON CONFLICT (hour, kind_code, score) DO UPDATE SET n = n + 1
    ;UPDATE rating_unit_days SET n = n - 1
        WHERE (day, unit_id, score) IN (
            SELECT substr(rated_at, 1, 10), OLD.unit_id, score FROM ratings
            WHERE item_id = OLD.id AND round = 1)
    ;UPDATE rating_kind_days SET n = n - 1
        WHERE (day, kind_code, score) IN (
            SELECT substr(rated_at, 1, 10), OLD.kind_code, score FROM ratings
            WHERE item_id = OLD.id AND round = 1)
    ;INSERT INTO rating_unit_days (day, unit_id, score, n)
        SELECT substr(rated_at, 1, 10), NEW.unit_id, score, 1 FROM ratings
        WHERE item_id = NEW.id AND round = 1
        ON CONFLICT (day, unit_id, score) DO UPDATE SET n = n + 1
    ;INSERT INTO rating_kind_days (day, kind_code, score, n)
        SELECT substr(rated_at, 1, 10), NEW.kind_code, score, 1 FROM ratings
        WHERE item_id = NEW.id AND round = 1
        ON CONFLICT (day, kind_code, score) DO UPDATE SET n = n + 1
    ;END;

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
