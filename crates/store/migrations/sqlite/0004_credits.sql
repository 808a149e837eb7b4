-- The credit ledger. Quantities are integer hundredths of a credit; times are unix
-- seconds. Lots hold what each grant has left; entries are the append-only journal of
-- every change to a lot, written in the same transaction. For every account the sum
-- of entries.amount equals the sum of credit_lots.remaining.

-- The app's own account reference, linked to a Stripe customer once one exists. Every
-- ledger transaction locks its account row first, which orders concurrent debits.
CREATE TABLE credit_accounts (
    id              TEXT PRIMARY KEY,
    stripe_customer TEXT UNIQUE,
    created_at      BIGINT NOT NULL
);

CREATE TABLE credit_lots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT NOT NULL REFERENCES credit_accounts (id),
    -- 'purchase', 'subscription' or 'admin'.
    source      TEXT NOT NULL,
    -- What granted it, unique so a grant happens once: cs_…, in_…, admin:<uuid>.
    source_ref  TEXT NOT NULL UNIQUE,
    amount      BIGINT NOT NULL CHECK (amount >= 0),
    remaining   BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    -- Subscription lots expire at the end of the period they were paid for.
    expires_at  BIGINT,
    product     TEXT,
    price       TEXT,
    quantity    BIGINT,
    -- The payment (pi_…) and the money paid, for taking credits back on a refund.
    payment_ref TEXT,
    paid_amount BIGINT,
    currency    TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX credit_lots_account ON credit_lots (account, id);
CREATE INDEX credit_lots_payment ON credit_lots (payment_ref);

CREATE TABLE credit_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT NOT NULL REFERENCES credit_accounts (id),
    lot         BIGINT REFERENCES credit_lots (id),
    -- 'grant', 'consume', 'refund', 'adjust' (admin) or 'debt'.
    kind        TEXT NOT NULL,
    -- Signed change to `lot`; 0 for a free consumption and for a debt record.
    amount      BIGINT NOT NULL,
    -- For 'debt': what a refund could not take back because it was already spent.
    shortfall   BIGINT NOT NULL DEFAULT 0,
    -- What caused it: a session, invoice or refund id, an idempotency key, admin:<uuid>.
    ref         TEXT NOT NULL,
    description TEXT,
    actor       TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX credit_entries_account ON credit_entries (account, id);

-- One row per consumption idempotency key: a repeat with the same body gets the same
-- answer; another body is refused.
CREATE TABLE credit_consumptions (
    account         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    description     TEXT,
    balance_after   BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (account, idempotency_key)
);

-- Refunds already taken into account (once per refund).
CREATE TABLE credit_refunds (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    lot         BIGINT,
    refunded    BIGINT NOT NULL,
    credits     BIGINT NOT NULL,
    shortfall   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Stripe subscriptions as last seen (by event time), with the account they belong to.
CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    account              TEXT,
    customer             TEXT NOT NULL,
    status               TEXT NOT NULL,
    price                TEXT,
    product              TEXT,
    quantity             BIGINT,
    current_period_start BIGINT,
    current_period_end   BIGINT,
    cancel_at_period_end BOOLEAN NOT NULL,
    canceled_at          BIGINT,
    event_created        BIGINT NOT NULL,
    raw                  TEXT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX subscriptions_account ON subscriptions (account);

-- Checkout sessions created through POST /api/v1/checkout, and what became of them.
CREATE TABLE checkout_sessions (
    id             TEXT PRIMARY KEY,
    account        TEXT NOT NULL,
    customer       TEXT,
    mode           TEXT NOT NULL,
    price          TEXT NOT NULL,
    product        TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    -- 'open', 'complete', 'expired'; payment 'paid', 'unpaid', 'no_payment_required',
    -- or 'failed' after checkout.session.async_payment_failed.
    status         TEXT NOT NULL,
    payment_status TEXT,
    url            TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_account ON checkout_sessions (account, created_at);

-- Who did what, append-only: credit adjustments now, every admin action later.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    detail  TEXT,
    origin  TEXT,
    result  TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
