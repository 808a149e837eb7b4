//! Fault injection against the real binary (issue #15, item 10): killed with SIGKILL in
//! the middle of a burst of consumptions, on SQLite and PostgreSQL. Every consumption
//! that was answered 200 is in the ledger after a restart, none is applied twice (a
//! retry with the same key is answered from the record), and the ledger balances.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use sm_store::testing::TestDb;

#[path = "faults/cluster.rs"]
mod cluster;

sm_store::contract_tests!(
    a_killed_server_keeps_every_acknowledged_consumption_once,
    stripe_resetting_connections_during_a_sync_and_an_event_costs_retries_not_data,
);

const ACCOUNT: &str = "acct_kill";

async fn a_killed_server_keeps_every_acknowledged_consumption_once(db: TestDb) {
    let env = env_for(None, &db);
    let token = grant_token(&db.store, "kill", "all").await;
    let now = unix_now();
    db.store.ensure_account(ACCOUNT, None, now).await.unwrap();
    let ledger = stripe_manager::credits::Ledger::new(db.store.clone());
    ledger
        .adjust(
            ACCOUNT,
            &stripe_manager::credits::AdjustRequest {
                kind: stripe_manager::credits::Adjustment::Grant,
                amount: sm_domain::credits::Credits::whole(100_000),
                reason: "kill test",
                actor: "test",
                origin: "test",
            },
            now,
        )
        .await
        .unwrap();
    let (mut child, addr) = spawn_serve(&env).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let sender = {
        let acknowledged = acknowledged.clone();
        let url = format!("http://{addr}/api/v1/accounts/{ACCOUNT}/credits/consume");
        let token = token.clone();
        tokio::spawn(async move {
            let client = http();
            futures_util::stream::iter(0..5000)
                .map(|i| {
                    let (client, url, token, acknowledged) = (
                        client.clone(),
                        url.clone(),
                        token.clone(),
                        acknowledged.clone(),
                    );
                    async move {
                        let key = format!("job-{i:05}");
                        let sent = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&json!({"amount": "1", "idempotency_key": key}))
                            .send()
                            .await;
                        if let Ok(r) = sent
                            && r.status() == 200
                        {
                            acknowledged.lock().unwrap().push(key);
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        })
    };
    while acknowledged.lock().unwrap().len() < 300 {
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
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 300 && acknowledged.len() < 5000);

    // Restart on the same database: every acknowledged key is recorded once, and a
    // retry of it is answered from the record.
    let (mut child, addr) = spawn_serve(&env).await;
    use_token(&addr, &token);
    let url = format!("http://{addr}/api/v1/accounts/{ACCOUNT}/credits/consume");
    for key in &acknowledged {
        let (status, body) = post_json(&url, json!({"amount": "1", "idempotency_key": key})).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["replayed"], true, "{key} was applied again: {body}");
    }
    let entries = db.store.credit_entries(ACCOUNT, 10_000).await.unwrap();
    let consumed = entries.iter().filter(|e| e.kind == "consume").count();
    assert!(
        consumed >= acknowledged.len(),
        "{consumed} < {}",
        acknowledged.len()
    );
    let (journal, lots, _) = db.store.credit_totals(ACCOUNT).await.unwrap();
    assert_eq!(journal, lots, "journal and lots disagree");
    assert_eq!(
        lots,
        (100_000 - consumed as i64) * 100,
        "each consumption once"
    );
    let _ = child.kill().await;
}

/// Stripe drops connections in the middle of a full sync and of an event's Stripe call:
/// the client retries, the sync completes with every object, the event is applied once.
async fn stripe_resetting_connections_during_a_sync_and_an_event_costs_retries_not_data(
    db: TestDb,
) {
    use fake_stripe::{Ctx, Fault, FaultKind};
    let fake = fake_stripe::FakeStripe::start().await;
    seed_catalog(&fake, 250, 250);
    let app = quiet_app(&fake, &db).await;
    fake.inject(
        Fault::on_path("/v1/prices", FaultKind::Drop)
            .after(1)
            .times(1),
    );
    fake.inject(
        Fault::on_path("/v1/products", FaultKind::Drop)
            .after(2)
            .times(1),
    );
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (
            r["products"]["created"].clone(),
            r["prices"]["created"].clone()
        ),
        (json!(250), json!(250))
    );
    // An event whose line items are fetched while the connection drops (twice).
    let session = fake.with_state(|s| {
        let price = s.prices.values().next().unwrap()["id"].clone();
        let (_, session) = s
            .create_checkout_session(
                &json!({"mode": "payment", "client_reference_id": "acct_reset",
                        "line_items": [{"price": price, "quantity": 1}],
                        "success_url": "https://a.example/", "cancel_url": "https://a.example/"}),
                &Ctx::default(),
            )
            .unwrap();
        let id = session["id"].as_str().unwrap().to_owned();
        s.complete_session(&id, true).unwrap();
        id
    });
    fake.inject(
        Fault::on_path(
            &format!("/v1/checkout/sessions/{session}/line_items"),
            FaultKind::Drop,
        )
        .times(3),
    );
    for e in take_fake_events(&fake, &["checkout.session.completed"]) {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
    let b = app.credits("acct_reset").await;
    assert_ne!(b["available"], "0.00", "{b}");
    assert_eq!(b["lots"].as_array().unwrap().len(), 1, "granted once: {b}");
    app.assert_ledger_balanced("acct_reset").await;
}

/// PostgreSQL stopped in the middle of a webhook load and started again, the service
/// left running: deliveries during the outage are refused (503, Stripe retries), every
/// acknowledged one is stored and applied once, and the service recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_mid_load_loses_nothing_acknowledged() {
    let Some(pg) = cluster::Cluster::start() else {
        eprintln!(
            "!!! SKIPPED: could not start a throwaway PostgreSQL cluster (needs initdb and the postgres user)"
        );
        return;
    };
    let mut env = vec![
        ("DATABASE_URL".to_owned(), pg.url()),
        ("BIND".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "STRIPE_WEBHOOK_SECRET".to_owned(),
            WEBHOOK_SECRET.to_owned(),
        ),
    ];
    env.push(("WEBHOOK_LEASE_SECS".into(), "2".into()));
    let app = TestApp::start(config_from(&env)).await;
    let t = unix_now();
    let event = |i: usize| {
        json!({"id": format!("evt_pg{i:05}"), "object": "event", "type": "product.created",
            "created": t, "livemode": false,
            "data": {"object": {"id": format!("prod_pg{i:05}"), "object": "product", "active": true,
                "name": "P", "metadata": {"credit_amount": "1"}, "created": t, "updated": t}}})
        .to_string()
    };
    let mut acknowledged = Vec::new();
    for i in 0..200 {
        assert_eq!(app.deliver_signed(&event(i)).await, 200);
        acknowledged.push(i);
    }
    // The outage: 20 deliveries at once, each refused once the pool gives up (503).
    pg.stop();
    let during = futures_util::future::join_all((200..220).map(|i| {
        let (app, body) = (&app, event(i));
        async move { (i, app.deliver_signed(&body).await) }
    }))
    .await;
    pg.restart();
    for (i, status) in &during {
        match status {
            200 => acknowledged.push(*i),
            // Refused (or timed out): Stripe retries.
            503 | 408 => {}
            other => panic!("delivery {i} answered {other} during the outage"),
        }
    }
    assert!(
        during.iter().any(|(_, s)| *s == 503),
        "the outage refused nothing"
    );
    // Back without a restart of the service; Stripe retries what was refused.
    for i in 200..400 {
        if !acknowledged.contains(&i) {
            assert_eq!(
                app.deliver_signed(&event(i)).await,
                200,
                "delivery {i} after the outage"
            );
        }
    }
    app.drain_inbox().await;
    for i in 0..400 {
        let e = app
            .state
            .store
            .get_event(&format!("evt_pg{i:05}"))
            .await
            .unwrap();
        assert_eq!(
            e.map(|e| e.status),
            Some("processed".to_owned()),
            "evt_pg{i:05}"
        );
    }
    let counts = app.state.store.catalog_counts().await.unwrap();
    assert_eq!(counts.active, 400, "each product once: {counts:?}");
    let (status, _) = get_json(&app.url("/readyz")).await;
    assert_eq!(status, 200);
}
