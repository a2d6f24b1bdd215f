-- Texts: the outbox (every text is a row before any network call), its history,
-- incoming replies, and the opt-out list.

CREATE TABLE sms_messages (
    id               INTEGER PRIMARY KEY,
    purpose          TEXT NOT NULL CHECK (purpose IN ('rectification_order', 'rating_request', 'booking', 'overdue_reminder', 'report')),
    audience         TEXT NOT NULL CHECK (audience IN ('officer', 'citizen')),
    to_number        TEXT NOT NULL,             -- E.164
    sender           TEXT NOT NULL,             -- From number or Messaging Service SID
    template         TEXT NOT NULL,
    variables        TEXT NOT NULL,             -- JSON object
    body             TEXT NOT NULL,
    encoding         TEXT NOT NULL,             -- 'GSM-7' or 'UCS-2'
    segments         INTEGER NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,      -- the same order never yields two texts
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,             -- UTC; a queued row is due from then on
    claimed_at       TEXT,                      -- UTC; when the current/last attempt began
    needs_lookup     INTEGER NOT NULL DEFAULT 0, -- 1: the provider may hold it already: look up before re-sending
    provider_sid     TEXT UNIQUE,
    error_code       TEXT,
    error_message    TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    sent_at          TEXT,
    final_at         TEXT
);
CREATE INDEX sms_messages_due ON sms_messages(status, next_attempt_at);
CREATE INDEX sms_messages_to ON sms_messages(to_number, created_at);

-- Everything that happened to a text, oldest first; provider callbacks for a sid
-- not yet recorded keep message_id NULL until the sid is stored.
CREATE TABLE sms_events (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER REFERENCES sms_messages(id),
    provider_sid  TEXT,
    kind          TEXT NOT NULL,                -- enqueued, claimed, accepted, retry, failed, status, reconciled, held
    status        TEXT,                         -- the status this event reports or sets
    detail        TEXT NOT NULL DEFAULT '',
    at            TEXT NOT NULL
);
CREATE INDEX sms_events_message ON sms_events(message_id, id);
CREATE INDEX sms_events_sid ON sms_events(provider_sid);

CREATE TABLE sms_inbound (
    id            INTEGER PRIMARY KEY,
    provider_sid  TEXT NOT NULL UNIQUE,         -- Twilio's MessageSid: a repeated webhook is stored once
    from_number   TEXT NOT NULL,
    to_number     TEXT NOT NULL,
    body          TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    handled_by    TEXT                          -- name of the handler that took it, NULL if none did
);
CREATE INDEX sms_inbound_from ON sms_inbound(from_number, received_at);

CREATE TABLE sms_optouts (
    number        TEXT PRIMARY KEY,             -- E.164
    keyword       TEXT NOT NULL,                -- TD, 退订, STOP ...
    at            TEXT NOT NULL
);
