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
