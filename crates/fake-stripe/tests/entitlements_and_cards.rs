//! Entitlements follow subscriptions as Stripe's do, and saved cards pay one-off
//! invoices off session as Stripe's test cards do: paid, declined, or needing
//! authentication. Checkout saves the card when asked to.

use fake_stripe::{Ctx, FakeStripe, State};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get(fake: &FakeStripe, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post(
    fake: &FakeStripe,
    path: &str,
    key: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut r = client()
        .post(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_x")
        .form(form);
    if let Some(key) = key {
        r = r.header("Idempotency-Key", key);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn delete(fake: &FakeStripe, path: &str) -> (u16, Value) {
    let r = client()
        .delete(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(id).collect()
}

fn types(s: &State) -> Vec<String> {
    s.events
        .values()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The `entitlements.active_entitlement_summary.updated` events so far, as the lookup
/// keys each announced (sorted), oldest first; then forgets every event.
fn summaries(s: &mut State) -> Vec<Vec<String>> {
    let out = s
        .events
        .values()
        .filter(|e| e["type"] == json!("entitlements.active_entitlement_summary.updated"))
        .map(|e| {
            let mut keys: Vec<String> = e["data"]["object"]["entitlements"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["lookup_key"].as_str().unwrap().to_owned())
                .collect();
            keys.sort();
            keys
        })
        .collect();
    let all: Vec<String> = s.events.values().map(id).collect();
    for e in all {
        s.events.remove(&e);
    }
    out
}

/// A product with a monthly price; returns (product, price).
fn plan(s: &mut State, name: &str, amount: i64) -> (String, String) {
    let (_, p) = s
        .create_product(&json!({"name": name, "default_price_data": {"currency": "usd", "unit_amount": amount, "recurring": {"interval": "month"}}}), &Ctx::default())
        .unwrap();
    (id(&p), p["default_price"].as_str().unwrap().to_owned())
}

/// A product with a one-time price; returns the price.
fn pack(s: &mut State, amount: i64) -> String {
    let (_, p) = s
        .create_product(&json!({"name": "Credits", "default_price_data": {"currency": "usd", "unit_amount": amount}}), &Ctx::default())
        .unwrap();
    p["default_price"].as_str().unwrap().to_owned()
}

fn feature(s: &mut State, key: &str) -> String {
    id(&s
        .create_feature(&json!({"name": key, "lookup_key": key}), &Ctx::default())
        .unwrap()
        .1)
}

fn customer(s: &mut State) -> String {
    id(&s
        .create_customer(&json!({"email": "a@example.com"}), &Ctx::default())
        .unwrap()
        .1)
}

fn subscribe(s: &mut State, customer: &str, price: &str, extra: Value) -> String {
    let mut p = json!({"customer": customer, "items": [{"price": price}]});
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    id(&s.create_subscription(&p, &Ctx::default()).unwrap().1)
}

fn entitled_keys(s: &State, customer: &str) -> Vec<String> {
    let (_, list) = s
        .list_active_entitlements(&json!({"customer": customer, "limit": "100"}))
        .unwrap();
    let mut keys: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lookup_key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn active_entitlements_follow_the_subscription_and_each_change_is_announced() {
    let fake = FakeStripe::start().await;
    let cus = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (product, price) = plan(s, "Pro", 1000);
        let reports = feature(s, "reports");
        let api = feature(s, "api");
        s.attach_product_feature(&product, &reports, &ctx).unwrap();
        let cus = customer(s);
        summaries(s);
        let sub = subscribe(s, &cus, &price, json!({}));
        assert_eq!(summaries(s), [vec!["reports".to_owned()]]);
        assert_eq!(entitled_keys(s, &cus), ["reports"]);

        // "Existing subscriptions will create active entitlements for any product
        // feature changes at the start of the next billing period."
        s.attach_product_feature(&product, &api, &ctx).unwrap();
        assert_eq!(entitled_keys(s, &cus), ["reports"]);
        assert!(summaries(s).is_empty());
        s.advance_clock(31 * 86_400);
        s.renew_subscription(&sub).unwrap();
        assert_eq!(summaries(s), [vec!["api".to_owned(), "reports".to_owned()]]);

        // A failed renewal leaves it past_due: no entitlements until it is paid.
        s.advance_clock(31 * 86_400);
        let (_, invoice) = s.renew_subscription_unpaid(&sub).unwrap();
        assert_eq!(summaries(s), [Vec::<String>::new()]);
        s.pay_invoice(&id(&invoice)).unwrap();
        assert_eq!(summaries(s), [vec!["api".to_owned(), "reports".to_owned()]]);

        // Archiving a feature takes it away at once.
        s.update_feature(&api, &json!({"active": "false"}), &ctx)
            .unwrap();
        assert_eq!(summaries(s), [vec!["reports".to_owned()]]);

        // Canceling ends them.
        s.cancel_subscription(&sub, false).unwrap();
        assert_eq!(summaries(s), [Vec::<String>::new()]);
        assert!(entitled_keys(s, &cus).is_empty());
        cus
    });
    let (status, list) = get(
        &fake,
        &format!("/v1/entitlements/active_entitlements?customer={cus}"),
    )
    .await;
    assert_eq!((status, list["data"].clone()), (200, json!([])));
    let (status, _) = get(&fake, "/v1/entitlements/active_entitlements").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_feature_of_two_subscriptions_is_one_entitlement_and_trials_entitle() {
    let fake = FakeStripe::start().await;
    let (cus, first) = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (basic, basic_price) = plan(s, "Basic", 500);
        let (addon, addon_price) = plan(s, "Add-on", 200);
        let shared = feature(s, "shared");
        let extra = feature(s, "extra");
        s.attach_product_feature(&basic, &shared, &ctx).unwrap();
        s.attach_product_feature(&addon, &shared, &ctx).unwrap();
        s.attach_product_feature(&addon, &extra, &ctx).unwrap();
        let cus = customer(s);
        summaries(s);
        let trial = subscribe(s, &cus, &basic_price, json!({"trial_period_days": 7}));
        subscribe(s, &cus, &addon_price, json!({}));
        assert_eq!(
            summaries(s),
            [
                vec!["shared".to_owned()],
                vec!["extra".to_owned(), "shared".to_owned()]
            ]
        );
        // The add-on ends: `shared` stays through the trialing plan.
        let addon_sub = s
            .subscriptions
            .values()
            .find(|v| v["id"] != json!(trial))
            .map(id)
            .unwrap();
        s.cancel_subscription(&addon_sub, false).unwrap();
        assert_eq!(summaries(s), [vec!["shared".to_owned()]]);
        (cus, trial)
    });
    let (_, list) = get(
        &fake,
        &format!("/v1/entitlements/active_entitlements?customer={cus}"),
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let ent = &list["data"][0];
    assert_eq!(ent["object"], "entitlements.active_entitlement");
    let (status, one) = get(
        &fake,
        &format!("/v1/entitlements/active_entitlements/{}", id(ent)),
    )
    .await;
    assert_eq!((status, one), (200, ent.clone()));
    // Deleting the customer cancels the trial: nothing is left.
    fake.with_state(|s| {
        s.delete_customer(&cus, &Ctx::default()).unwrap();
        assert_eq!(summaries(s), [Vec::<String>::new()]);
        assert_eq!(s.subscriptions.get(&first).unwrap()["status"], "canceled");
    });
}

#[test]
fn a_plan_change_takes_the_new_products_features_at_once() {
    let mut s = State::default();
    let ctx = Ctx::default();
    let (basic, basic_price) = plan(&mut s, "Basic", 500);
    let (pro, pro_price) = plan(&mut s, "Pro", 2000);
    let small = feature(&mut s, "small");
    let big = feature(&mut s, "big");
    s.attach_product_feature(&basic, &small, &ctx).unwrap();
    s.attach_product_feature(&pro, &big, &ctx).unwrap();
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &basic_price, json!({}));
    let item = s.subscriptions.get(&sub).unwrap()["items"]["data"][0]["id"].clone();
    summaries(&mut s);
    s.update_subscription(
        &sub,
        &json!({"items": [{"id": item, "price": pro_price}], "proration_behavior": "none"}),
        &ctx,
    )
    .unwrap();
    assert_eq!(summaries(&mut s), [vec!["big".to_owned()]]);
    // A change of metadata alone changes nothing.
    s.update_subscription(&sub, &json!({"metadata": {"k": "v"}}), &ctx)
        .unwrap();
    assert!(summaries(&mut s).is_empty());
}

#[tokio::test]
async fn lookup_keys_are_unique_among_active_features_and_archived_ones_are_listed_apart() {
    let fake = FakeStripe::start().await;
    let form = [("name", "Seats"), ("lookup_key", "seats")];
    let (status, first) = post(&fake, "/v1/entitlements/features", None, &form).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&first["object"], &first["active"], &first["lookup_key"]),
        (
            &json!("entitlements.feature"),
            &json!(true),
            &json!("seats")
        )
    );
    let (status, err) = post(&fake, "/v1/entitlements/features", None, &form).await;
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &json!("lookup_key"))
    );
    let (status, missing) = post(
        &fake,
        "/v1/entitlements/features",
        None,
        &[("name", "No key")],
    )
    .await;
    assert_eq!(
        (status, &missing["error"]["code"]),
        (400, &json!("parameter_missing"))
    );
    let (_, archived) = post(
        &fake,
        &format!("/v1/entitlements/features/{}", id(&first)),
        None,
        &[("active", "false"), ("metadata[note]", "old")],
    )
    .await;
    assert_eq!(
        (&archived["active"], &archived["metadata"]),
        (&json!(false), &json!({"note": "old"}))
    );
    let (status, second) = post(&fake, "/v1/entitlements/features", None, &form).await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&get(&fake, "/v1/entitlements/features").await.1),
        [id(&second)]
    );
    assert_eq!(
        ids(&get(&fake, "/v1/entitlements/features?archived=true")
            .await
            .1),
        [id(&first)]
    );
    assert_eq!(
        ids(&get(&fake, "/v1/entitlements/features?lookup_key=seats")
            .await
            .1),
        [id(&second)]
    );
    // Unarchiving the first would make two active features with one key.
    let (status, _) = post(
        &fake,
        &format!("/v1/entitlements/features/{}", id(&first)),
        None,
        &[("active", "true")],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn product_features_are_attached_listed_and_detached() {
    let fake = FakeStripe::start().await;
    let (product, _) = fake.with_state(|s| plan(s, "Team", 900));
    let (_, feat) = post(
        &fake,
        "/v1/entitlements/features",
        None,
        &[("name", "SSO"), ("lookup_key", "sso")],
    )
    .await;
    let path = format!("/v1/products/{product}/features");
    let (status, pf) = post(&fake, &path, None, &[("entitlement_feature", &id(&feat))]).await;
    assert_eq!(status, 200);
    assert_eq!(pf["object"], "product_feature");
    assert_eq!(pf["entitlement_feature"], feat);
    let (status, _) = post(&fake, &path, None, &[("entitlement_feature", &id(&feat))]).await;
    assert_eq!(status, 400);
    assert_eq!(ids(&get(&fake, &path).await.1), [id(&pf)]);
    assert_eq!(get(&fake, &format!("{path}/{}", id(&pf))).await.1, pf);
    let (status, gone) = delete(&fake, &format!("{path}/{}", id(&pf))).await;
    assert_eq!(
        (status, gone),
        (
            200,
            json!({"id": id(&pf), "object": "product_feature", "deleted": true})
        )
    );
    assert!(ids(&get(&fake, &path).await.1).is_empty());
    // "Inactive features cannot be attached to new products".
    post(
        &fake,
        &format!("/v1/entitlements/features/{}", id(&feat)),
        None,
        &[("active", "false")],
    )
    .await;
    let (status, _) = post(&fake, &path, None, &[("entitlement_feature", &id(&feat))]).await;
    assert_eq!(status, 400);
}

/// A customer with a default card behaving as `behavior`, a one-time price of $20,
/// and an open one-off invoice for two of it: (customer, card, invoice).
async fn open_top_up(fake: &FakeStripe, behavior: &str) -> (String, String, String) {
    let (cus, card, price) = fake.with_state(|s| {
        let cus = customer(s);
        let card = s.attach_card(&cus, behavior).unwrap();
        let price = pack(s, 2000);
        (cus, card, price)
    });
    let (status, _) = post(
        fake,
        &format!("/v1/customers/{cus}"),
        None,
        &[("invoice_settings[default_payment_method]", &card)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, draft) = post(
        fake,
        "/v1/invoices",
        None,
        &[
            ("customer", &cus),
            ("collection_method", "charge_automatically"),
            ("auto_advance", "false"),
            ("pending_invoice_items_behavior", "exclude"),
            ("description", "Top-up"),
            ("metadata[credits]", "200"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{draft}");
    let (status, item) = post(
        fake,
        "/v1/invoiceitems",
        None,
        &[
            ("customer", &cus),
            ("invoice", &id(&draft)),
            ("pricing[price]", &price),
            ("quantity", "2"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{item}");
    let (status, open) = post(
        fake,
        &format!("/v1/invoices/{}/finalize", id(&draft)),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{open}");
    (cus, card, id(&open))
}

#[tokio::test]
async fn a_top_up_invoice_is_paid_off_session_with_the_default_card() {
    let fake = FakeStripe::start().await;
    let (cus, card, invoice) = open_top_up(&fake, "succeeds").await;
    let (_, open) = get(&fake, &format!("/v1/invoices/{invoice}")).await;
    assert_eq!(
        (
            &open["status"],
            &open["billing_reason"],
            &open["parent"],
            &open["amount_due"],
            &open["auto_advance"],
        ),
        (
            &json!("open"),
            &json!("manual"),
            &Value::Null,
            &json!(4000),
            &json!(false)
        )
    );
    let line = &open["lines"]["data"][0];
    assert_eq!(line["amount"], 4000);
    assert_eq!(line["period"]["start"], line["period"]["end"]);
    let (status, paid) = post(
        &fake,
        &format!("/v1/invoices/{invoice}/pay"),
        None,
        &[("off_session", "true")],
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        (
            &paid["status"],
            &paid["amount_paid"],
            &paid["attempt_count"]
        ),
        (&json!("paid"), &json!(4000), &json!(1))
    );
    let (_, payments) = get(&fake, &format!("/v1/invoice_payments?invoice={invoice}")).await;
    let payment = &payments["data"][0];
    assert_eq!(payment["status"], "paid");
    let pi = payment["payment"]["payment_intent"].as_str().unwrap();
    let (_, intent) = get(&fake, &format!("/v1/payment_intents/{pi}")).await;
    assert_eq!(
        (
            &intent["status"],
            &intent["payment_method"],
            &intent["customer"]
        ),
        (&json!("succeeded"), &json!(card), &json!(cus))
    );
    let (_, charge) = get(
        &fake,
        &format!("/v1/charges/{}", intent["latest_charge"].as_str().unwrap()),
    )
    .await;
    assert_eq!(charge["payment_method"], json!(card));
    assert_eq!(charge["payment_method_details"]["card"]["last4"], "4242");
    fake.with_state(|s| {
        let t = types(s);
        for kind in [
            "invoice.created",
            "invoiceitem.created",
            "invoice.finalized",
            "charge.succeeded",
            "payment_intent.succeeded",
            "invoice.paid",
            "invoice.payment_succeeded",
        ] {
            assert!(t.iter().any(|x| x == kind), "{kind} in {t:?}");
        }
    });
    // The basil parameter is `pricing[price]`; `price` is gone.
    let (status, err) = post(
        &fake,
        "/v1/invoiceitems",
        None,
        &[("customer", &cus), ("price", "price_x")],
    )
    .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("parameter_unknown"))
    );
}

#[tokio::test]
async fn a_declined_card_is_a_402_and_leaves_the_invoice_open() {
    let fake = FakeStripe::start().await;
    let (cus, _, invoice) = open_top_up(&fake, "declines").await;
    let pay = format!("/v1/invoices/{invoice}/pay");
    let (status, body) = post(&fake, &pay, Some("k1"), &[("off_session", "true")]).await;
    assert_eq!(status, 402);
    let e = &body["error"];
    assert_eq!(
        (&e["type"], &e["code"], &e["decline_code"]),
        (
            &json!("card_error"),
            &json!("card_declined"),
            &json!("generic_decline")
        )
    );
    assert_eq!(e["payment_intent"]["status"], "requires_payment_method");
    assert_eq!(
        e["payment_intent"]["last_payment_error"]["code"],
        "card_declined"
    );
    let (_, charge) = get(
        &fake,
        &format!("/v1/charges/{}", e["charge"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (&charge["status"], &charge["paid"]),
        (&json!("failed"), &json!(false))
    );
    // The same idempotency key replays the 402: no second attempt.
    let (again, replay) = post(&fake, &pay, Some("k1"), &[("off_session", "true")]).await;
    assert_eq!((again, &replay), (402, &body));
    let (_, open) = get(&fake, &format!("/v1/invoices/{invoice}")).await;
    assert_eq!(
        (
            &open["status"],
            &open["attempt_count"],
            &open["amount_paid"]
        ),
        (&json!("open"), &json!(1), &json!(0))
    );
    fake.with_state(|s| {
        let t = types(s);
        assert!(t.iter().any(|x| x == "charge.failed"));
        assert!(t.iter().any(|x| x == "payment_intent.payment_failed"));
        assert!(t.iter().any(|x| x == "invoice.payment_failed"));
        assert!(!t.iter().any(|x| x == "invoice.paid"));
    });
    // Another card pays the same invoice, through the same PaymentIntent.
    let good = fake.with_state(|s| s.attach_card(&cus, "succeeds").unwrap());
    let (status, paid) = post(&fake, &pay, None, &[("payment_method", &good)]).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        (&paid["status"], &paid["attempt_count"]),
        (&json!("paid"), &json!(2))
    );
    let (_, intent) = get(
        &fake,
        &format!(
            "/v1/payment_intents/{}",
            e["payment_intent"]["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        (&intent["status"], &intent["payment_method"]),
        (&json!("succeeded"), &json!(good))
    );
}

#[tokio::test]
async fn a_card_needing_authentication_fails_off_session_and_asks_for_action_on_session() {
    let fake = FakeStripe::start().await;
    let (_, card, invoice) = open_top_up(&fake, "requires_authentication").await;
    let pay = format!("/v1/invoices/{invoice}/pay");
    // `off_session` defaults to true.
    let (status, body) = post(&fake, &pay, None, &[]).await;
    assert_eq!(status, 402);
    let e = &body["error"];
    assert_eq!(
        (&e["type"], &e["code"], &e["decline_code"]),
        (
            &json!("card_error"),
            &json!("authentication_required"),
            &json!("authentication_required")
        )
    );
    assert_eq!(e["payment_intent"]["status"], "requires_payment_method");
    assert_eq!(e["payment_method"]["id"], json!(card));
    assert_eq!(
        e["payment_intent"]["last_payment_error"]["payment_method"]["card"]["last4"],
        "3184"
    );
    fake.with_state(|s| {
        let t = types(s);
        assert!(t.iter().any(|x| x == "invoice.payment_failed"));
        assert!(!t.iter().any(|x| x == "invoice.payment_action_required"));
        assert!(!t.iter().any(|x| x == "charge.failed"));
    });
    let (status, body) = post(&fake, &pay, None, &[("off_session", "false")]).await;
    assert_eq!(status, 402);
    assert_eq!(
        body["error"]["code"],
        "invoice_payment_intent_requires_action"
    );
    assert_eq!(body["error"]["payment_intent"]["status"], "requires_action");
    let (_, open) = get(&fake, &format!("/v1/invoices/{invoice}")).await;
    assert_eq!(
        (&open["status"], &open["attempt_count"]),
        (&json!("open"), &json!(2))
    );
    fake.with_state(|s| {
        assert!(
            types(s)
                .iter()
                .any(|x| x == "invoice.payment_action_required")
        );
    });
    let (status, void) = post(&fake, &format!("/v1/invoices/{invoice}/void"), None, &[]).await;
    assert_eq!((status, &void["status"]), (200, &json!("void")));
}

#[tokio::test]
async fn a_one_off_invoice_without_a_card_is_refused_but_a_subscription_invoice_is_paid() {
    let fake = FakeStripe::start().await;
    let (cus, sub_invoice) = fake.with_state(|s| {
        let cus = customer(s);
        let (_, price) = plan(s, "Plan", 800);
        let sub = s
            .create_subscription(
                &json!({"customer": cus, "items": [{"price": price}], "payment_behavior": "default_incomplete"}),
                &Ctx::default(),
            )
            .unwrap()
            .1;
        (cus, sub["latest_invoice"].as_str().unwrap().to_owned())
    });
    let (_, draft) = post(&fake, "/v1/invoices", None, &[("customer", &cus)]).await;
    post(
        &fake,
        "/v1/invoiceitems",
        None,
        &[
            ("customer", &cus),
            ("invoice", &id(&draft)),
            ("amount", "500"),
            ("currency", "usd"),
        ],
    )
    .await;
    post(
        &fake,
        &format!("/v1/invoices/{}/finalize", id(&draft)),
        None,
        &[],
    )
    .await;
    let (status, body) = post(
        &fake,
        &format!("/v1/invoices/{}/pay", id(&draft)),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("This customer has no attached payment source or default payment method")
    );
    let (status, paid) = post(&fake, &format!("/v1/invoices/{sub_invoice}/pay"), None, &[]).await;
    assert_eq!((status, &paid["status"]), (200, &json!("paid")));
}

#[tokio::test]
async fn checkout_with_setup_future_usage_saves_the_card_to_the_customer() {
    let fake = FakeStripe::start().await;
    let (cus, price) = fake.with_state(|s| (customer(s), pack(s, 1500)));
    let (status, cs) = post(
        &fake,
        "/v1/checkout/sessions",
        None,
        &[
            ("mode", "payment"),
            ("customer", &cus),
            ("line_items[0][price]", &price),
            ("payment_intent_data[setup_future_usage]", "off_session"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{cs}");
    let done = fake.with_state(|s| s.complete_session(&id(&cs), true).unwrap().1);
    let pi = done["payment_intent"].as_str().unwrap();
    let (_, methods) = get(
        &fake,
        &format!("/v1/customers/{cus}/payment_methods?type=card"),
    )
    .await;
    let saved = ids(&methods);
    assert_eq!(saved.len(), 1);
    let (_, intent) = get(&fake, &format!("/v1/payment_intents/{pi}")).await;
    assert_eq!(
        (
            &intent["status"],
            &intent["setup_future_usage"],
            &intent["payment_method"]
        ),
        (&json!("succeeded"), &json!("off_session"), &json!(saved[0]))
    );
    assert_eq!(
        get(&fake, &format!("/v1/payment_methods/{}", saved[0]))
            .await
            .1["customer"],
        json!(cus)
    );
    fake.with_state(|s| assert!(types(s).iter().any(|t| t == "payment_method.attached")));

    // Without it nothing is saved; `payment_intent_data` is for payment mode only.
    let (_, plain) = post(
        &fake,
        "/v1/checkout/sessions",
        None,
        &[
            ("mode", "payment"),
            ("customer", &cus),
            ("line_items[0][price]", &price),
        ],
    )
    .await;
    fake.with_state(|s| s.complete_session(&id(&plain), true).unwrap());
    let (_, methods) = get(&fake, &format!("/v1/payment_methods?customer={cus}")).await;
    assert_eq!(ids(&methods), saved);
    let (status, _) = post(
        &fake,
        "/v1/checkout/sessions",
        None,
        &[
            ("mode", "subscription"),
            ("line_items[0][price]", &price),
            ("payment_intent_data[setup_future_usage]", "off_session"),
        ],
    )
    .await;
    assert_eq!(status, 400);

    // A test can choose how the saved card behaves later.
    let (_, later) = post(
        &fake,
        "/v1/checkout/sessions",
        None,
        &[("mode", "payment"), ("line_items[0][price]", &price)],
    )
    .await;
    let buyer = fake.with_state(|s| {
        let (_, done) = s
            .complete_session_with_card(&id(&later), "declines")
            .unwrap();
        done["customer"].as_str().unwrap().to_owned()
    });
    let (_, methods) = get(&fake, &format!("/v1/customers/{buyer}/payment_methods")).await;
    assert_eq!(methods["data"][0]["card"]["last4"], "0002");
}

#[tokio::test]
async fn the_control_route_attaches_a_default_card() {
    let fake = FakeStripe::start().await;
    let cus = fake.with_state(customer);
    let r = client()
        .post(format!(
            "{}/_fake/customers/{cus}/payment_methods",
            fake.url()
        ))
        .json(&json!({"behavior": "requires_authentication", "default": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let pm: Value = r.json().await.unwrap();
    assert_eq!(pm["card"]["last4"], "3184");
    let (_, c) = get(&fake, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c["invoice_settings"]["default_payment_method"], pm["id"]);
}
