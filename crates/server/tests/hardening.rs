//! Small hardening cases of issue #15 (item 8), on SQLite and PostgreSQL: NUL characters,
//! invisible characters in account references, database errors kept out of answers,
//! credentials kept out of `/readyz` and `check`, and a bounded selected sync; and of
//! issue #27 (item 7): list limits outside their documented range are refused.

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
    one_slow_stripe_call_holds_up_only_its_own_event,
    list_limits_outside_their_documented_range_are_refused,
    return_urls_must_name_an_allowed_host_when_the_list_is_set,
);

/// `RETURN_URL_ALLOWED_HOSTS`: a checkout's success and cancel URLs and a portal's
/// return URL on another host are refused before Stripe is asked; an allowed host (or a
/// subdomain of a dotted entry) goes on (here to the next check: no customer).
async fn return_urls_must_name_an_allowed_host_when_the_list_is_set(db: TestDb) {
    let fake = fake_stripe::FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push((
        "RETURN_URL_ALLOWED_HOSTS".into(),
        "app.example, .shop.example".into(),
    ));
    let app = TestApp::start(config_from(&env)).await;
    let portal = app.url("/api/v1/accounts/acct_ret/portal");
    let (status, body) = post_json(&portal, json!({"return_url": "https://evil.example/x"})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"evil.example\" is not in RETURN_URL_ALLOWED_HOSTS"),
        "{body}"
    );
    for allowed in [
        "https://app.example/account",
        "https://eu.shop.example/back",
    ] {
        let (status, body) = post_json(&portal, json!({"return_url": allowed})).await;
        assert_eq!(status, 404, "past the host check to `no_customer`: {body}");
    }
    for (field, other) in [("success_url", "cancel_url"), ("cancel_url", "success_url")] {
        let (status, body) = post_json(
            &app.url("/api/v1/checkout"),
            json!({"account": "acct_ret", "price": "price_x", field: "https://evil.example/",
                   other: "https://app.example/"}),
        )
        .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!("invalid_body")),
            "{field}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains("checkout") && !r.path.contains("billing_portal")),
        "Stripe was never asked"
    );
}

/// `limit` is documented 1–100 (the journal: 1–1,000); 0 and one past the top used to
/// be clamped silently (payments) or passed through (the journal's 0).
async fn list_limits_outside_their_documented_range_are_refused(db: TestDb) {
    let app = TestApp::start(config_from(&env_for(None, &db))).await;
    let account = app.url("/api/v1/accounts/acct_limits");
    for (list, max) in [
        ("/payments", 100),
        ("/credits/holds", 100),
        ("/credits/history", 1000),
    ] {
        for bad in [0, max + 1] {
            let (status, body) = get_json(&format!("{account}{list}?limit={bad}")).await;
            assert_eq!(
                (status, &body["error"]["code"]),
                (400, &json!("invalid_query")),
                "{list}?limit={bad}: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("1 to {max}")),
                "{body}"
            );
        }
        for good in [1, max] {
            let (status, body) = get_json(&format!("{account}{list}?limit={good}")).await;
            assert_eq!(status, 200, "{list}?limit={good}: {body}");
        }
    }
}

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

/// One event whose planning waits 8 s on Stripe, delivered with 20 catalog events, then
/// 10 more events after it: all 30 others are applied while the slow one still waits
/// (on SQLite too, where the worker used to plan one event at a time), then it is applied.
async fn one_slow_stripe_call_holds_up_only_its_own_event(db: TestDb) {
    use fake_stripe::{Ctx, Fault, FaultKind};
    let fake = fake_stripe::FakeStripe::start().await;
    let products = seed_catalog(&fake, 30, 30);
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    env.push(("STRIPE_MAX_RPS".into(), "0".into()));
    env.push(("STRIPE_TIMEOUT".into(), "30".into()));
    let app = TestApp::start(config_from(&env)).await;
    let (status, _) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    // A paid session whose line items must be fetched: that call (once) is slow.
    let session_id = fake.with_state(|s| {
        let price = s.prices.values().next().unwrap()["id"].clone();
        let (_, session) = s
            .create_checkout_session(
                &json!({"mode": "payment", "client_reference_id": "acct_slow",
                        "line_items": [{"price": price, "quantity": 1}],
                        "success_url": "https://a.example/", "cancel_url": "https://a.example/"}),
                &Ctx::default(),
            )
            .unwrap();
        let id = session["id"].as_str().unwrap().to_owned();
        s.complete_session(&id, true).unwrap();
        id
    });
    let slow = take_fake_events(&fake, &["checkout.session.completed"])
        .remove(0)
        .to_string();
    let slow_id = serde_json::from_str::<serde_json::Value>(&slow).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.inject(
        Fault::on_path(
            &format!("/v1/checkout/sessions/{session_id}/line_items"),
            FaultKind::Delay(std::time::Duration::from_secs(8)),
        )
        .times(1),
    );
    let updates = |range: std::ops::Range<usize>| {
        fake.with_state(|s| {
            for p in &products[range] {
                s.update_product(
                    p,
                    &json!({"metadata": {"note": "updated"}}),
                    &Ctx::default(),
                )
                .unwrap();
            }
        });
        take_fake_events(&fake, &["product.updated"])
    };
    let first = updates(0..20);
    assert_eq!(app.deliver_signed(&slow).await, 200);
    for e in &first {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    let later = updates(20..30);
    for e in &later {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    let store = &app.state.store;
    let done = |id: String| async move {
        store
            .get_event(&id)
            .await
            .unwrap()
            .is_some_and(|e| e.status == "processed")
    };
    for _ in 0..300 {
        let mut all = true;
        for e in first.iter().chain(&later) {
            all &= done(e["id"].as_str().unwrap().to_owned()).await;
        }
        if all {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for e in first.iter().chain(&later) {
        assert!(
            done(e["id"].as_str().unwrap().to_owned()).await,
            "{} waits",
            e["id"]
        );
    }
    assert!(
        !done(slow_id.clone()).await,
        "the slow event waits on Stripe alone"
    );
    app.drain_inbox().await;
    assert!(done(slow_id).await);
    let (_, b) = get_json(&app.url("/api/v1/accounts/acct_slow/credits")).await;
    assert_ne!(b["available"], "0.00", "{b}");
}
