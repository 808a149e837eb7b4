//! Throwaway databases for tests, so every test has its own and tests run in parallel:
//! a temporary SQLite file, or a fresh schema in the PostgreSQL database named by
//! `SM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! PostgreSQL is required unless `SM_SKIP_POSTGRES=1` is set; `scripts/test` sets it
//! (and says so loudly) only when no PostgreSQL can be reached or started.

use std::path::PathBuf;

use crate::{Backend, ConnectOptions, DatabaseUrl, Store};

pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    url: DatabaseUrl,
    file: Option<PathBuf>,
}

impl TestDb {
    /// A migrated database on `backend`, or `None` when PostgreSQL is skipped.
    pub async fn new(backend: Backend) -> Option<Self> {
        Self::create(backend, true).await
    }

    /// Like [`TestDb::new`], but leaves the database empty when `migrate` is false.
    pub async fn create(backend: Backend, migrate: bool) -> Option<Self> {
        let db = match backend {
            Backend::Sqlite => Self::sqlite_unmigrated().await,
            Backend::Postgres => Self::postgres_unmigrated().await?,
        };
        if migrate {
            db.store.migrate().await.expect("migrate the test database");
        }
        Some(db)
    }

    async fn sqlite_unmigrated() -> Self {
        let file =
            std::env::temp_dir().join(format!("sm-test-{}.db", uuid::Uuid::new_v4().simple()));
        let url = DatabaseUrl::parse(&format!("sqlite://{}", file.display())).expect("valid url");
        let store = Store::connect(&url, &ConnectOptions::default())
            .await
            .expect("open a temp SQLite file");
        Self {
            store,
            url,
            file: Some(file),
        }
    }

    /// Whether PostgreSQL tests are skipped in this run.
    pub fn postgres_skipped() -> bool {
        std::env::var("SM_SKIP_POSTGRES").is_ok_and(|v| v == "1")
    }

    /// A PostgreSQL schema of its own, or `None` when `SM_SKIP_POSTGRES=1`. Panics when
    /// PostgreSQL is expected but unreachable: a silent skip would hide half the suite.
    async fn postgres_unmigrated() -> Option<Self> {
        if Self::postgres_skipped() {
            eprintln!("SKIPPED: PostgreSQL half of this test (SM_SKIP_POSTGRES=1)");
            return None;
        }
        let base = std::env::var("SM_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.into());
        let admin_url =
            DatabaseUrl::parse(&base).expect("SM_TEST_POSTGRES_URL is a postgres:// URL");
        let admin = Store::connect(
            &admin_url,
            &ConnectOptions {
                max_connections: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable ({e}); start it or set SM_SKIP_POSTGRES=1")
        });
        let schema = format!("sm_test_{}", uuid::Uuid::new_v4().simple());
        crate::on_pool!(admin, pool => {
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(pool)
                .await
                .expect("create a test schema");
        });
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = DatabaseUrl::parse(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
            .expect("valid url");
        let store = Store::connect(&url, &ConnectOptions::default())
            .await
            .expect("connect to the test schema");
        Some(Self {
            store,
            url,
            file: None,
        })
    }

    /// The URL of this database, e.g. for a `stripe-manager` subprocess.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// Runs each named `async fn(TestDb)` once on SQLite and once on PostgreSQL, as
/// `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::testing::TestDb::new($crate::Backend::Sqlite).await.expect("sqlite");
                    super::$name(db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::testing::TestDb::new($crate::Backend::Postgres).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}
