-- Dashboard sessions ended by a logout before their cookie expires: a cookie whose
-- nonce is here is refused even though its signature is good.
CREATE TABLE ended_sessions (
    nonce TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX ended_sessions_expiry ON ended_sessions (expires_at);

-- /health writes a row here (and deletes it) to prove the store still takes writes.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY,
    payload BLOB NOT NULL,
    at TEXT NOT NULL
);
