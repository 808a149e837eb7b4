-- The worker's claim reads the oldest due events. With only (status, next_attempt_at)
-- a backlog of N pending events made every claim fetch and sort all N by arrival
-- (35 ms per claim at 42,000 pending, with stale statistics), so a backlog slowed its own
-- draining. These partial indexes hold only the rows a claim (or a replay of the dead
-- letter) can take, in the order it takes them; the old index is dropped so a planner
-- working from stale statistics cannot pick it.
DROP INDEX webhook_events_due;
CREATE INDEX webhook_events_pending ON webhook_events (received_at, id) WHERE status = 'pending';
CREATE INDEX webhook_events_leased ON webhook_events (lease_until) WHERE status = 'processing';
CREATE INDEX webhook_events_failed ON webhook_events (received_at) WHERE status = 'failed';
