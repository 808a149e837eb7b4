//! Announcements of changes made by any process on the same PostgreSQL schema, over
//! `LISTEN`/`NOTIFY`, so each instance can keep what it reads on every request (API
//! tokens, the catalog version) in memory and still see another instance's write at
//! once.
//!
//! The catalog and token announcements are sent by triggers (migration 14), not by the
//! code that writes: every write announces itself, including one made by hand in `psql`,
//! and a notification is delivered only if its transaction commits. The inbox's is sent
//! by the insert itself (see [`crate::inbox::INBOX_CHANNEL`]). The payload is the schema,
//! so deployments and tests on other schemas of the same database ignore each other.
//!
//! SQLite has no such channel: [`Store::change_listener`] is `None` there and readers
//! must ask the database every time.

use crate::inbox::INBOX_CHANNEL;
use crate::{Pool, Store, StoreError};

/// Announced after every commit that bumped `catalog_meta.version`.
pub const CATALOG_CHANNEL: &str = "stripe_manager_catalog";
/// Announced after every commit that created, revoked, renamed, rescoped or deleted an
/// API token (not after a last-use update).
pub const TOKENS_CHANNEL: &str = "stripe_manager_tokens";
/// Announced after every commit that changed a customer's active entitlements or which
/// customer an account is linked to (migration 18).
pub const ENTITLEMENTS_CHANNEL: &str = "stripe_manager_entitlements";
/// Sent by a listener's own process through the pool and expected back on the listening
/// connection: proof that the connection still receives (see [`Store::ping_listener`]).
pub const PING_CHANNEL: &str = "stripe_manager_ping";

/// The `application_name` of the listening connection of instances on `schema`, cut
/// to the 63 bytes PostgreSQL keeps.
pub fn listener_name(schema: &str) -> String {
    let mut name = format!("sm-listener {schema}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// What was announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New or replayed webhook events are waiting.
    Inbox,
    Catalog,
    Tokens,
    Entitlements,
    /// A ping came back, with the word it was sent with.
    Ping(String),
}

/// A connection listening on every channel above for this schema.
#[derive(Debug)]
pub struct ChangeListener {
    inner: sqlx::postgres::PgListener,
    schema: String,
}

impl Store {
    /// A listening connection; `None` on SQLite.
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>, StoreError> {
        let Pool::Postgres(pool) = self.pool() else {
            return Ok(None);
        };
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(pool)
            .await?;
        let mut inner = sqlx::postgres::PgListener::connect_with(pool).await?;
        // Named, so an operator (and a test) can tell it apart in pg_stat_activity.
        sqlx::query("SELECT set_config('application_name', $1, false)")
            .bind(listener_name(&schema))
            .execute(&mut inner)
            .await?;
        inner
            .listen_all([
                INBOX_CHANNEL,
                CATALOG_CHANNEL,
                TOKENS_CHANNEL,
                ENTITLEMENTS_CHANNEL,
                PING_CHANNEL,
            ])
            .await?;
        Ok(Some(ChangeListener { inner, schema }))
    }

    /// Sends `word` on [`PING_CHANNEL`] through the pool (a connection other than the
    /// listener's); a listener on this schema receives [`Change::Ping`] with it.
    pub async fn ping_listener(&self, word: &str) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = self.pool() {
            sqlx::query("SELECT pg_notify($1, current_schema() || ' ' || $2)::text")
                .bind(PING_CHANNEL)
                .bind(word)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

impl ChangeListener {
    /// The next announcement for this schema. `Ok(None)` or an error mean the connection
    /// broke and announcements may have been missed: the caller must treat everything
    /// it kept as stale and listen again with a new listener.
    pub async fn next(&mut self) -> Result<Option<Change>, StoreError> {
        loop {
            // `try_recv`, not `recv`: `recv` reconnects silently and hides that
            // notifications were lost meanwhile.
            let Some(n) = self.inner.try_recv().await? else {
                return Ok(None);
            };
            let payload = n.payload();
            let change = match n.channel() {
                INBOX_CHANNEL if payload == self.schema => Change::Inbox,
                CATALOG_CHANNEL if payload == self.schema => Change::Catalog,
                TOKENS_CHANNEL if payload == self.schema => Change::Tokens,
                ENTITLEMENTS_CHANNEL if payload == self.schema => Change::Entitlements,
                PING_CHANNEL => match payload.split_once(' ') {
                    Some((schema, word)) if schema == self.schema => Change::Ping(word.to_owned()),
                    _ => continue,
                },
                _ => continue,
            };
            return Ok(Some(change));
        }
    }
}
