-- Chasing appeals near or past their deadlines, and bookings by SMS.

-- One row per case and deadline chased ('accept': appeal_terms.accept_by, 'answer':
-- appeal_terms.answer_by), written when the first thing happens to it: the reminder
-- before the deadline, or the first level once it is overdue. Like a rectification
-- order, `notified_level` records which level was texted; the sweeper texts any open
-- chase whose level is above it.
CREATE TABLE case_chases (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases(id),
    stage           TEXT NOT NULL CHECK (stage IN ('accept', 'answer')),
    due_at          TEXT NOT NULL,             -- UTC: the deadline chased
    reminded_at     TEXT,                      -- UTC: the reminder before it was queued
    level           INTEGER NOT NULL DEFAULT 0 CHECK (level BETWEEN 0 AND 4),  -- 0: not overdue
    notified_level  INTEGER NOT NULL DEFAULT 0,
    level_due_at    TEXT,                      -- UTC: the current level climbs then; NULL at the top
    -- open: chased; ended: the case was accepted / answered / merged / closed
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (case_id, stage)
);
CREATE INDEX case_chases_climb ON case_chases(status, level_due_at);
CREATE INDEX case_chases_unnotified ON case_chases(status, notified_level, level);

-- Bookings of police business (exit-entry, household registration, vehicle inspection…)
-- made on the service web sites and WeChat, confirmed and reminded by text.
CREATE TABLE bookings (
    id              INTEGER PRIMARY KEY,
    ref             TEXT NOT NULL UNIQUE,      -- the client's reference: the same twice is one booking
    number          TEXT NOT NULL UNIQUE,      -- ours, for people: B20261201-0001
    digest          TEXT NOT NULL,             -- sha256 of the content: the same ref must match
    kind            TEXT NOT NULL,             -- gateway/bookings/kinds.toml
    citizen_number  TEXT NOT NULL,             -- E.164 mobile
    citizen_name    TEXT NOT NULL DEFAULT '',
    slot_at         TEXT NOT NULL,             -- UTC
    place           TEXT NOT NULL,
    bring           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    -- due: the reminder waits for remind_at; sent; none: no reminder (the evening before
    -- had passed when it was booked); skipped: cancelled, or the slot began first
    reminder        TEXT NOT NULL CHECK (reminder IN ('due', 'sent', 'none', 'skipped')),
    remind_at       TEXT,                      -- UTC
    cancelled_at    TEXT,
    cancel_reason   TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX bookings_reminder ON bookings(reminder, remind_at);
CREATE INDEX bookings_slot ON bookings(slot_at);
