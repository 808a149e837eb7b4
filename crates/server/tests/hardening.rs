//! Small hardening cases of issue #15 (item 8), on SQLite and PostgreSQL: NUL characters,
//! invisible characters in account references, database errors kept out of answers,
//! credentials kept out of `/readyz` and `check`, and a bounded selected sync.

mod common;

use common::*;
use serde_json::json;
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    nul_characters_are_refused_with_400_not_a_database_error,
    account_references_with_invisible_characters_are_refused,
    readyz_says_the_database_cannot_be_written_without_its_error_text,
    credentials_in_the_api_base_are_never_shown,
    a_selected_sync_names_at_most_100_products,
);

async fn nul_characters_are_refused_with_400_not_a_database_error(db: TestDb) {
    let app = TestApp::start(config_from(&env_for(None, &db))).await;
    let (status, body) = post_json(
        &app.url("/api/v1/accounts/acct_nul/credits/consume"),
        json!({"amount": "0", "idempotency_key": "k\u{0}1", "description": "x"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("nul_character")),
        "{body}"
    );
    let (status, body) = post_json(
        &app.url("/api/v1/accounts/acct_nul/credits/consume"),
        json!({"amount": "0", "idempotency_key": "k1", "description": "a\u{0}b"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get_json(&app.url("/api/v1/products?q=a%00b")).await;
    assert_eq!(status, 400, "{body}");
    // Nothing was written.
    assert_eq!(
        app.state
            .store
            .credit_entries("acct_nul", 10)
            .await
            .unwrap()
            .len(),
        0
    );
}

async fn account_references_with_invisible_characters_are_refused(db: TestDb) {
    let app = TestApp::start(config_from(&env_for(None, &db))).await;
    for account in [
        "acct\u{202E}lave",
        "acct\u{200B}x",
        "\u{FEFF}acct",
        "acct\u{2066}x",
    ] {
        let encoded: String = form_urlencoded::byte_serialize(account.as_bytes()).collect();
        let (status, body) =
            get_json(&app.url(&format!("/api/v1/accounts/{encoded}/credits"))).await;
        assert_eq!(status, 400, "{account:?}: {body}");
        assert!(
            body.to_string().contains("not an account reference"),
            "{body}"
        );
    }
}

async fn readyz_says_the_database_cannot_be_written_without_its_error_text(db: TestDb) {
    let app = TestApp::start(config_from(&env_for(None, &db))).await;
    let (status, body) = get_json(&app.url("/readyz")).await;
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");
    // The one table /readyz writes is gone: the database answers but cannot be written.
    match app.state.store.pool() {
        sm_store::Pool::Sqlite(p) => {
            sqlx::query("DROP TABLE service_health")
                .execute(p)
                .await
                .unwrap();
        }
        sm_store::Pool::Postgres(p) => {
            sqlx::query("DROP TABLE service_health")
                .execute(p)
                .await
                .unwrap();
        }
    }
    let (status, body) = get_json(&app.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"]["error"], "database_unwritable");
    let text = body.to_string();
    assert!(
        !text.contains("service_health") && !text.contains("relation"),
        "{text}"
    );
}

async fn credentials_in_the_api_base_are_never_shown(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let base = fake
        .url()
        .replacen("http://", "http://proxyuser:hunter2secret@", 1);
    let mut env = env_for(Some(&base), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    let app = TestApp::start(config_from(&env)).await;
    let (_, body) = get_json(&app.url("/readyz")).await;
    let text = body.to_string();
    assert!(
        !text.contains("hunter2secret") && !text.contains("proxyuser"),
        "{text}"
    );
    assert!(text.contains("***@127.0.0.1"), "{text}");
    let (_, out, err) = run_cli(&env, &["check", "--json"]).await;
    assert!(
        !out.contains("hunter2secret") && !err.contains("hunter2secret"),
        "{out}{err}"
    );
}

async fn a_selected_sync_names_at_most_100_products(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let ids: Vec<String> = (0..101).map(|i| format!("prod_{i:04}")).collect();
    let (status, body) = post_json(&app.url("/api/v1/sync"), json!({"products": ids})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("too_many_products")),
        "{body}"
    );
    assert_eq!(fake.request_count(), 0, "no Stripe call");
}
