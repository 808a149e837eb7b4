-- Admin self-service (sm_store::admin): an operator can disable a login without deleting
-- it, so its audit trail keeps a name and it can be enabled again. NULL is active; a
-- time is when it was disabled (its sessions end then, and no new one is honoured).
ALTER TABLE admin_users ADD COLUMN disabled_at BIGINT NULL;
