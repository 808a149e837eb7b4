//! The real `stripe-manager` binary: exit codes, messages, and `serve` end to end on
//! SQLite and PostgreSQL.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use fake_stripe::{FakeStripe, Fault, FaultKind};
use sm_store::Backend;
use sm_store::testing::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};

fn s(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn check_against_stripe_reports_mode_version_and_latency() {
    let fake = FakeStripe::start().await;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = env_for(Some(&fake.url()), &db);
    let (code, out, err) = run_cli(&env, &["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("test mode, secret key sk_test_…"), "{out}");
    assert!(
        out.contains(&format!("api version   {}", sm_stripe::PINNED_API_VERSION)),
        "{out}"
    );
    assert!(out.contains("connectivity  ok in "), "{out}");
    assert!(out.contains("reachable, migrated"), "{out}");

    let (code, out, _) = run_cli(&env, &["check", "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["ok"], true);
    assert_eq!(v["stripe"]["mode"], "test");
    assert_eq!(v["stripe"]["api_version"], sm_stripe::PINNED_API_VERSION);
    assert!(v["stripe"]["connectivity"]["latency_ms"].as_f64().is_some());
    assert!(!out.contains("IntegrationSecretKey"));
}

#[tokio::test]
async fn check_against_a_dead_port_exits_3_with_a_sanitized_message() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = env_for(Some(&format!("http://127.0.0.1:{}", dead_port())), &db);
    let (code, out, err) = run_cli(&env, &["check"]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("connectivity  FAILED (network): Stripe is unreachable"),
        "{out}"
    );
    assert!(!format!("{out}{err}").contains("IntegrationSecretKey"));
}

#[tokio::test]
async fn check_gives_up_after_the_configured_timeout() {
    let fake = FakeStripe::start().await;
    fake.inject(Fault::on_path(
        "/v1/products",
        FaultKind::Delay(Duration::from_secs(120)),
    ));
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_TIMEOUT".into(), "1".into()));
    let (code, out, _) = run_cli(&env, &["check", "--json"]).await;
    assert_eq!(code, 3, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["stripe"]["connectivity"]["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1s"),
        "{out}"
    );
    // One attempt, cut off by the timeout (the message says so), and no retry for a probe.
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_publishable_key_as_secret_key_exits_2_naming_the_problem() {
    let (code, out, err) = run_cli(&s(&[("STRIPE_SECRET_KEY", "pk_test_x")]), &["check"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("STRIPE_SECRET_KEY is a publishable key (pk_…)"),
        "{err}"
    );

    let (code, out, _) = run_cli(
        &s(&[("STRIPE_SECRET_KEY", "pk_test_x")]),
        &["check", "--json"],
    )
    .await;
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["configuration"]["problems"][0]["variable"],
        "STRIPE_SECRET_KEY"
    );
}

#[tokio::test]
async fn check_without_a_key_exits_2_and_says_what_is_missing() {
    let (code, out, _) = run_cli(&s(&[("DATABASE_URL", "sqlite::memory:")]), &["check"]).await;
    assert_eq!(code, 2);
    assert!(
        out.contains("stripe        disabled: STRIPE_SECRET_KEY is not set"),
        "{out}"
    );
}

#[tokio::test]
async fn check_reports_a_key_mode_mismatch() {
    let fake = FakeStripe::start().await;
    let env = s(&[
        ("STRIPE_SECRET_KEY", KEY),
        ("STRIPE_PUBLIC_KEY", "pk_live_abc"),
        ("STRIPE_API_BASE", &fake.url()),
        ("DATABASE_URL", "sqlite::memory:"),
    ]);
    let (code, out, _) = run_cli(&env, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "STRIPE_PUBLIC_KEY is a live mode key but STRIPE_SECRET_KEY is a test mode key"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn bad_configuration_stops_serve_with_exit_2_and_every_problem_named() {
    let env = s(&[
        ("STRIPE_SECRET_KEY", "sk_test_has space"),
        ("STRIPE_MAX_RPS", "-1"),
        ("BIND", "nowhere"),
    ]);
    let (code, _, err) = run_cli(&env, &["serve"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("invalid configuration (3 problems)"), "{err}");
    assert!(
        err.contains("STRIPE_SECRET_KEY contains whitespace"),
        "{err}"
    );
    assert!(
        err.contains("STRIPE_MAX_RPS must be a whole number"),
        "{err}"
    );
    assert!(err.contains("BIND \"nowhere\" is not an address"), "{err}");
    assert!(!err.contains("has space"), "{err}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let (code, _, err) = run_cli(&[], &["frobnicate"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_cli(&[], &["--env-file", "/nonexistent/.env", "migrate"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/.env does not exist"), "{err}");
}

#[tokio::test]
async fn a_dotenv_file_is_read_and_the_environment_wins() {
    let dir = std::env::temp_dir().join(format!("sm-dotenv-dir-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "STRIPE_SECRET_KEY=pk_test_fromdotenv\nBIND=127.0.0.1:1\n",
    )
    .unwrap();
    let out = command(&s(&[("STRIPE_SECRET_KEY", KEY)]))
        .current_dir(&dir)
        .args(["check", "--json"])
        .output()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The environment's key won over the .env one (which would be a configuration error).
    assert_eq!(v["configuration"]["ok"], true, "{v}");
    std::fs::write(dir.join(".env"), "STRIPE_SECRET_KEY=pk_test_fromdotenv\n").unwrap();
    let out = command(&[])
        .current_dir(&dir)
        .args(["check"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("STRIPE_SECRET_KEY is a publishable key")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

sm_store::contract_tests!(
    migrate_is_idempotent,
    serve_answers_and_stops_cleanly_on_sigterm
);

async fn migrate_is_idempotent(db: TestDb) {
    let fresh = TestDb::create(db.store.backend(), false).await.unwrap();
    let env = env_for(None, &fresh);
    let (code, out, err) = run_cli(&env, &["migrate", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let all = serde_json::json!(sm_store::migrations::versions(db.store.backend()));
    assert_eq!(v["applied"], all);
    let (code, out, _) = run_cli(&env, &["migrate", "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["applied"], serde_json::json!([]));
    assert_eq!(v["current"], all);
}

async fn serve_answers_and_stops_cleanly_on_sigterm(db: TestDb) {
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("LOG_FORMAT".into(), "json".into()));
    env.push(("RUST_LOG".into(), "debug".into()));
    let mut child = command(&env)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("serve starts")
            .unwrap()
            .expect("serve keeps running");
        log.push_str(&line);
        log.push('\n');
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if v["message"] == "stripe-manager listening" {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };
    let http = http();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: serde_json::Value = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"]["backend"], db.store.backend().as_str());
    let missing = http
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // Wait for the background probe so its log lines are in what we grep.
    for _ in 0..100 {
        if fake.request_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stripe_api_requests_total{endpoint=\"probe\",outcome=\"ok\"}"),
        "{metrics}"
    );

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(log.contains("shutdown signal received"), "{log}");
    for secret in [
        KEY,
        "IntegrationSecretKey",
        WEBHOOK_SECRET,
        "IntegrationWebhookSecret",
    ] {
        assert!(!log.contains(secret), "secret in logs: {secret}\n{log}");
        assert!(!metrics.contains(secret));
    }
}

/// Issue #13, item 8: messages that point to the fix.
#[tokio::test]
async fn messages_name_what_is_wrong_and_exit_as_documented() {
    // A SQLite file in a directory that does not exist: `serve` and `migrate` could not
    // create it, so `check` fails too.
    let env = s(&[("DATABASE_URL", "sqlite:///nonexistent-sm-dir/sub/x.db")]);
    let (code, out, _) = run_cli(&env, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cannot be created: its directory /nonexistent-sm-dir/sub does not exist"),
        "{out}"
    );

    // PostgreSQL refusing connections says so, not "pool timed out".
    let url = format!("postgres://postgres@127.0.0.1:{}/x", dead_port());
    let started = std::time::Instant::now();
    let (code, _, err) = run_cli(&s(&[("DATABASE_URL", &url)]), &["migrate"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(!err.contains("pool timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // An unknown event id is named.
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(&env, &["events", "replay", "evt_unknown"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no stored event evt_unknown"), "{err}");
    assert!(out.contains("queued 0 events"), "{out}");

    // CLI actions are audited under the login name even without $USER (cron, systemd).
    let (code, out, err) = run_cli(
        &env,
        &["credits", "grant", "acct_cli", "5", "--reason", "welcome"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let audit = db.store.audit_log(None, 1).await.unwrap();
    let actor = &audit[0].actor;
    assert!(
        actor.starts_with("cli:") && actor != "cli:unknown",
        "{actor}"
    );
}

#[test]
fn counts_agree_with_their_noun() {
    use stripe_manager::cli::count;
    assert_eq!(count(1u64, "request"), "1 request");
    assert_eq!(count(0u64, "request"), "0 requests");
    assert_eq!(count(2u64, "page"), "2 pages");
}
