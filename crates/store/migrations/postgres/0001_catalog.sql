-- The local copy of Stripe's catalog, and the record of every sync run.
-- Timestamps are unix seconds (Stripe's own unit). JSON is stored as text.

CREATE TABLE products (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    description      TEXT,
    active           BOOLEAN NOT NULL,
    deleted          BOOLEAN NOT NULL DEFAULT FALSE,
    -- Parsed from metadata; NULL when missing or invalid.
    credit_amount    BIGINT,
    -- metadata credit_type when given ('payg' or 'subscription'), else NULL.
    credit_type      TEXT,
    display_order    BIGINT,
    valid            BOOLEAN NOT NULL,
    validation_error TEXT,
    default_price_id TEXT,
    metadata         TEXT NOT NULL,
    raw              TEXT NOT NULL,
    livemode         BOOLEAN NOT NULL,
    stripe_created   BIGINT NOT NULL,
    -- Stripe's `updated` (or the event time for deletions): writes never go backwards.
    stripe_updated   BIGINT NOT NULL,
    synced_at        BIGINT NOT NULL,
    -- The catalog version (catalog_meta) of the write that last changed this row; a
    -- full sync never tombstones rows written after it started.
    write_seq        BIGINT NOT NULL DEFAULT 0,
    -- The full sync run that last saw this product in Stripe.
    seen_in_run      BIGINT
);

CREATE INDEX products_listing ON products (deleted, active, display_order, name);

CREATE TABLE prices (
    id                  TEXT PRIMARY KEY,
    product_id          TEXT NOT NULL,
    active              BOOLEAN NOT NULL,
    deleted             BOOLEAN NOT NULL DEFAULT FALSE,
    currency            TEXT NOT NULL,
    unit_amount         BIGINT,
    unit_amount_decimal TEXT,
    -- 'fixed', 'tiered' or 'custom': only 'fixed' prices have a unit_amount.
    amount_kind         TEXT NOT NULL,
    kind                TEXT NOT NULL,
    recurring_interval  TEXT,
    interval_count      BIGINT,
    nickname            TEXT,
    lookup_key          TEXT,
    metadata            TEXT NOT NULL,
    raw                 TEXT NOT NULL,
    livemode            BOOLEAN NOT NULL,
    stripe_created      BIGINT NOT NULL,
    -- Prices have no `updated`: this is the time the data was read from Stripe (sync)
    -- or the event's `created` (webhooks). Writes never go backwards.
    observed_at         BIGINT NOT NULL,
    synced_at           BIGINT NOT NULL,
    write_seq           BIGINT NOT NULL DEFAULT 0,
    seen_in_run         BIGINT
);

CREATE INDEX prices_by_product ON prices (product_id);

CREATE TABLE sync_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'full' or 'selected'
    scope        TEXT NOT NULL,
    -- 'cli', 'api' or 'admin'
    origin       TEXT NOT NULL,
    -- 'running', 'succeeded' or 'failed'
    status       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    -- HTTP requests sent to Stripe, retries included.
    requests     BIGINT NOT NULL DEFAULT 0,
    products_created    BIGINT NOT NULL DEFAULT 0,
    products_updated    BIGINT NOT NULL DEFAULT 0,
    products_unchanged  BIGINT NOT NULL DEFAULT 0,
    -- Local rows newer than what Stripe returned (a webhook got there first).
    products_stale      BIGINT NOT NULL DEFAULT 0,
    products_invalid    BIGINT NOT NULL DEFAULT 0,
    products_tombstoned BIGINT NOT NULL DEFAULT 0,
    prices_created      BIGINT NOT NULL DEFAULT 0,
    prices_updated      BIGINT NOT NULL DEFAULT 0,
    prices_unchanged    BIGINT NOT NULL DEFAULT 0,
    prices_stale        BIGINT NOT NULL DEFAULT 0,
    prices_tombstoned   BIGINT NOT NULL DEFAULT 0,
    -- JSON: {"errors": [...], "invalid": [{"id", "name", "error"}]}
    report       TEXT NOT NULL DEFAULT '{}'
);

-- Bumped in the same transaction as every catalog write, so a cache in any process
-- (the server, or a CLI sync next to it) can tell whether it is current.
CREATE TABLE catalog_meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalog_meta (id, version) VALUES (1, 0);

-- Leases (PostgreSQL also takes an advisory lock for the full sync).
CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
