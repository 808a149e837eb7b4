//! Operations (issue #12): retention, backups and restores, upgrades and `--version` —
//! the real binary and `Application`, on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::Value;
use sm_store::testing::TestDb;
use sm_store::{Backend, ConnectOptions, DatabaseUrl, Store};

sm_store::contract_tests!(
    prune_deletes_only_what_retention_lets_go,
    the_background_pruner_prunes_and_one_instance_prunes_at_a_time,
    a_backup_taken_under_webhook_load_holds_every_event_acknowledged_before_it,
    serve_refuses_a_database_newer_than_itself_and_migrate_status_tells,
);

const DAY: i64 = 86_400;

/// Runs `sql` with `binds` (all integers or text) on the test database.
async fn exec(store: &Store, sql: &str, binds: &[Bind<'_>]) {
    sm_store::on_pool!(store, pool => {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Bind::I(v) => q.bind(*v),
                Bind::T(v) => q.bind(*v),
                Bind::N => q.bind(None::<i64>),
            };
        }
        q.execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

enum Bind<'a> {
    I(i64),
    T(&'a str),
    /// NULL (as a number).
    N,
}
use Bind::{I, N, T};

async fn count(store: &Store, sql: &str) -> i64 {
    sm_store::on_pool!(store, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap())
}

async fn event(store: &Store, id: &str, status: &str, age_days: i64) {
    let at = unix_now() - age_days * DAY;
    exec(
        store,
        "INSERT INTO webhook_events (id, type, created, livemode, payload, source, status, attempts, \
         next_attempt_at, received_at) VALUES ($1, 'product.updated', $2, FALSE, '{}', 'webhook', $3, 1, $4, $4)",
        &[T(id), I(at), T(status), I(at * 1000)],
    )
    .await;
}

/// Old and new rows of every prunable table.
async fn seed(store: &Store) {
    let now = unix_now();
    for (id, status, age) in [
        ("evt_old_processed", "processed", 40),
        ("evt_old_ignored", "ignored", 31),
        ("evt_old_failed", "failed", 400),
        ("evt_old_pending", "pending", 40),
        ("evt_recent", "processed", 29),
    ] {
        event(store, id, status, age).await;
    }
    // The 100-day success is the newest one: it stays for the sync health gauges.
    for (status, age) in [
        ("succeeded", 120),
        ("succeeded", 100),
        ("running", 100),
        ("failed", 10),
    ] {
        exec(
            store,
            "INSERT INTO sync_runs (scope, origin, status, started_at, finished_at) VALUES ('full', 'cli', $1, $2, $3)",
            &[
                T(status),
                I(now - age * DAY),
                if status == "running" {
                    N
                } else {
                    I(now - age * DAY + 10)
                },
            ],
        )
        .await;
    }
    for (action, age) in [("old", 400), ("recent", 1)] {
        exec(
            store,
            "INSERT INTO audit_log (at, actor, action, result) VALUES ($1, 'ops', $2, 'ok')",
            &[I(now - age * DAY), T(action)],
        )
        .await;
    }
    exec(
        store,
        "INSERT INTO admin_users (email, password_hash, created_at) VALUES ('ops@example.com', 'x', $1)",
        &[I(now)],
    )
    .await;
    for (id, created, seen) in [
        ("s_idle", now - 3 * 3600, now - 2 * 3600),
        ("s_too_old", now - 13 * 3600, now - 60),
        ("s_live", now - 600, now - 60),
    ] {
        exec(
            store,
            "INSERT INTO admin_sessions (id, user_id, csrf_token, created_at, last_seen_at) \
             SELECT $1, id, 'c', $2, $3 FROM admin_users WHERE email = 'ops@example.com'",
            &[T(id), I(created), I(seen)],
        )
        .await;
    }
    // Events to the app: an old delivered one goes; an old failed one, an old one still
    // on its way and a recent delivered one stay.
    for (id, status, age) in [
        ("msg_old_delivered", "delivered", 40),
        ("msg_old_failed", "failed", 40),
        ("msg_old_pending", "pending", 40),
        ("msg_recent", "delivered", 1),
    ] {
        exec(
            store,
            "INSERT INTO app_events (id, endpoint, account, type, payload, created_at, retry_from, status, \
             next_attempt_at) VALUES ($1, 'https://app.example/h', 'acct', 'credits.granted', '{}', $2, $2, $3, $2)",
            &[T(id), I((now - age * DAY) * 1000), T(status)],
        )
        .await;
    }
    for (key, window, locked) in [
        ("old", now - 3600, None),
        ("locked", now - 3600, Some(now + 600)),
        ("recent", now - 60, None),
    ] {
        match locked {
            Some(until) => exec(
                store,
                "INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES ($1, 8, $2, $3)",
                &[T(key), I(window), I(until)],
            )
            .await,
            None => exec(
                store,
                "INSERT INTO login_throttle (key, failures, window_start) VALUES ($1, 1, $2)",
                &[T(key), I(window)],
            )
            .await,
        }
    }
}

async fn remaining_events(store: &Store) -> HashSet<String> {
    sm_store::on_pool!(store, pool => sqlx::query_scalar::<_, String>("SELECT id FROM webhook_events")
        .fetch_all(pool)
        .await
        .unwrap())
    .into_iter()
    .collect()
}

async fn prune_deletes_only_what_retention_lets_go(db: TestDb) {
    seed(&db.store).await;
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(&env, &["prune", "--dry-run", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let dry: Value = serde_json::from_str(&out).unwrap();
    let expected = serde_json::json!({"webhook_events": 2, "app_events": 1, "sync_runs": 1,
        "audit_log": 0, "admin_sessions": 2, "login_throttle": 1,
        "customers": 0, "invoices": 0, "charges": 0, "subscriptions": 0});
    assert_eq!(dry["would_delete"], expected, "{out}");
    assert_eq!(
        remaining_events(&db.store).await.len(),
        5,
        "a dry run deletes nothing"
    );

    // Batches of one: every row its own statement, and the loop still finishes.
    let mut small = env.clone();
    small.push(("PRUNE_BATCH".into(), "1".into()));
    let (code, out, err) = run_cli(&small, &["prune", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["deleted"], expected, "{out}");
    assert_eq!(
        remaining_events(&db.store).await,
        ["evt_old_failed", "evt_old_pending", "evt_recent"]
            .map(String::from)
            .into(),
        "failed events wait for a replay, pending ones for the worker, recent ones for their time"
    );
    assert_eq!(
        count(
            &db.store,
            "SELECT COUNT(*) FROM app_events WHERE id <> 'msg_old_delivered'"
        )
        .await,
        count(&db.store, "SELECT COUNT(*) FROM app_events").await,
        "only the old delivered event to the app goes"
    );
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM app_events").await, 3);
    assert_eq!(
        count(&db.store, "SELECT COUNT(*) FROM sync_runs").await,
        3,
        "the running run, the recent one and the newest success stay"
    );
    assert_eq!(
        db.store
            .full_sync_health()
            .await
            .unwrap()
            .last_success_at
            .map(|t| (unix_now() - t + DAY / 2) / DAY),
        Some(100)
    );
    assert_eq!(
        count(&db.store, "SELECT COUNT(*) FROM audit_log").await,
        2,
        "the audit log is kept unless asked"
    );
    assert_eq!(
        count(&db.store, "SELECT COUNT(*) FROM admin_sessions").await,
        1
    );
    assert_eq!(
        count(&db.store, "SELECT COUNT(*) FROM login_throttle").await,
        2,
        "a locked key stays locked"
    );

    // Opting in to audit retention; the text report names what went.
    let mut audit = env.clone();
    audit.push(("AUDIT_RETENTION_DAYS".into(), "365".into()));
    let (code, out, err) = run_cli(&audit, &["prune"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("audit entries") && out.contains("older than 365 days"),
        "{out}"
    );
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM audit_log").await, 1);

    // Nonsense settings are refused by name.
    let mut bad = env.clone();
    bad.push(("WEBHOOK_RETENTION_DAYS".into(), "0".into()));
    let (code, _, err) = run_cli(&bad, &["prune"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("WEBHOOK_RETENTION_DAYS"), "{err}");
}

async fn the_background_pruner_prunes_and_one_instance_prunes_at_a_time(db: TestDb) {
    event(&db.store, "evt_bg_old", "processed", 45).await;
    event(&db.store, "evt_bg_new", "processed", 0).await;

    // While another instance holds the pruner lock, `prune` deletes nothing and says so
    // (PostgreSQL; SQLite has a single writer and needs no lock).
    if db.store.backend() == Backend::Postgres {
        let held = db.store.try_lock_pruner().await.unwrap().expect("free");
        let (code, _, err) = run_cli(&env_for(None, &db), &["prune"]).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("another instance is pruning"), "{err}");
        assert!(
            db.store.try_lock_pruner().await.unwrap().is_none(),
            "one holder at a time"
        );
        held.release().await.unwrap();
    }
    assert_eq!(remaining_events(&db.store).await.len(), 2);

    let mut env = env_for(None, &db);
    env.push(("PRUNE_INTERVAL_SECS".into(), "1".into()));
    let app = TestApp::start(config_from(&env)).await;
    let mut left = HashSet::new();
    for _ in 0..100 {
        left = remaining_events(&db.store).await;
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, HashSet::from(["evt_bg_new".to_owned()]));
    let metrics = http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"stripe_manager_retention_pruned_rows_total{table="webhook_events"}"#),
        "{metrics}"
    );
    app.stop().await;
}

/// The schema a [`TestDb`] URL points at (PostgreSQL).
fn schema_of(url: &DatabaseUrl) -> String {
    let url = url.expose();
    url[url.find("search_path%3D").expect("a schema") + "search_path%3D".len()..]
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

/// Webhook load against the real binary; halfway through, a backup (SQLite: `backup
/// PATH`; PostgreSQL: the guide's `pg_dump`), then the load goes on. The restored copy
/// holds every event that was answered 200 before the backup began.
async fn a_backup_taken_under_webhook_load_holds_every_event_acknowledged_before_it(db: TestDb) {
    let env = env_for(None, &db);
    let (mut child, addr) = spawn_serve(&env).await;
    let t = unix_now();
    let events = (0..1200)
        .map(|i| {
            let id = format!("evt_bk{i:04}");
            let body = serde_json::json!({
                "id": id, "object": "event", "type": "product.created", "created": t,
                "livemode": false, "api_version": "2025-03-31.basil",
                "data": {"object": {"id": format!("prod_bk{i:04}"), "object": "product",
                    "name": "B", "active": true, "created": t, "updated": t,
                    "livemode": false, "metadata": {}}}
            })
            .to_string();
            (id, body)
        })
        .collect();
    let (acked, load) = spawn_acked_load(format!("http://{addr}/webhooks/stripe"), events, 8);
    while acked.lock().unwrap().len() < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let dir = std::env::temp_dir().join(format!("sm-backup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let restored = match db.store.backend() {
        Backend::Sqlite => {
            let path = dir.join("copy.db");
            let (code, out, err) =
                run_cli(&env, &["backup", path.to_str().unwrap(), "--json"]).await;
            assert_eq!(code, 0, "{out}{err}");
            let report: Value = serde_json::from_str(&out).unwrap();
            assert!(report["bytes"].as_u64().unwrap() > 0, "{out}");
            let (code, _, err) = run_cli(&env, &["backup", path.to_str().unwrap()]).await;
            assert_eq!(code, 2, "never overwrites: {err}");
            assert!(err.contains("exists already"), "{err}");
            // Owner-only: the copy holds token and password hashes.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
            // A dangling symbolic link is not followed: nothing is written where it
            // points, and the link is left as it was.
            let aim = dir.join("aimed-at.db");
            let link = dir.join("link.db");
            std::os::unix::fs::symlink(&aim, &link).unwrap();
            let (code, _, err) = run_cli(&env, &["backup", link.to_str().unwrap()]).await;
            assert_eq!(code, 2, "{err}");
            assert!(err.contains("symbolic link"), "{err}");
            assert!(!aim.exists(), "the backup went where the link points");
            DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap()
        }
        Backend::Postgres => {
            let (code, _, err) = run_cli(&env, &["backup", dir.join("x").to_str().unwrap()]).await;
            assert_eq!(code, 2, "{err}");
            assert!(
                err.contains("pg_dump"),
                "points to the guide's commands: {err}"
            );
            pg_dump_and_restore(&db, &dir).await
        }
    };
    load.await.unwrap();
    let _ = child.kill().await;
    assert!(
        acked.lock().unwrap().len() > before.len(),
        "the load went on during and after the backup"
    );

    let copy = Store::connect(&restored, &ConnectOptions::default())
        .await
        .unwrap();
    assert!(copy.is_migrated().await.unwrap(), "a complete schema");
    let held = remaining_events(&copy).await;
    let missing: Vec<&String> = before.iter().filter(|id| !held.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing from the backup: {missing:?}",
        missing.len()
    );
    if copy.backend() == Backend::Sqlite {
        let ok: String = sm_store::on_pool!(copy, pool => sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(pool)
            .await
            .unwrap());
        assert_eq!(ok, "ok");
    }
    copy.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The guide's commands: `pg_dump --format=custom --schema=…` while the service runs,
/// then `pg_restore` into a new database. Returns the restored copy's URL.
async fn pg_dump_and_restore(db: &TestDb, dir: &std::path::Path) -> DatabaseUrl {
    let base = std::env::var("SM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| sm_store::testing::DEFAULT_TEST_POSTGRES_URL.into());
    let schema = schema_of(db.url());
    let dump = dir.join("backup.dump");
    let status = tokio::process::Command::new("pg_dump")
        .args(["--format=custom", "--schema", &schema, "--file"])
        .arg(&dump)
        .arg(&base)
        .status()
        .await
        .expect("pg_dump is installed (postgresql-client)");
    assert!(status.success(), "pg_dump");
    let database = format!("sm_restore_{}", uuid::Uuid::new_v4().simple());
    exec(&db.store, &format!("CREATE DATABASE {database}"), &[]).await;
    let (prefix, query) = match base.split_once('?') {
        Some((p, q)) => (p.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let target = format!(
        "{}/{database}{query}",
        &prefix[..prefix.rfind('/').unwrap()]
    );
    let status = tokio::process::Command::new("pg_restore")
        .args(["--no-owner", "--dbname", &target])
        .arg(&dump)
        .status()
        .await
        .expect("pg_restore is installed");
    assert!(status.success(), "pg_restore");
    let sep = if target.contains('?') { '&' } else { '?' };
    DatabaseUrl::parse(&format!("{target}{sep}options=-c%20search_path%3D{schema}")).unwrap()
}

async fn serve_refuses_a_database_newer_than_itself_and_migrate_status_tells(db: TestDb) {
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(&env, &["migrate", "--status", "--json"]).await;
    assert_eq!(code, 0, "all applied: {out}{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let known = sm_store::migrations::versions(db.store.backend());
    assert_eq!(status["migrations"].as_array().unwrap().len(), known.len());
    assert_eq!(status["pending"], 0);

    // A newer release added migration 9999.
    sm_store::on_pool!(db.store, pool => sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, $1, 0)",
    )
    .bind(vec![0u8; 48])
    .execute(pool)
    .await
    .map(|_| ())
    .unwrap());
    let (code, out, _) = run_cli(&env, &["migrate", "--status"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("9999") && out.contains("newer release"),
        "{out}"
    );
    let (code, _, err) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        run_cli(&env, &["serve"]),
    )
    .await
    .expect("serve stops at once");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("schema is at version 9999, newer than this binary"),
        "{err}"
    );
    let (code, _, err) = run_cli(&env, &["migrate"]).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn version_names_the_release_and_the_commit() {
    let (code, out, err) = run_cli(&[], &["--version"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("stripe-manager {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(commit) => assert!(out.contains(&format!("(commit {commit})")), "{out}"),
        None => assert!(out.contains("(commit "), "{out}"),
    }
}
