-- Appeals from every channel: one row per submission, linked to the case it
-- belongs to (one matter, one case). A case's own `channel` stays the coarse kind
-- it was opened from (a 12345 transfer is a 'hotline' case); the submissions keep
-- each channel exactly, with the channel's own reference.

CREATE TABLE appeal_submissions (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases(id),   -- the case it belongs to now
    channel         TEXT NOT NULL CHECK (channel IN ('web', 'wechat', 'letter', 'visit', '12345')),
    reference       TEXT NOT NULL,             -- the channel's own reference
    digest          TEXT NOT NULL,             -- sha256 of the content: the same reference twice must match
    citizen_number  TEXT NOT NULL,             -- E.164
    citizen_name    TEXT NOT NULL DEFAULT '',
    category        TEXT NOT NULL,
    text            TEXT NOT NULL,
    place           TEXT NOT NULL DEFAULT '',
    unit_hint       TEXT NOT NULL DEFAULT '',  -- a unit code, as the channel guessed it
    repeat          INTEGER NOT NULL DEFAULT 0, -- 1: joined an open case instead of opening one
    received_at     TEXT NOT NULL,             -- UTC
    UNIQUE (channel, reference)
);
CREATE INDEX appeal_submissions_case ON appeal_submissions(case_id, id);
CREATE INDEX appeal_submissions_citizen ON appeal_submissions(citizen_number, received_at);

-- A case's terms from the appeals desk: where its owner came from, and the working-day
-- deadlines to accept and to answer it (see gateway/appeals/terms.toml). `estimated`:
-- the working-day calendar lacked a year the deadline runs into; Monday–Friday was counted.
CREATE TABLE appeal_terms (
    case_id         INTEGER PRIMARY KEY REFERENCES cases(id),
    owner_source    TEXT NOT NULL CHECK (owner_source IN ('hint', 'category', 'none')),
    accept_by       TEXT NOT NULL,             -- UTC
    answer_by       TEXT NOT NULL,             -- UTC; also the case's deadline
    estimated       INTEGER NOT NULL DEFAULT 0
);
