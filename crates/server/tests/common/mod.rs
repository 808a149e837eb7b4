//! Helpers shared by the integration tests: configurations pointing at a fake Stripe and
//! a throwaway database, the real `Application` on port 0, and the real binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use sm_store::testing::TestDb;
use stripe_manager::config::{Config, Sources};
use stripe_manager::{AppState, Application};

pub mod admin;
pub mod conformance;
pub mod receiver;
pub mod shop;
use tokio::sync::oneshot;

pub const KEY: &str = "sk_test_51IntegrationSecretKeyZz9";
pub const WEBHOOK_SECRET: &str = "whsec_IntegrationWebhookSecret";

/// A configuration from `pairs` only (no process environment, no `.env`).
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let sources = Sources {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Sources::default()
    };
    Config::load(&sources).expect("valid test configuration")
}

/// A configuration talking to `stripe_base` (if any) with the test key, on `db`.
pub fn env_for(stripe_base: Option<&str>, db: &TestDb) -> Vec<(String, String)> {
    let mut env = vec![
        ("DATABASE_URL".to_owned(), db.url().expose().to_owned()),
        ("BIND".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "STRIPE_WEBHOOK_SECRET".to_owned(),
            WEBHOOK_SECRET.to_owned(),
        ),
        ("STRIPE_TIMEOUT".to_owned(), "2".to_owned()),
        ("STRIPE_MAX_RETRIES".to_owned(), "1".to_owned()),
    ];
    if let Some(base) = stripe_base {
        env.push(("STRIPE_SECRET_KEY".to_owned(), KEY.to_owned()));
        env.push(("STRIPE_API_BASE".to_owned(), base.to_owned()));
    }
    env
}

pub fn config_from(env: &[(String, String)]) -> Config {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    config(&pairs)
}

/// The real application, serving on a loopback port until dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `HEALTH_BIND`'s listener, when the configuration sets it.
    pub health_addr: Option<SocketAddr>,
    pub state: AppState,
    /// An API token with every scope, sent by `get_json`/`post_json` to this app.
    pub token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn start(config: Config) -> Self {
        if std::env::var("SM_TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
        }
        let app = Application::build(config)
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let health_addr = app.health_addr();
        let state = app.state().clone();
        let token = grant_token(&state.store, "tests", "all").await;
        TOKENS
            .lock()
            .unwrap()
            .insert(addr.to_string(), token.clone());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            health_addr,
            state,
            token,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The real application against `fake` on `db`, with no start-up probe and no
/// client-side rate limit (so request counts are exactly what the test causes).
pub async fn quiet_app(fake: &fake_stripe::FakeStripe, db: &TestDb) -> TestApp {
    quiet_app_with(fake, db, &[]).await
}

/// [`quiet_app`] with more settings.
pub async fn quiet_app_with(
    fake: &fake_stripe::FakeStripe,
    db: &TestDb,
    extra: &[(String, String)],
) -> TestApp {
    let mut env = env_for(Some(&fake.url()), db);
    env.push(("STRIPE_CONNECTIVITY_TEST".to_owned(), "false".to_owned()));
    env.push(("STRIPE_MAX_RPS".to_owned(), "0".to_owned()));
    env.extend(extra.iter().cloned());
    TestApp::start(config_from(&env)).await
}

/// Grants `whole` credits to `account` as an operator would (the ledger's own path).
pub async fn grant_credits(app: &TestApp, account: &str, whole: i64) {
    app.state
        .ledger
        .adjust(
            account,
            &stripe_manager::credits::AdjustRequest {
                kind: stripe_manager::credits::Adjustment::Grant,
                amount: sm_domain::credits::Credits::whole(whole),
                reason: "test balance",
                actor: "test",
                origin: "test",
            },
            1,
        )
        .await
        .expect("a grant");
}

/// The `stripe-manager` binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stripe-manager"))
}

/// A command for the binary with a clean environment plus `env`, in a temp directory
/// (so no developer `.env` is picked up).
pub fn command(env: &[(String, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.env_clear();
    let keep: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k == "PATH" || k == "HOME")
        .collect();
    cmd.envs(keep);
    cmd.envs(env.iter().cloned());
    cmd.current_dir(std::env::temp_dir());
    cmd.kill_on_drop(true);
    cmd
}

/// A loopback port with nothing listening on it.
/// Runs the binary with `env` and `args`: `(exit code, stdout, stderr)`.
pub async fn run_cli(env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let out = command(env).args(args).output().await.expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the binary with `input` on its standard input (a pipe, not a terminal).
pub async fn run_cli_with_stdin(
    env: &[(String, String)],
    args: &[&str],
    input: &str,
) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = command(env)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The binary may exit before reading (an unknown email): a broken pipe is fine.
    let _ = stdin.write_all(input.as_bytes()).await;
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

pub fn http() -> reqwest::Client {
    sm_stripe::client::install_tls_provider();
    // Idle connections are dropped before the server's header timeout (10 s) closes
    // them: reusing one the server is closing fails the request (IncompleteMessage), as
    // a loaded run showed for tests that take longer than that.
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(4))
        .build()
        .expect("client")
}

/// Seeds valid credit products and one-time prices (see `State::seed_catalog`).
pub fn seed_catalog(fake: &fake_stripe::FakeStripe, products: usize, prices: usize) -> Vec<String> {
    fake.with_state(|s| s.seed_catalog(products, prices))
}

/// API tokens by `host:port`, so the helpers below authenticate to whichever test app a
/// URL points at (tests may run several apps, and `cargo test` runs tests in threads).
static TOKENS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// Creates an API token with `scopes` (as the CLI takes them) directly in the store.
pub async fn grant_token(store: &sm_store::Store, name: &str, scopes: &str) -> String {
    let scopes = stripe_manager::auth::parse_scopes([scopes]).expect("valid scopes");
    let list = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let (token, prefix, hash) = stripe_manager::auth::generate();
    let name = format!("{name}-{}", &prefix[4..]);
    store
        .create_token(&name, &prefix, &hash, &list, "tests", None, 0)
        .await
        .expect("token stored")
        .expect("a new name");
    token
}

/// Registers the token the JSON helpers send to the server at `addr` (`host:port`).
pub fn use_token(addr: &str, token: &str) {
    TOKENS
        .lock()
        .unwrap()
        .insert(addr.to_owned(), token.to_owned());
}

fn authorized(request: reqwest::RequestBuilder, url: &str) -> reqwest::RequestBuilder {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    match TOKENS.lock().unwrap().get(authority) {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// The status of a GET of `url` with the bearer `token`.
pub async fn get_status(url: &str, token: &str) -> u16 {
    http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// POSTs JSON (with the app's API token) and returns the status and the JSON answer.
pub async fn post_json(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = authorized(http().post(url), url)
        .json(&body)
        .send()
        .await
        .expect("request");
    answered("POST", url, r).await
}

/// The status and JSON of an answer, checked against the OpenAPI document
/// ([`conformance`]).
async fn answered(method: &str, url: &str, r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    conformance::check(method, url, status, &body);
    (status, body)
}

/// PUTs JSON (with the app's API token) and returns the status and the JSON answer.
pub async fn put_json(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = authorized(http().put(url), url)
        .json(&body)
        .send()
        .await
        .expect("request");
    answered("PUT", url, r).await
}

/// DELETEs (with the app's API token) and returns the status and the JSON answer.
pub async fn delete_json(url: &str) -> (u16, serde_json::Value) {
    let r = authorized(http().delete(url), url)
        .send()
        .await
        .expect("request");
    answered("DELETE", url, r).await
}

pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = authorized(http().get(url), url)
        .send()
        .await
        .expect("request");
    answered("GET", url, r).await
}

/// Requests the fake received that would write the catalog: the invariant is none.
pub fn catalog_writes(fake: &fake_stripe::FakeStripe) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| {
            r.method != "GET"
                && (r.path.starts_with("/v1/products") || r.path.starts_with("/v1/prices"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Starts `stripe-manager serve` with `env` (JSON logs) and returns it with its address
/// once it listens.
pub async fn spawn_serve(env: &[(String, String)]) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut env = env.to_vec();
    env.push(("LOG_FORMAT".into(), "json".into()));
    let mut child = command(&env)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("serve starts in time")
            .expect("readable")
            .expect("serve keeps running");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if v["message"] == "stripe-manager listening" {
            // Keep draining its logs so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, v["addr"].as_str().expect("addr").to_owned());
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

impl TestApp {
    /// Delivers `body` to this app's webhook endpoint, signed now with the test secret.
    pub async fn deliver_signed(&self, body: &str) -> u16 {
        http()
            .post(self.url("/webhooks/stripe"))
            .header(
                "Stripe-Signature",
                fake_stripe::sign(WEBHOOK_SECRET, unix_now(), body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await
            .expect("delivery")
            .status()
            .as_u16()
    }

    /// Waits until an event of `kind` is parked (pending, with the reason it waits in
    /// `last_error`) and returns it; fails the test after 10 s.
    pub async fn parked_event(&self, kind: &str) -> sm_store::inbox::InboxEvent {
        for _ in 0..500 {
            let pending = self
                .state
                .store
                .list_events(&sm_store::inbox::EventFilter {
                    status: Some("pending".into()),
                    kind: Some(kind.into()),
                    limit: 10,
                })
                .await
                .expect("events");
            if let Some(e) = pending.into_iter().find(|e| e.last_error.is_some()) {
                return e;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no {kind} event was parked");
    }

    /// Waits until the inbox (shared by every instance on the database) has nothing
    /// pending or processing; fails the test on a dead letter or after 30 s.
    pub async fn drain_inbox(&self) {
        for _ in 0..1500 {
            let c = self.state.store.inbox_counts(0).await.expect("counts");
            if c.pending == 0 && c.processing == 0 {
                assert_eq!(c.failed, 0, "an event ended in the dead letter");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let stuck = self
            .state
            .store
            .list_events(&sm_store::inbox::EventFilter {
                status: Some("pending".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("events");
        let errors: Vec<_> = stuck.iter().map(|e| (&e.kind, &e.last_error)).collect();
        panic!("the worker did not drain the inbox: {errors:?}");
    }

    /// `GET /api/v1/accounts/{account}/credits`.
    pub async fn credits(&self, account: &str) -> serde_json::Value {
        let (status, b) = get_json(&self.url(&format!("/api/v1/accounts/{account}/credits"))).await;
        assert_eq!(status, 200, "{b}");
        b
    }

    /// The ledger's invariant: the journal sums to what the lots hold.
    pub async fn assert_ledger_balanced(&self, account: &str) {
        let (journal, lots, _) = self
            .state
            .store
            .credit_totals(account)
            .await
            .expect("totals");
        assert_eq!(journal, lots, "journal and lots disagree for {account}");
    }
}

/// The fake's events of these types as JSON bodies, oldest first; then forgets every
/// event it holds (so the next call returns only new ones).
pub fn take_fake_events(fake: &fake_stripe::FakeStripe, kinds: &[&str]) -> Vec<serde_json::Value> {
    fake.with_state(|s| {
        let found: Vec<serde_json::Value> = s
            .events
            .values()
            .filter(|e| kinds.is_empty() || kinds.contains(&e["type"].as_str().unwrap_or("")))
            .cloned()
            .collect();
        let ids: Vec<String> = s
            .events
            .values()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        for id in ids {
            s.events.remove(&id);
        }
        found
    })
}

/// The event ids a load has seen answered `200`, growing while it runs.
pub type Acked = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Posts each `(event id, body)` to `url`, signed with the test secret at send time,
/// `concurrency` at a time, in a task of its own; an event answered `200` is added to the
/// returned list at once, so a test can act in the middle of the load (kill the server,
/// take a backup) and know exactly what was acknowledged before.
pub fn spawn_acked_load(
    url: String,
    events: Vec<(String, String)>,
    concurrency: usize,
) -> (Acked, tokio::task::JoinHandle<()>) {
    use futures_util::StreamExt;
    let acked: Acked = Default::default();
    let task = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let client = http();
            let sends = events.into_iter().map(|(id, body)| {
                let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
                async move {
                    let header = fake_stripe::sign(WEBHOOK_SECRET, unix_now(), body.as_bytes());
                    if let Ok(r) = client
                        .post(&url)
                        .header("Stripe-Signature", header)
                        .body(body)
                        .send()
                        .await
                        && r.status() == 200
                    {
                        acked.lock().unwrap().push(id);
                    }
                }
            });
            futures_util::stream::iter(sends)
                .buffer_unordered(concurrency)
                .collect::<Vec<()>>()
                .await;
        })
    };
    (acked, task)
}
