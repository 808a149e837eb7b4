-- The admin's event list pages newest first over every status (keyset on received_at,
-- id), and its charts count the last day's events by minute: both read this index in
-- order instead of sorting the table. The per-status partial indexes cannot serve a
-- list that shows every status.
CREATE INDEX webhook_events_received ON webhook_events (received_at, id);

-- The admin's accounts list pages newest first (keyset on created_at, id).
CREATE INDEX credit_accounts_created ON credit_accounts (created_at, id);

-- An unlock from the admin looks up the addresses an email's sign-ins came from.
CREATE INDEX audit_log_actor ON audit_log (actor, action, at);
