//! API tokens over real HTTP on SQLite and PostgreSQL: every `/api/v1` route refuses a
//! request without a valid token (401) or without its scope (403); the CLI creates,
//! lists and revokes tokens, prints a token once and stores only its hash.

mod common;

use common::*;
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    every_api_route_needs_a_token_with_its_scope,
    the_cli_creates_lists_and_revokes_tokens,
    a_revoked_token_is_refused_by_every_instance,
    a_broken_listener_never_leaves_a_revoked_token_accepted,
);

/// Each route with the scope it needs and a body that passes the auth check.
fn routes() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        ("GET", "/api/v1/products", "catalog:read", Value::Null),
        (
            "GET",
            "/api/v1/products/prod_x",
            "catalog:read",
            Value::Null,
        ),
        (
            "POST",
            "/api/v1/sync",
            "sync:write",
            json!({"products": ["prod_x"]}),
        ),
        (
            "GET",
            "/api/v1/accounts/acct_a/credits",
            "credits:read",
            Value::Null,
        ),
        (
            "GET",
            "/api/v1/accounts/acct_a/credits/history",
            "credits:read",
            Value::Null,
        ),
        (
            "POST",
            "/api/v1/accounts/acct_a/credits/consume",
            "credits:write",
            json!({"amount": "0", "idempotency_key": "k"}),
        ),
        ("POST", "/api/v1/checkout", "checkout:write", json!({})),
    ]
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, Value, Option<String>) {
    let client = http();
    let url = app.url(path);
    let mut request = match method {
        "GET" => client.get(url),
        _ => client.post(url).json(body),
    };
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap_or(Value::Null), challenge)
}

async fn every_api_route_needs_a_token_with_its_scope(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let catalog_only = grant_token(&app.state.store, "catalog", "catalog:read").await;
    let credits_only = grant_token(&app.state.store, "credits", "credits:read,credits:write").await;
    for (method, path, scope, body) in routes() {
        let (status, e, challenge) = send(&app, method, path, &body, None).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        for bad in [
            "smt_0000",
            "nonsense",
            "",
            &app.token[..app.token.len() - 1],
        ] {
            let (status, _, _) = send(&app, method, path, &body, Some(bad)).await;
            assert_eq!(status, 401, "{method} {path} with {bad:?}");
        }
        let other = if scope == "catalog:read" {
            &credits_only
        } else {
            &catalog_only
        };
        let (status, e, _) = send(&app, method, path, &body, Some(other)).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains(scope),
            "{e}"
        );
        let (status, _, _) = send(&app, method, path, &body, Some(&app.token)).await;
        assert!(
            status != 401 && status != 403,
            "{method} {path} with every scope: {status}"
        );
    }
    // Outside /api/v1 nothing is asked for.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            http().get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let metrics = http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(&app.token) && !metrics.contains(&catalog_only));
}

async fn the_cli_creates_lists_and_revokes_tokens(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(
        &env,
        &["token", "create", "web-app", "--scope", "credits:read"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let token = out.trim().to_owned();
    assert!(
        token.starts_with("smt_") && err.contains("shown only now"),
        "{out} {err}"
    );
    let path = "/api/v1/accounts/acct_cli/credits";
    assert_eq!(
        send(&app, "GET", path, &Value::Null, Some(&token)).await.0,
        200
    );
    let (code, out, _) = run_cli(&env, &["token", "list", "--json"]).await;
    assert_eq!(code, 0);
    assert!(
        !out.contains(&token[4..]),
        "a listing never shows the token"
    );
    let listed: Value = serde_json::from_str(&out).unwrap();
    let web = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "web-app")
        .unwrap();
    assert_eq!(web["scopes"], "credits:read");
    assert!(web["last_used_at"].is_i64(), "{web}");
    // Only the hash is stored.
    let rows = db.store.list_tokens().await.unwrap();
    assert!(
        rows.iter()
            .all(|r| !r.hash.contains(&token[4..]) && r.hash != token)
    );
    let (code, _, err) = run_cli(&env, &["token", "create", "web-app", "--scope", "all"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("exists"), "{err}");
    let (code, _, err) = run_cli(&env, &["token", "create", "x", "--scope", "credits:admin"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("credits:admin"), "{err}");
    let (code, _, _) = run_cli(&env, &["token", "revoke", "web-app"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        send(&app, "GET", path, &Value::Null, Some(&token)).await.0,
        401
    );
    let (code, _, err) = run_cli(&env, &["token", "revoke", "web-app"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no live token"), "{err}");
    let audit = db.store.audit_log(None, 10).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.result.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("token.revoke", "not_found"),
            ("token.revoke", "ok"),
            ("token.create", "ok")
        ]
    );
}

/// Another instance on the same database, and both instances' listeners working (on
/// PostgreSQL; SQLite has none and asks the database every time).
async fn two_instances(db: &TestDb) -> (TestApp, TestApp) {
    let env = env_for(None, db);
    let a = TestApp::start(config_from(&env)).await;
    let b = TestApp::start(config_from(&env)).await;
    listening(&a, db).await;
    listening(&b, db).await;
    (a, b)
}

/// On PostgreSQL, waits until `app`'s change listener works (it has stamps); at most
/// 10 s. Nothing to wait for on SQLite.
async fn listening(app: &TestApp, db: &TestDb) {
    if db.store.backend() != sm_store::Backend::Postgres {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app
        .state
        .changes
        .current(stripe_manager::changes::Topic::Tokens)
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener never (re)started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The status of `GET /api/v1/products` on `app` with `token`.
async fn read_with(app: &TestApp, token: &str) -> u16 {
    get_status(&app.url("/api/v1/products"), token).await
}

/// Asks until `app` refuses `token`; panics after 10 s. Returns how long it took.
async fn refused_within(app: &TestApp, token: &str) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        match read_with(app, token).await {
            401 => return start.elapsed(),
            200 => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "a revoked token was still accepted after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Tokens are kept in memory on PostgreSQL (no query per request), so this is the test
/// that a revocation still reaches every instance: made by another process (the CLI),
/// by hand in SQL (the trigger announces it), and by the instance itself (refused on
/// that instance on the very next request, without waiting for the announcement).
async fn a_revoked_token_is_refused_by_every_instance(db: TestDb) {
    let (a, b) = two_instances(&db).await;
    let env = env_for(None, &db);
    let mut tokens = Vec::new();
    for name in ["cli", "sql", "local"] {
        let token = grant_token(&db.store, name, "catalog:read").await;
        // Seen (and, on PostgreSQL, kept) by both instances.
        assert_eq!(read_with(&a, &token).await, 200);
        assert_eq!(read_with(&b, &token).await, 200);
        tokens.push(token);
    }
    let name_of = |token: &str| {
        let prefix = token[..12].to_owned();
        let store = db.store.clone();
        async move {
            store
                .list_tokens()
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.prefix == prefix)
                .unwrap()
                .name
        }
    };
    // Another process.
    let name = name_of(&tokens[0]).await;
    let (code, _, err) = run_cli(&env, &["token", "revoke", &name]).await;
    assert_eq!(code, 0, "{err}");
    for app in [&a, &b] {
        let took = refused_within(app, &tokens[0]).await;
        eprintln!("revoked by the CLI: refused after {took:?}");
    }
    // By hand, in SQL: only the database knows.
    let name = name_of(&tokens[1]).await;
    sm_store::on_pool!(db.store, pool => sqlx::query("UPDATE api_tokens SET revoked_at = 1 WHERE name = $1")
        .bind(&name)
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
    for app in [&a, &b] {
        let took = refused_within(app, &tokens[1]).await;
        eprintln!("revoked in SQL: refused after {took:?}");
    }
    // By instance b itself: refused by b on the next request, no waiting.
    let name = name_of(&tokens[2]).await;
    assert!(b.state.store.revoke_token(&name, 2).await.unwrap());
    assert_eq!(read_with(&b, &tokens[2]).await, 401);
    refused_within(&a, &tokens[2]).await;
}

/// When the listening connection breaks, announcements sent meanwhile are lost: the
/// instance must stop trusting what it kept, not serve a revoked token for ever.
async fn a_broken_listener_never_leaves_a_revoked_token_accepted(db: TestDb) {
    let (a, _b) = two_instances(&db).await;
    let token = grant_token(&db.store, "kept", "catalog:read").await;
    assert_eq!(read_with(&a, &token).await, 200);
    if db.store.backend() == sm_store::Backend::Postgres {
        let schema: String = sm_store::on_pool!(db.store, pool => sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(pool)
            .await
            .unwrap());
        let ended: Vec<bool> = sm_store::on_pool!(db.store, pool => sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1"
        )
        .bind(sm_store::changes::listener_name(&schema))
        .fetch_all(pool)
        .await
        .unwrap());
        assert_eq!(
            ended,
            vec![true, true],
            "both instances' listeners ({schema})"
        );
    }
    // Revoked while nobody listens: no announcement reaches either instance.
    sm_store::on_pool!(db.store, pool => sqlx::query("UPDATE api_tokens SET revoked_at = 1")
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
    refused_within(&a, &token).await;
    // Once listening again (its stamps are back), the instance keeps tokens again and
    // still hears of a revocation.
    listening(&a, &db).await;
    let token = grant_token(&db.store, "after", "catalog:read").await;
    assert_eq!(read_with(&a, &token).await, 200);
    sm_store::on_pool!(db.store, pool => sqlx::query("UPDATE api_tokens SET revoked_at = 2 WHERE revoked_at IS NULL")
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
    refused_within(&a, &token).await;
}
