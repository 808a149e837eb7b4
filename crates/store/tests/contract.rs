//! The storage contract, run against SQLite and PostgreSQL alike.

use sm_store::testing::TestDb;
use sm_store::{Backend, ConnectOptions, Store, migrations};

sm_store::contract_tests!(
    a_fresh_database_migrates_once,
    ping_round_trips_under_concurrency,
    a_second_handle_sees_the_same_database,
);

async fn a_fresh_database_migrates_once(db: TestDb) {
    let backend = db.store.backend();
    let fresh = TestDb::create(backend, false)
        .await
        .expect("same backend available");
    assert!(fresh.store.applied_migrations().await.unwrap().is_empty());
    assert!(!fresh.store.is_migrated().await.unwrap());
    let applied = fresh.store.migrate().await.unwrap();
    assert_eq!(applied, migrations::versions(backend));
    assert!(fresh.store.is_migrated().await.unwrap());
    assert!(
        fresh.store.migrate().await.unwrap().is_empty(),
        "second run is a no-op"
    );
}

async fn ping_round_trips_under_concurrency(db: TestDb) {
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = db.store.clone();
            tokio::spawn(async move { store.ping().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

async fn a_second_handle_sees_the_same_database(db: TestDb) {
    let other = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(other.backend(), db.store.backend());
    assert!(other.is_migrated().await.unwrap());
    other.close().await;
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let Some(mode) = (match db.store.pool() {
        sm_store::Pool::Sqlite(pool) => Some(
            sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap(),
        ),
        sm_store::Pool::Postgres(_) => None,
    }) else {
        unreachable!("sqlite test database")
    };
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_connect_error_without_the_password() {
    let url = sm_store::DatabaseUrl::parse("postgres://app:hunter2@127.0.0.1:1/nope").unwrap();
    let err = Store::connect(
        &url,
        &ConnectOptions {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(2),
            create_if_missing: false,
        },
    )
    .await
    .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("cannot open the postgres database"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}
