-- Retention (sm_store::retention): the pruner finds processed and ignored events by the
-- time they were received. Partial, so an event enters this index once, when it is
-- done, and pending work never pays for it.
CREATE INDEX webhook_events_done ON webhook_events (received_at) WHERE status IN ('processed', 'ignored');
