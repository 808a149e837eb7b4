-- The webhook inbox: every verified event, stored before it is acknowledged, processed
-- afterwards by workers that lease it. Operational times are unix milliseconds.

CREATE TABLE webhook_events (
    -- Stripe's event id: a redelivery is the same row (ON CONFLICT DO NOTHING).
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    -- The event's `created` (unix seconds, Stripe's clock).
    created         BIGINT NOT NULL,
    livemode        BOOLEAN NOT NULL,
    api_version     TEXT,
    -- The body exactly as Stripe sent it.
    payload         TEXT NOT NULL,
    -- 'webhook' or 'reconcile' (recovered from the Events API).
    source          TEXT NOT NULL,
    -- 'pending', 'processing', 'processed', 'ignored' or 'failed' (dead letter).
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    received_at     BIGINT NOT NULL,
    processed_at    BIGINT
);

CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_type ON webhook_events (type, received_at);
