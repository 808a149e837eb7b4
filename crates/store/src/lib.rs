//! Persistence for stripe-manager: one API over SQLite (the embedded default) and
//! PostgreSQL (for several instances sharing the work).
//!
//! Queries are written once with `$1` placeholders (SQLite accepts them) and run on
//! either pool through the [`on_pool!`] macro, which expands the same code for each
//! backend. Where the backends differ (advisory locks, `SKIP LOCKED`) the code says so.
//! Migrations are embedded, one folder per backend, and never edited once released.
//!
//! # Layout
//! - [`url`]: `DATABASE_URL` parsing and redaction
//! - [`migrations`]: the embedded migrations of each backend
//! - [`testing`]: throwaway databases for tests (a temp SQLite file, or a fresh
//!   PostgreSQL schema) so tests run in parallel

pub mod accounts;
pub mod admin;
pub mod catalog;
pub mod changes;
pub mod credits;
pub mod entitlements;
pub mod holds;
pub mod inbox;
pub mod migrations;
pub mod objects;
pub mod outbox;
pub mod privacy;
pub mod redact;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod stats;
pub mod testing;
pub mod tokens;
pub mod top_ups;
pub mod url;

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use url::DatabaseUrl;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the {backend} database {url}: {source}")]
    Connect {
        backend: &'static str,
        /// Redacted.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
    #[error(
        "the database schema is at version {database}, newer than this binary's {binary}: a newer \
         stripe-manager migrated it. Run that version, or restore the backup taken before the upgrade \
         (migrations are forward-only)"
    )]
    NewerSchema { database: i64, binary: i64 },
    #[error("{0}")]
    Unsupported(String),
}

impl StoreError {
    /// Whether the database refused this statement's data (a constraint, a value it
    /// cannot store) rather than being unreachable: retrying other rows alone can help
    /// only then.
    pub fn is_data_error(&self) -> bool {
        matches!(self, StoreError::Query(sqlx::Error::Database(_)))
    }

    /// Whether the database cannot take this work right now but may later, with nothing
    /// wrong in the request: a full disk (SQLite `SQLITE_FULL`, PostgreSQL `53100`), an
    /// I/O error, other exhausted resources (PostgreSQL class `53`), a database shutting
    /// down or a lost connection (`57P0x`, class `08`), a busy SQLite file, or no
    /// connection free in time. The API answers these `503` (retry later), like the
    /// webhook intake, rather than `500` (our bug).
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Query(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => {
                let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
                unavailable_code(sqlite, &db.code().unwrap_or_default())
            }
            _ => false,
        }
    }
}

/// [`StoreError::is_unavailable`] for a database error's code: SQLite's result code
/// (primary code in the low byte, sqlite.org/rescode.html: 5 BUSY, 6 LOCKED, 10 IOERR,
/// 13 FULL) or PostgreSQL's SQLSTATE (class 53 insufficient resources, 53100 disk full
/// among them; class 08 connection exception; 57P01–57P05 shutting down). The backend
/// decides, not the code's look: most SQLSTATEs are digits too (`42501` is not SQLite's
/// BUSY).
fn unavailable_code(sqlite: bool, code: &str) -> bool {
    if sqlite {
        code.parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13))
    } else {
        code.starts_with("53") || code.starts_with("08") || code.starts_with("57P0")
    }
}

#[cfg(test)]
mod unavailable_tests {
    #[test]
    fn codes_are_read_by_their_backend() {
        use super::unavailable_code as u;
        for code in ["5", "6", "13", "778", "10", "261"] {
            assert!(u(true, code), "sqlite {code}");
        }
        for code in ["19", "2067", "1", "11"] {
            assert!(!u(true, code), "sqlite {code}");
        }
        for code in [
            "53100", "53200", "53300", "08000", "08006", "08P01", "57P01",
        ] {
            assert!(u(false, code), "postgres {code}");
        }
        for code in ["42501", "22021", "23505", "40001", "42P01", "57014"] {
            assert!(!u(false, code), "postgres {code}");
        }
    }
}

/// The pool of either backend; use it through [`on_pool!`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store has. The body sees `$pool` as
/// `&SqlitePool` in one expansion and `&PgPool` in the other.
#[macro_export]
#[doc(hidden)]
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.pool() {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}

/// [`on_pool!`] for a statement that writes: on SQLite it first takes this process's write
/// gate (see [`Store::sqlite_write_gate`]), so autocommit writes queue with transactions
/// instead of spinning in SQLite's busy handler. Never use it while holding a [`Tx`] of
/// the same store: the transaction holds the gate.
#[macro_export]
#[doc(hidden)]
macro_rules! on_write {
    ($store:expr, $pool:ident => $body:expr) => {{
        let _gate = $store.sqlite_write_gate().await;
        $crate::on_pool!($store, $pool => $body)
    }};
}

/// A transaction on either backend. Writes that must commit together (a page of the
/// catalog; an event's effects and its inbox status) take one.
#[derive(Debug)]
pub struct Tx {
    conn: TxConn,
    /// Whether this transaction took a catalog version: its commit then counts in
    /// [`Store::local_catalog_commits`].
    catalog_written: bool,
    local: std::sync::Arc<LocalCommits>,
    /// Where events to the app go (see [`outbox`]); none: no event is recorded.
    outbox: std::sync::Arc<outbox::OutboxSettings>,
    /// The journal entries written so far, kept while the outbox is on: what the
    /// transaction's events to the app are made of (see [`Tx::take_journal`]).
    journal: Vec<outbox::JournalNote>,
    /// Accounts this transaction locked with `lock_accounts` on PostgreSQL, and those of
    /// them with holds: [`Tx::held_of`] skips its query when none of the accounts it is
    /// asked about has any.
    holds_hint: Option<(Vec<String>, Vec<String>)>,
    /// Whether this transaction changed what an account's entitlements are (a set, or
    /// an account's customer): its commit counts in
    /// [`Store::local_entitlement_commits`].
    entitlements_written: bool,
    /// Accounts locked with `lock_accounts`/`lock_account` on PostgreSQL, with their
    /// top-up threshold (`None`: no top-up); see [`Tx::top_up_thresholds`].
    top_up_hint: Option<std::collections::HashMap<String, Option<i64>>>,
}

/// The connection of a [`Tx`].
#[derive(Debug)]
#[doc(hidden)]
pub enum TxConn {
    /// With this process's SQLite write gate, held until the transaction ends.
    Sqlite(SqliteTx, WriteGate),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Commits of this process that readers keeping copies must hear of at once (see
/// [`Store::local_catalog_commits`]).
#[derive(Debug, Default)]
struct LocalCommits {
    catalog: std::sync::atomic::AtomicU64,
    tokens: std::sync::atomic::AtomicU64,
    entitlements: std::sync::atomic::AtomicU64,
}

/// An SQLite write transaction on a pooled connection, begun with `BEGIN IMMEDIATE`.
///
/// Not `sqlx::Transaction`: when SQLite cannot commit (a full disk), sqlx returned that
/// connection to the pool still counting itself inside a transaction, and every later
/// use failed ("begin_with at non-zero transaction depth") long after space came back.
/// Here a connection whose commit or rollback failed, or that is dropped mid-transaction,
/// is closed instead of returned, and the pool opens a fresh one.
#[derive(Debug)]
pub struct SqliteTx {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>,
}

impl SqliteTx {
    async fn begin(pool: &SqlitePool) -> Result<Self, StoreError> {
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(Self { conn: Some(conn) })
    }

    async fn end(mut self, statement: &'static str) -> Result<(), StoreError> {
        let mut conn = self
            .conn
            .take()
            .expect("a live transaction has its connection");
        match sqlx::query(statement).execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Whatever state the connection is in now, it is not one to reuse.
                conn.close_on_drop();
                Err(e.into())
            }
        }
    }
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        self.conn
            .as_ref()
            .expect("a live transaction has its connection")
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn
            .as_mut()
            .expect("a live transaction has its connection")
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Dropped without commit or rollback: closing the connection rolls the
        // transaction back, and nothing half-done goes back to the pool.
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// Held while this process writes to SQLite (see [`Store::begin`]).
pub type WriteGate = tokio::sync::OwnedMutexGuard<()>;

/// Runs the same code against whichever transaction `$tx` is; the body sees `$t` as
/// `&mut SqliteTx` (a connection) in one expansion and `&mut Transaction<'static,
/// Postgres>` in the other; `&mut **$t` is the connection either way.
#[macro_export]
#[doc(hidden)]
macro_rules! on_tx {
    ($tx:expr, $t:ident => $body:expr) => {
        match &mut ($tx).conn {
            $crate::TxConn::Sqlite($t, _) => $body,
            $crate::TxConn::Postgres($t) => $body,
        }
    };
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.conn {
            TxConn::Sqlite(t, _gate) => t.end("COMMIT").await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        if self.catalog_written {
            self.local
                .catalog
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        if self.entitlements_written {
            self.local
                .entitlements
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.conn {
            TxConn::Sqlite(t, _gate) => t.end("ROLLBACK").await?,
            TxConn::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// A cheaply cloned handle to the database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite has one writer at a time. Without a queue in front of it, concurrent
    /// writers spin in SQLite's busy handler, which sleeps in growing steps: under load
    /// that made consumption p99 140 ms and the worst case 2.8 s. Writers in this
    /// process wait here in FIFO order instead; other processes still meet the busy
    /// timeout.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    local: std::sync::Arc<LocalCommits>,
    outbox: std::sync::Arc<outbox::OutboxSettings>,
}

/// Pool settings that differ between the server and one-shot CLI commands.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Create a missing SQLite file (off for read-only checks, which must not leave a
    /// file behind).
    pub create_if_missing: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            create_if_missing: true,
        }
    }
}

impl Store {
    /// Opens (and for SQLite creates) the database. SQLite runs in WAL mode with
    /// `synchronous=FULL`, so whatever we acknowledged survives a power loss.
    pub async fn connect(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Self, StoreError> {
        let connect_err = |source| StoreError::Connect {
            backend: url.backend().as_str(),
            url: url.redacted(),
            source,
        };
        let pool = match url.backend() {
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url.expose())
                    .map_err(connect_err)?
                    .create_if_missing(options.create_if_missing)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.acquire_timeout)
                        .connect_with(opts)
                        .await
                        .map_err(connect_err)?,
                )
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(url.expose()).map_err(connect_err)?;
                // One direct attempt first: the pool retries a refused connection until
                // its timeout and then reports only "pool timed out", hiding the cause
                // ("connection refused", an unknown database, a wrong password).
                {
                    use sqlx::Connection;
                    match tokio::time::timeout(
                        options.acquire_timeout,
                        sqlx::PgConnection::connect_with(&opts),
                    )
                    .await
                    {
                        Ok(Ok(conn)) => {
                            let _ = conn.close().await;
                        }
                        Ok(Err(e)) => return Err(connect_err(e)),
                        Err(_) => {
                            return Err(connect_err(sqlx::Error::Io(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("no answer within {} s", options.acquire_timeout.as_secs()),
                            ))));
                        }
                    }
                }
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(options.max_connections)
                        .acquire_timeout(options.acquire_timeout)
                        .connect_with(opts)
                        .await
                        .map_err(connect_err)?,
                )
            }
        };
        Ok(Self {
            pool,
            write_gate: Default::default(),
            local: Default::default(),
            outbox: Default::default(),
        })
    }

    /// On SQLite, waits for this process's turn to write (see `write_gate`); `None` on
    /// PostgreSQL, whose row locks let writers proceed side by side.
    pub async fn sqlite_write_gate(&self) -> Option<WriteGate> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.write_gate.clone().lock_owned().await),
            Pool::Postgres(_) => None,
        }
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: it takes the write
    /// lock up front (waiting up to the busy timeout) instead of failing with
    /// `SQLITE_BUSY` when it first reads and then finds another writer has committed.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let conn = match &self.pool {
            Pool::Sqlite(p) => {
                let gate = self.write_gate.clone().lock_owned().await;
                TxConn::Sqlite(SqliteTx::begin(p).await?, gate)
            }
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        Ok(Tx {
            conn,
            catalog_written: false,
            local: self.local.clone(),
            outbox: self.outbox.clone(),
            journal: Vec::new(),
            holds_hint: None,
            entitlements_written: false,
            top_up_hint: None,
        })
    }

    /// This store, recording events to the app for `settings` (the service sets it once
    /// at start; a store without it records none).
    pub fn with_outbox(mut self, settings: outbox::OutboxSettings) -> Self {
        self.outbox = std::sync::Arc::new(settings);
        self
    }

    pub fn outbox(&self) -> &outbox::OutboxSettings {
        &self.outbox
    }

    /// How many catalog writes this process has committed (through any clone of this
    /// store). A reader that keeps a copy of the catalog compares it before and after
    /// reading: other processes' writes are announced by `NOTIFY` (see [`changes`]), but
    /// this process must see its own at once, before that comes back.
    pub fn local_catalog_commits(&self) -> u64 {
        self.local
            .catalog
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// [`Store::local_catalog_commits`] for API token changes (creation, revocation).
    pub fn local_token_commits(&self) -> u64 {
        self.local.tokens.load(std::sync::atomic::Ordering::Acquire)
    }

    /// [`Store::local_catalog_commits`] for entitlement changes (a customer's set, an
    /// account linked or unlinked).
    pub fn local_entitlement_commits(&self) -> u64 {
        self.local
            .entitlements
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn count_token_commit(&self) {
        self.local
            .tokens
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    #[doc(hidden)]
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations that are not applied yet; returns their versions.
    /// Refuses a database that a newer binary migrated ([`StoreError::NewerSchema`]).
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        self.migrate_to(i64::MAX).await
    }

    /// [`Store::migrate`], stopping after `version`: upgrade tests build the previous
    /// release's schema with it.
    pub async fn migrate_to(&self, version: i64) -> Result<Vec<i64>, StoreError> {
        let before: Vec<i64> = self.applied_migrations().await?;
        self.refuse_newer(&before)?;
        let migrator = migrations::migrator(self.backend(), version).await?;
        on_pool!(self, pool => migrator.run(pool).await?);
        let after = self.applied_migrations().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    /// Errs when the database holds a migration this binary does not know.
    pub fn refuse_newer(&self, applied: &[i64]) -> Result<(), StoreError> {
        let binary = migrations::versions(self.backend())
            .last()
            .copied()
            .unwrap_or(0);
        match applied.iter().copied().max() {
            Some(database) if database > binary => {
                Err(StoreError::NewerSchema { database, binary })
            }
            _ => Ok(()),
        }
    }

    /// Every migration this binary knows, with when it was applied here (`None`:
    /// pending), and any applied one it does not know (a newer binary's).
    pub async fn migration_status(&self) -> Result<Vec<migrations::Status>, StoreError> {
        let applied: Vec<(i64, String, i64)> = if self.applied_migrations().await?.is_empty() {
            Vec::new()
        } else {
            let sql = match self.backend() {
                Backend::Sqlite => {
                    "SELECT version, description, CAST(strftime('%s', installed_on) AS INTEGER) \
                     FROM _sqlx_migrations WHERE success ORDER BY version"
                }
                Backend::Postgres => {
                    "SELECT version, description, CAST(EXTRACT(EPOCH FROM installed_on) AS BIGINT) \
                     FROM _sqlx_migrations WHERE success ORDER BY version"
                }
            };
            on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await?)
        };
        Ok(migrations::status(self.backend(), &applied))
    }

    /// An online, consistent copy of a SQLite database at `path` (`VACUUM INTO`: one read
    /// transaction, so writers go on and the copy holds exactly what was committed when
    /// it began). `path` must not exist. PostgreSQL is backed up with its own tools.
    ///
    /// The copy holds token and password hashes: the file is created here first, empty,
    /// readable by its owner only (0600), with `O_CREAT|O_EXCL` — which never follows a
    /// symbolic link, dangling or not (POSIX `open`: "If O_EXCL and O_CREAT are set, and
    /// path names a symbolic link, open() shall fail with EEXIST") — and SQLite writes
    /// into that empty file (`VACUUM INTO` accepts one). A failed copy removes it.
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Sqlite(pool) => {
                let target = path.to_str().ok_or_else(|| {
                    StoreError::Unsupported(format!("{} is not valid UTF-8", path.display()))
                })?;
                create_private(path)?;
                let copied = sqlx::query("VACUUM INTO $1")
                    .bind(target)
                    .execute(pool)
                    .await;
                if let Err(e) = copied {
                    let _ = std::fs::remove_file(path);
                    return Err(e.into());
                }
                // SQLite does not sync the copy: a crash right after "backed up" could
                // leave it truncated. The file, then its directory entry.
                let synced = std::fs::File::open(path)
                    .and_then(|f| f.sync_all())
                    .and_then(
                        |_| match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
                            None => Ok(()),
                        },
                    );
                synced.map_err(|e| {
                    StoreError::Unsupported(format!(
                        "the copy at {} was written but could not be synced to disk: {e}",
                        path.display()
                    ))
                })
            }
            Pool::Postgres(_) => Err(StoreError::Unsupported(
                "backup PATH copies a SQLite database; back PostgreSQL up with pg_dump \
                 (docs/USER_GUIDE.md, \"Backups and restores\")"
                    .into(),
            )),
        }
    }

    /// Versions of the migrations applied to this database (empty before the first run).
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let exists: bool = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(pool)
                .await?
                    > 0
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(pool)
                    .await?
            }
        };
        if !exists {
            return Ok(Vec::new());
        }
        let versions = on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version"
        )
        .fetch_all(pool)
        .await?);
        Ok(versions)
    }

    /// True when every embedded migration has been applied.
    pub async fn is_migrated(&self) -> Result<bool, StoreError> {
        let applied = self.applied_migrations().await?;
        Ok(migrations::versions(self.backend())
            .iter()
            .all(|v| applied.contains(v)))
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await?);
        Ok(())
    }

    /// Writes one row (`service_health`) and commits: whether the database can be
    /// written right now, not only reached (a full disk fails here, not on `SELECT 1`).
    pub async fn write_probe(&self, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, t => sqlx::query(
            "INSERT INTO service_health (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
        )
        .bind(now)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        tx.commit().await
    }

    /// Waits for in-flight queries and closes every connection.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// Creates `path` empty, owner-only, never through a symbolic link (see
/// [`Store::backup_to`]); an existing file or link is refused, never overwritten.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(|e| {
        StoreError::Unsupported(if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists already (a file or a symbolic link): a backup never overwrites \
                 or follows one",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        })
    })
}
