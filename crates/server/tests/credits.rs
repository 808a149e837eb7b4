//! Credits end to end on SQLite and PostgreSQL: checkout through the API against the fake
//! Stripe, the events the fake produced delivered signed over real HTTP (in chosen
//! orders, several times, concurrently), and the ledger read back through the API.

mod common;

use common::*;
use fake_stripe::{Ctx, FakeStripe};
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    the_idempotency_key_header_works_like_the_body_field_and_must_agree_with_it,
    a_paid_checkout_delivered_five_times_concurrently_grants_once,
    an_unpaid_session_grants_only_when_the_async_payment_succeeds,
    subscription_start_grants_once_in_every_arrival_order_and_each_renewal_once,
    expired_subscription_credits_are_never_spent_or_counted,
    a_hundred_concurrent_consumptions_against_fifty_credits,
    consumption_is_idempotent_per_key_and_explains_refusals,
    a_partial_refund_takes_back_its_share_once_and_records_debt,
    checkout_refuses_what_cannot_be_sold_and_reuses_the_customer,
    the_cli_grants_deducts_and_reports,
    sales_made_elsewhere_are_not_credited_and_do_not_fail,
    a_pre_2025_invoice_grants_like_a_current_one,
    a_refunded_subscription_invoice_takes_back_its_share,
    grouped_consumptions_on_two_instances_apply_each_key_once,
);

fn now() -> i64 {
    unix_now()
}

struct Shop {
    fake: FakeStripe,
    app: TestApp,
    /// One-time price of a 100-credit pack at $20.00.
    pack: String,
    /// Monthly price of a 1,000-credit plan at $50.00.
    plan: String,
}

/// Creates a product and a USD price for it in the fake; returns their ids.
fn product_with_price(
    s: &mut fake_stripe::State,
    product: Value,
    mut price: Value,
) -> (String, String) {
    let ctx = Ctx::default();
    let (_, p) = s.create_product(&product, &ctx).unwrap();
    price["product"] = p["id"].clone();
    price["currency"] = json!("usd");
    let (_, price) = s.create_price(&price, &ctx).unwrap();
    (
        p["id"].as_str().unwrap().to_owned(),
        price["id"].as_str().unwrap().to_owned(),
    )
}

async fn shop(db: &TestDb) -> Shop {
    let fake = FakeStripe::start().await;
    let (pack, plan) = fake.with_state(|s| {
        (
            product_with_price(s, json!({"name": "Pack", "metadata": {"credit_amount": "100"}}), json!({"unit_amount": 2000})).1,
            product_with_price(
                s,
                json!({"name": "Plan", "metadata": {"credit_amount": "1000", "credit_type": "subscription"}}),
                json!({"unit_amount": 5000, "recurring": {"interval": "month"}}),
            )
            .1,
        )
    });
    let app = quiet_app(&fake, db).await;
    let (status, report) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{report}");
    Shop {
        fake,
        app,
        pack,
        plan,
    }
}

impl Shop {
    async fn checkout(&self, account: &str, price: &str, quantity: u32) -> String {
        let (status, body) = post_json(
            &self.app.url("/api/v1/checkout"),
            json!({"account": account, "price": price, "quantity": quantity,
                   "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// The fake's events of these types as `(type, body)`, oldest first, then forgets
    /// every event (so the next call returns only new ones).
    fn take_events(&self, kinds: &[&str]) -> Vec<(String, String)> {
        take_fake_events(&self.fake, kinds)
            .into_iter()
            .map(|e| (e["type"].as_str().unwrap().to_owned(), e.to_string()))
            .collect()
    }

    async fn deliver(&self, body: &str) -> u16 {
        self.app.deliver_signed(body).await
    }

    async fn deliver_and_drain(&self, body: &str) {
        assert_eq!(self.deliver(body).await, 200);
        self.drain().await;
    }

    async fn drain(&self) {
        self.app.drain_inbox().await;
    }

    async fn balance(&self, account: &str) -> Value {
        self.app.credits(account).await
    }

    async fn consume(&self, account: &str, body: Value) -> (u16, Value) {
        post_json(
            &self
                .app
                .url(&format!("/api/v1/accounts/{account}/credits/consume")),
            body,
        )
        .await
    }

    async fn assert_balanced(&self, account: &str) {
        self.app.assert_ledger_balanced(account).await;
    }
}

fn with_type(body: &str, kind: &str, id: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["type"] = json!(kind);
    v["id"] = json!(id);
    v.to_string()
}

async fn a_paid_checkout_delivered_five_times_concurrently_grants_once(db: TestDb) {
    let shop = shop(&db).await;
    let session = shop.checkout("acct_five", &shop.pack, 2).await;
    // What the app sent to Stripe.
    let created = shop
        .fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/v1/checkout/sessions")
        .unwrap();
    for expected in [
        "client_reference_id=acct_five",
        "metadata[account]=acct_five",
        "mode=payment",
        "line_items[0][quantity]=2",
    ] {
        let body = created.body.replace("%5B", "[").replace("%5D", "]");
        assert!(body.contains(expected), "{expected} in {body}");
    }
    assert!(created.idempotency_key.is_some());

    shop.fake
        .with_state(|s| s.complete_session(&session, true))
        .unwrap();
    let events = shop.take_events(&["checkout.session.completed"]);
    assert_eq!(events.len(), 1);
    let body = events[0].1.clone();
    let sends = (0..5).map(|_| shop.deliver(&body));
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    shop.drain().await;
    // The same payment reported again as an async success: still one grant.
    shop.deliver_and_drain(&with_type(
        &body,
        "checkout.session.async_payment_succeeded",
        "evt_async_dup",
    ))
    .await;
    let b = shop.balance("acct_five").await;
    assert_eq!(b["available"], "200.00", "{b}");
    assert_eq!(b["pay_as_you_go"], "200.00");
    assert_eq!(b["lots"].as_array().unwrap().len(), 1);
    assert_eq!(b["lots"][0]["source_ref"], json!(session));
    let stored = shop
        .app
        .state
        .store
        .checkout(&session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.payment_status.as_deref()),
        ("complete", Some("paid"))
    );
    shop.assert_balanced("acct_five").await;
}

async fn an_unpaid_session_grants_only_when_the_async_payment_succeeds(db: TestDb) {
    let shop = shop(&db).await;
    let ok = shop.checkout("acct_async", &shop.pack, 1).await;
    let bad = shop.checkout("acct_async", &shop.pack, 1).await;
    shop.fake.with_state(|s| {
        s.complete_session(&ok, false).unwrap();
        s.complete_session(&bad, false).unwrap();
    });
    for (_, body) in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance("acct_async").await["available"], "0.00");
    shop.fake.with_state(|s| {
        s.settle_async_payment(&ok, true).unwrap();
        s.settle_async_payment(&bad, false).unwrap();
    });
    for (_, body) in shop.take_events(&[
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    ]) {
        shop.deliver_and_drain(&body).await;
    }
    let b = shop.balance("acct_async").await;
    assert_eq!(b["available"], "100.00", "{b}");
    assert_eq!(b["lots"].as_array().unwrap().len(), 1);
    let failed = shop.app.state.store.checkout(&bad).await.unwrap().unwrap();
    assert_eq!(failed.payment_status.as_deref(), Some("failed"));
    shop.assert_balanced("acct_async").await;
}

async fn subscription_start_grants_once_in_every_arrival_order_and_each_renewal_once(db: TestDb) {
    let shop = shop(&db).await;
    let kinds = [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
    ];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let account = format!("acct_sub{n}");
        let session = shop.checkout(&account, &shop.plan, 1).await;
        shop.fake
            .with_state(|s| s.complete_session(&session, true))
            .unwrap();
        let events = shop.take_events(&kinds);
        assert_eq!(events.len(), 3);
        for i in order {
            let (_, body) = events.iter().find(|(k, _)| k == kinds[*i]).unwrap();
            shop.deliver_and_drain(body).await;
        }
        let b = shop.balance(&account).await;
        assert_eq!(b["subscription"], "1000.00", "order {order:?}: {b}");
        assert_eq!(b["lots"].as_array().unwrap().len(), 1, "order {order:?}");
        assert!(b["lots"][0]["expires_at"].as_i64().unwrap() > now() + 20 * 86_400);
        shop.assert_balanced(&account).await;
    }
    // Renewals of the last subscription: each invoice grants once, redelivery nothing.
    let account = "acct_sub5";
    let sub = shop.app.state.store.credit_lots(account).await.unwrap();
    assert_eq!(sub.len(), 1);
    let sub_id = shop.fake.with_state(|s| {
        s.subscriptions.values().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    for _ in 0..2 {
        shop.fake
            .with_state(|s| s.renew_subscription(&sub_id))
            .unwrap();
        for (_, body) in shop.take_events(&["customer.subscription.updated", "invoice.paid"]) {
            shop.deliver_and_drain(&body).await;
            shop.deliver_and_drain(&body).await;
        }
    }
    let b = shop.balance(account).await;
    assert_eq!(b["subscription"], "3000.00", "{b}");
    assert_eq!(b["lots"].as_array().unwrap().len(), 3);
    let row = shop
        .app
        .state
        .store
        .subscription(&sub_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.account.as_deref(), row.status.as_str()),
        (Some(account), "active")
    );
    shop.assert_balanced(account).await;
}

async fn expired_subscription_credits_are_never_spent_or_counted(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_expiry";
    // The subscription started 40 days ago; its first period ended about 10 days ago.
    shop.fake.with_state(|s| s.clock_offset = -40 * 86_400);
    let session = shop.checkout(account, &shop.plan, 1).await;
    shop.fake
        .with_state(|s| s.complete_session(&session, true))
        .unwrap();
    for (_, body) in shop.take_events(&["invoice.paid", "checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    // 800 consumed 20 days ago, while the subscription's 1,000 were valid.
    let consumed = shop
        .app
        .state
        .ledger
        .consume(
            account,
            &serde_json::from_value(json!({"amount": "800", "idempotency_key": "old-usage"}))
                .unwrap(),
            now() - 20 * 86_400,
        )
        .await
        .unwrap();
    assert_eq!(consumed.balance.to_string(), "200.00");
    // A 500-credit purchase today.
    shop.fake.with_state(|s| s.clock_offset = 0);
    let session = shop.checkout(account, &shop.pack, 5).await;
    shop.fake
        .with_state(|s| s.complete_session(&session, true))
        .unwrap();
    for (_, body) in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    let b = shop.balance(account).await;
    assert_eq!(
        (&b["available"], &b["subscription"], &b["expired"]),
        (&json!("500.00"), &json!("0.00"), &json!("200.00")),
        "{b}"
    );
    let (status, refused) = shop
        .consume(
            account,
            json!({"amount": "500.01", "idempotency_key": "too-much"}),
        )
        .await;
    assert_eq!((status, &refused["shortfall"]), (402, &json!("0.01")));
    shop.assert_balanced(account).await;
}

async fn a_hundred_concurrent_consumptions_against_fifty_credits(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_race";
    grant_credits(&shop.app, account, 50).await;
    let sends = (0..100).map(|i| {
        shop.consume(
            account,
            json!({"amount": "1", "idempotency_key": format!("race-{i}")}),
        )
    });
    let answers = futures_util::future::join_all(sends).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers.iter().filter(|(s, _)| *s == 402).count();
    assert_eq!((ok, refused), (50, 50), "{answers:?}");
    let b = shop.balance(account).await;
    assert_eq!(b["available"], "0.00");
    assert!(
        b["lots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["remaining"] == "0.00")
    );
    shop.assert_balanced(account).await;
}

async fn consumption_is_idempotent_per_key_and_explains_refusals(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_keys";
    grant_credits(&shop.app, account, 10).await;
    let first = json!({"amount": "1.50", "idempotency_key": "k1", "description": "report"});
    let (status, a) = shop.consume(account, first.clone()).await;
    assert_eq!(
        (status, &a["balance"], &a["replayed"]),
        (200, &json!("8.50"), &json!(false))
    );
    let (status, b) = shop.consume(account, first).await;
    assert_eq!(
        (status, &b["balance"], &b["replayed"]),
        (200, &json!("8.50"), &json!(true))
    );
    let (status, c) = shop
        .consume(
            account,
            json!({"amount": "2", "idempotency_key": "k1", "description": "report"}),
        )
        .await;
    assert_eq!(
        (status, c["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    let (status, free) = shop
        .consume(account, json!({"amount": "0", "idempotency_key": "free-1"}))
        .await;
    assert_eq!((status, &free["balance"]), (200, &json!("8.50")));
    let (status, short) = shop
        .consume(account, json!({"amount": "100", "idempotency_key": "k2"}))
        .await;
    assert_eq!(status, 402);
    assert_eq!(short["error"]["code"], "insufficient_credits");
    assert_eq!(short["shortfall"], "91.50");
    for bad in [
        json!({"amount": "1.234", "idempotency_key": "x"}),
        json!({"amount": "-1", "idempotency_key": "x"}),
        json!({"amount": 1, "idempotency_key": "x"}),
        json!({"amount": "1", "idempotency_key": ""}),
        json!({"amount": "1"}),
        json!({"amount": "1", "idempotency_key": "x", "extra": true}),
    ] {
        let (status, e) = shop.consume(account, bad.clone()).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{bad}"
        );
    }
    let (status, _) = shop
        .consume("a%20b", json!({"amount": "1", "idempotency_key": "x"}))
        .await;
    assert_eq!(status, 400);
    // Journal: the grant, the 1.50, the free use; refusals left no trace.
    let (status, h) = get_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/credits/history")),
    )
    .await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("consume", "0.00"),
            ("consume", "-1.50"),
            ("adjust", "10.00")
        ]
    );
    shop.assert_balanced(account).await;
}

async fn a_partial_refund_takes_back_its_share_once_and_records_debt(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_refund";
    let session = shop.checkout(account, &shop.pack, 1).await;
    let pi = shop.fake.with_state(|s| {
        let (_, s2) = s.complete_session(&session, true).unwrap();
        s2["payment_intent"].as_str().unwrap().to_owned()
    });
    for (_, body) in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance(account).await["available"], "100.00");
    // Half of the $20.00 back: both refund events, each delivered twice.
    shop.fake.with_state(|s| {
        s.create_refund(
            &json!({"payment_intent": pi, "amount": 1000}),
            &Ctx::default(),
        )
        .unwrap()
    });
    for (_, body) in shop.take_events(&["refund.created", "charge.refunded"]) {
        shop.deliver_and_drain(&body).await;
        shop.deliver_and_drain(&body).await;
    }
    let b = shop.balance(account).await;
    assert_eq!(b["available"], "50.00", "{b}");
    // Spend the rest, then refund the other half: nothing left to take, a debt of 50.
    let (status, _) = shop
        .consume(account, json!({"amount": "50", "idempotency_key": "spend"}))
        .await;
    assert_eq!(status, 200);
    shop.fake.with_state(|s| {
        s.create_refund(&json!({"payment_intent": pi}), &Ctx::default())
            .unwrap()
    });
    for (_, body) in shop.take_events(&["refund.created", "charge.refunded"]) {
        shop.deliver_and_drain(&body).await;
    }
    let b = shop.balance(account).await;
    assert_eq!(
        (&b["available"], &b["debt"]),
        (&json!("0.00"), &json!("50.00")),
        "{b}"
    );
    let history = shop.app.state.ledger.history(account, 20).await.unwrap();
    let refunds: Vec<String> = history
        .iter()
        .filter(|e| e.kind == "refund")
        .map(|e| e.amount.to_string())
        .collect();
    assert_eq!(refunds, ["-50.00"]);
    assert_eq!(history.iter().filter(|e| e.kind == "debt").count(), 1);
    shop.assert_balanced(account).await;
}

async fn checkout_refuses_what_cannot_be_sold_and_reuses_the_customer(db: TestDb) {
    let shop = shop(&db).await;
    let (invalid, archived) = shop.fake.with_state(|s| {
        let price = json!({"unit_amount": 100});
        let (_, invalid) = product_with_price(
            s,
            json!({"name": "No credits", "metadata": {"credit_amount": "1.5"}}),
            price.clone(),
        );
        let (old, archived) = product_with_price(
            s,
            json!({"name": "Old", "metadata": {"credit_amount": "5"}}),
            price,
        );
        s.update_product(&old, &json!({"active": false}), &Ctx::default())
            .unwrap();
        (invalid, archived)
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    let url = shop.app.url("/api/v1/checkout");
    let ask = |price: &str| json!({"account": "acct_co", "price": price, "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no"});
    let (status, e) = post_json(&url, ask(&invalid)).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("product_not_sellable"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credit_amount"),
        "{e}"
    );
    let (status, e) = post_json(&url, ask(&archived)).await;
    assert_eq!(status, 422);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("archived"),
        "{e}"
    );
    let (status, _) = post_json(&url, ask("price_doesnotexist")).await;
    assert_eq!(status, 422);
    let (status, e) = post_json(
        &url,
        json!({"account": "acct_co", "price": shop.pack, "success_url": "notaurl", "cancel_url": "https://a.example/no"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, _) = post_json(&url, json!({"account": "acct_co"})).await;
    assert_eq!(status, 400);
    // Nothing reached Stripe so far; two good checkouts create one customer.
    assert!(
        !shop
            .fake
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.starts_with("/v1/c"))
    );
    shop.checkout("acct_co", &shop.pack, 1).await;
    let sub = shop.checkout("acct_co", &shop.plan, 1).await;
    let posts: Vec<String> = shop
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        posts,
        [
            "/v1/customers",
            "/v1/checkout/sessions",
            "/v1/checkout/sessions"
        ]
    );
    let row = shop.app.state.store.checkout(&sub).await.unwrap().unwrap();
    assert_eq!(row.mode, "subscription");
    assert!(catalog_writes(&shop.fake).is_empty());
}

async fn the_cli_grants_deducts_and_reports(db: TestDb) {
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(
        &env,
        &[
            "credits", "grant", "acct_cli", "12.5", "--reason", "welcome", "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["balance"], "12.50");
    let (code, _, err) = run_cli(
        &env,
        &[
            "credits", "deduct", "acct_cli", "20", "--reason", "too much",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("insufficient credits") && err.contains("7.50 short"),
        "{err}"
    );
    let (code, out, _) = run_cli(
        &env,
        &[
            "credits", "deduct", "acct_cli", "2.5", "--reason", "support",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("balance 10.00"), "{out}");
    let (code, _, err) = run_cli(
        &env,
        &["credits", "grant", "acct_cli", "1.234", "--reason", "x"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("not a credit amount"), "{err}");
    let (code, _, err) = run_cli(
        &env,
        &["credits", "grant", "acct_cli", "1", "--reason", " "],
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("reason"), "{err}");
    let (code, out, _) = run_cli(&env, &["credits", "balance", "acct_cli", "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["available"], "10.00");
    let (code, out, _) = run_cli(&env, &["credits", "history", "acct_cli", "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let audit = db.store.audit_log(None, 10).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["credits.deduct", "credits.grant"]);
    assert!(
        audit
            .iter()
            .all(|a| a.actor.starts_with("cli:") && a.detail.is_some())
    );
}

/// A payment link (client_reference_id, no metadata) selling something that is not a
/// credit product: stored, processed, nothing granted, nothing in the dead letter. A
/// credit plan subscribed outside our checkout with no account named anywhere: its
/// invoice waits, pending with its reason, for what will name the account.
async fn sales_made_elsewhere_are_not_credited_and_do_not_fail(db: TestDb) {
    let shop = shop(&db).await;
    let tshirt = shop.fake.with_state(|s| {
        product_with_price(s, json!({"name": "T-shirt"}), json!({"unit_amount": 1500})).1
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    shop.fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, link) = s
            .create_checkout_session(
                &json!({"mode": "payment", "client_reference_id": "visitor_1",
                        "line_items": [{"price": tshirt, "quantity": 1}]}),
                &ctx,
            )
            .unwrap();
        s.complete_session(link["id"].as_str().unwrap(), true).unwrap();
        let (_, sub) = s
            .create_checkout_session(
                &json!({"mode": "subscription", "line_items": [{"price": shop.plan, "quantity": 1}]}),
                &ctx,
            )
            .unwrap();
        s.complete_session(sub["id"].as_str().unwrap(), true).unwrap();
    });
    let events = shop.take_events(&[
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
    ]);
    assert_eq!(events.len(), 4);
    let mut events = events;
    // The plan's invoice last: it waits, and draining waits for nothing pending.
    events.sort_by_key(|(kind, _)| kind == "invoice.paid");
    for (kind, body) in &events {
        if kind == "invoice.paid" {
            assert_eq!(shop.app.deliver_signed(body).await, 200);
        } else {
            shop.deliver_and_drain(body).await;
        }
    }
    // The plan's invoice paid for credits and names no account: it waits (pending, its
    // reason kept) for a session or customer that names one, and is never dropped.
    let waiting = shop.app.parked_event("invoice.paid").await;
    assert!(
        waiting
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no account is known")),
        "{waiting:?}"
    );
    assert_eq!(shop.balance("visitor_1").await["available"], "0.00");
    let granted: i64 = shop.app.state.store.list_accounts(100).await.unwrap().len() as i64;
    assert_eq!(
        granted, 1,
        "only the payment link's reference became an account"
    );
    assert!(
        shop.app
            .state
            .store
            .credit_lots("visitor_1")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Endpoints pinned to an API version before 2025-03-31.basil receive invoices with
/// `subscription` at the top level and the price on each line: the same grant follows.
async fn a_pre_2025_invoice_grants_like_a_current_one(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_old_shape";
    let session = shop.checkout(account, &shop.plan, 2).await;
    shop.fake
        .with_state(|s| s.complete_session(&session, true))
        .unwrap();
    let price = shop
        .fake
        .with_state(|s| s.prices.get(&shop.plan).cloned().unwrap());
    let events = shop.take_events(&["invoice.paid"]);
    let mut event: Value = serde_json::from_str(&events[0].1).unwrap();
    let invoice = &mut event["data"]["object"];
    let sub = invoice["parent"]["subscription_details"]["subscription"].clone();
    invoice["subscription"] = sub;
    invoice.as_object_mut().unwrap().remove("parent");
    for line in invoice["lines"]["data"].as_array_mut().unwrap() {
        line.as_object_mut().unwrap().remove("pricing");
        line["price"] = price.clone();
    }
    let period_end = invoice["lines"]["data"][0]["period"]["end"].clone();
    event["api_version"] = json!("2024-06-20");
    shop.deliver_and_drain(&event.to_string()).await;
    let b = shop.balance(account).await;
    assert_eq!(b["subscription"], "2000.00", "{b}");
    assert_eq!(b["lots"][0]["expires_at"], period_end);
    shop.assert_balanced(account).await;
}

/// A current (basil) invoice does not name its payment; the grant lists its payments
/// (`GET /v1/invoice_payments?invoice=`) so a later refund of the invoice's charge finds
/// the lot.
async fn a_refunded_subscription_invoice_takes_back_its_share(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_sub_refund";
    let session = shop.checkout(account, &shop.plan, 1).await;
    shop.fake
        .with_state(|s| s.complete_session(&session, true))
        .unwrap();
    for (_, body) in shop.take_events(&["checkout.session.completed", "invoice.paid"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance(account).await["subscription"], "1000.00");
    let requests = shop.fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/v1/invoice_payments" && r.query.contains("invoice=in_")),
        "the payment was looked up"
    );
    shop.fake.with_state(|s| {
        let pi = s.invoice_payments.values().next().unwrap().clone();
        s.create_refund(
            &json!({"payment_intent": pi, "amount": 2500}),
            &Ctx::default(),
        )
        .unwrap();
    });
    for (_, body) in shop.take_events(&["refund.created", "charge.refunded"]) {
        shop.deliver_and_drain(&body).await;
    }
    let b = shop.balance(account).await;
    assert_eq!(
        (&b["subscription"], &b["debt"]),
        (&json!("500.00"), &json!("0.00")),
        "{b}"
    );
    shop.assert_balanced(account).await;
}

/// Consumptions are applied in groups (one transaction for all those waiting on an
/// instance). Two instances on one database, three accounts (one created by its first
/// consumption), keys sent several times concurrently (to both instances) and a key
/// reused with another body: every key is applied exactly once, a repeat answers the
/// first result, no account is overdrawn, and the journal matches the lots.
async fn grouped_consumptions_on_two_instances_apply_each_key_once(db: TestDb) {
    let shop = shop(&db).await;
    let other = quiet_app(&shop.fake, &db).await;
    grant_credits(&shop.app, "acct_g1", 50).await;
    grant_credits(&shop.app, "acct_g2", 30).await;
    let accounts = ["acct_g1", "acct_g2", "acct_g3"];
    let sends = (0..240).map(|i| {
        let app = if i % 2 == 0 { &shop.app } else { &other };
        // 80 keys, each for one account and sent three times (to both instances),
        // two credits each: more than the accounts hold.
        let account = accounts[(i % 80) % 3];
        let key = format!("g-{}", i % 80);
        let url = app.url(&format!("/api/v1/accounts/{account}/credits/consume"));
        async move {
            let (status, body) =
                post_json(&url, json!({"amount": "2", "idempotency_key": key})).await;
            (account, key, status, body)
        }
    });
    // 48 in flight at a time: enough to group (and to race the two instances), while 240
    // simultaneous connections from this process kept some waiting past the server's
    // 10 s header timeout on a loaded two-core machine.
    use futures_util::StreamExt;
    let answers: Vec<_> = futures_util::stream::iter(sends)
        .buffered(48)
        .collect()
        .await;
    let mut first: std::collections::HashMap<(String, String), (u16, Value)> = Default::default();
    for (account, key, status, body) in &answers {
        assert!(
            *status == 200 || *status == 402,
            "{account} {key}: {status} {body}"
        );
        if *status != 200 {
            continue;
        }
        let seen = first
            .entry((account.to_string(), key.clone()))
            .or_insert((*status, body.clone()));
        // A repeat answers the first result (same balance and time).
        assert_eq!(seen.1["balance"], body["balance"], "{key}");
        assert_eq!(seen.1["created_at"], body["created_at"], "{key}");
    }
    // Refused on an account nobody had used: the account is not created (grouped with
    // consumptions that were recorded, or alone).
    assert!(db.store.account("acct_g3").await.unwrap().is_none());
    for (account, granted) in [("acct_g1", 50), ("acct_g2", 30), ("acct_g3", 0)] {
        let applied = first.keys().filter(|(a, _)| a == account).count() as i64;
        assert_eq!(applied, granted / 2, "{account}: keys applied");
        let b = shop.balance(account).await;
        assert_eq!(
            b["available"],
            format!("{}.00", granted - 2 * applied),
            "{account}"
        );
        shop.assert_balanced(account).await;
    }
    // The same key with another body, on both instances at once: one applies, the
    // other is refused as a reused key; never both.
    grant_credits(&shop.app, "acct_g1", 5).await;
    let reuse = |app: &TestApp, amount: &str| {
        let url = app.url("/api/v1/accounts/acct_g1/credits/consume");
        let body = json!({"amount": amount, "idempotency_key": "reused"});
        async move { post_json(&url, body).await.0 }
    };
    let (x, y) = tokio::join!(reuse(&shop.app, "1"), reuse(&other, "2"));
    let mut statuses = [x, y];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    shop.assert_balanced("acct_g1").await;
}

/// `Idempotency-Key` (Stripe's convention, and what checkout and billing take) keys a
/// consumption, a hold and a grant as the body's field does; both sent must agree.
async fn the_idempotency_key_header_works_like_the_body_field_and_must_agree_with_it(db: TestDb) {
    let fake = FakeStripe::start().await;
    let app = quiet_app(&fake, &db).await;
    grant_credits(&app, "acct_hdr", 10).await;
    let send = |path: &'static str, key: Option<&'static str>, body: Value| {
        let url = app.url(&format!("/api/v1/accounts/acct_hdr/credits/{path}"));
        let token = app.token.clone();
        async move {
            let mut r = http().post(&url).bearer_auth(token).json(&body);
            if let Some(k) = key {
                r = r.header("Idempotency-Key", k);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            common::conformance::check("POST", &url, status, &body);
            (status, body)
        }
    };
    let (status, first) = send("consume", Some("hk-1"), json!({"amount": "1"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["idempotency_key"], "hk-1");
    // The same key in the body is the same consumption.
    let (status, again) = send(
        "consume",
        None,
        json!({"amount": "1", "idempotency_key": "hk-1"}),
    )
    .await;
    assert_eq!((status, &again["replayed"]), (200, &json!(true)), "{again}");
    let (status, both) = send(
        "consume",
        Some("hk-1"),
        json!({"amount": "1", "idempotency_key": "hk-1"}),
    )
    .await;
    assert_eq!((status, &both["replayed"]), (200, &json!(true)), "{both}");
    let (status, refused) = send(
        "consume",
        Some("hk-2"),
        json!({"amount": "1", "idempotency_key": "hk-3"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_mismatch");
    let (status, missing) = send("consume", None, json!({"amount": "1"})).await;
    assert_eq!(status, 400, "{missing}");
    // Two headers (a proxy adding its own): refused, not the first one silently.
    let r = http()
        .post(app.url("/api/v1/accounts/acct_hdr/credits/consume"))
        .bearer_auth(&app.token)
        .header("Idempotency-Key", "hk-4")
        .header("Idempotency-Key", "hk-5")
        .json(&json!({"amount": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");
    // Checkout and the billing actions read the header the same way (it used to be
    // ignored there when it was not ASCII).
    let checkout = json!({"account": "acct_hdr", "price": "price_x",
        "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"});
    for (path, body) in [
        ("/api/v1/checkout", checkout),
        ("/api/v1/accounts/acct_hdr/subscription/cancel", json!({})),
    ] {
        let r = http()
            .post(app.url(path))
            .bearer_auth(&app.token)
            .header("Idempotency-Key", "k")
            .header("Idempotency-Key", "k2")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        common::conformance::check("POST", &app.url(path), status, &body);
        assert_eq!(
            body["error"]["code"], "invalid_idempotency_key",
            "{path}: {body}"
        );
    }
    let (status, hold) = send("holds", Some("hk-h"), json!({"amount": "2"})).await;
    assert_eq!(
        (status, &hold["idempotency_key"]),
        (201, &json!("hk-h")),
        "{hold}"
    );
    let (status, grant) = send(
        "grants",
        Some("hk-g"),
        json!({"amount": "2", "reason": "test"}),
    )
    .await;
    assert_eq!(
        (status, &grant["idempotency_key"]),
        (201, &json!("hk-g")),
        "{grant}"
    );
    // Nothing refused was written: 10 − 1 consumed − 2 held + 2 granted.
    let b = app.credits("acct_hdr").await;
    assert_eq!(
        (b["available"].as_str(), b["held"].as_str()),
        (Some("11.00"), Some("2.00"))
    );
}
