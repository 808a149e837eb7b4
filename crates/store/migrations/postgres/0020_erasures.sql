-- Erased customers (sm_store::privacy): a customer whose personal data was redacted by
-- `accounts erase` or because Stripe deleted it (`customer.deleted`). Remembered for
-- ever (it holds ids only): every later mirror write for the customer — an event, a
-- `sync --objects` listing — stores the redacted form, so nothing brings the data back.
CREATE TABLE erased_customers (
    customer    TEXT PRIMARY KEY,
    -- The account it belonged to, when known.
    account     TEXT,
    -- When the data was first redacted (unix seconds), by whom (`cli:alice`,
    -- `admin:bob@example.com`, `stripe` for customer.deleted) and why (`erase`,
    -- `customer.deleted`).
    erased_at   BIGINT NOT NULL,
    erased_by   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    -- When the customer was deleted in Stripe (the event's time, or `accounts erase
    -- --stripe`); NULL while it lives there. MIRROR_RETENTION_DAYS counts from this.
    deleted_at  BIGINT
);
CREATE INDEX erased_customers_account ON erased_customers (account);
CREATE INDEX erased_customers_deleted ON erased_customers (deleted_at) WHERE deleted_at IS NOT NULL;
-- The pruner and the erasure find a customer's charges by customer.
CREATE INDEX charges_customer ON charges (customer);
CREATE INDEX subscriptions_customer ON subscriptions (customer);
