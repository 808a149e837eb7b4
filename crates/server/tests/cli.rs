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
    serve_answers_and_stops_cleanly_on_sigterm,
    admin_reset_password_takes_the_new_password_and_signs_out_everywhere,
    a_terminal_is_asked_for_the_password_twice_without_echo,
    admin_unlock_lifts_the_lock_of_eight_failed_sign_ins,
    admin_disable_ends_the_sessions_and_enable_lets_the_admin_back,
    admin_commands_name_an_unknown_email_exit_1_and_change_nothing,
    lists_are_aligned_tables_with_readable_times_and_json_keeps_unix_seconds,
    a_closed_stdout_ends_every_command_quietly_with_its_own_exit_code,
);

/// Runs the binary with a stdout whose reading end is closed before it starts (what
/// `| head -1` does once it has its line): `(exit code, stderr)`.
async fn run_with_closed_stdout(env: &[(String, String)], args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    // Spawned, not `output()`: that would replace stdout with a pipe of its own.
    let child = command(env)
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let out = child.wait_with_output().await.expect("binary ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `stripe-manager credits balance X | head -1` panicked (exit 101, "failed printing to
/// stdout: Broken pipe"). Every command's output goes through one writer that stops
/// quietly at a broken pipe: the command still does its work and exits with its code.
async fn a_closed_stdout_ends_every_command_quietly_with_its_own_exit_code(db: TestDb) {
    let env = env_for(None, &db);
    let cases: &[(&[&str], i32)] = &[
        (
            &["credits", "grant", "acct_pipe", "5", "--reason", "pipe"],
            0,
        ),
        (&["credits", "balance", "acct_pipe"], 0),
        (&["credits", "balance", "acct_pipe", "--json"], 0),
        (&["credits", "history", "acct_pipe"], 0),
        (&["products", "--all"], 0),
        (&["token", "list"], 0),
        (&["events", "list"], 0),
        (&["migrate", "--status"], 0),
        (&["--help"], 0),
        (&["credits", "--help"], 0),
        (&["--version"], 0),
        // Failures keep their codes: short of credits (1), Stripe disabled (2).
        (
            &["credits", "deduct", "acct_pipe", "50", "--reason", "pipe"],
            1,
        ),
        (&["sync"], 2),
    ];
    for (args, expected) in cases {
        let (code, err) = run_with_closed_stdout(&env, args).await;
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert_eq!(code, *expected, "{args:?}: {err}");
    }
    // The grant above was made although nobody read its answer.
    let (code, out, err) = run_cli(&env, &["credits", "balance", "acct_pipe", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let balance: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(balance["available"], "5.00", "{balance}");
}

/// The README's command table names every command (and `sync --objects`), so a
/// newcomer reading it finds `accounts`, `subscription` and `payments`.
#[test]
fn the_readme_command_table_names_every_command() {
    use clap::CommandFactory;
    fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push(path.trim().to_owned());
        }
        for sub in subs {
            leaves(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("## Commands").expect("a Commands section");
    let section = &readme[start..start + readme[start + 1..].find("\n## ").unwrap()];
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    let mut commands = Vec::new();
    leaves(&stripe_manager::cli::Cli::command(), "", &mut commands);
    assert!(commands.len() > 30, "{commands:?}");
    let missing: Vec<&String> = commands
        .iter()
        .filter(|c| !rows.iter().any(|r| r.contains(&format!("`{c}"))))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's command table: {missing:?}"
    );
    assert!(rows.iter().any(|r| r.starts_with("| `sync --objects")));
}

/// `--env-file`, `--database-url` and `--bind` are accepted by every command, and shown
/// apart from each command's own options rather than among them.
#[test]
fn the_global_flags_have_their_own_heading_in_every_help() {
    use clap::CommandFactory;
    let mut cli = stripe_manager::cli::Cli::command();
    cli.build(); // propagates the global flags to the subcommands
    for path in [&["credits", "balance"][..], &["sync"], &["token", "create"]] {
        let mut cmd = &mut cli;
        for name in path {
            cmd = cmd.find_subcommand_mut(name).expect("a subcommand");
        }
        let help = cmd.render_help().to_string();
        let heading = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{path:?}: no global heading:\n{help}"));
        let options = help.find("Options:").expect("the command's options");
        assert!(options < heading, "{path:?}: own options first:\n{help}");
        for flag in ["--env-file", "--database-url", "--bind"] {
            assert!(
                help.find(flag).is_some_and(|at| at > heading),
                "{path:?}: {flag} under the global heading:\n{help}"
            );
        }
    }
}

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
    // The README gives the body with the same fields.
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `GET /healthz`"))
        .expect("a /healthz row");
    let documented: serde_json::Value = serde_json::from_str(
        row.split('`')
            .find(|part| part.starts_with('{'))
            .expect("a body in the row"),
    )
    .unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&documented), keys(&body), "README: {row}");
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
        metrics.contains(
            "stripe_manager_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "stripe_manager_stripe_api_requests_total{endpoint=\"probe\",outcome=\"ok\"}"
        ),
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

/// Every argument, positional or flag, and every command says what it is in `--help`:
/// the CLI is the operator's manual at 3 a.m.
#[test]
fn every_argument_and_command_has_help_text() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                let name = match arg.get_long() {
                    Some(long) => format!("--{long}"),
                    None => id.to_uppercase(),
                };
                missing.push(format!("`{path}` argument {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(format!("`{sub_path}` (the command itself)"));
            }
            walk(sub, &sub_path, missing);
        }
    }
    let cli = stripe_manager::cli::Cli::command();
    let mut missing = Vec::new();
    walk(&cli, "stripe-manager", &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
    // The walk saw the commands of this issue, so it really walked the tree.
    let admin = cli.find_subcommand("admin").expect("admin");
    for name in ["reset-password", "unlock", "list", "disable", "enable"] {
        assert!(admin.find_subcommand(name).is_some(), "admin {name}");
    }
}

const ADMIN: &str = "ops@example.com";
const OLD_PASSWORD: &str = "the first long passphrase";
const NEW_PASSWORD: &str = "a second long passphrase";

/// An admin created through the CLI, as an operator does; its user id.
async fn cli_admin(db: &TestDb, email: &str, password: &str) -> i64 {
    let (code, out) = common::admin::create_admin(db, email, password).await;
    assert_eq!(code, 0, "{out}");
    db.store
        .admin_by_email(email)
        .await
        .unwrap()
        .expect("created")
        .id
}

async fn password_works(db: &TestDb, email: &str, password: &str) -> bool {
    let user = db.store.admin_by_email(email).await.unwrap();
    stripe_manager::admin::verify_password(password.to_owned(), user.map(|u| u.password_hash)).await
}

async fn is_live(db: &TestDb, session: &str) -> bool {
    use stripe_manager::admin::{SESSION_ABSOLUTE, SESSION_IDLE};
    let now = stripe_manager::clock::unix_now();
    db.store
        .live_session(session, now, SESSION_IDLE, SESSION_ABSOLUTE)
        .await
        .unwrap()
        .is_some()
}

async fn last_audit(db: &TestDb) -> sm_store::credits::AuditRow {
    db.store.audit_log(None, 1).await.unwrap().remove(0)
}

async fn admin_reset_password_takes_the_new_password_and_signs_out_everywhere(db: TestDb) {
    let env = env_for(None, &db);
    let user = cli_admin(&db, ADMIN, OLD_PASSWORD).await;
    let now = stripe_manager::clock::unix_now();
    for session in ["laptop", "phone"] {
        db.store
            .create_session(session, user, "csrf", "127.0.0.1", now)
            .await
            .unwrap();
        assert!(is_live(&db, session).await);
    }

    // Too short: refused, nothing changed.
    let (code, _, err) =
        run_cli_with_stdin(&env, &["admin", "reset-password", ADMIN], "short\n").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 12 characters"), "{err}");
    assert!(password_works(&db, ADMIN, OLD_PASSWORD).await);
    assert!(is_live(&db, "laptop").await);

    // Typed in any case, with stray spaces, as the sign-in form accepts it.
    let (code, out, err) = run_cli_with_stdin(
        &env,
        &["admin", "reset-password", " OPS@example.com"],
        &format!("{NEW_PASSWORD}\n"),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("password of ops@example.com reset"), "{out}");
    assert!(password_works(&db, ADMIN, NEW_PASSWORD).await);
    assert!(!password_works(&db, ADMIN, OLD_PASSWORD).await);
    for session in ["laptop", "phone"] {
        assert!(!is_live(&db, session).await, "{session} still signed in");
    }
    let a = last_audit(&db).await;
    assert_eq!(
        (
            a.action.as_str(),
            a.target.as_deref(),
            a.origin.as_deref(),
            a.result.as_str()
        ),
        ("admin.reset_password", Some(ADMIN), Some("cli"), "ok")
    );
    assert!(a.actor.starts_with("cli:"), "{}", a.actor);
}

/// On a terminal the password is asked twice and never shown; two different answers
/// change nothing. `script` gives the binary a pseudo-terminal, as an operator's shell.
async fn a_terminal_is_asked_for_the_password_twice_without_echo(db: TestDb) {
    let env = env_for(None, &db);
    cli_admin(&db, ADMIN, OLD_PASSWORD).await;
    let (code, screen) = at_a_terminal(
        &env,
        &["admin", "reset-password", ADMIN],
        &[NEW_PASSWORD, NEW_PASSWORD],
    )
    .await;
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("New password: "), "{screen}");
    assert!(screen.contains("Repeat it: "), "{screen}");
    assert!(
        !screen.contains(NEW_PASSWORD),
        "the password was echoed: {screen}"
    );
    assert!(password_works(&db, ADMIN, NEW_PASSWORD).await);

    let (code, screen) = at_a_terminal(
        &env,
        &["admin", "reset-password", ADMIN],
        &[OLD_PASSWORD, "not the same passphrase"],
    )
    .await;
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("the two passwords differ"), "{screen}");
    assert!(password_works(&db, ADMIN, NEW_PASSWORD).await, "unchanged");

    let (code, screen) = at_a_terminal(
        &env,
        &["admin", "create-user", "new@example.com"],
        &[NEW_PASSWORD, NEW_PASSWORD],
    )
    .await;
    assert_eq!(code, 0, "{screen}");
    assert!(password_works(&db, "new@example.com", NEW_PASSWORD).await);
}

/// Runs the binary on a pseudo-terminal (`script`), typing each answer once the screen
/// shows the next prompt; the exit code and everything the terminal showed.
async fn at_a_terminal(env: &[(String, String)], args: &[&str], answers: &[&str]) -> (i32, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let line = std::iter::once(bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = tokio::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHELL", "/bin/sh")
        .envs(env.iter().cloned())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut screen = String::new();
    let prompts = ["New password: ", "Repeat it: "];
    let mut buf = [0u8; 1024];
    for (i, (answer, prompt)) in answers.iter().zip(prompts).enumerate() {
        while !screen.contains(prompt) {
            let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no prompt {i} within 30 s: {screen}"))
                .unwrap();
            assert!(n > 0, "the program ended before prompt {i}: {screen}");
            screen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // The prompt is shown just before echo is turned off: a person takes longer
        // than that to type, and so does this.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stdin
            .write_all(format!("{answer}\r").as_bytes())
            .await
            .unwrap();
    }
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_to_end(&mut rest))
        .await
        .expect("the program ends")
        .unwrap();
    screen.push_str(&String::from_utf8_lossy(&rest));
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("script ends")
        .unwrap();
    drop(stdin);
    (status.code().unwrap_or(-1), screen)
}

async fn admin_unlock_lifts_the_lock_of_eight_failed_sign_ins(db: TestDb) {
    use stripe_manager::admin::{Gate, LOCK_AFTER, LOCK_FOR, WINDOW, gate};
    let env = env_for(None, &db);
    cli_admin(&db, ADMIN, OLD_PASSWORD).await;
    let now = stripe_manager::clock::unix_now();
    let keys = [format!("email:{ADMIN}"), "ip:203.0.113.5".to_owned()];
    for key in &keys {
        for _ in 0..LOCK_AFTER {
            db.store
                .record_login_attempt(key, now, WINDOW, LOCK_AFTER, LOCK_FOR)
                .await
                .unwrap();
        }
        let t = db.store.throttle(key).await.unwrap();
        assert!(matches!(gate(&t, now), Gate::Locked(_)), "{key}: {t:?}");
    }
    let (code, out, _) = run_cli(&env, &["admin", "list"]).await;
    assert_eq!(code, 0);
    let rows = table_rows(&out, &["EMAIL", "CREATED", "STATUS"]);
    assert!(rows[0][2].starts_with("active, locked until "), "{out}");

    let (code, out, err) = run_cli(&env, &["admin", "unlock", ADMIN]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ops@example.com unlocked"), "{out}");
    let t = db.store.throttle(&keys[0]).await.unwrap();
    assert_eq!(gate(&t, now), Gate::Open);
    assert_eq!(t.failures, 0, "the count starts over");
    let t = db.store.throttle(&keys[1]).await.unwrap();
    assert!(
        matches!(gate(&t, now), Gate::Locked(_)),
        "an address is unlocked only when named"
    );
    let a = last_audit(&db).await;
    assert_eq!((a.action.as_str(), a.detail), ("admin.unlock", None));

    let (code, out, err) = run_cli(
        &env,
        &["admin", "unlock", ADMIN, "--address", "203.0.113.5"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let t = db.store.throttle(&keys[1]).await.unwrap();
    assert_eq!(gate(&t, now), Gate::Open);
    assert_eq!(
        last_audit(&db).await.detail.as_deref(),
        Some("addresses 203.0.113.5")
    );
    let (_, out, _) = run_cli(&env, &["admin", "list"]).await;
    assert_eq!(
        table_rows(&out, &["EMAIL", "CREATED", "STATUS"])[0][2],
        "active"
    );
}

async fn admin_disable_ends_the_sessions_and_enable_lets_the_admin_back(db: TestDb) {
    let env = env_for(None, &db);
    let user = cli_admin(&db, ADMIN, OLD_PASSWORD).await;
    cli_admin(&db, "amy@example.com", OLD_PASSWORD).await;
    let now = stripe_manager::clock::unix_now();
    db.store
        .create_session("before", user, "csrf", "127.0.0.1", now)
        .await
        .unwrap();

    let (code, out, err) = run_cli(&env, &["admin", "disable", ADMIN]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!is_live(&db, "before").await);
    // A session made after (a sign-in racing the disable) is not honoured either.
    db.store
        .create_session("after", user, "csrf", "127.0.0.1", now)
        .await
        .unwrap();
    assert!(!is_live(&db, "after").await);
    assert_eq!(last_audit(&db).await.action, "admin.disable");
    let (_, out, _) = run_cli(&env, &["admin", "list"]).await;
    let rows = table_rows(&out, &["EMAIL", "CREATED", "STATUS"]);
    assert_eq!(rows[0][0], "amy@example.com", "ordered by email: {out}");
    assert_eq!(rows[0][2], "active");
    assert!(rows[1][2].starts_with("disabled since "), "{out}");
    assert!(is_utc(&rows[1][2]["disabled since ".len()..]), "{out}");

    let (code, out, err) = run_cli(&env, &["admin", "enable", ADMIN]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(last_audit(&db).await.action, "admin.enable");
    assert!(
        is_live(&db, "after").await,
        "enabled: its sessions count again"
    );
    assert!(
        !is_live(&db, "before").await,
        "what disabling ended stays ended"
    );
    let (_, out, _) = run_cli(&env, &["admin", "list"]).await;
    assert_eq!(
        table_rows(&out, &["EMAIL", "CREATED", "STATUS"])[1][2],
        "active"
    );
}

async fn admin_commands_name_an_unknown_email_exit_1_and_change_nothing(db: TestDb) {
    let env = env_for(None, &db);
    cli_admin(&db, ADMIN, OLD_PASSWORD).await;
    let before = db.store.audit_log(None, 100).await.unwrap().len();
    for command in ["reset-password", "unlock", "disable", "enable"] {
        let (code, out, err) = run_cli_with_stdin(
            &env,
            &["admin", command, "nobody@example.com"],
            &format!("{NEW_PASSWORD}\n"),
        )
        .await;
        assert_eq!(code, 1, "{command}: {out}{err}");
        assert!(
            err.contains("no admin with the email nobody@example.com"),
            "{command}: {err}"
        );
        assert!(
            err.contains("admin list"),
            "{command} says where to look: {err}"
        );
    }
    assert_eq!(db.store.audit_log(None, 100).await.unwrap().len(), before);
    assert!(password_works(&db, ADMIN, OLD_PASSWORD).await);
}

async fn lists_are_aligned_tables_with_readable_times_and_json_keeps_unix_seconds(db: TestDb) {
    let fake = FakeStripe::start().await;
    seed_catalog(&fake, 3, 3);
    let env = env_for(Some(&fake.url()), &db);
    let (code, out, err) = run_cli(&env, &["sync"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let sync = table_rows(
        &out,
        &[
            "OBJECT",
            "CREATED",
            "UPDATED",
            "UNCHANGED",
            "STALE",
            "INVALID",
            "TOMBSTONED",
        ],
    );
    assert_eq!(
        (sync[0][0].as_str(), sync[0][1].as_str()),
        ("products", "3"),
        "{out}"
    );

    cli_admin(&db, ADMIN, OLD_PASSWORD).await;
    let (code, _, err) = run_cli(&env, &["token", "create", "web-app", "--scope", "all"]).await;
    assert_eq!(code, 0, "{err}");
    for (amount, reason) in [("5", "welcome"), ("1000.50", "a much longer reason")] {
        let (code, _, err) = run_cli(
            &env,
            &[
                "credits",
                "grant",
                "acct_tables",
                amount,
                "--reason",
                reason,
            ],
        )
        .await;
        assert_eq!(code, 0, "{err}");
    }
    db.store
        .insert_events(
            &[sm_store::inbox::NewEvent {
                id: "evt_tables".into(),
                kind: "product.updated".into(),
                created: 1_764_165_780,
                livemode: false,
                api_version: None,
                payload: "{}".into(),
                source: "webhook",
            }],
            1_764_165_780_000,
        )
        .await
        .unwrap();

    // Each list: its header, aligned rows, and a readable time where it shows one.
    let lists: &[(&[&str], &[&str], Option<usize>)] = &[
        (
            &["products"],
            &[
                "ID",
                "NAME",
                "STATUS",
                "VALID",
                "CREDITS",
                "TYPE",
                "DEFAULT PRICE",
                "PER CREDIT",
            ],
            None,
        ),
        (&["admin", "list"], &["EMAIL", "CREATED", "STATUS"], Some(1)),
        (
            &["token", "list"],
            &["ID", "NAME", "PREFIX", "SCOPES", "CREATED", "BY", "STATE"],
            Some(4),
        ),
        (
            &["credits", "history", "acct_tables"],
            &["ID", "AT", "KIND", "AMOUNT", "REF", "DESCRIPTION"],
            Some(1),
        ),
        (
            &["events", "list"],
            &["ID", "TYPE", "STATUS", "ATTEMPTS", "RECEIVED", "LAST ERROR"],
            Some(4),
        ),
        (
            &["accounts", "list"],
            &["ACCOUNT", "CUSTOMER", "CREATED"],
            Some(2),
        ),
        (
            &["migrate", "--status"],
            &["VERSION", "DESCRIPTION", "STATE"],
            None,
        ),
    ];
    for (args, header, time) in lists {
        let (code, out, err) = run_cli(&env, args).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        let rows = table_rows(&out, header);
        assert!(!rows.is_empty(), "{args:?}: no rows\n{out}");
        if let Some(column) = time {
            for row in &rows {
                assert!(
                    is_utc(&row[*column]),
                    "{args:?}: {:?} is not a readable time\n{out}",
                    row[*column]
                );
            }
        }
    }
    let (_, out, _) = run_cli(&env, &["events", "list"]).await;
    let events = table_rows(
        &out,
        &["ID", "TYPE", "STATUS", "ATTEMPTS", "RECEIVED", "LAST ERROR"],
    );
    assert!(events[0][4].starts_with("2025-11-26 14:03 UTC · "), "{out}");
    let (_, out, _) = run_cli(&env, &["credits", "history", "acct_tables"]).await;
    let amounts: Vec<_> = table_rows(&out, &["ID", "AT", "KIND", "AMOUNT", "REF", "DESCRIPTION"])
        .into_iter()
        .map(|r| r[3].clone())
        .collect();
    assert_eq!(amounts, ["1000.50", "5.00"], "newest first: {out}");
    assert!(
        out.lines().any(|l| l.contains("    5.00  ")),
        "amounts are right-aligned: {out}"
    );

    // --json keeps Unix seconds (milliseconds for the inbox, as stored).
    let json = |args: &'static [&'static str]| {
        let env = env.clone();
        async move {
            let (code, out, err) = run_cli(&env, args).await;
            assert_eq!(code, 0, "{args:?}: {err}");
            serde_json::from_str::<serde_json::Value>(&out)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
        }
    };
    let v = json(&["admin", "list", "--json"]).await;
    assert!(v["data"][0]["created_at"].is_i64(), "{v}");
    assert_eq!(v["data"][0]["disabled_at"], serde_json::Value::Null);
    assert!(!v.to_string().contains("argon2"), "never a hash: {v}");
    let v = json(&["token", "list", "--json"]).await;
    assert!(v[0]["created_at"].is_i64(), "{v}");
    let v = json(&["credits", "history", "acct_tables", "--json"]).await;
    assert!(v[0]["created_at"].is_i64(), "{v}");
    let v = json(&["events", "list", "--json"]).await;
    assert_eq!(v["data"][0]["received_at"], 1_764_165_780_000_i64, "{v}");
    let v = json(&["accounts", "list", "--json"]).await;
    assert!(v[0]["created_at"].is_i64(), "{v}");
}

/// `2025-11-26 14:03 UTC`, alone or followed by more (` · 3 min ago`).
fn is_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b.iter().take(16).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && &text[16..20] == " UTC"
}

/// The rows of the table in `out` whose header is `header`, cell by cell, after checking
/// its shape: the header row, a rule of dashes with one run per column, and rows whose
/// columns start where the rule's runs do (a space before each).
fn table_rows(out: &str, header: &[&str]) -> Vec<Vec<String>> {
    let lines: Vec<Vec<char>> = out.lines().map(|l| l.chars().collect()).collect();
    let cell = |line: &[char], (start, end): (usize, usize)| -> String {
        line.get(start..end.min(line.len()))
            .unwrap_or_default()
            .iter()
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let at = lines
        .windows(2)
        .position(|w| {
            w[1].first() == Some(&'-')
                && w[1].iter().all(|c| *c == '-' || *c == ' ')
                && w[0].iter().collect::<String>().contains(header[0])
        })
        .unwrap_or_else(|| panic!("no table headed {header:?} in:\n{out}"));
    let rule = &lines[at + 1];
    let mut spans = Vec::new();
    let mut i = 0;
    while i < rule.len() {
        let start = i;
        while i < rule.len() && rule[i] == '-' {
            i += 1;
        }
        spans.push((start, i));
        i += 1;
    }
    let names: Vec<String> = spans.iter().map(|s| cell(&lines[at], *s)).collect();
    assert_eq!(names, header, "the header row, one name per column:\n{out}");
    lines[at + 2..]
        .iter()
        .take_while(|l| !l.is_empty())
        .map(|line| {
            assert!(
                line.len() <= rule.len(),
                "a row wider than its columns:\n{out}"
            );
            for (start, _) in &spans[1..] {
                assert_eq!(
                    line.get(start - 1).copied().unwrap_or(' '),
                    ' ',
                    "a column not aligned under its header:\n{out}"
                );
            }
            spans.iter().map(|s| cell(line, *s)).collect()
        })
        .collect()
}
