-- Mirrors of Stripe objects written through the generic object pipeline
-- (sm_store::objects): every table has the same frame — the id, the columns extracted
-- from Stripe's JSON, `version` (the ordering guard: an event's `created`, or the time
-- a sync read the object), `deleted` (a tombstone), the JSON itself and `synced_at`.

-- Customers. `account` is the customer's `metadata.account`, so a customer created
-- outside this service links to the account too.
CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    account    TEXT,
    email      TEXT,
    name       TEXT,
    livemode   BOOLEAN NOT NULL,
    created    BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL,
    raw        TEXT NOT NULL,
    synced_at  BIGINT NOT NULL
);
CREATE INDEX customers_account ON customers (account);

-- Invoices with what a payment history shows.
CREATE TABLE invoices (
    id                 TEXT PRIMARY KEY,
    customer           TEXT,
    subscription       TEXT,
    status             TEXT,
    currency           TEXT,
    total              BIGINT,
    amount_due         BIGINT,
    amount_paid        BIGINT,
    amount_remaining   BIGINT,
    number             TEXT,
    hosted_invoice_url TEXT,
    invoice_pdf        TEXT,
    billing_reason     TEXT,
    livemode           BOOLEAN NOT NULL,
    created            BIGINT NOT NULL,
    version            BIGINT NOT NULL,
    deleted            BOOLEAN NOT NULL,
    raw                TEXT NOT NULL,
    synced_at          BIGINT NOT NULL
);
CREATE INDEX invoices_customer ON invoices (customer, created);
