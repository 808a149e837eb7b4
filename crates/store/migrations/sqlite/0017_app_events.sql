-- Events to the app (the outbox): written in the transaction of the change they
-- announce, one row per event and endpoint, delivered by a worker signed per the
-- Standard Webhooks specification.
CREATE TABLE app_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The event's id (webhook-id): the same for every endpoint; the app's idempotency key.
    id              TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    account         TEXT NOT NULL,
    type            TEXT NOT NULL,
    -- The body sent, byte for byte: {"type","timestamp","data"}.
    payload         TEXT NOT NULL,
    -- Unix milliseconds.
    created_at      BIGINT NOT NULL,
    -- When its retries started (created_at, or its latest replay): retried for three
    -- days from then.
    retry_from      BIGINT NOT NULL,
    -- queued (behind an earlier event of its account for this endpoint), pending (due at
    -- next_attempt_at), processing (leased to lease_owner until lease_until), delivered,
    -- failed (retried for three days, or its endpoint is no longer configured).
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    last_status     BIGINT,
    delivered_at    BIGINT,
    UNIQUE (id, endpoint)
);
-- What the worker claims: due heads, and leases that ran out (an instance killed while
-- delivering).
CREATE INDEX app_events_due ON app_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX app_events_leased ON app_events (lease_until) WHERE status = 'processing';
-- Each account's open events per endpoint, in order: one is delivered at a time.
CREATE INDEX app_events_stream ON app_events (endpoint, account, seq)
    WHERE status IN ('queued', 'pending', 'processing');
-- Retention: finished events by age; the dead letter for the metrics and the admin.
CREATE INDEX app_events_done ON app_events (created_at) WHERE status IN ('delivered', 'failed');
CREATE INDEX app_events_failed ON app_events (seq) WHERE status = 'failed';

-- credits.low / credits.depleted are sent once per crossing: the level an account was
-- last seen at (ok, low, depleted), and its own threshold (hundredths; NULL: the
-- service's CREDITS_LOW_THRESHOLD).
ALTER TABLE credit_accounts ADD COLUMN low_threshold BIGINT;
ALTER TABLE credit_accounts ADD COLUMN balance_level TEXT NOT NULL DEFAULT 'ok';

-- credits.expired is sent once per lot: lots whose expiry was announced (or, for lots
-- that expired before this version, needs no announcement).
ALTER TABLE credit_lots ADD COLUMN expiry_announced BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE credit_lots SET expiry_announced = TRUE
    WHERE expires_at IS NOT NULL AND expires_at <= CAST(strftime('%s', 'now') AS INTEGER);
CREATE INDEX credit_lots_expiring ON credit_lots (expires_at)
    WHERE expiry_announced = FALSE AND expires_at IS NOT NULL;
