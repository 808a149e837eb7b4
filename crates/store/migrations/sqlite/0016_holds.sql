-- Holds: credits an app reserves before long work, then captures (spends) or releases.
-- A hold takes no lot: it only lowers what consumptions and other holds may spend
-- (available − held), until it is captured, released or expires. The row is also the
-- hold's exactly-once record: its creation under (account, idempotency_key), its
-- capture or release by the one change of `status` away from 'held'.
CREATE TABLE credit_holds (
    id              TEXT PRIMARY KEY,
    account         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- What identifies the creating request's body under its key.
    request_hash    TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    description     TEXT,
    -- held, captured, released, expired.
    status          TEXT NOT NULL,
    -- What the capture spent (≤ amount); NULL until captured.
    captured        BIGINT,
    -- The available balance right after the capture.
    balance_after   BIGINT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    settled_at      BIGINT,
    UNIQUE (account, idempotency_key)
);
-- What an account has held (read by every consumption) and what is due for release:
-- only open holds are indexed.
CREATE INDEX credit_holds_open ON credit_holds (account, expires_at) WHERE status = 'held';
CREATE INDEX credit_holds_due ON credit_holds (expires_at) WHERE status = 'held';

-- How many holds of the account are `held` (expired or not): kept with the holds under
-- the account's lock and read by the statement that locks accounts for a consumption
-- group, which then sums the open holds only of accounts that have some. Without it,
-- every group paid one more statement for holds most accounts never have (measured:
-- 3,302 → 2,547 consumptions/s on 16 accounts, docs/BENCHMARKS.md).
ALTER TABLE credit_accounts ADD COLUMN open_holds BIGINT NOT NULL DEFAULT 0;
