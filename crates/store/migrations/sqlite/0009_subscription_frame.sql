-- Subscriptions join the generic object pipeline (sm_store::objects), whose frame has a
-- tombstone flag. Stripe never deletes a subscription (`customer.subscription.deleted`
-- means it ended: status `canceled`), so the flag stays FALSE; it is here so that one
-- writer serves every mirrored object.
ALTER TABLE subscriptions ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
