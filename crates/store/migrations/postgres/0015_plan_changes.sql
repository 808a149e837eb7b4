-- Plan changes left for the end of the period (subscription schedules) and invoices that
-- wait for their account.

-- Subscription schedules, newest event first: the change a schedule will make next
-- (the price and quantity of its next phase, and when), for the account view and for
-- cancelling a scheduled change. Finished schedules keep their row with no next phase.
CREATE TABLE subscription_schedules (
    id            TEXT PRIMARY KEY,
    subscription  TEXT,
    -- not_started, active, completed, released, canceled.
    status        TEXT NOT NULL,
    next_price    TEXT,
    next_quantity BIGINT,
    next_at       BIGINT,
    event_created BIGINT NOT NULL,
    raw           TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX subscription_schedules_subscription ON subscription_schedules (subscription);

-- An event that cannot be applied until something else arrives (an invoice of a
-- payment-link subscription whose account is named by a checkout session still on its
-- way): what it waits for (`customer:cus_…`). It stays pending, is never dead-lettered
-- or pruned for waiting, and is woken when that arrives.
ALTER TABLE webhook_events ADD COLUMN waiting_for TEXT;
CREATE INDEX webhook_events_waiting ON webhook_events (waiting_for);

-- The customer an account was linked to before Stripe deleted it (customer.deleted): the
-- next checkout creates a new customer, under an idempotency key that names this one,
-- so Stripe does not answer with the deleted customer again.
ALTER TABLE credit_accounts ADD COLUMN unlinked_customer TEXT;

-- Proration take-backs recorded before this version were waived where their lot could
-- not give them (they made no debt); they keep that rule. New ones take what the lot
-- cannot give from the account's other lots, then as debt.
ALTER TABLE credit_reversals ADD COLUMN waived BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE credit_reversals SET waived = TRUE WHERE kind = 'proration';
