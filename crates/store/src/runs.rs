//! Sync runs (one row per run, with its counts and report) and the full-sync lock.
//!
//! The lock makes "one full sync at a time" true across processes: on PostgreSQL a
//! session-level advisory lock held on a dedicated connection (several instances share
//! the database); on SQLite a lease row with an expiry (a CLI `sync` next to a running
//! server shares the file), renewed as the sync progresses so a crashed holder frees it.

use serde::{Deserialize, Serialize};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use crate::{Pool, Store, StoreError, on_pool, on_write};

/// Counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub products_created: u64,
    pub products_updated: u64,
    pub products_unchanged: u64,
    pub products_stale: u64,
    pub products_invalid: u64,
    pub products_tombstoned: u64,
    pub prices_created: u64,
    pub prices_updated: u64,
    pub prices_unchanged: u64,
    pub prices_stale: u64,
    pub prices_tombstoned: u64,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    pub id: i64,
    /// `full` or `selected`.
    pub scope: String,
    /// `cli`, `api` or `admin`.
    pub origin: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub requests: u64,
    pub counts: RunCounts,
    /// `{"errors": [...], "invalid": [...]}` as written by the sync.
    pub report: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    scope: String,
    origin: String,
    status: String,
    started_at: i64,
    finished_at: Option<i64>,
    requests: i64,
    products_created: i64,
    products_updated: i64,
    products_unchanged: i64,
    products_stale: i64,
    products_invalid: i64,
    products_tombstoned: i64,
    prices_created: i64,
    prices_updated: i64,
    prices_unchanged: i64,
    prices_stale: i64,
    prices_tombstoned: i64,
    report: String,
}

const RUN_COLUMNS: &str = "id, scope, origin, status, started_at, finished_at, requests, products_created, \
    products_updated, products_unchanged, products_stale, products_invalid, products_tombstoned, prices_created, \
    prices_updated, prices_unchanged, prices_stale, prices_tombstoned, report";

impl From<RunRow> for SyncRun {
    fn from(r: RunRow) -> Self {
        let n = |v: i64| v.max(0) as u64;
        SyncRun {
            id: r.id,
            scope: r.scope,
            origin: r.origin,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            requests: n(r.requests),
            counts: RunCounts {
                products_created: n(r.products_created),
                products_updated: n(r.products_updated),
                products_unchanged: n(r.products_unchanged),
                products_stale: n(r.products_stale),
                products_invalid: n(r.products_invalid),
                products_tombstoned: n(r.products_tombstoned),
                prices_created: n(r.prices_created),
                prices_updated: n(r.prices_updated),
                prices_unchanged: n(r.prices_unchanged),
                prices_stale: n(r.prices_stale),
                prices_tombstoned: n(r.prices_tombstoned),
            },
            report: serde_json::from_str(&r.report).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// What the full catalog syncs say about the catalog's freshness: read at every
/// `/metrics` scrape, for the alerts on a failed or overdue full sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FullSyncHealth {
    /// When the most recent successful full sync finished (unix seconds); `None` when
    /// none has.
    pub last_success_at: Option<i64>,
    /// Whether the most recent finished full sync failed (a run still `running`, or left
    /// `running` by a crash, is not counted: only a finished run says how it went).
    pub last_failed: bool,
}

/// Why the full-sync lock was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockBusy {
    /// Who holds it, when known (SQLite leases record it).
    pub holder: Option<String>,
    pub expires_at: Option<i64>,
}

/// The full-sync lock. Call [`FullSyncLock::release`]; if it is dropped instead (a
/// panic, a cancelled task), PostgreSQL's connection is closed (which frees the
/// advisory lock) and SQLite's lease simply expires.
#[derive(Debug)]
pub struct FullSyncLock {
    inner: LockInner,
}

#[derive(Debug)]
enum LockInner {
    Postgres(Option<PoolConnection<Postgres>>),
    Sqlite { store: Store, holder: String },
}

/// The advisory lock key: per schema, so deployments (and tests) that share a database
/// through different schemas do not block each other.
const TRY_LOCK_SQL: &str =
    "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.stripe_manager.full_sync'))";
const UNLOCK_SQL: &str =
    "SELECT pg_advisory_unlock(hashtext(current_schema() || '.stripe_manager.full_sync'))";
const LOCK_NAME: &str = "full_sync";

impl Drop for FullSyncLock {
    fn drop(&mut self) {
        if let LockInner::Postgres(conn) = &mut self.inner
            && let Some(conn) = conn.take()
        {
            // Closing the session releases its advisory locks.
            drop(conn.detach());
        }
    }
}

impl FullSyncLock {
    /// Extends a SQLite lease to `now + lease_secs`; nothing to do on PostgreSQL.
    pub async fn renew(&self, now: i64, lease_secs: i64) -> Result<(), StoreError> {
        if let LockInner::Sqlite { store, holder } = &self.inner
            && let Pool::Sqlite(pool) = store.pool()
        {
            let _gate = store.sqlite_write_gate().await;
            sqlx::query("UPDATE locks SET expires_at = $1 WHERE name = $2 AND holder = $3")
                .bind(now + lease_secs)
                .bind(LOCK_NAME)
                .bind(holder)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    pub async fn release(mut self) -> Result<(), StoreError> {
        match &mut self.inner {
            LockInner::Postgres(conn) => {
                if let Some(mut c) = conn.take() {
                    sqlx::query(UNLOCK_SQL).execute(&mut *c).await?;
                }
            }
            LockInner::Sqlite { store, holder } => {
                if let Pool::Sqlite(pool) = store.pool() {
                    let _gate = store.sqlite_write_gate().await;
                    sqlx::query("DELETE FROM locks WHERE name = $1 AND holder = $2")
                        .bind(LOCK_NAME)
                        .bind(holder.as_str())
                        .execute(pool)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

impl Store {
    /// Takes the full-sync lock if nobody holds it. `holder` names this process in
    /// SQLite leases (shown to the next caller).
    pub async fn try_lock_full_sync(
        &self,
        holder: &str,
        now: i64,
        lease_secs: i64,
    ) -> Result<Result<FullSyncLock, LockBusy>, StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let got: bool = sqlx::query_scalar(TRY_LOCK_SQL)
                    .fetch_one(&mut *conn)
                    .await?;
                if got {
                    Ok(Ok(FullSyncLock {
                        inner: LockInner::Postgres(Some(conn)),
                    }))
                } else {
                    Ok(Err(LockBusy {
                        holder: None,
                        expires_at: None,
                    }))
                }
            }
            Pool::Sqlite(pool) => {
                let _gate = self.sqlite_write_gate().await;
                let taken = sqlx::query(
                    "INSERT INTO locks (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE locks.expires_at < $4",
                )
                .bind(LOCK_NAME)
                .bind(holder)
                .bind(now + lease_secs)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
                    > 0;
                if taken {
                    return Ok(Ok(FullSyncLock {
                        inner: LockInner::Sqlite {
                            store: self.clone(),
                            holder: holder.to_owned(),
                        },
                    }));
                }
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT holder, expires_at FROM locks WHERE name = $1")
                        .bind(LOCK_NAME)
                        .fetch_optional(pool)
                        .await?;
                Ok(Err(LockBusy {
                    holder: row.as_ref().map(|r| r.0.clone()),
                    expires_at: row.map(|r| r.1),
                }))
            }
        }
    }

    /// Records the start of a run; returns its id.
    pub async fn start_sync_run(
        &self,
        scope: &str,
        origin: &str,
        started_at: i64,
    ) -> Result<i64, StoreError> {
        let id = on_write!(self, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO sync_runs (scope, origin, status, started_at) VALUES ($1, $2, 'running', $3) RETURNING id"
        )
        .bind(scope)
        .bind(origin)
        .bind(started_at)
        .fetch_one(pool)
        .await?);
        Ok(id)
    }

    /// Records the end of a run.
    pub async fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        finished_at: i64,
        requests: u64,
        c: &RunCounts,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let i = |v: u64| v as i64;
        on_write!(self, pool => sqlx::query(
            "UPDATE sync_runs SET status = $2, finished_at = $3, requests = $4, products_created = $5, \
             products_updated = $6, products_unchanged = $7, products_stale = $8, products_invalid = $9, \
             products_tombstoned = $10, prices_created = $11, prices_updated = $12, prices_unchanged = $13, \
             prices_stale = $14, prices_tombstoned = $15, report = $16 WHERE id = $1"
        )
        .bind(id)
        .bind(status)
        .bind(finished_at)
        .bind(i(requests))
        .bind(i(c.products_created))
        .bind(i(c.products_updated))
        .bind(i(c.products_unchanged))
        .bind(i(c.products_stale))
        .bind(i(c.products_invalid))
        .bind(i(c.products_tombstoned))
        .bind(i(c.prices_created))
        .bind(i(c.prices_updated))
        .bind(i(c.prices_unchanged))
        .bind(i(c.prices_stale))
        .bind(i(c.prices_tombstoned))
        .bind(report.to_string())
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn get_sync_run(&self, id: i64) -> Result<Option<SyncRun>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1");
        let row: Option<RunRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
        Ok(row.map(SyncRun::from))
    }

    /// The last successful and the last finished full sync. Full runs never overlap (they
    /// hold the full-sync lock), so the highest id is the latest; both lookups walk the
    /// primary key backwards and stop at the first match.
    pub async fn full_sync_health(&self) -> Result<FullSyncHealth, StoreError> {
        let (last_success_at, last_status): (Option<i64>, Option<String>) = on_pool!(self, pool => sqlx::query_as(
            "SELECT \
               (SELECT finished_at FROM sync_runs WHERE scope = 'full' AND status = 'succeeded' ORDER BY id DESC LIMIT 1), \
               (SELECT status FROM sync_runs WHERE scope = 'full' AND status <> 'running' ORDER BY id DESC LIMIT 1)"
        )
        .fetch_one(pool)
        .await?);
        Ok(FullSyncHealth {
            last_success_at,
            last_failed: last_status.as_deref() == Some("failed"),
        })
    }

    /// The most recent runs, newest first.
    pub async fn list_sync_runs(&self, limit: u32) -> Result<Vec<SyncRun>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs ORDER BY id DESC LIMIT $1");
        let rows: Vec<RunRow> = on_pool!(self, pool => sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(pool).await?);
        Ok(rows.into_iter().map(SyncRun::from).collect())
    }
}

impl Store {
    /// One page of runs, newest first, with ids below `before` (keyset).
    pub async fn list_sync_runs_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id < $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<RunRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit.max(1)))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(SyncRun::from).collect())
    }
}
