-- Who created each API token: the admin's email (admin UI) or `cli:<user>` (the CLI).
-- Disabling an admin revokes the tokens they created; tokens made before this column
-- existed have none (shown as unknown) and are left alone.
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
