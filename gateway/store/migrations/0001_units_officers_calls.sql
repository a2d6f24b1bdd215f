-- Units (the police organisation as a tree), officers, and call records.

CREATE TABLE units (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,          -- stable short code, e.g. "PS-DC-01"
    name        TEXT NOT NULL,                 -- Chinese name shown to people
    kind        TEXT NOT NULL CHECK (kind IN ('city', 'sub_bureau', 'county_bureau', 'station', 'department', 'office')),
    parent_id   INTEGER REFERENCES units(id),
    created_at  TEXT NOT NULL
);
CREATE INDEX units_parent ON units(parent_id);

CREATE TABLE officers (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,          -- badge or staff number
    name        TEXT NOT NULL,
    mobile      TEXT,                          -- E.164, may be missing
    unit_id     INTEGER NOT NULL REFERENCES units(id),
    role        TEXT NOT NULL,                 -- 'chief', 'deputy', 'officer', 'agent', 'supervisor', 'leader', 'discipline'
    created_at  TEXT NOT NULL
);
CREATE INDEX officers_unit ON officers(unit_id, role);

CREATE TABLE call_records (
    id              INTEGER PRIMARY KEY,
    pbx             TEXT NOT NULL,             -- configured PBX name
    linkedid        TEXT NOT NULL,             -- Asterisk Linkedid: one record per call
    uniqueid        TEXT NOT NULL,             -- Uniqueid of the call's first channel
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    caller_number   TEXT,                      -- E.164 where it parses, else as received
    caller_name     TEXT,
    dialled_number  TEXT,
    started_at      TEXT NOT NULL,
    answered_at     TEXT,
    ended_at        TEXT,
    duration_s      REAL,
    billable_s      REAL,
    disposition     TEXT,                      -- ANSWERED, NO ANSWER, BUSY, FAILED, ABANDONED, ...
    hangup_cause    INTEGER,
    hangup_cause_text TEXT,
    ivr_path        TEXT NOT NULL DEFAULT '[]', -- JSON list of nodes and keys
    queue           TEXT,
    queue_wait_s    REAL,
    agent           TEXT,
    recording       TEXT,
    case_id         INTEGER,
    complete        INTEGER NOT NULL DEFAULT 0, -- 1 once the call has ended and the record is final
    note            TEXT,                      -- e.g. "events lost across a reconnect"
    updated_at      TEXT NOT NULL,
    UNIQUE (pbx, linkedid)
);
CREATE INDEX call_records_started ON call_records(started_at);
