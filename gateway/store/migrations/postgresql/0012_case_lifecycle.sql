-- PostgreSQL form of ../0012_case_lifecycle.sql: the same tables and columns (tests/test_store_engines.py).
-- The case lifecycle (assign, accept, answer, close): the one answer of a case and
-- the served item that calls the citizen back about it; the status-query PIN the
-- acceptance text gives; texts about a case get a purpose of their own.

-- The one answer a case gets, who gave it, and the served item (kind appeal_answer)
-- whose callback asks the citizen to rate it (NULL: no callable number).
CREATE TABLE case_answers (
    case_id         INTEGER PRIMARY KEY REFERENCES cases(id),
    answer          TEXT NOT NULL,
    officer_code    TEXT NOT NULL,
    unit_id         INTEGER NOT NULL REFERENCES units(id),
    item_id         INTEGER REFERENCES served_items(id),
    answered_at     TEXT NOT NULL              -- UTC
);
CREATE INDEX case_answers_item ON case_answers(item_id);

-- The PIN a caller keys on the hotline to hear a case's status from another phone:
-- only its salted hash is kept. Wrong PINs are counted per case; past the limit
-- the case's PIN is refused until locked_until.
CREATE TABLE case_pins (
    case_id         INTEGER PRIMARY KEY REFERENCES cases(id),
    pin_hash        TEXT NOT NULL,             -- pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>
    failures        INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,                      -- UTC
    created_at      TEXT NOT NULL
);

-- sms_messages.purpose gains 'case' (a case accepted, its answer): PostgreSQL widens
-- the CHECK in place (SQLite's form edits the table's definition).
ALTER TABLE sms_messages DROP CONSTRAINT sms_messages_purpose_check;
ALTER TABLE sms_messages ADD CONSTRAINT sms_messages_purpose_check CHECK (purpose IN (
    'rectification_order', 'rating_request', 'booking', 'overdue_reminder', 'report', 'case'));
