//! Events to the app (issue #23, item 3), on SQLite and PostgreSQL, through the real
//! HTTP API and binary against the fake Stripe and a real HTTP endpoint: what is sent
//! and when, signed per Standard Webhooks, in order per account, retried, once on two
//! instances, not lost to a `kill -9`, and never sent where the SSRF guard forbids.
//! (`scripts/verify-app-events` checks the signatures with the npm `standardwebhooks`
//! package; here the Rust one checks them too.)

mod common;

use std::time::Duration;

use common::receiver::{APP_SECRET, Delivery, Receiver};
use common::shop::*;
use common::*;
use serde_json::json;
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    the_app_hears_of_grants_crossings_and_take_backs_in_order,
    holds_subscriptions_and_expiries_are_announced,
    a_failing_endpoint_gets_retries_in_order_and_loses_nothing,
    two_instances_deliver_each_event_once_and_in_order,
    an_instance_killed_while_delivering_loses_nothing,
    the_guard_refuses_private_endpoints_redirects_and_bad_secrets,
    an_endpoint_removed_from_the_configuration_gives_up_its_events,
    the_admin_shows_the_outbox_and_sends_an_event_again,
);

fn with_threshold(receiver: &Receiver, threshold: &str) -> Vec<(String, String)> {
    let mut env = receiver.env();
    env.push(("CREDITS_LOW_THRESHOLD".into(), threshold.into()));
    env
}

/// Every delivery is signed as Standard Webhooks says (checked here with the Rust
/// `standardwebhooks` crate) and is `{"type","timestamp","data"}`.
fn assert_signed(d: &Delivery) {
    let hook = standardwebhooks::Webhook::new(APP_SECRET).unwrap();
    hook.verify(d.body.as_bytes(), &d.headers)
        .unwrap_or_else(|e| panic!("{e}: {:?} {}", d.headers, d.body));
    assert!(
        d.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert!(d.id().starts_with("msg_"), "{}", d.id());
    let v = d.json();
    assert!(
        v["type"].is_string() && v["timestamp"].is_string() && v["data"].is_object(),
        "{v}"
    );
    assert_eq!(d.headers["content-type"], "application/json");
}

async fn grant(app: &TestApp, account: &str, amount: &str, key: &str) {
    let (status, body) = post_json(
        &app.url(&format!("/api/v1/accounts/{account}/credits/grants")),
        json!({"amount": amount, "idempotency_key": key, "reason": "test"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn consume(app: &TestApp, account: &str, amount: &str) {
    let (status, body) = post_json(
        &app.url(&format!("/api/v1/accounts/{account}/credits/consume")),
        json!({"amount": amount, "idempotency_key": id("k")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// 50 promotional credits, a pack of 100 bought through checkout; 140 spent crosses the
/// threshold of 20 (`credits.low`), 10 more reach zero (`credits.depleted`); the pack
/// refunded takes back what it can (nothing left) and records 100 of debt
/// (`credits.taken_back`). The app hears exactly that, in that order, each signed; a
/// consumption that crosses nothing sends nothing. An account's own threshold wins.
async fn the_app_hears_of_grants_crossings_and_take_backs_in_order(db: TestDb) {
    let receiver = Receiver::start().await;
    let shop = shop_with(&db, &with_threshold(&receiver, "20")).await;
    let account = "acct_events";
    grant(&shop.app, account, "50", "signup").await;
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    consume(&shop.app, account, "1").await;
    consume(&shop.app, account, "139").await;
    consume(&shop.app, account, "10").await;
    shop.refund(&pi, 1000);
    shop.deliver_all().await;
    let got = receiver.wait_for(15, "five events", |g| g.len() >= 5).await;
    assert_eq!(
        receiver.kinds_of(account),
        [
            "credits.granted",
            "credits.granted",
            "credits.low",
            "credits.depleted",
            "credits.taken_back"
        ]
    );
    for d in &got {
        assert_signed(d);
    }
    let data: Vec<serde_json::Value> = got.iter().map(|d| d.json()["data"].clone()).collect();
    assert_eq!(data[0]["amount"], "50.00");
    assert_eq!(data[0]["grants"][0]["reason"], "promotional");
    assert_eq!(data[1]["amount"], "100.00");
    assert_eq!(data[1]["grants"][0]["reason"], "purchase");
    assert_eq!(
        (data[2]["spendable"].as_str(), data[2]["threshold"].as_str()),
        (Some("10.00"), Some("20.00"))
    );
    assert_eq!(data[3]["available"], "0.00");
    assert_eq!(
        (data[4]["amount"].as_str(), data[4]["debt"].as_str()),
        (Some("0.00"), Some("100.00")),
        "{}",
        data[4]
    );
    let ids: std::collections::HashSet<&str> = got.iter().map(Delivery::id).collect();
    assert_eq!(ids.len(), got.len(), "one id per event");

    // The account's own threshold: 30. A grant of 40 (ok again: re-armed), then 15
    // spent crosses 30.
    let url = shop
        .app
        .url(&format!("/api/v1/accounts/{account}/credits/low-threshold"));
    let answer = http()
        .put(&url)
        .bearer_auth(&shop.app.token)
        .json(&json!({"below": "30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        (answer["below"].as_str(), answer["default"].as_str()),
        (Some("30.00"), Some("20.00")),
        "{answer}"
    );
    shop.app.state.store.credit_lots(account).await.unwrap();
    grant(&shop.app, "acct_events_other", "5", "x").await;
    // The debt of 100 takes the next grant from Stripe, not a promotional one: 140 of
    // promotional credits leave 140 to spend.
    grant(&shop.app, account, "140", "again").await;
    consume(&shop.app, account, "115").await;
    receiver
        .wait_for(15, "the second crossing", |g| {
            g.iter()
                .filter(|d| d.kind() == "credits.low" && d.account() == account)
                .count()
                == 2
        })
        .await;
    let kinds = receiver.kinds_of(account);
    assert_eq!(&kinds[5..], ["credits.granted", "credits.low"], "{kinds:?}");
    let (status, _) = get_json(&url).await;
    assert_eq!(status, 200);
}

/// A hold left to expire sends `credits.hold_expired`; a promotional lot that expires
/// holding credits sends `credits.expired` (once); a subscription starting sends
/// `subscription.updated` with its status and plan.
async fn holds_subscriptions_and_expiries_are_announced(db: TestDb) {
    let receiver = Receiver::start().await;
    let shop = shop_with(&db, &receiver.env()).await;
    let account = "acct_events_time";
    let (status, g) = post_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/credits/grants")),
        json!({"amount": "30", "idempotency_key": "short", "reason": "trial",
               "expires_at": unix_now() + 2}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let (status, h) = post_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/credits/holds")),
        json!({"amount": "10", "idempotency_key": "job", "ttl_seconds": 1}),
    )
    .await;
    assert_eq!(status, 201, "{h}");
    let got = receiver
        .wait_for(20, "the hold's and the lot's expiry", |g| {
            g.iter().any(|d| d.kind() == "credits.hold_expired")
                && g.iter().any(|d| d.kind() == "credits.expired")
        })
        .await;
    let hold = got
        .iter()
        .find(|d| d.kind() == "credits.hold_expired")
        .unwrap()
        .json();
    assert_eq!(hold["data"]["hold"]["id"], h["id"], "{hold}");
    assert_eq!(hold["data"]["hold"]["amount"], "10.00");
    let expired = got
        .iter()
        .find(|d| d.kind() == "credits.expired")
        .unwrap()
        .json();
    assert_eq!(expired["data"]["amount"], "30.00", "{expired}");
    // The lot is gone to zero: depleted, once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let kinds = receiver.kinds_of(account);
    assert_eq!(
        kinds.iter().filter(|k| *k == "credits.expired").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "credits.depleted").count(),
        1,
        "{kinds:?}"
    );

    let subscriber = "acct_events_sub";
    subscribe_to(&shop, subscriber, &shop.plan_a, 1, None).await;
    let got = receiver
        .wait_for(15, "subscription.updated", |g| {
            g.iter()
                .any(|d| d.kind() == "subscription.updated" && d.account() == subscriber)
        })
        .await;
    let sub = got
        .iter()
        .find(|d| d.kind() == "subscription.updated")
        .unwrap()
        .json();
    assert_eq!(
        sub["data"]["subscription"]["price"],
        shop.plan_a.price.as_str(),
        "{sub}"
    );
    assert!(sub["data"]["subscription"]["status"].is_string(), "{sub}");
    for d in &got {
        assert_signed(d);
    }
}

/// The endpoint answers 500: the account's first event is retried (attempts, the status
/// kept), its next two wait behind it; once the endpoint answers 200 all three arrive in
/// order. `app-events list` shows them, `app-events replay` sends one again with the
/// same id.
async fn a_failing_endpoint_gets_retries_in_order_and_loses_nothing(db: TestDb) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app_with(&fake, &db, &receiver.env()).await;
    let account = "acct_events_retry";
    for (n, amount) in ["1", "2", "3"].iter().enumerate() {
        grant(&app, account, amount, &format!("g{n}")).await;
    }
    receiver
        .wait_for(10, "a first attempt", |g| !g.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 1, "the others wait behind the first");
    let rows = db
        .store
        .list_app_events(None, Some(account), None, 10)
        .await
        .unwrap();
    let statuses: Vec<(&str, i64)> = rows
        .iter()
        .rev()
        .map(|r| (r.status.as_str(), r.attempts))
        .collect();
    assert_eq!(
        statuses,
        [("pending", 1), ("queued", 0), ("queued", 0)],
        "{rows:?}"
    );
    assert_eq!(rows.last().unwrap().last_status, Some(500));
    let env = {
        let mut env = env_for(None, &db);
        env.extend(receiver.env());
        env
    };
    let (code, out, err) = run_cli(&env, &["app-events", "list", "--account", account]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("retry") && out.contains("queued") && out.contains("HTTP 500"),
        "{out}"
    );

    receiver.answer(200);
    let got = receiver
        .wait_for(20, "three deliveries after the retry", |g| {
            g.iter().filter(|d| d.kind() == "credits.granted").count() >= 4
        })
        .await;
    let amounts: Vec<String> = got
        .iter()
        .map(|d| d.json()["data"]["amount"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        amounts,
        ["1.00", "1.00", "2.00", "3.00"],
        "the first twice (500, then 200), then in order"
    );
    let first = got[0].id().to_owned();
    assert_eq!(got[1].id(), first, "a retry keeps its id");
    // The receiver answers before the sender marks the row delivered: wait for the mark.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = db
            .store
            .list_app_events(Some("delivered"), Some(account), None, 10)
            .await
            .unwrap();
        if rows.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), 3);

    let (code, out, err) = run_cli(&env, &["app-events", "replay", &first]).await;
    assert_eq!(code, 0, "{out}{err}");
    receiver
        .wait_for(10, "the replay", |g| {
            g.iter().filter(|d| d.id() == first).count() == 3
        })
        .await;
    let (code, _, err) = run_cli(&env, &["app-events", "replay", "msg_nope"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_cli(&env, &["app-events", "list", "--status", "lost"]).await;
    assert_eq!(code, 2, "{err}");
}

/// Two servers on one database, 8 accounts × 6 grants sent alternately to each: every
/// event reaches the endpoint once (the normal case: no crash, no timeout), and each
/// account's in the order of its grants.
async fn two_instances_deliver_each_event_once_and_in_order(db: TestDb) {
    let receiver = Receiver::start().await;
    let fake = fake_stripe::FakeStripe::start().await;
    let a = quiet_app_with(&fake, &db, &receiver.env()).await;
    let b = quiet_app_with(&fake, &db, &receiver.env()).await;
    let accounts: Vec<String> = (0..8).map(|i| format!("acct_events_two_{i}")).collect();
    futures_util::future::join_all(accounts.iter().map(|account| {
        let (a, b) = (&a, &b);
        async move {
            for k in 1..=6 {
                let app = if k % 2 == 0 { a } else { b };
                grant(app, account, &k.to_string(), &format!("k{k}")).await;
            }
        }
    }))
    .await;
    let got = receiver.wait_for(30, "48 events", |g| g.len() >= 48).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_now = receiver.got();
    assert_eq!(got_now.len(), 48, "no event twice");
    let ids: std::collections::HashSet<&str> = got.iter().map(Delivery::id).collect();
    assert_eq!(ids.len(), 48);
    for account in &accounts {
        let amounts: Vec<String> = got
            .iter()
            .filter(|d| &d.account() == account)
            .map(|d| d.json()["data"]["amount"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            amounts,
            ["1.00", "2.00", "3.00", "4.00", "5.00", "6.00"],
            "{account}"
        );
    }
    b.stop().await;
}

/// `kill -9` of the instance sending an event (the endpoint holds the request open):
/// the event stays claimed until its lease runs out, then the next instance sends it
/// again, with the same id, and it is recorded delivered.
async fn an_instance_killed_while_delivering_loses_nothing(db: TestDb) {
    let receiver = Receiver::start().await;
    receiver.hang(Some(Duration::from_secs(30)));
    let mut env = env_for(None, &db);
    env.extend(receiver.env());
    env.push(("APP_WEBHOOK_TIMEOUT_SECS".into(), "1".into()));
    let (mut first, addr) = spawn_serve(&env).await;
    let token = grant_token(&db.store, "killer", "all").await;
    let account = "acct_events_kill";
    let answer = http()
        .post(format!(
            "http://{addr}/api/v1/accounts/{account}/credits/grants"
        ))
        .bearer_auth(&token)
        .json(&json!({"amount": "7", "idempotency_key": "once", "reason": "kill"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let got = receiver
        .wait_for(10, "the first attempt", |g| !g.is_empty())
        .await;
    let id = got[0].id().to_owned();
    first.kill().await.unwrap();
    receiver.hang(None);
    let (mut second, _) = spawn_serve(&env).await;
    receiver
        .wait_for(30, "the event again after the lease", |g| g.len() >= 2)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db.store.app_event(&id).await.unwrap();
        if rows[0].status == "delivered" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver.got().iter().all(|d| d.id() == id));
    let _ = second.kill().await;
}

/// The SSRF guard and the secret: a loopback address or `localhost` needs
/// `APP_WEBHOOK_ALLOW_PRIVATE=true`; a name that resolves to a private address is
/// refused when it is resolved (the event waits, saying why); a redirect is not
/// followed; the secret must be the Standard Webhooks form; an endpoint needs one.
async fn the_guard_refuses_private_endpoints_redirects_and_bad_secrets(db: TestDb) {
    let base = env_for(None, &db);
    let refused = |extra: &[(&str, &str)]| {
        let mut env = base.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sources = stripe_manager::config::Sources {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        stripe_manager::config::Config::load(&sources)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    for (extra, expect) in [
        (
            vec![
                ("APP_WEBHOOK_URL", "http://127.0.0.1:9/h"),
                ("APP_WEBHOOK_SECRET", APP_SECRET),
            ],
            "APP_WEBHOOK_ALLOW_PRIVATE",
        ),
        (
            vec![
                ("APP_WEBHOOK_URL", "http://localhost:9/h"),
                ("APP_WEBHOOK_SECRET", APP_SECRET),
            ],
            "APP_WEBHOOK_ALLOW_PRIVATE",
        ),
        (
            vec![
                ("APP_WEBHOOK_URL", "http://[::1]:9/h"),
                ("APP_WEBHOOK_SECRET", APP_SECRET),
            ],
            "APP_WEBHOOK_ALLOW_PRIVATE",
        ),
        (
            vec![
                ("APP_WEBHOOK_URL", "ftp://app.example/h"),
                ("APP_WEBHOOK_SECRET", APP_SECRET),
            ],
            "APP_WEBHOOK_URL",
        ),
        (
            vec![("APP_WEBHOOK_URL", "https://app.example/h")],
            "APP_WEBHOOK_SECRET",
        ),
        (
            vec![
                ("APP_WEBHOOK_URL", "https://app.example/h"),
                ("APP_WEBHOOK_SECRET", "s3cret"),
            ],
            "whsec_",
        ),
        (
            vec![
                ("APP_WEBHOOK_URL", "https://app.example/h"),
                ("APP_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
            ],
            "24 to 64 bytes",
        ),
        (
            vec![("CREDITS_LOW_THRESHOLD", "ten")],
            "CREDITS_LOW_THRESHOLD",
        ),
    ] {
        let message = refused(&extra);
        assert!(message.contains(expect), "{extra:?}: {message:?}");
        assert!(
            !message.contains("MDEyMzQ1"),
            "the secret is never printed: {message}"
        );
    }

    // A name (this machine's, from /etc/hosts) that resolves to loopback: refused at
    // each connection, so the event waits with the reason.
    let receiver = Receiver::start().await;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    let resolves_private = tokio::net::lookup_host((host, 80))
        .await
        .map(|mut a| a.all(|a| !stripe_manager::net::is_public(a.ip())))
        .unwrap_or(false);
    let fake = fake_stripe::FakeStripe::start().await;
    if !host.is_empty() && resolves_private {
        let port = receiver.base.rsplit(':').next().unwrap();
        let env = vec![
            (
                "APP_WEBHOOK_URL".to_owned(),
                format!("http://{host}:{port}/hooks"),
            ),
            ("APP_WEBHOOK_SECRET".to_owned(), APP_SECRET.to_owned()),
        ];
        let app = quiet_app_with(&fake, &db, &env).await;
        grant(&app, "acct_guard", "1", "g").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let row = loop {
            let rows = db
                .store
                .list_app_events(None, Some("acct_guard"), None, 1)
                .await
                .unwrap();
            if rows.first().is_some_and(|r| r.last_error.is_some()) {
                break rows[0].clone();
            }
            assert!(std::time::Instant::now() < deadline, "{rows:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            row.last_error
                .as_deref()
                .unwrap_or("")
                .contains("APP_WEBHOOK_ALLOW_PRIVATE"),
            "{row:?}"
        );
        assert!(receiver.got().is_empty());
        app.stop().await;
    } else {
        eprintln!(
            "!!! {host:?} does not resolve to a private address here: the resolver part of this test is skipped"
        );
    }

    // A redirect is not followed: the event waits with the 307, /other is never asked.
    receiver.redirect_to(&format!("{}/other", receiver.base));
    let app = quiet_app_with(&fake, &db, &receiver.env()).await;
    grant(&app, "acct_redirect", "1", "g").await;
    receiver
        .wait_for(10, "one attempt", |g| !g.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.got().iter().all(|d| d.path == "/hooks"),
        "{:?}",
        receiver.got()
    );
    let rows = db
        .store
        .list_app_events(None, Some("acct_redirect"), None, 1)
        .await
        .unwrap();
    assert_eq!(
        (rows[0].status.as_str(), rows[0].last_status),
        ("pending", Some(307)),
        "{rows:?}"
    );
}

/// An event waiting for an endpoint that is then removed from `APP_WEBHOOK_URL` is given
/// up (`failed`, saying why) when a service with the new list starts, instead of
/// waiting for ever; the new endpoint gets what comes next.
async fn an_endpoint_removed_from_the_configuration_gives_up_its_events(db: TestDb) {
    let old = Receiver::start().await;
    old.answer(503);
    let fake = fake_stripe::FakeStripe::start().await;
    let first = quiet_app_with(&fake, &db, &old.env()).await;
    grant(&first, "acct_moved", "1", "before").await;
    old.wait_for(10, "an attempt", |g| !g.is_empty()).await;
    first.stop().await;
    let new = Receiver::start().await;
    let second = quiet_app_with(&fake, &db, &new.env()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db
            .store
            .list_app_events(None, Some("acct_moved"), None, 10)
            .await
            .unwrap();
        if rows.iter().all(|r| r.status == "failed") {
            assert!(
                rows[0]
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("no longer in APP_WEBHOOK_URL"),
                "{rows:?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    grant(&second, "acct_moved", "2", "after").await;
    let got = new.wait_for(10, "the next event", |g| !g.is_empty()).await;
    assert_eq!(got[0].json()["data"]["amount"], "2.00");
}

/// The admin's "Events to the app": the counts, a row per event (filtered by account and
/// status), and "Send again" for a delivered one, which the endpoint then gets again
/// with the same id; an unknown id is refused with a message.
async fn the_admin_shows_the_outbox_and_sends_an_event_again(db: TestDb) {
    let receiver = Receiver::start().await;
    let fake = fake_stripe::FakeStripe::start().await;
    let app = quiet_app_with(&fake, &db, &receiver.env()).await;
    grant(&app, "acct_admin_events", "3", "g").await;
    let got = receiver.wait_for(10, "the event", |g| !g.is_empty()).await;
    let id = got[0].id().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.store.app_event(&id).await.unwrap()[0].status != "delivered" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let op = common::admin::Operator::sign_in(&app, &db).await;
    let page = op
        .page(
            &app,
            "/admin/app-events?account=acct_admin_events&status=delivered",
        )
        .await;
    assert!(
        page.contains(&id) && page.contains("credits.granted") && page.contains("Send again"),
        "{page}"
    );
    let none = op.page(&app, "/admin/app-events?status=failed").await;
    assert!(
        !none.contains(&id) && none.contains("No events match"),
        "{none}"
    );
    let after = op
        .post(&app, &format!("/admin/app-events/{id}/replay"), &[])
        .await;
    assert_eq!(after, "/admin/app-events");
    receiver
        .wait_for(10, "the event again", |g| {
            g.iter().filter(|d| d.id() == id).count() == 2
        })
        .await;
    let page = op.page(&app, "/admin/app-events").await;
    assert!(
        common::admin::flash(&page)
            .unwrap_or_default()
            .contains("sent again"),
        "{page}"
    );
    op.post(&app, "/admin/app-events/msg_nope/replay", &[])
        .await;
    let page = op.page(&app, "/admin/app-events").await;
    assert!(
        common::admin::flash(&page)
            .unwrap_or_default()
            .contains("unknown"),
        "{page}"
    );
}
