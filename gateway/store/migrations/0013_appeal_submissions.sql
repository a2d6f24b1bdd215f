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
