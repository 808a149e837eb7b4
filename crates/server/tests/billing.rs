//! A subscription's whole life through the API (issue #11): checkout → active → upgrade →
//! cancel at period end → resume → cancel → ended, and a trial that becomes active; the
//! fake Stripe sends its events, and at each step the account endpoint, the ledger and
//! the audit log are checked — on SQLite and PostgreSQL.

mod common;

use common::*;
use fake_stripe::{Ctx, FakeStripe};
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_subscription_lives_its_whole_life_through_the_api,
    a_trial_is_entitled_and_becomes_active,
    billing_actions_refuse_what_they_cannot_do,
    the_cli_shows_accounts_and_runs_billing_actions_and_refunds,
);

struct Plans {
    basic: String,
    pro: String,
}

/// Two monthly plans with credits, synced into the app.
async fn plans(fake: &FakeStripe, app: &TestApp) -> Plans {
    let (basic, pro) = fake.with_state(|s| {
        let mut plan = |name: &str, credits: &str, cents: &str| {
            let ctx = Ctx::default();
            let (_, product) = s
                .create_product(
                    &json!({"name": name, "metadata": {"credit_amount": credits}}),
                    &ctx,
                )
                .unwrap();
            let (_, price) = s
                .create_price(
                    &json!({"product": product["id"], "unit_amount": cents, "currency": "usd",
                            "recurring": {"interval": "month"}}),
                    &ctx,
                )
                .unwrap();
            price["id"].as_str().unwrap().to_owned()
        };
        (plan("Basic", "100", "1000"), plan("Pro", "300", "3000"))
    });
    let (status, r) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{r}");
    take_fake_events(fake, &[]);
    Plans { basic, pro }
}

/// Delivers every event the fake has produced since the last call, in order.
async fn deliver_all(fake: &FakeStripe, app: &TestApp) {
    for e in take_fake_events(fake, &[]) {
        assert_eq!(app.deliver_signed(&e.to_string()).await, 200);
    }
    app.drain_inbox().await;
}

async fn account(app: &TestApp, account: &str) -> Value {
    let (status, a) = get_json(&app.url(&format!("/api/v1/accounts/{account}"))).await;
    assert_eq!(status, 200, "{a}");
    a
}

async fn act(app: &TestApp, account: &str, action: &str, body: Value) -> (u16, Value) {
    post_json(
        &app.url(&format!("/api/v1/accounts/{account}/{action}")),
        body,
    )
    .await
}

async fn a_subscription_lives_its_whole_life_through_the_api(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let plans = plans(&fake, &app).await;
    let acct = "acct_life";

    // Checkout → active, the plan's credits granted.
    let (status, session) = post_json(
        &app.url("/api/v1/checkout"),
        json!({"account": acct, "price": plans.basic, "success_url": "https://a.example/ok",
               "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    fake.with_state(|s| s.complete_session(&sid, true).unwrap());
    deliver_all(&fake, &app).await;
    let a = account(&app, acct).await;
    assert_eq!(a["entitlement"]["active"], true, "{a}");
    assert_eq!(a["subscriptions"][0]["status"], "active");
    assert_eq!(a["subscriptions"][0]["price"], plans.basic.as_str());
    assert_eq!(a["credits"]["available"], "100.00", "{a}");
    let sub = a["subscriptions"][0]["id"].as_str().unwrap().to_owned();

    // A second plan checkout would bill twice: refused, with the way to change.
    let (status, body) = post_json(
        &app.url("/api/v1/checkout"),
        json!({"account": acct, "price": plans.pro, "success_url": "https://a.example/ok",
               "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "plan_already_active");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/subscription/change")
    );

    // The customer portal.
    let (status, portal) = act(
        &app,
        acct,
        "portal",
        json!({"return_url": "https://a.example/account"}),
    )
    .await;
    assert_eq!(status, 200, "{portal}");
    assert!(
        portal["url"].as_str().unwrap().starts_with("https://"),
        "{portal}"
    );

    // Upgrade, invoiced at once: the same subscription, now on Pro.
    let (status, changed) = act(
        &app,
        acct,
        "subscription/change",
        json!({"price": plans.pro, "proration_behavior": "always_invoice"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["subscription"], sub.as_str());
    assert_eq!(changed["price"], plans.pro.as_str());
    assert_eq!(
        account(&app, acct).await["subscriptions"][0]["price"],
        plans.pro.as_str(),
        "shown before its webhook arrives"
    );
    deliver_all(&fake, &app).await;
    let subs_in_stripe = fake.with_state(|s| s.subscriptions.len());
    assert_eq!(subs_in_stripe, 1, "never a second subscription");
    let a = account(&app, acct).await;
    assert_eq!(a["subscriptions"].as_array().unwrap().len(), 1, "{a}");
    let after_upgrade: f64 = a["credits"]["available"].as_str().unwrap().parse().unwrap();
    assert!(
        after_upgrade > 100.0,
        "the upgrade's proration invoice granted Pro's share: {a}"
    );
    app.assert_ledger_balanced(acct).await;

    // Cancel at period end: still entitled until then.
    let (status, c) = act(&app, acct, "subscription/cancel", json!({})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["cancel_at_period_end"], true, "{c}");
    deliver_all(&fake, &app).await;
    let a = account(&app, acct).await;
    assert_eq!(a["subscriptions"][0]["cancel_at_period_end"], true, "{a}");
    assert_eq!(a["entitlement"]["active"], true);

    // Resume: the cancellation is taken back.
    let (status, r) = act(&app, acct, "subscription/resume", json!({})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["cancel_at_period_end"], false, "{r}");
    deliver_all(&fake, &app).await;
    assert_eq!(
        account(&app, acct).await["subscriptions"][0]["cancel_at_period_end"],
        false
    );

    // Cancel again, and the period ends: the subscription is over.
    let (status, _) = act(&app, acct, "subscription/cancel", json!({})).await;
    assert_eq!(status, 200);
    fake.with_state(|s| s.renew_subscription(&sub).unwrap());
    deliver_all(&fake, &app).await;
    let a = account(&app, acct).await;
    assert_eq!(a["subscriptions"][0]["status"], "canceled", "{a}");
    assert_eq!(a["entitlement"]["active"], false, "{a}");
    assert_eq!(a["entitlement"]["status"], "canceled");
    app.assert_ledger_balanced(acct).await;

    // Every action is in the audit log, with the token that asked.
    let audit = app.state.store.audit_log(None, 100).await.unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .filter(|r| r.target.as_deref() == Some(acct))
        .map(|r| r.action.as_str())
        .collect();
    for want in [
        "billing.portal",
        "billing.change",
        "billing.cancel",
        "billing.resume",
    ] {
        assert!(actions.contains(&want), "{want} audited: {actions:?}");
    }
    assert!(
        audit
            .iter()
            .filter(|r| r.action.starts_with("billing."))
            .all(|r| r.actor.starts_with("token:") && r.result == "ok"),
        "{audit:?}"
    );
}

async fn a_trial_is_entitled_and_becomes_active(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let plans = plans(&fake, &app).await;
    let acct = "acct_trial";
    // Out of Stripe's range: refused before Stripe is asked.
    let (status, body) = post_json(
        &app.url("/api/v1/checkout"),
        json!({"account": acct, "price": plans.basic, "trial_period_days": 0,
               "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trial_period_days"),
        "{body}"
    );
    // Through our checkout, with a 14-day trial: Stripe starts it `trialing`.
    let (status, session) = post_json(
        &app.url("/api/v1/checkout"),
        json!({"account": acct, "price": plans.basic, "trial_period_days": 14,
               "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    let sub = fake.with_state(|s| {
        let (_, done) = s.complete_session(&sid, true).unwrap();
        done["subscription"].as_str().unwrap().to_owned()
    });
    deliver_all(&fake, &app).await;
    let a = account(&app, acct).await;
    assert_eq!(a["subscriptions"][0]["status"], "trialing", "{a}");
    let trial_end = a["subscriptions"][0]["trial_end"]
        .as_i64()
        .expect("a trial end");
    assert!(trial_end >= unix_now() + 13 * 86_400, "{a}");
    assert_eq!(a["entitlement"]["active"], true);
    // The trial's $0 invoice has a full-period line: it grants the plan's credits like
    // any full period, "whatever was paid for it" (docs/CREDIT_SYSTEM.md).
    assert_eq!(a["credits"]["available"], "100.00", "{a}");

    fake.with_state(|s| s.end_trial(&sub).unwrap());
    deliver_all(&fake, &app).await;
    let a = account(&app, acct).await;
    assert_eq!(a["subscriptions"][0]["status"], "active", "{a}");
    assert_eq!(a["entitlement"]["status"], "active");
    let (_, p) = get_json(&app.url(&format!("/api/v1/accounts/{acct}/payments"))).await;
    let paid: Vec<i64> = p["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["amount_paid"].as_i64().unwrap_or(-1))
        .collect();
    assert!(paid.contains(&1000), "the first real invoice: {p}");
    app.assert_ledger_balanced(acct).await;
}

async fn billing_actions_refuse_what_they_cannot_do(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let plans = plans(&fake, &app).await;
    let (status, body) = act(&app, "acct_none", "subscription/cancel", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("no_subscription")),
        "{body}"
    );
    let (status, body) = act(
        &app,
        "acct_none",
        "portal",
        json!({"return_url": "https://a.example/"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("no_customer")),
        "{body}"
    );
    let (status, body) = act(
        &app,
        "acct_none",
        "portal",
        json!({"return_url": "ftp://x"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = act(
        &app,
        "acct_none",
        "subscription/change",
        json!({"price": plans.pro, "proration_behavior": "sometimes"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    let (status, body) = act(&app, "acct_none", "subscription/cancel", json!({"now": 1})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_body")),
        "{body}"
    );
    // A token that may read accounts may not act on them.
    let token = grant_token(&app.state.store, "reader", "accounts:read").await;
    let r = http()
        .post(app.url("/api/v1/accounts/acct_none/subscription/cancel"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        catalog_writes(&fake).is_empty(),
        "billing never writes the catalog"
    );
}

/// `accounts`, `subscription` and `payments` from the binary, on the same database.
async fn the_cli_shows_accounts_and_runs_billing_actions_and_refunds(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    let plans = plans(&fake, &app).await;
    let env = env_for(Some(&fake.url()), &db);
    let acct = "acct_cli";
    let (status, session) = post_json(
        &app.url("/api/v1/checkout"),
        json!({"account": acct, "price": plans.basic, "success_url": "https://a.example/ok",
               "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    fake.with_state(|s| s.complete_session(&sid, true).unwrap());
    deliver_all(&fake, &app).await;

    let cli = |args: &'static [&'static str]| {
        let env = env.clone();
        async move { run_cli(&env, args).await }
    };
    let (code, out, err) = cli(&["accounts", "show", "acct_cli", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let a: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["entitlement"]["active"], true, "{a}");
    let (code, out, _) = cli(&["accounts", "show", "acct_cli"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("entitlement  active (active)"), "{out}");
    // The checkout's customer has no email: its line ends with the id, no space after.
    assert!(out.contains("customer     cus_"), "{out}");
    for line in out.lines() {
        assert_eq!(line, line.trim_end(), "a trailing space: {out:?}");
    }
    let (code, out, _) = cli(&["accounts", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("acct_cli"), "{out}");

    let (code, out, err) = cli(&["subscription", "cancel", "acct_cli", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["cancel_at_period_end"],
        true
    );
    let (code, out, err) = cli(&["subscription", "resume", "acct_cli"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("subscription sub_"), "{out}");
    let (code, _, err) = cli(&["subscription", "resume", "acct_cli"]).await;
    assert_eq!(code, 1, "nothing to resume: {err}");
    assert!(err.contains("not scheduled to cancel"), "{err}");

    let (code, out, err) = cli(&["payments", "list", "acct_cli", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    let invoice = p["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(invoice.starts_with("in_"), "{p}");
    let before: f64 = app.credits(acct).await["available"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let refund_args: Vec<String> = [
        "payments",
        "refund",
        "acct_cli",
        &invoice,
        "--amount",
        "5.00",
        "--reason",
        "goodwill",
        "--idempotency-key",
        "goodwill-1",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let refs: Vec<&str> = refund_args.iter().map(String::as_str).collect();
    let (code, out, err) = run_cli(&env, &refs).await;
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["amount"], 500, "{r}");
    assert!(r["refund"].as_str().unwrap().starts_with("re_"), "{r}");
    // The command retried with its key: Stripe answers with the same refund, and the
    // audit log says it is a replay of the one it recorded, not a second refund.
    let (code, out, err) = run_cli(&env, &refs).await;
    assert_eq!(code, 0, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["refund"], r["refund"], "{again}");
    let audited: Vec<Value> = app
        .state
        .store
        .audit_log(Some("billing.refund"), 10)
        .await
        .unwrap()
        .iter()
        .map(|row| serde_json::from_str(row.detail.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(
        audited
            .iter()
            .map(|d| (d["refund"].clone(), d["replay"].clone()))
            .collect::<Vec<_>>(),
        [
            (r["refund"].clone(), Value::Bool(true)),
            (r["refund"].clone(), Value::Bool(false)),
        ],
        "newest first: {audited:?}"
    );
    deliver_all(&fake, &app).await;
    let after: f64 = app.credits(acct).await["available"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        before - after,
        50.0,
        "half the invoice refunded, half the credits"
    );
    app.assert_ledger_balanced(acct).await;
    let (_, out, _) = cli(&["payments", "list", "acct_cli"]).await;
    assert!(out.contains("5.00 USD"), "{out}");

    let (code, _, err) = cli(&["payments", "refund", "acct_cli", "in_nope", "--reason", "x"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a payment of account acct_cli"), "{err}");
    let (code, _, err) = cli(&["subscription", "cancel", "acct_nobody"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no running subscription"), "{err}");
    let audit = app
        .state
        .store
        .audit_log(Some("billing.refund"), 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.actor.starts_with("cli:") && r.result == "ok"),
        "{audit:?}"
    );
}
