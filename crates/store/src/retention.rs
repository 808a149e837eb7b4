//! Retention: what old rows may be deleted, deleted in small batches so that webhook
//! intake never waits long behind a pruner, and the lock that lets one pruner run at a
//! time across instances.
//!
//! Never pruned: pending, processing and failed webhook events (failed ones wait for a
//! replay), the credit ledger, the catalog, and the mirrors of customers that still exist
//! in Stripe. Mirrors (customer, invoices, charges, subscriptions) of a customer deleted
//! in Stripe go after [`Cutoffs::mirrors_deleted_before`]; its erasure record stays, so a
//! late event still writes only redacted data. The audit log only when the operator asks
//! for it ([`Cutoffs::audit_before`]).

use serde::Serialize;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use crate::{Pool, Store, StoreError, on_pool, on_write};

/// The instants before which rows go, computed by the caller from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Processed and ignored events received before this (unix milliseconds, the
    /// inbox's clock) …
    pub events_received_before_ms: i64,
    /// … and created in Stripe before this (unix seconds): older than the window in
    /// which Stripe redelivers or lists an event, so `events reconcile` cannot bring a
    /// pruned event back.
    pub events_created_before: i64,
    /// Finished sync runs started before this.
    pub sync_runs_before: i64,
    /// Audit entries before this; `None` keeps the audit log for ever (the default).
    pub audit_before: Option<i64>,
    /// Admin sessions idle since before this …
    pub sessions_idle_before: i64,
    /// … or signed in before this.
    pub sessions_created_before: i64,
    /// Sign-in throttle rows whose window started before this and that are not locked
    /// at `now`.
    pub throttle_window_before: i64,
    /// Mirror rows of customers deleted in Stripe before this (`erased_customers
    /// .deleted_at`, unix seconds).
    pub mirrors_deleted_before: i64,
    pub now: i64,
}

/// What a pass deleted (or, dry, would delete), per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneCounts {
    pub webhook_events: u64,
    pub app_events: u64,
    pub sync_runs: u64,
    pub audit_log: u64,
    pub admin_sessions: u64,
    pub login_throttle: u64,
    /// Mirror rows of customers deleted in Stripe (see [`Cutoffs::mirrors_deleted_before`]).
    pub customers: u64,
    pub invoices: u64,
    pub charges: u64,
    pub subscriptions: u64,
}

impl PruneCounts {
    pub fn total(&self) -> u64 {
        self.webhook_events
            + self.app_events
            + self.sync_runs
            + self.audit_log
            + self.admin_sessions
            + self.login_throttle
            + self.mirrors()
    }

    /// The mirror rows among them.
    pub fn mirrors(&self) -> u64 {
        self.customers + self.invoices + self.charges + self.subscriptions
    }

    pub fn add(&mut self, target: Target, n: u64) {
        match target {
            Target::WebhookEvents => self.webhook_events += n,
            Target::AppEvents => self.app_events += n,
            Target::SyncRuns => self.sync_runs += n,
            Target::AuditLog => self.audit_log += n,
            Target::AdminSessions => self.admin_sessions += n,
            Target::LoginThrottle => self.login_throttle += n,
            Target::Customers => self.customers += n,
            Target::Invoices => self.invoices += n,
            Target::Charges => self.charges += n,
            Target::Subscriptions => self.subscriptions += n,
        }
    }
}

/// One prunable table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    WebhookEvents,
    /// Events to the app delivered before the inbox's cutoff (failed ones stay, like the
    /// inbox's dead letter).
    AppEvents,
    SyncRuns,
    AuditLog,
    AdminSessions,
    LoginThrottle,
    /// Mirrors of customers deleted in Stripe (never ledger rows).
    Customers,
    Invoices,
    Charges,
    Subscriptions,
}

impl Target {
    pub const ALL: [Target; 10] = [
        Target::WebhookEvents,
        Target::AppEvents,
        Target::SyncRuns,
        Target::AuditLog,
        Target::AdminSessions,
        Target::LoginThrottle,
        Target::Customers,
        Target::Invoices,
        Target::Charges,
        Target::Subscriptions,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Target::WebhookEvents => "webhook_events",
            Target::AppEvents => "app_events",
            Target::SyncRuns => "sync_runs",
            Target::AuditLog => "audit_log",
            Target::AdminSessions => "admin_sessions",
            Target::LoginThrottle => "login_throttle",
            Target::Customers => "customers",
            Target::Invoices => "invoices",
            Target::Charges => "charges",
            Target::Subscriptions => "subscriptions",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Target::LoginThrottle => "key",
            Target::AppEvents => "seq",
            _ => "id",
        }
    }

    /// The condition of a prunable row, with its bound values (`$1…`); `None` when this
    /// table is kept.
    fn condition(self, c: &Cutoffs) -> Option<(&'static str, Vec<i64>)> {
        Some(match self {
            // The partial index `webhook_events_done` (migration 10) serves this.
            Target::WebhookEvents => (
                "status IN ('processed', 'ignored') AND received_at < $1 AND created < $2",
                vec![c.events_received_before_ms, c.events_created_before],
            ),
            // The newest finished run and the newest success of each scope stay: the
            // sync health gauges and the admin read them.
            // The partial index `app_events_done` (migration 17) serves this.
            Target::AppEvents => (
                "status = 'delivered' AND created_at < $1",
                vec![c.events_received_before_ms],
            ),
            Target::SyncRuns => (
                "status <> 'running' AND started_at < $1 \
                 AND id NOT IN (SELECT MAX(id) FROM sync_runs WHERE status <> 'running' GROUP BY scope) \
                 AND id NOT IN (SELECT MAX(id) FROM sync_runs WHERE status = 'succeeded' GROUP BY scope)",
                vec![c.sync_runs_before],
            ),
            Target::AuditLog => ("at < $1", vec![c.audit_before?]),
            Target::AdminSessions => (
                "last_seen_at <= $1 OR created_at <= $2",
                vec![c.sessions_idle_before, c.sessions_created_before],
            ),
            Target::LoginThrottle => (
                "window_start <= $1 AND (locked_until IS NULL OR locked_until <= $2)",
                vec![c.throttle_window_before, c.now],
            ),
            // The partial index `erased_customers_deleted` (migration 20) serves these.
            Target::Customers => (
                "id IN (SELECT customer FROM erased_customers WHERE deleted_at < $1)",
                vec![c.mirrors_deleted_before],
            ),
            Target::Invoices | Target::Charges | Target::Subscriptions => (
                "customer IN (SELECT customer FROM erased_customers WHERE deleted_at < $1)",
                vec![c.mirrors_deleted_before],
            ),
        })
    }
}

/// The pruner's lock on PostgreSQL: a session-level advisory lock on a connection of
/// its own (closing it, as a crash does, frees the lock). SQLite needs none: its one
/// writer at a time already serializes the deletes, and two pruners delete the same
/// rows at worst.
#[derive(Debug)]
pub struct PrunerLock(Option<PoolConnection<Postgres>>);

const TRY_LOCK_SQL: &str =
    "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.stripe_manager.pruner'))";
const UNLOCK_SQL: &str =
    "SELECT pg_advisory_unlock(hashtext(current_schema() || '.stripe_manager.pruner'))";

impl PrunerLock {
    pub async fn release(mut self) -> Result<(), StoreError> {
        if let Some(mut c) = self.0.take()
            && let Err(e) = sqlx::query(UNLOCK_SQL).execute(&mut *c).await
        {
            // Never back into the pool still holding the lock: closing frees it.
            drop(c.detach());
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for PrunerLock {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

impl Store {
    /// Takes the pruner lock unless another instance holds it (`None`).
    pub async fn try_lock_pruner(&self) -> Result<Option<PrunerLock>, StoreError> {
        match self.pool() {
            Pool::Sqlite(_) => Ok(Some(PrunerLock(None))),
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let got: bool = sqlx::query_scalar(TRY_LOCK_SQL)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(got.then(|| PrunerLock(Some(conn))))
            }
        }
    }

    /// How many rows of each table a pass would delete now.
    pub async fn prune_candidates(&self, cutoffs: &Cutoffs) -> Result<PruneCounts, StoreError> {
        let mut counts = PruneCounts::default();
        for target in Target::ALL {
            let Some((condition, values)) = target.condition(cutoffs) else {
                continue;
            };
            let sql = format!("SELECT COUNT(*) FROM {} WHERE {condition}", target.table());
            let n: i64 = on_pool!(self, pool => {
                let mut q = sqlx::query_scalar(&sql);
                for v in &values {
                    q = q.bind(*v);
                }
                q.fetch_one(pool).await?
            });
            counts.add(target, n as u64);
        }
        Ok(counts)
    }

    /// Deletes at most `limit` prunable rows of `target`, in one short statement of its
    /// own; returns how many went (fewer than `limit`: nothing more to prune now).
    pub async fn prune_batch(
        &self,
        target: Target,
        cutoffs: &Cutoffs,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let Some((condition, values)) = target.condition(cutoffs) else {
            return Ok(0);
        };
        let (table, key) = (target.table(), target.key());
        // The condition again outside the subquery: on PostgreSQL a row changed between
        // the subquery's snapshot and the delete (an event replayed just now, so
        // `pending` again) is checked anew and stays.
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT {}) \
             AND {condition}",
            limit.max(1)
        );
        let n = on_write!(self, pool => {
            let mut q = sqlx::query(&sql);
            for v in &values {
                q = q.bind(*v);
            }
            q.execute(pool).await?.rows_affected()
        });
        Ok(n)
    }
}
