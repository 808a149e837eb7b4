-- Admin logins. Passwords are argon2id hashes (PHC strings). Sessions live here so every
-- instance sees them; the cookie holds a random token whose SHA-256 is the row's id.
CREATE TABLE admin_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE admin_sessions (
    id           TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES admin_users (id),
    -- Sent back in every state-changing form.
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    origin       TEXT,
    -- The outcome of the last action, shown once on the next page ('ok:…' or 'err:…').
    flash        TEXT
);

-- Failed logins per key ('email:<address>' or 'ip:<address>') in the current window.
CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT
);
