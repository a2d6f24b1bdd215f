-- People's accounts (issue 12 point 5): each person logs in with a name and a
-- password and sees the units of their role; machine clients keep their tokens.
-- role: leader | supervision (all units), bureau (a sub-bureau or county bureau
-- and its stations), station (one station), hotline (the hotline only).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL CHECK (role IN ('leader', 'supervision', 'bureau', 'station', 'hotline')),
    unit_id INTEGER NOT NULL REFERENCES units(id),
    -- argon2id, in its own encoded form (algorithm, parameters, salt, hash)
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL,
    disabled_at TEXT
);

-- Sessions kept on the server: the cookie holds a random value, the store only its
-- SHA-256, so a copy of the store opens no session. A session ends at logout, when
-- it is idle too long, or when it is too old (web.session_idle, web.session_lifetime).
CREATE TABLE user_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    address TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX user_sessions_user ON user_sessions(user_id, ended_at);
CREATE INDEX user_sessions_created ON user_sessions(created_at);

-- Failed logins, by the name tried and by the client address, so that the limit
-- on guessing survives a restart.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_username ON login_failures(username, at);
CREATE INDEX login_failures_address ON login_failures(address, at);
CREATE INDEX login_failures_at ON login_failures(at);

-- Who did or viewed what, when: logins, failed logins, logouts, views of a report,
-- a case or a recording, exports, changes of accounts. Only ever appended.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_actor ON audit_log(actor, at);

-- A person's figures count their units' items by status and period
-- (gateway.store.figures.FigureRepository.item_counts).
CREATE INDEX served_items_unit ON served_items(unit_id, status, served_at);

-- The shared-token sessions ended by a logout are gone with the shared token.
DROP TABLE ended_sessions;
