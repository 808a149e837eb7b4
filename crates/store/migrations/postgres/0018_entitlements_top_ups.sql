-- Entitlements (Stripe's features, mirrored) and automatic top-ups.

-- Stripe's entitlement features (`GET /v1/entitlements/features`), with the catalog's
-- frame: `version` orders writes (the time a sync read it), `deleted` is a tombstone
-- (a feature a complete listing no longer returned).
CREATE TABLE features (
    id          TEXT PRIMARY KEY,
    lookup_key  TEXT NOT NULL,
    name        TEXT NOT NULL,
    active      BOOLEAN NOT NULL,
    livemode    BOOLEAN NOT NULL,
    version     BIGINT NOT NULL,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    raw         TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX features_lookup_key ON features (lookup_key);

-- Which features each product gives (`GET /v1/products/{id}/features`), replaced
-- product by product when a sync reads them.
CREATE TABLE product_features (
    product     TEXT NOT NULL,
    feature     TEXT NOT NULL,
    -- The attachment's own id (prodft_…).
    id          TEXT NOT NULL,
    synced_at   BIGINT NOT NULL,
    PRIMARY KEY (product, feature)
);

-- A customer's active entitlements as Stripe last answered them
-- (`GET /v1/entitlements/active_entitlements?customer=`): what the gate answers from,
-- also while Stripe is down. One row per lookup key.
CREATE TABLE customer_entitlements (
    customer    TEXT NOT NULL,
    lookup_key  TEXT NOT NULL,
    feature     TEXT NOT NULL,
    PRIMARY KEY (customer, lookup_key)
);

-- When each customer's set was read from Stripe (unix ms): a slower read that commits
-- after a newer one is refused, so the stored set never goes back in time.
CREATE TABLE entitlement_reads (
    customer    TEXT PRIMARY KEY,
    read_at     BIGINT NOT NULL,
    -- The set changed at this read: what entitlements.updated reports.
    changed_at  BIGINT
);

-- Automatic top-ups: the account's setting. `below` is in hundredths of a credit;
-- `armed` is false from a top-up until what the account may spend is back at or above
-- `below` (or the setting is saved again): one purchase per crossing.
CREATE TABLE top_up_settings (
    account          TEXT PRIMARY KEY REFERENCES credit_accounts (id),
    below            BIGINT NOT NULL,
    price            TEXT NOT NULL,
    quantity         BIGINT NOT NULL,
    max_per_day      BIGINT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    armed            BOOLEAN NOT NULL,
    -- Why it was turned off by the service (a card that needs authentication).
    disabled_reason  TEXT,
    updated_at       BIGINT NOT NULL
);
-- The hot path reads the account row anyway: `below` of an enabled setting, else NULL,
-- so a consumption on an account without top-ups costs no extra query.
ALTER TABLE credit_accounts ADD COLUMN top_up_below BIGINT;

-- Each purchase (one per crossing), paid by the charger: queued → paid (Stripe took the
-- money; the credits come with invoice.paid) → succeeded (granted), or failed, or
-- skipped (the day's maximum was reached).
CREATE TABLE top_ups (
    id            TEXT PRIMARY KEY,
    account       TEXT NOT NULL,
    -- The account's purchases in order (1, 2, …): written under the account's lock.
    seq           BIGINT NOT NULL,
    -- The UTC day it counts against (YYYY-MM-DD).
    day           TEXT NOT NULL,
    status        TEXT NOT NULL,
    price         TEXT NOT NULL,
    quantity      BIGINT NOT NULL,
    -- What the account could spend when it crossed (hundredths).
    spendable     BIGINT NOT NULL,
    invoice       TEXT,
    error         TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX top_ups_account ON top_ups (account, seq);
CREATE INDEX top_ups_due ON top_ups (next_attempt_at) WHERE status = 'queued';
CREATE INDEX top_ups_invoice ON top_ups (invoice);

-- Every instance keeps accounts' entitlements in memory (see the store's `changes`
-- module): a changed set, or an account linked to another customer, announces itself.
CREATE TRIGGER customer_entitlements_announce
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON customer_entitlements
    FOR EACH STATEMENT EXECUTE FUNCTION sm_announce_change('stripe_manager_entitlements');
-- Per row and only when the link really changes: a link attempt that changes nothing
-- (the account already has its customer) must not empty every instance's cache.
CREATE TRIGGER credit_accounts_customer_announce
    AFTER UPDATE OF stripe_customer ON credit_accounts
    FOR EACH ROW WHEN (OLD.stripe_customer IS DISTINCT FROM NEW.stripe_customer)
    EXECUTE FUNCTION sm_announce_change('stripe_manager_entitlements');
