//! Webhooks end to end: signed deliveries over real HTTP into the real Application, on
//! SQLite and PostgreSQL. Signatures come from the fake's signer, written independently
//! of the product's verifier (whose unit tests also use a vector computed with Python).

mod common;

use std::time::Duration;

use common::*;
use fake_stripe::{Ctx, FakeStripe, sign};
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_signed_product_event_is_stored_answered_and_applied,
    every_rejection_is_a_400_with_its_reason_and_stores_nothing,
    a_duplicate_delivery_is_200_and_applied_once,
    a_thousand_events_delivered_three_times_concurrently_are_applied_once_each,
    unknown_event_types_are_stored_and_ignored,
    late_and_reordered_events_never_move_state_backwards,
    the_fake_delivers_signed_events_that_land_in_the_catalog,
    failures_retry_with_backoff_and_end_in_the_dead_letter,
    operators_list_show_and_replay_dead_letters,
    reconcile_recovers_missed_events_from_the_events_api,
    a_handler_that_fails_twice_then_succeeds_ends_processed,
    two_servers_on_one_database_share_the_load_and_apply_each_event_once,
    shuffled_updates_of_one_product_end_in_the_latest_state,
    a_killed_server_loses_no_acknowledged_event_and_applies_every_one,
    source_allow_list_and_trusted_proxies,
);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn product_event(id: &str, kind: &str, product: &str, name: &str, updated: i64) -> String {
    json!({
        "id": id, "object": "event", "type": kind, "created": updated, "livemode": false,
        "api_version": "2025-03-31.basil", "pending_webhooks": 1,
        "data": {"object": {
            "id": product, "object": "product", "active": true, "name": name, "description": null,
            "metadata": {"credit_amount": "10"}, "default_price": null, "created": 1, "updated": updated,
            "livemode": false
        }}
    })
    .to_string()
}

async fn deliver(app: &TestApp, body: &str) -> (u16, Value) {
    deliver_signed(app, body, &sign(WEBHOOK_SECRET, now(), body.as_bytes())).await
}

async fn deliver_signed(app: &TestApp, body: &str, header: &str) -> (u16, Value) {
    let r = http()
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", header)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Signs and POSTs every `(url, body)` with `concurrency` requests in flight; returns
/// each answer's status (`None` when there was no answer), in completion order.
async fn deliver_all(deliveries: Vec<(String, String)>, concurrency: usize) -> Vec<Option<u16>> {
    let client = http();
    let sends = deliveries.into_iter().map(|(url, body)| {
        let client = client.clone();
        async move {
            let header = sign(WEBHOOK_SECRET, now(), body.as_bytes());
            let sent = client
                .post(&url)
                .header("Stripe-Signature", header)
                .body(body)
                .send()
                .await;
            sent.ok().map(|r| r.status().as_u16())
        }
    });
    futures_util::stream::iter(sends)
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Waits until no event is pending or processing.
async fn drained(app: &TestApp) -> sm_store::inbox::InboxCounts {
    for _ in 0..3000 {
        let c = app.state.store.inbox_counts(0).await.unwrap();
        if c.pending == 0 && c.processing == 0 {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the worker did not drain the inbox");
}

async fn a_signed_product_event_is_stored_answered_and_applied(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let body = product_event(
        "evt_a1",
        "product.created",
        "prod_w1",
        "Webhook pack",
        now(),
    );
    let (status, answer) = deliver(&app, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"received": true, "duplicate": false, "id": "evt_a1"})
    );
    let stored = app
        .state
        .store
        .get_event("evt_a1")
        .await
        .unwrap()
        .expect("stored before 200");
    assert_eq!(stored.payload, body, "the body exactly as sent");
    let counts = drained(&app).await;
    assert_eq!(counts.processed, 1);
    let metrics = http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stripe_manager_webhook_queue_depth{status=\"pending\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "stripe_manager_webhook_events_received_total{type=\"product.created\",outcome=\"received\"}"
        ),
        "{metrics}"
    );
    let (_, p) = get_json(&app.url("/api/v1/products/prod_w1")).await;
    assert_eq!(
        (
            p["name"].clone(),
            p["valid"].clone(),
            p["credit_amount"].clone()
        ),
        (json!("Webhook pack"), json!(true), json!(10))
    );
    assert_eq!(
        fake.request_count(),
        0,
        "a payload newer than what we hold needs no refetch"
    );
}

async fn every_rejection_is_a_400_with_its_reason_and_stores_nothing(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let body = product_event("evt_r1", "product.updated", "prod_r", "R", now());
    let t = now();
    let good = sign(WEBHOOK_SECRET, t, body.as_bytes());
    let v1 = good.split_once("v1=").unwrap().1.to_owned();
    let cases: Vec<(Option<String>, String, &str)> = vec![
        (None, body.clone(), "missing_signature"),
        (Some("nonsense".into()), body.clone(), "malformed_signature"),
        (
            Some(format!("t={t},v0={v1}")),
            body.clone(),
            "no_v1_signature",
        ),
        (
            Some(sign(WEBHOOK_SECRET, t - 301, body.as_bytes())),
            body.clone(),
            "timestamp_outside_tolerance",
        ),
        (
            Some(sign("whsec_someone_else", t, body.as_bytes())),
            body.clone(),
            "signature_mismatch",
        ),
        (
            Some(good.clone()),
            body.replace("\"R\"", "\"X\""),
            "signature_mismatch",
        ),
        (
            Some(sign(WEBHOOK_SECRET, t, b"not json")),
            "not json".into(),
            "body_not_json",
        ),
        (
            Some(sign(WEBHOOK_SECRET, t, b"{\"id\":\"cus_1\"}")),
            "{\"id\":\"cus_1\"}".into(),
            "body_not_event",
        ),
    ];
    for (header, body, code) in cases {
        let mut req = http().post(app.url("/webhooks/stripe")).body(body);
        if let Some(h) = header {
            req = req.header("Stripe-Signature", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{code}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code);
        assert!(!v.to_string().contains("IntegrationWebhookSecret"));
    }
    // Rotation: two v1 values, the second one valid.
    let rotated = format!("t={t},v1={},v1={v1}", "0".repeat(64));
    assert_eq!(deliver_signed(&app, &body, &rotated).await.0, 200);
    // Too big: 413 before anything else.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let r = http()
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", good)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let counts = drained(&app).await;
    assert_eq!(
        counts.processed + counts.ignored + counts.failed,
        1,
        "only the rotated delivery was stored"
    );
}

async fn a_duplicate_delivery_is_200_and_applied_once(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let body = product_event("evt_d1", "product.created", "prod_d", "D", now());
    assert_eq!(deliver(&app, &body).await.1["duplicate"], false);
    let (status, again) = deliver(&app, &body).await;
    assert_eq!((status, again["duplicate"].clone()), (200, json!(true)));
    drained(&app).await;
    let (status, third) = deliver(&app, &body).await;
    assert_eq!(
        (status, third["duplicate"].clone()),
        (200, json!(true)),
        "also after processing"
    );
    let e = app.state.store.get_event("evt_d1").await.unwrap().unwrap();
    assert_eq!((e.status.as_str(), e.attempts), ("processed", 1));
}

async fn a_thousand_events_delivered_three_times_concurrently_are_applied_once_each(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let t = now();
    let bodies: Vec<String> = (0..1000)
        .map(|i| {
            product_event(
                &format!("evt_bulk{i:04}"),
                "product.created",
                &format!("prod_bulk{i:04}"),
                &format!("P{i}"),
                t,
            )
        })
        .collect();
    let url = app.url("/webhooks/stripe");
    let deliveries = bodies
        .iter()
        .flat_map(|b| std::iter::repeat_n((url.clone(), b.clone()), 3))
        .collect();
    let statuses = deliver_all(deliveries, 48).await;
    assert!(
        statuses.iter().all(|s| *s == Some(200)),
        "every delivery answered 200"
    );
    let counts = drained(&app).await;
    assert_eq!(counts.processed, 1000);
    assert_eq!(app.state.store.catalog_counts().await.unwrap().active, 1000);
    for i in 0..1000 {
        let e = app
            .state
            .store
            .get_event(&format!("evt_bulk{i:04}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.status.as_str(), e.attempts),
            ("processed", 1),
            "applied once, at the first attempt"
        );
    }
}

async fn unknown_event_types_are_stored_and_ignored(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let body = json!({"id": "evt_u1", "object": "event", "type": "radar.early_fraud_warning.created", "created": now(),
        "livemode": false, "data": {"object": {"id": "issfr_1"}}}).to_string();
    assert_eq!(deliver(&app, &body).await.0, 200);
    drained(&app).await;
    assert_eq!(
        app.state
            .store
            .get_event("evt_u1")
            .await
            .unwrap()
            .unwrap()
            .status,
        "ignored"
    );

    // An event of a Connect account (a Connect endpoint pointed here): stored, not
    // applied — its product belongs to another Stripe account's catalog.
    let mut connect: Value = serde_json::from_str(&product_event(
        "evt_connect",
        "product.created",
        "prod_connect",
        "Theirs",
        now(),
    ))
    .unwrap();
    connect["account"] = json!("acct_1Connected");
    assert_eq!(deliver(&app, &connect.to_string()).await.0, 200);
    drained(&app).await;
    let e = app
        .state
        .store
        .get_event("evt_connect")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, "ignored", "{e:?}");
    assert!(
        e.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("connected account acct_1Connected"),
        "{e:?}"
    );
    assert!(
        app.state
            .store
            .get_product("prod_connect")
            .await
            .unwrap()
            .is_none()
    );
}

use futures_util::StreamExt;

async fn late_and_reordered_events_never_move_state_backwards(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let t = now();
    // Newer first, then an older update: the newer stays.
    deliver(
        &app,
        &product_event("evt_o2", "product.updated", "prod_o", "newer", t + 10),
    )
    .await;
    drained(&app).await;
    deliver(
        &app,
        &product_event("evt_o1", "product.updated", "prod_o", "older", t),
    )
    .await;
    drained(&app).await;
    let (_, p) = get_json(&app.url("/api/v1/products/prod_o")).await;
    assert_eq!(p["name"], "newer");
    // Deleted, then a late update: the tombstone stays.
    deliver(
        &app,
        &product_event("evt_o3", "product.deleted", "prod_o", "newer", t + 20),
    )
    .await;
    drained(&app).await;
    deliver(
        &app,
        &product_event("evt_o4", "product.updated", "prod_o", "zombie", t + 15),
    )
    .await;
    drained(&app).await;
    let (_, p) = get_json(&app.url("/api/v1/products/prod_o")).await;
    assert_eq!(
        (p["deleted"].clone(), p["active"].clone(), p["name"].clone()),
        (json!(true), json!(false), json!("newer"))
    );
    // A tie with different content is settled by asking Stripe.
    let real = fake.with_state(|s| {
        let (_, p) = s.create_product(&json!({"name": "From Stripe", "metadata": {"credit_amount": "3"}, "created": t + 40}), &Ctx::default()).unwrap();
        p["id"].as_str().unwrap().to_owned()
    });
    deliver(
        &app,
        &product_event("evt_t1", "product.updated", &real, "first", t + 40),
    )
    .await;
    drained(&app).await;
    deliver(
        &app,
        &product_event("evt_t2", "product.updated", &real, "second", t + 40),
    )
    .await;
    drained(&app).await;
    let (_, p) = get_json(&app.url(&format!("/api/v1/products/{real}"))).await;
    assert_eq!(p["name"], "From Stripe", "refetched on the tie");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.starts_with("/v1/products/"))
            .count(),
        1
    );
}

async fn the_fake_delivers_signed_events_that_land_in_the_catalog(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    fake.deliver_webhooks_to(&app.url("/webhooks/stripe"), WEBHOOK_SECRET);
    fake.with_state(|s| {
        s.create_product(&json!({"name": "Delivered", "metadata": {"credit_amount": "5"}, "default_price_data": {"currency": "eur", "unit_amount": 250}}), &Ctx::default()).unwrap();
    });
    // product.created, price.created, product.updated (default price set).
    let deliveries = fake.wait_for_deliveries(3).await;
    assert!(
        deliveries.iter().all(|d| d.status == Some(200)),
        "{deliveries:?}"
    );
    drained(&app).await;
    let (_, all) = get_json(&app.url("/api/v1/products")).await;
    let p = &all["data"][0];
    assert_eq!(
        (p["name"].clone(), p["default_price"]["unit_amount"].clone()),
        (json!("Delivered"), json!(250))
    );
    assert!(catalog_writes(&fake).is_empty());
}

async fn failures_retry_with_backoff_and_end_in_the_dead_letter(db: TestDb) {
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    // Thin-event style: every catalog event refetches its object, and Stripe is down.
    env.push(("STRIPE_WEBHOOK_REFETCH".into(), "true".into()));
    env.push(("WEBHOOK_MAX_ATTEMPTS".into(), "2".into()));
    env.push(("STRIPE_MAX_RETRIES".into(), "0".into()));
    let app = TestApp::start(config_from(&env)).await;
    fake.inject(fake_stripe::Fault::on_path(
        "/v1/products",
        fake_stripe::FaultKind::Drop,
    ));
    let (status, _) = deliver(
        &app,
        &product_event("evt_f1", "product.updated", "prod_f", "F", now()),
    )
    .await;
    assert_eq!(
        status, 200,
        "stored and acknowledged even though applying it will fail"
    );
    let counts = drained(&app).await;
    assert_eq!(counts.failed, 1);
    let e = app.state.store.get_event("evt_f1").await.unwrap().unwrap();
    assert_eq!((e.status.as_str(), e.attempts), ("failed", 2));
    assert!(
        e.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("refetching from Stripe failed"),
        "{e:?}"
    );
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/v1/products/prod_f")
            .count(),
        2,
        "one call per attempt"
    );
    assert_eq!(
        get_json(&app.url("/api/v1/products/prod_f")).await.0,
        404,
        "nothing half-applied"
    );
}

async fn operators_list_show_and_replay_dead_letters(db: TestDb) {
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    env.push(("STRIPE_WEBHOOK_REFETCH".into(), "true".into()));
    env.push(("WEBHOOK_MAX_ATTEMPTS".into(), "1".into()));
    env.push(("STRIPE_MAX_RETRIES".into(), "0".into()));
    let app = TestApp::start(config_from(&env)).await;
    fake.inject(fake_stripe::Fault::on_path(
        "/v1/products",
        fake_stripe::FaultKind::Drop,
    ));
    deliver(
        &app,
        &product_event("evt_dl1", "product.updated", "prod_dl", "DL", now()),
    )
    .await;
    assert_eq!(drained(&app).await.failed, 1);

    let run = |args: &'static [&'static str]| {
        let env = env.clone();
        async move {
            let out = command(&env).args(args).output().await.unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, out, err) = run(&["events", "list", "--status", "failed", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["data"][0]["id"], "evt_dl1");
    assert_eq!(listed["data"][0]["status"], "failed");
    let (code, out, _) = run(&["events", "show", "evt_dl1", "--json"]).await;
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["payload"]["data"]["object"]["id"], "prod_dl");
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap()
            .contains("refetching from Stripe failed")
    );
    let (code, out, _) = run(&["events", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("evt_dl1") && out.contains("failed"), "{out}");

    // Stripe is back and has the product: replaying the dead letter applies it.
    fake.clear_faults();
    fake.with_state(|s| {
        s.create_product(
            &json!({"id": "prod_dl", "name": "Recovered", "metadata": {"credit_amount": "2"}}),
            &Ctx::default(),
        )
        .unwrap()
    });
    let (code, out, err) = run(&["events", "replay", "--failed"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued 1 event for replay"), "{out}");
    let counts = drained(&app).await;
    assert_eq!((counts.failed, counts.processed), (0, 1));
    assert_eq!(
        get_json(&app.url("/api/v1/products/prod_dl")).await.1["name"],
        "Recovered"
    );

    // Replaying a processed event goes through the same idempotent path: nothing changes.
    let (code, _, _) = run(&["events", "replay", "evt_dl1"]).await;
    assert_eq!(code, 0);
    drained(&app).await;
    assert_eq!(app.state.store.catalog_counts().await.unwrap().active, 1);

    assert_eq!(run(&["events", "replay", "evt_unknown"]).await.0, 1);
    assert_eq!(run(&["events", "show", "evt_unknown"]).await.0, 1);
    assert_eq!(run(&["events", "list", "--status", "bogus"]).await.0, 2);
    assert_eq!(
        run(&["events", "replay"]).await.0,
        2,
        "ids or --failed are required"
    );
}

async fn reconcile_recovers_missed_events_from_the_events_api(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let env = {
        let mut e = env_for(Some(&fake.url()), &db);
        e.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
        e
    };
    // While we were down, Stripe created three products (no deliveries reached us).
    fake.with_state(|s| {
        for name in ["A", "B", "C"] {
            s.create_product(
                &json!({"name": name, "metadata": {"credit_amount": "1"}}),
                &Ctx::default(),
            )
            .unwrap();
        }
    });
    let out = command(&env)
        .args(["events", "reconcile", "--since", "1h", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["seen"].clone(), r["stored"].clone()),
        (json!(3), json!(3))
    );
    let counts = drained(&app).await;
    assert_eq!(counts.processed, 3);
    assert_eq!(app.state.store.catalog_counts().await.unwrap().active, 3);
    let first = app
        .state
        .store
        .list_events(&Default::default())
        .await
        .unwrap();
    assert!(first.iter().all(|e| e.source == "reconcile"));

    let out = command(&env)
        .args(["events", "reconcile", "--since", "1h", "--json"])
        .output()
        .await
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["seen"].clone(), r["stored"].clone()),
        (json!(3), json!(0)),
        "already stored events are left alone"
    );

    let out = command(&env)
        .args(["events", "reconcile", "--since", "31d"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    fake.inject(fake_stripe::Fault::on_path(
        "/v1/events",
        fake_stripe::FaultKind::Drop,
    ));
    let out = command(&env)
        .args(["events", "reconcile"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn a_handler_that_fails_twice_then_succeeds_ends_processed(db: TestDb) {
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    env.push(("STRIPE_WEBHOOK_REFETCH".into(), "true".into()));
    env.push(("STRIPE_MAX_RETRIES".into(), "0".into()));
    let app = TestApp::start(config_from(&env)).await;
    fake.with_state(|s| {
        s.create_product(
            &json!({"id": "prod_ft", "name": "Third time", "metadata": {"credit_amount": "4"}}),
            &Ctx::default(),
        )
        .unwrap()
    });
    fake.inject(fake_stripe::Fault::next(2, fake_stripe::FaultKind::Drop));
    deliver(
        &app,
        &product_event(
            "evt_ft",
            "product.updated",
            "prod_ft",
            "payload name",
            now(),
        ),
    )
    .await;
    let counts = drained(&app).await;
    assert_eq!((counts.processed, counts.failed), (1, 0));
    let e = app.state.store.get_event("evt_ft").await.unwrap().unwrap();
    assert_eq!(
        (e.status.as_str(), e.attempts, e.last_error.clone()),
        ("processed", 3, None)
    );
    assert_eq!(
        get_json(&app.url("/api/v1/products/prod_ft")).await.1["name"],
        "Third time"
    );
}

async fn two_servers_on_one_database_share_the_load_and_apply_each_event_once(db: TestDb) {
    let fake = FakeStripe::start().await;
    let a = quiet_app(&fake, &db).await;
    let b = quiet_app(&fake, &db).await;
    let t = now();
    let deliveries = (0..400)
        .map(|i| {
            let target = if i % 2 == 0 {
                a.url("/webhooks/stripe")
            } else {
                b.url("/webhooks/stripe")
            };
            let body = product_event(
                &format!("evt_two{i:03}"),
                "product.created",
                &format!("prod_two{i:03}"),
                "Two",
                t,
            );
            (target, body)
        })
        .collect();
    let statuses = deliver_all(deliveries, 16).await;
    assert!(statuses.iter().all(|s| *s == Some(200)));
    drained(&a).await;
    drained(&b).await;
    let events = a
        .state
        .store
        .list_events(&sm_store::inbox::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 400);
    assert!(
        events
            .iter()
            .all(|e| e.status == "processed" && e.attempts == 1),
        "each applied once, at its first attempt"
    );
    assert_eq!(a.state.store.catalog_counts().await.unwrap().active, 400);
}

async fn shuffled_updates_of_one_product_end_in_the_latest_state(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let t = now();
    let mut bodies: Vec<String> = (0..20)
        .map(|i| {
            product_event(
                &format!("evt_sh{i:02}"),
                "product.updated",
                "prod_sh",
                &format!("v{i:02}"),
                t + i,
            )
        })
        .collect();
    fastrand::shuffle(&mut bodies);
    let url = app.url("/webhooks/stripe");
    let statuses = deliver_all(bodies.into_iter().map(|b| (url.clone(), b)).collect(), 8).await;
    assert!(statuses.iter().all(|s| *s == Some(200)));
    let counts = drained(&app).await;
    assert_eq!(counts.processed, 20);
    let (_, p) = get_json(&app.url("/api/v1/products/prod_sh")).await;
    assert_eq!(
        p["name"], "v19",
        "the newest `updated` wins whatever the arrival order"
    );
    assert_eq!(p["stripe_updated"], t + 19);
}

async fn a_killed_server_loses_no_acknowledged_event_and_applies_every_one(db: TestDb) {
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
    env.push(("WEBHOOK_LEASE_SECS".into(), "2".into()));
    let (mut child, addr) = spawn_serve(&env).await;
    let t = now();
    let events = (0..5000)
        .map(|i| {
            let id = format!("evt_kill{i:04}");
            let body = product_event(&id, "product.created", &format!("prod_kill{i:04}"), "K", t);
            (id, body)
        })
        .collect();
    let (accepted, sender) = spawn_acked_load(format!("http://{addr}/webhooks/stripe"), events, 16);
    // Kill it hard in the middle of the load.
    while accepted.lock().unwrap().len() < 1500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        tokio::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let _ = child.wait().await;
    sender.await.unwrap();
    let acknowledged = accepted.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 1500 && acknowledged.len() < 5000,
        "{}",
        acknowledged.len()
    );

    // Restart: everything acknowledged is there and gets applied, exactly once.
    let (mut child, _addr) = spawn_serve(&env).await;
    let store = &db.store;
    let mut counts = store.inbox_counts(0).await.unwrap();
    for _ in 0..1500 {
        counts = store.inbox_counts(0).await.unwrap();
        if counts.pending == 0 && counts.processing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (counts.pending, counts.processing, counts.failed),
        (0, 0, 0)
    );
    for id in &acknowledged {
        let e = store
            .get_event(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} got a 200 and is not in the inbox"));
        assert_eq!(e.status, "processed", "{id}");
    }
    // Every stored event is applied (each creates its own product), none half-applied:
    // an event's product and its status commit together, so the counts match.
    assert_eq!(
        store.catalog_counts().await.unwrap().active,
        counts.processed
    );
    assert!(counts.processed >= acknowledged.len() as u64);
    let _ = child.kill().await;
}

/// On PostgreSQL a replay made by another process (here: the test, through its own pool)
/// reaches the worker by `NOTIFY`, not by the poll: the worker polls once an hour here, so
/// without the notification the event would not be applied within `drained`'s minute.
#[tokio::test]
async fn postgres_notify_wakes_the_worker_of_every_instance() {
    let Some(db) = TestDb::new(sm_store::Backend::Postgres).await else {
        return;
    };
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".to_owned(), "false".to_owned()));
    let mut config = config_from(&env);
    config.worker.poll = Duration::from_secs(3600);
    let app = TestApp::start(config).await;
    let body = product_event(
        "evt_notify1",
        "product.created",
        "prod_notify",
        "Notified",
        now(),
    );
    assert_eq!(deliver(&app, &body).await.0, 200);
    drained(&app).await;
    // Let the worker go back to sleep on its (hourly) poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replayed = db
        .store
        .replay_events(&["evt_notify1".to_owned()], 0)
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    let counts = drained(&app).await;
    assert_eq!(
        counts.processed, 1,
        "woken by NOTIFY, not by the hourly poll"
    );
    let event = app
        .state
        .store
        .get_event("evt_notify1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((event.status.as_str(), event.attempts), ("processed", 1));
}

async fn source_allow_list_and_trusted_proxies(db: TestDb) {
    let fake = FakeStripe::start().await;
    let mut env = env_for(Some(&fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".to_owned(), "false".to_owned()));
    env.push((
        "WEBHOOK_ALLOWED_IPS".to_owned(),
        "stripe,192.0.2.0/24".to_owned(),
    ));
    env.push(("TRUSTED_PROXIES".to_owned(), "127.0.0.1".to_owned()));
    let app = TestApp::start(config_from(&env)).await;
    let send = |id: &str, forwarded: Option<&str>| {
        let body = product_event(id, "product.created", &format!("prod_{id}"), "Src", now());
        let header = sign(WEBHOOK_SECRET, now(), body.as_bytes());
        let mut request = http()
            .post(app.url("/webhooks/stripe"))
            .header("Stripe-Signature", header)
            .body(body);
        if let Some(f) = forwarded {
            request = request.header("X-Forwarded-For", f);
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // Loopback itself is a trusted proxy but not an allowed source.
    let (status, body) = send("evt_src1", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("source_not_allowed"))
    );
    // A Stripe address behind our proxy.
    assert_eq!(send("evt_src2", Some("54.187.174.169")).await.0, 200);
    // A forged entry to the left of what our proxy saw does not help.
    let (status, body) = send("evt_src3", Some("54.187.174.169, 198.51.100.7")).await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("198.51.100.7")
    );
    // A configured network; garbage where the proxy should have written an address.
    assert_eq!(send("evt_src4", Some("192.0.2.77")).await.0, 200);
    assert_eq!(send("evt_src5", Some("unknown")).await.0, 403);
    drained(&app).await;
    let stored: Vec<String> = app
        .state
        .store
        .list_events(&sm_store::inbox::EventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        stored.len(),
        2,
        "only the allowed deliveries were stored: {stored:?}"
    );
    let metrics = http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The registry is process-wide and the other backend's run of this test counts into
    // it too, so at least this run's three refusals.
    let refused: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"stripe_manager_webhook_events_rejected_total{reason="source_not_allowed"} "#,
            )
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused >= 3, "{metrics}");
}
