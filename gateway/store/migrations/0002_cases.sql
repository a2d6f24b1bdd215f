-- Cases (appeals from every channel, one matter one case), their history, the
-- daily case-number counter; and what call records still needed.

CREATE TABLE cases (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,      -- e.g. TS20261130-0007; see gateway/store/cases.py
    number_digits   TEXT NOT NULL UNIQUE,      -- 202611300007: what a caller keys in on the phone
    channel         TEXT NOT NULL CHECK (channel IN ('hotline', 'web', 'wechat', 'sms', 'letter', 'visit', 'email')),
    category        TEXT NOT NULL CHECK (category IN ('complaint', 'suggestion', 'consultation', 'booking', 'report', 'help', 'praise', 'other')),
    subject         TEXT NOT NULL DEFAULT '',  -- one line, Chinese, as the citizen or agent put it
    content         TEXT NOT NULL DEFAULT '',
    citizen_number  TEXT,                      -- E.164
    citizen_name    TEXT,
    recording       TEXT,                      -- the caller's voice message, in the data folder
    owner_unit_id   INTEGER REFERENCES units(id),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'assigned', 'in_progress', 'resolved', 'closed')),
    deadline        TEXT,                      -- UTC
    merged_into     INTEGER REFERENCES cases(id),
    call_pbx        TEXT,                      -- the call that opened it, if any
    call_linkedid   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX cases_status ON cases(status, deadline);
CREATE INDEX cases_owner ON cases(owner_unit_id, status);
CREATE INDEX cases_citizen ON cases(citizen_number, category, status);
CREATE INDEX cases_created ON cases(created_at);

CREATE TABLE case_history (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases(id),
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,                 -- officer code, 'ivr', 'web', 'system', ...
    action      TEXT NOT NULL,                 -- opened, assigned, status, merged, note, ...
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX case_history_case ON case_history(case_id, id);

-- One row per local day: the last sequence number handed out that day.
CREATE TABLE case_counters (
    day         TEXT PRIMARY KEY,              -- YYYYMMDD, Asia/Shanghai
    last        INTEGER NOT NULL
);

-- Call records: the keys the caller pressed, and whether we missed the call's start.
ALTER TABLE call_records ADD COLUMN dtmf TEXT NOT NULL DEFAULT '';
ALTER TABLE call_records ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
CREATE INDEX call_records_caller ON call_records(caller_number, started_at);

-- What the flow runner attached to a call whose record is not stored yet; the
-- record's first upsert takes it over and deletes the row.
CREATE TABLE call_record_attachments (
    pbx         TEXT NOT NULL,
    linkedid    TEXT NOT NULL,
    ivr_path    TEXT,                          -- JSON list, NULL: not attached
    case_id     INTEGER,
    recording   TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (pbx, linkedid)
);
