-- Charges (sm_store::objects::CHARGES), for what a payment history shows of a one-time
-- payment: its receipt and how much of it was refunded. Same frame as every mirror.
CREATE TABLE charges (
    id              TEXT PRIMARY KEY,
    payment_intent  TEXT,
    customer        TEXT,
    amount          BIGINT,
    amount_refunded BIGINT,
    currency        TEXT,
    status          TEXT,
    receipt_url     TEXT,
    livemode        BOOLEAN NOT NULL,
    created         BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    deleted         BOOLEAN NOT NULL,
    raw             TEXT NOT NULL,
    synced_at       BIGINT NOT NULL
);
CREATE INDEX charges_payment_intent ON charges (payment_intent);
