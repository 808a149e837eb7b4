//! Sync runs and the full-sync lock, on SQLite and PostgreSQL.

use serde_json::json;
use sm_store::runs::{FullSyncHealth, RunCounts};
use sm_store::testing::TestDb;
use sm_store::{ConnectOptions, Store};

sm_store::contract_tests!(
    runs_are_recorded_with_counts_and_report,
    the_lock_is_exclusive_across_handles_and_released,
    a_dropped_lock_does_not_stay_held_forever,
    full_sync_health_tells_the_last_success_and_whether_the_last_finished_full_run_failed,
);

async fn runs_are_recorded_with_counts_and_report(db: TestDb) {
    let s = &db.store;
    let id = s.start_sync_run("full", "cli", 100).await.unwrap();
    let run = s.get_sync_run(id).await.unwrap().unwrap();
    assert_eq!((run.status.as_str(), run.finished_at), ("running", None));
    let counts = RunCounts {
        products_created: 3,
        prices_tombstoned: 2,
        ..Default::default()
    };
    s.finish_sync_run(id, "succeeded", 105, 7, &counts, &json!({"errors": []}))
        .await
        .unwrap();
    let run = s.get_sync_run(id).await.unwrap().unwrap();
    assert_eq!(
        (run.status.as_str(), run.finished_at, run.requests),
        ("succeeded", Some(105), 7)
    );
    assert_eq!(run.counts, counts);
    assert_eq!(run.report, json!({"errors": []}));
    let second = s.start_sync_run("selected", "api", 200).await.unwrap();
    let listed = s.list_sync_runs(10).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second, id]
    );
}

async fn the_lock_is_exclusive_across_handles_and_released(db: TestDb) {
    let other = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    let lock = db
        .store
        .try_lock_full_sync("a", 100, 300)
        .await
        .unwrap()
        .expect("free");
    let busy = other
        .try_lock_full_sync("b", 101, 300)
        .await
        .unwrap()
        .unwrap_err();
    if db.store.backend() == sm_store::Backend::Sqlite {
        assert_eq!(busy.holder.as_deref(), Some("a"));
    }
    lock.release().await.unwrap();
    let lock = other
        .try_lock_full_sync("b", 102, 300)
        .await
        .unwrap()
        .expect("free again");
    lock.release().await.unwrap();
}

async fn a_dropped_lock_does_not_stay_held_forever(db: TestDb) {
    let lock = db
        .store
        .try_lock_full_sync("a", 100, 300)
        .await
        .unwrap()
        .expect("free");
    drop(lock);
    match db.store.backend() {
        // The session that held the advisory lock is closed, which frees it.
        sm_store::Backend::Postgres => {
            let mut freed = false;
            for _ in 0..50 {
                if let Ok(l) = db.store.try_lock_full_sync("b", 101, 300).await.unwrap() {
                    l.release().await.unwrap();
                    freed = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert!(freed);
        }
        // The lease expires.
        sm_store::Backend::Sqlite => {
            assert!(
                db.store
                    .try_lock_full_sync("b", 399, 300)
                    .await
                    .unwrap()
                    .is_err()
            );
            let l = db
                .store
                .try_lock_full_sync("b", 401, 300)
                .await
                .unwrap()
                .expect("expired");
            l.release().await.unwrap();
        }
    }
}

async fn full_sync_health_tells_the_last_success_and_whether_the_last_finished_full_run_failed(
    db: TestDb,
) {
    let s = &db.store;
    let finish = |id: i64, status: &'static str, at: i64| async move {
        s.finish_sync_run(id, status, at, 1, &RunCounts::default(), &json!({}))
            .await
            .unwrap();
    };
    assert_eq!(
        s.full_sync_health().await.unwrap(),
        FullSyncHealth::default(),
        "no run yet"
    );
    let first = s.start_sync_run("full", "cli", 100).await.unwrap();
    finish(first, "succeeded", 110).await;
    let second = s.start_sync_run("full", "cli", 200).await.unwrap();
    finish(second, "failed", 210).await;
    // A later selected run, whatever its outcome, says nothing about the full catalog.
    let selected = s.start_sync_run("selected", "api", 300).await.unwrap();
    finish(selected, "succeeded", 310).await;
    assert_eq!(
        s.full_sync_health().await.unwrap(),
        FullSyncHealth {
            last_success_at: Some(110),
            last_failed: true
        }
    );
    // A run still going (or abandoned by a crash) does not hide how the last one ended.
    let running = s.start_sync_run("full", "api", 400).await.unwrap();
    assert!(s.full_sync_health().await.unwrap().last_failed);
    finish(running, "succeeded", 420).await;
    assert_eq!(
        s.full_sync_health().await.unwrap(),
        FullSyncHealth {
            last_success_at: Some(420),
            last_failed: false
        }
    );
}
