-- Ledger v2: grants are claimed per origin, reversals (refunds, disputes, proration
-- take-backs) are recorded whether or not their grant has arrived, and each grant lot
-- keeps how much reversals took from it, so the ledger is the same in any arrival order.

-- What granted credits: one checkout session or one invoice. Inserting this row is the
-- claim that makes a grant (all its lots and take-backs) happen once.
CREATE TABLE credit_origins (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    -- 'purchase' or 'subscription'.
    kind        TEXT NOT NULL,
    -- Money paid for it, in the currency's minor units: what refunds are a share of.
    paid_amount BIGINT NOT NULL,
    currency    TEXT,
    created_at  BIGINT NOT NULL
);

-- Meeting points between a grant and the reversals that concern it: a payment (pi_… or
-- ch_…) with the origin it paid for, or a plan period ('plan:sub|price|period_end').
-- Whichever comes first, grant or reversal, inserts the row, and both lock it before
-- reading the other's rows, so on PostgreSQL a reversal and its grant never miss each
-- other on two instances.
CREATE TABLE credit_links (
    ref        TEXT PRIMARY KEY,
    origin     TEXT,
    created_at BIGINT NOT NULL
);

-- Refunds, disputes and proration take-backs, kept from the moment they are seen.
CREATE TABLE credit_reversals (
    -- re_…, du_…/dp_…, or the invoice line (in_…/il_…) of a negative proration.
    id          TEXT PRIMARY KEY,
    -- 'refund', 'dispute' or 'proration'.
    kind        TEXT NOT NULL,
    -- Refunds and disputes: the payment they reverse; prorations: the plan period link.
    link        TEXT NOT NULL,
    -- Refunds and disputes: money (minor units); prorations: credits (hundredths).
    amount      BIGINT NOT NULL,
    -- False once a refund failed or was canceled, or a dispute was won: never true again.
    active      BOOLEAN NOT NULL,
    -- Prorations: the lot of their plan period (NULL while that lot has not arrived).
    lot         BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX credit_reversals_link ON credit_reversals (link);
CREATE INDEX credit_reversals_lot ON credit_reversals (lot);

ALTER TABLE credit_lots ADD COLUMN origin TEXT;
-- Subscription lots: the subscription and the end of the period their line paid for
-- (what a later "unused time" proration line names).
ALTER TABLE credit_lots ADD COLUMN subscription TEXT;
ALTER TABLE credit_lots ADD COLUMN period_end BIGINT;
-- What refunds and disputes of this grant could not take back because it was already
-- spent (debt), and what proration take-backs took from this lot.
ALTER TABLE credit_lots ADD COLUMN debt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE credit_lots ADD COLUMN prorated BIGINT NOT NULL DEFAULT 0;
CREATE INDEX credit_lots_origin ON credit_lots (origin);

-- Credits taken from lot `from_lot` by the refunds and disputes of grant lot `lot` (the
-- lot itself first, then others in spending order): a reversal undone gives back exactly
-- where it took.
CREATE TABLE credit_takes (
    lot      BIGINT NOT NULL,
    from_lot BIGINT NOT NULL,
    amount   BIGINT NOT NULL,
    PRIMARY KEY (lot, from_lot)
);
CREATE INDEX credit_lots_plan ON credit_lots (subscription, price, period_end);

-- Checkouts made through the API keep the credits per unit the product had then.
ALTER TABLE checkout_sessions ADD COLUMN credit_amount BIGINT;

-- Existing grants become origins of their own, their payments links, their refunds
-- reversals.
INSERT INTO credit_origins (id, account, kind, paid_amount, currency, created_at)
    SELECT source_ref, account, source, COALESCE(paid_amount, 0), currency, created_at
    FROM credit_lots WHERE source IN ('purchase', 'subscription')
    ON CONFLICT (id) DO NOTHING;
UPDATE credit_lots SET origin = source_ref WHERE source IN ('purchase', 'subscription');
INSERT INTO credit_links (ref, origin, created_at)
    SELECT payment_ref, MIN(source_ref), MIN(created_at) FROM credit_lots
    WHERE payment_ref IS NOT NULL AND source IN ('purchase', 'subscription')
    GROUP BY payment_ref
    ON CONFLICT (ref) DO NOTHING;
INSERT INTO credit_reversals (id, kind, link, amount, active, created_at, updated_at)
    SELECT r.id, 'refund', COALESCE(l.payment_ref, ''), r.refunded, TRUE, r.created_at, r.created_at
    FROM credit_refunds r LEFT JOIN credit_lots l ON l.id = r.lot;
-- Where each old refund took its credits from: its journal entries.
INSERT INTO credit_takes (lot, from_lot, amount)
    SELECT r.lot, e.lot, -SUM(e.amount) FROM credit_refunds r
    JOIN credit_entries e ON e.ref = r.id AND e.kind = 'refund' AND e.lot IS NOT NULL
    WHERE r.lot IS NOT NULL
    GROUP BY r.lot, e.lot;
UPDATE credit_lots SET
    debt = COALESCE((SELECT SUM(r.shortfall) FROM credit_refunds r WHERE r.lot = credit_lots.id), 0);
-- Old subscription lots expired at their period's end: that is the period a later
-- "unused time" line names.
UPDATE credit_lots SET period_end = expires_at WHERE source = 'subscription';
DROP TABLE credit_refunds;

-- One row that /readyz writes: proof that the database accepts writes, not only reads.
CREATE TABLE service_health (
    id         INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
