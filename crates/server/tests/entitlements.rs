//! Feature gating from Stripe Entitlements and automatic top-ups (issue #24), on SQLite
//! and PostgreSQL, through the real HTTP API against the fake Stripe (which answers
//! active entitlements and off-session payments as Stripe does), with two instances on
//! one database.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::shop::*;
use common::*;
use fake_stripe::Ctx;
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_whole_life_of_gates_and_top_ups,
    sync_mirrors_features_and_the_gate_survives_stripe_down,
    top_ups_refuse_bad_settings_and_count_per_day,
);

/// A feature `lookup_key` attached to `product` in the fake.
fn feature_on(shop: &Shop, lookup_key: &str, name: &str, product: &str) -> String {
    shop.fake.with_state(|s| {
        let (_, f) = s
            .create_feature(
                &json!({"lookup_key": lookup_key, "name": name}),
                &Ctx::default(),
            )
            .unwrap();
        let id = f["id"].as_str().unwrap().to_owned();
        s.attach_product_feature(product, &id, &Ctx::default())
            .unwrap();
        id
    })
}

async fn entitled(app: &TestApp, account: &str, key: &str) -> bool {
    let (status, body) =
        get_json(&app.url(&format!("/api/v1/accounts/{account}/entitlements/{key}"))).await;
    assert_eq!(status, 200, "{body}");
    body["entitled"].as_bool().unwrap()
}

/// Waits (up to 10 s) until `app`'s gate says `want`: another instance hears of a
/// change by `NOTIFY`, which arrives after the commit.
async fn gate_becomes(app: &TestApp, account: &str, key: &str, want: bool) {
    for _ in 0..100 {
        if entitled(app, account, key).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{account}'s gate for {key} never became {want}");
}

async fn consume_on(app: &TestApp, account: &str, amount: &str, key: &str) {
    let (status, body) = post_json(
        &app.url(&format!("/api/v1/accounts/{account}/credits/consume")),
        json!({"amount": amount, "idempotency_key": key}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Waits (up to 20 s) for the account's top-ups to reach `statuses` (newest first).
async fn top_ups_become(app: &TestApp, account: &str, statuses: &[&str]) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, body) =
            get_json(&app.url(&format!("/api/v1/accounts/{account}/top-up"))).await;
        assert_eq!(status, 200, "{body}");
        let now: Vec<&str> = body["recent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        if now == statuses {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("top-ups of {account} never became {statuses:?}: {last}");
}

/// The invoices the fake holds for top-ups of `account`.
fn top_up_invoices(shop: &Shop, account: &str) -> Vec<Value> {
    shop.fake.with_state(|s| {
        s.invoices
            .values()
            .filter(|i| i["metadata"]["account"] == json!(account))
            .filter(|i| i["metadata"]["stripe_manager_top_up"].is_string())
            .cloned()
            .collect()
    })
}

/// The whole life, on two instances: a plan whose product has a feature → the
/// gate says yes on both; the plan is canceled → no on both; a pack bought with the card
/// saved; consumptions below the threshold from 16 concurrent requests on two instances
/// → exactly one top-up, charged and granted through `invoice.paid`; a declined card →
/// `top_up.failed` and no credits; a card that needs authentication → failed, and
/// top-ups turned off.
async fn a_whole_life_of_gates_and_top_ups(db: TestDb) {
    let receiver = Receiver::start().await;
    let shop = shop_with(&db, &receiver.env()).await;
    let b = quiet_app_with(&shop.fake, &db, &receiver.env()).await;
    let a = &shop.app;
    let account = "acct_life";
    feature_on(&shop, "pro", "Pro features", &shop.plan_a.product);
    let (status, report) = post_json(&a.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["features"]["products"].as_u64().unwrap() >= 5,
        "{report}"
    );

    // No account yet: not entitled, on either instance.
    assert!(!entitled(a, account, "pro").await);
    assert!(!entitled(&b, account, "pro").await);

    // A plan whose product gives `pro`: yes, on both.
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    assert!(entitled(a, account, "pro").await);
    gate_becomes(&b, account, "pro", true).await;
    assert!(!entitled(a, account, "other").await);
    let (_, list) = get_json(&a.url(&format!("/api/v1/accounts/{account}/entitlements"))).await;
    assert_eq!(list["data"][0]["lookup_key"], "pro", "{list}");
    assert_eq!(list["data"][0]["name"], "Pro features", "{list}");
    let view = shop.account(account).await;
    assert_eq!(view["features"][0]["lookup_key"], "pro", "{view}");
    receiver
        .wait_for(10, "entitlements.updated", |g| {
            g.iter().any(|d| d.kind() == "entitlements.updated")
        })
        .await;

    // Canceled now: no, on both.
    let (status, body) = shop
        .act(account, "subscription/cancel", json!({"immediately": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    shop.deliver_all().await;
    assert!(!entitled(a, account, "pro").await);
    gate_becomes(&b, account, "pro", false).await;
    let updates: Vec<Value> = receiver
        .wait_for(10, "a second entitlements.updated", |g| {
            g.iter()
                .filter(|d| d.kind() == "entitlements.updated")
                .count()
                >= 2
        })
        .await
        .iter()
        .filter(|d| d.kind() == "entitlements.updated")
        .map(|d| d.json()["data"].clone())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert_eq!(updates[1]["removed"], json!(["pro"]), "{updates:?}");
    let _ = sub;

    // A pack bought with the card saved for later; top-ups on.
    let (status, session) = post_json(
        &a.url("/api/v1/checkout"),
        json!({"account": account, "price": shop.pack.price, "quantity": 1,
               "save_payment_method": true,
               "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    shop.fake.with_state(|s| {
        let id = session["id"].as_str().unwrap();
        s.complete_session(id, true).unwrap();
        // Checkout attached the card to the customer for later (it was asked to).
        let customer = s.sessions.get(id).unwrap()["customer"].clone();
        let saved = s
            .payment_methods
            .values()
            .filter(|pm| pm["customer"] == customer)
            .count();
        assert_eq!(saved, 1, "the card is saved for off-session payments");
    });
    shop.deliver_all().await;
    let before: f64 = shop.balance(account).await["available"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, set) = put_json(
        &a.url(&format!("/api/v1/accounts/{account}/top-up")),
        json!({"below": format!("{}", before - 50.0), "price": shop.pack.price,
               "quantity": 1, "max_per_day": 3}),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["enabled"], true);

    // 16 consumptions of 5 at once, alternately on the two instances: the account goes
    // from 50 above the threshold to 30 below it, crossing it once.
    futures_util::future::join_all((0..16).map(|i| {
        let app = if i % 2 == 0 { a } else { &b };
        async move { consume_on(app, account, "5", &format!("k{i}")).await }
    }))
    .await;
    let body = top_ups_become(a, account, &["paid"]).await;
    assert_eq!(
        top_up_invoices(&shop, account).len(),
        1,
        "one purchase: {body}"
    );
    shop.deliver_all().await;
    top_ups_become(a, account, &["succeeded"]).await;
    let after: f64 = shop.balance(account).await["available"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, before - 80.0 + 100.0, "the pack's 100 credits, once");
    let succeeded = receiver
        .wait_for(10, "top_up.succeeded", |g| {
            g.iter().any(|d| d.kind() == "top_up.succeeded")
        })
        .await;
    let ok = succeeded
        .iter()
        .find(|d| d.kind() == "top_up.succeeded")
        .unwrap()
        .json();
    assert_eq!(ok["data"]["credits"], "100.00", "{ok}");
    shop.assert_balanced(account).await;

    // A declined card: the next crossing fails, no credits, top-ups stay on.
    let customer = shop.fake.with_state(|s| {
        s.sessions.get(session["id"].as_str().unwrap()).unwrap()["customer"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    shop.fake
        .with_state(|s| s.attach_card(&customer, "declines"))
        .unwrap();
    set_default_card(&shop, &customer);
    consume_on(a, account, "80", "cross-2").await;
    let body = top_ups_become(a, account, &["failed", "succeeded"]).await;
    assert_eq!(body["enabled"], true, "{body}");
    shop.deliver_all().await;
    let now: f64 = shop.balance(account).await["available"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(now, after - 80.0, "no credits for a declined card");
    let failed = receiver
        .wait_for(10, "top_up.failed", |g| {
            g.iter().any(|d| d.kind() == "top_up.failed")
        })
        .await;
    let f = failed
        .iter()
        .find(|d| d.kind() == "top_up.failed")
        .unwrap()
        .json();
    assert_eq!(f["data"]["top_ups_disabled"], false, "{f}");
    let voided = top_up_invoices(&shop, account)
        .iter()
        .filter(|i| i["status"] == "void")
        .count();
    assert_eq!(voided, 1, "the failed purchase's invoice is voided");

    // A card that needs authentication: failed, and top-ups off until set again.
    grant_credits(a, account, 100).await;
    shop.fake
        .with_state(|s| s.attach_card(&customer, "requires_authentication"))
        .unwrap();
    set_default_card(&shop, &customer);
    consume_on(&b, account, "100", "cross-3").await;
    let body = top_ups_become(a, account, &["failed", "failed", "succeeded"]).await;
    assert_eq!(body["enabled"], false, "{body}");
    assert_eq!(body["disabled_reason"], "authentication_required", "{body}");
    let failed = receiver
        .wait_for(10, "a second top_up.failed", |g| {
            g.iter().filter(|d| d.kind() == "top_up.failed").count() >= 2
        })
        .await;
    let f = failed
        .iter()
        .filter(|d| d.kind() == "top_up.failed")
        .nth(1)
        .unwrap()
        .json();
    assert_eq!(f["data"]["code"], "authentication_required", "{f}");
    assert_eq!(f["data"]["top_ups_disabled"], true, "{f}");
    let audit = a
        .state
        .store
        .audit_log_page(Some("top_up.disabled"), None, 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    shop.assert_balanced(account).await;
    b.stop().await;
}

/// Makes the customer's newest card its default for invoices, as a customer changing
/// their card in the portal would.
fn set_default_card(shop: &Shop, customer: &str) {
    shop.fake.with_state(|s| {
        let newest = s
            .payment_methods
            .values()
            .filter(|pm| pm["customer"] == json!(customer))
            .max_by_key(|pm| pm["created"].as_i64().unwrap_or(0))
            .map(|pm| pm["id"].as_str().unwrap().to_owned())
            .unwrap();
        let c = s.customers.get_mut(customer).unwrap();
        c["invoice_settings"]["default_payment_method"] = json!(newest);
    });
}

/// The sync mirrors features (archived ones too) and products' features, the catalog
/// page shows them; with Stripe answering 503 the gate keeps answering from what was
/// stored, and a reconcile reads Stripe's answer again.
async fn sync_mirrors_features_and_the_gate_survives_stripe_down(db: TestDb) {
    let shop = shop(&db).await;
    let app = &shop.app;
    let account = "acct_gate_down";
    let pro = feature_on(&shop, "pro", "Pro", &shop.plan_a.product);
    shop.fake.with_state(|s| {
        s.create_feature(
            &json!({"lookup_key": "old", "name": "Old"}),
            &Ctx::default(),
        )
        .unwrap();
    });
    let (status, report) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{report}");
    let features = app.state.store.features().await.unwrap();
    assert_eq!(
        features
            .iter()
            .map(|f| f.lookup_key.as_str())
            .collect::<Vec<_>>(),
        ["old", "pro"]
    );
    let of_plan = app
        .state
        .store
        .features_of_product(&shop.plan_a.product)
        .await
        .unwrap();
    assert_eq!(of_plan.len(), 1);
    assert_eq!(of_plan[0].id, pro);

    subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    assert!(entitled(app, account, "pro").await);

    // The CLI's `accounts show` and the admin's account and product pages list them.
    let env = {
        let mut env = env_for(Some(&shop.fake.url()), &db);
        env.push(("STRIPE_CONNECTIVITY_TEST".into(), "false".into()));
        env
    };
    let (code, out, err) = run_cli(&env, &["accounts", "show", account]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("features     pro (Pro)"), "{out}");
    let op = common::admin::Operator::sign_in(app, &db).await;
    for path in [
        format!("/admin/products/{}", shop.plan_a.product),
        format!("/admin/credits/account?account={account}"),
    ] {
        let page = common::admin::get_with(app, &path, &op.cookie).await;
        assert_eq!(page.status(), 200, "{path}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("id=\"features\"") && html.contains("pro"),
            "{path}: {html}"
        );
    }

    // Stripe down: the gate answers from the database.
    let (status, _) = post_json(
        &format!("{}/_fake/faults", shop.fake.url()),
        json!({"kind": "status", "path_prefix": "/v1/", "status": 503, "times": 1000}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(entitled(app, account, "pro").await);
    let (status, list) =
        get_json(&app.url(&format!("/api/v1/accounts/{account}/entitlements"))).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let (status, _) = delete_json(&format!("{}/_fake/faults", shop.fake.url())).await;
    assert_eq!(status, 200);

    // The subscription canceled in Stripe and its events lost: a reconcile reads the
    // customer's entitlements again (and stores the events it missed).
    shop.fake.with_state(|s| {
        let sub = s
            .subscriptions
            .values()
            .find(|v| v["metadata"]["account"] == json!(account))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.cancel_subscription(&sub, false).unwrap();
    });
    let _ = take_fake_events(&shop.fake, &[]);
    let (code, out, err) = run_cli(&env, &["events", "reconcile", "--since", "1h", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        report["entitlements_read"], 1,
        "the linked customer is read: {report}"
    );
    assert_eq!(report["entitlements_failed"], 0, "{report}");
    gate_becomes(app, account, "pro", false).await;
}

/// Settings the service cannot honour are refused with a reason, before anything is
/// stored; a day's maximum makes a crossing `skipped`.
async fn top_ups_refuse_bad_settings_and_count_per_day(db: TestDb) {
    let shop = shop(&db).await;
    let app = &shop.app;
    let account = "acct_topup_rules";
    let url = app.url(&format!("/api/v1/accounts/{account}/top-up"));
    let (status, body) = put_json(
        &url,
        json!({"below": "10", "price": shop.pack.price, "quantity": 1, "max_per_day": 1}),
    )
    .await;
    assert_eq!(status, 400, "no customer yet: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("customer"),
        "{body}"
    );
    let (session, _) = shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    let customer = shop.fake.with_state(|s| {
        s.sessions.get(&session).unwrap()["customer"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let card = shop
        .fake
        .with_state(|s| s.attach_card(&customer, "succeeds"))
        .unwrap();
    for (body, why) in [
        (json!({"below": "10", "price": shop.plan_a.price}), "a plan"),
        (json!({"below": "0", "price": shop.pack.price}), "below 0"),
        (
            json!({"below": "10", "price": "price_nope"}),
            "unknown price",
        ),
        (
            json!({"below": "10", "price": shop.pack.price, "quantity": 0}),
            "quantity 0",
        ),
        (
            json!({"below": "10", "price": shop.pack.price, "max_per_day": 1000}),
            "max",
        ),
        (
            json!({"below": "10", "price": shop.pack.price, "extra": 1}),
            "unknown field",
        ),
    ] {
        let (status, answer) = put_json(&url, body).await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, _) = get_json(&url).await;
    assert_eq!(status, 404, "nothing was stored");

    // At most one a day: the first crossing buys, the second (after the credits came
    // back above) is skipped.
    let (status, body) = put_json(
        &url,
        json!({"below": "50", "price": shop.pack.price, "quantity": 1, "max_per_day": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    consume_on(app, account, "60", "first").await;
    top_ups_become(app, account, &["paid"]).await;
    shop.deliver_all().await;
    top_ups_become(app, account, &["succeeded"]).await;
    consume_on(app, account, "100", "second").await;
    top_ups_become(app, account, &["skipped", "succeeded"]).await;
    assert_eq!(top_up_invoices(&shop, account).len(), 1);

    // An invoice made elsewhere (the Dashboard) naming the purchase, paid: it is not the
    // invoice the charger made, so it grants nothing.
    let before = shop.available_and_debt(account).await;
    let purchase = top_ups_become(app, account, &["skipped", "succeeded"]).await["recent"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    shop.fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, inv) = s
            .create_invoice(
                &json!({"customer": customer, "metadata": {"stripe_manager_top_up": purchase, "account": account}}),
                &ctx,
            )
            .unwrap();
        let id = inv["id"].as_str().unwrap().to_owned();
        s.create_invoice_item(
            &json!({"customer": customer, "invoice": id, "pricing": {"price": shop.pack.price}, "quantity": "1"}),
            &ctx,
        )
        .unwrap();
        s.finalize_invoice(&id, &json!({}), &ctx).unwrap();
        let (_, paid) = s
            .pay_invoice_with(&id, &json!({"payment_method": card}), &ctx)
            .unwrap();
        assert_eq!(paid["status"], "paid", "{paid}");
    });
    shop.deliver_all().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        before,
        "no credits for it"
    );

    // Turned off: no more purchases; DELETE again is 404.
    let (status, off) = delete_json(&url).await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["enabled"], false);
    let (status, _) = delete_json(&app.url("/api/v1/accounts/acct_never/top-up")).await;
    assert_eq!(status, 404);
}
