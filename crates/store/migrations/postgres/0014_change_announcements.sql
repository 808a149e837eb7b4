-- Every instance keeps the API tokens it has checked and the catalog version in memory
-- and forgets them when told (LISTEN, see the store's `changes` module). The telling is
-- done here, by triggers, so that no write can forget it: a revocation from the CLI, the
-- admin page or a hand-written UPDATE in psql announces itself alike, and only if it
-- commits. The payload is the table's schema: deployments and tests on other schemas of
-- the same database ignore each other.
CREATE FUNCTION sm_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], TG_TABLE_SCHEMA::text);
    RETURN NULL;
END
$$;

-- Every catalog write bumps catalog_meta.version in its transaction.
CREATE TRIGGER catalog_meta_announce AFTER UPDATE ON catalog_meta
    FOR EACH STATEMENT EXECUTE FUNCTION sm_announce_change('stripe_manager_catalog');

-- What decides whether a token is accepted; not last_used_at, written once a minute per
-- token by each instance that sees it used (announcing that would empty every
-- instance's cache once a minute per busy token for nothing).
CREATE TRIGGER api_tokens_announce
    AFTER UPDATE OF revoked_at, scopes, hash, name OR DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION sm_announce_change('stripe_manager_tokens');
