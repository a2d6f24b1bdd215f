-- Evaluation callbacks: served items, callback attempts, ratings, rectification
-- orders and their four-level escalation.

CREATE TABLE served_items (
    id              INTEGER PRIMARY KEY,
    reference       TEXT NOT NULL UNIQUE,      -- the police system's own reference: duplicates refused
    kind_code       TEXT NOT NULL,             -- gateway/callbacks/catalogue.toml
    unit_id         INTEGER NOT NULL REFERENCES units(id),
    officer_code    TEXT,
    citizen_number  TEXT NOT NULL,             -- E.164
    citizen_name    TEXT,
    served_at       TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT 'api',
    -- pending: waiting for its (next) call; calling: a call is out; sms: waiting for a
    -- reply to the rating request; rated; unreachable; skipped (kind not called back)
    status          TEXT NOT NULL CHECK (status IN ('pending', 'calling', 'sms', 'rated', 'unreachable', 'skipped')),
    round           INTEGER NOT NULL DEFAULT 1, -- 1 = first callback; +1 after each rectification
    attempts        INTEGER NOT NULL DEFAULT 0, -- calls placed in this round
    next_attempt_at TEXT,                       -- UTC; NULL when nothing is due
    sms_expires_at  TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX served_items_due ON served_items(status, next_attempt_at);
CREATE INDEX served_items_citizen ON served_items(citizen_number, status);

CREATE TABLE callback_attempts (
    id          INTEGER PRIMARY KEY,
    item_id     INTEGER NOT NULL REFERENCES served_items(id),
    round       INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('call', 'sms')),
    -- placed: written before Originate; then answered / busy / no_answer / failed /
    -- congestion / no_such_number / unknown (lost in a restart); rated / no_rating for answered calls
    outcome     TEXT NOT NULL,
    pbx         TEXT,
    action_id   TEXT,
    uniqueid    TEXT,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    UNIQUE (item_id, round, attempt, channel)
);

CREATE TABLE ratings (
    id          INTEGER PRIMARY KEY,
    item_id     INTEGER NOT NULL REFERENCES served_items(id),
    attempt_id  INTEGER REFERENCES callback_attempts(id),
    round       INTEGER NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('phone', 'sms')),
    score       INTEGER NOT NULL CHECK (score IN (1, 2, 3)),  -- 1 satisfied, 2 basically, 3 dissatisfied
    reason      TEXT,                      -- attitude, slow, unfair, unsolved, other
    recording   TEXT,
    rated_at    TEXT NOT NULL,
    UNIQUE (item_id, round)
);
CREATE INDEX ratings_rated_at ON ratings(rated_at);

CREATE TABLE rectification_orders (
    id              INTEGER PRIMARY KEY,
    ref             TEXT NOT NULL UNIQUE,   -- ZG20261130-0001, quoted by the chief's reply
    item_id         INTEGER NOT NULL REFERENCES served_items(id),
    rating_id       INTEGER NOT NULL REFERENCES ratings(id),
    level           INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    -- open: waiting for the unit's report; reported: done, waiting for the callback;
    -- closed: the citizen is satisfied
    status          TEXT NOT NULL CHECK (status IN ('open', 'reported', 'closed')),
    deadline_at     TEXT NOT NULL,
    reported_at     TEXT,
    reported_by     TEXT,
    report_note     TEXT,
    closed_at       TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (rating_id)
);
CREATE INDEX rectification_orders_open ON rectification_orders(status, deadline_at);

CREATE TABLE order_events (
    id          INTEGER PRIMARY KEY,
    order_id    INTEGER NOT NULL REFERENCES rectification_orders(id),
    at          TEXT NOT NULL,
    level       INTEGER NOT NULL,
    action      TEXT NOT NULL,   -- created, notified, skipped_no_mobile, reported, escalated, recalled, closed
    actor       TEXT,
    note        TEXT
);
CREATE INDEX order_events_order ON order_events(order_id);
