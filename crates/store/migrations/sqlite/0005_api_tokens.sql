-- API tokens for /api/v1: only a SHA-256 of each token is kept (tokens are 256 random
-- bits, so a fast hash is as good as a slow one), with its scopes. Shown once at creation.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    -- The first characters of the token (smt_1a2b…), to recognise it in listings.
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    -- Space-separated: catalog:read credits:read credits:write checkout:write sync:write.
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
