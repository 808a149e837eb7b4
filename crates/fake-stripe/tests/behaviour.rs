//! The fake behaves like Stripe at 2025-03-31.basil where the service depends on it:
//! price lists, refunds and disputes, prorations, subscription states, invoice lines
//! and payments, idempotency, checkout expiry and free orders.

use fake_stripe::{Ctx, FakeStripe, State};
use serde_json::{Value, json};

const DAY: i64 = 86_400;

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

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn types(s: &State) -> Vec<String> {
    s.events
        .values()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// A product with a monthly price of `amount`; returns the price id.
fn monthly(s: &mut State, name: &str, amount: i64) -> String {
    let ctx = Ctx::default();
    let (_, p) = s
        .create_product(&json!({"name": name, "default_price_data": {"currency": "usd", "unit_amount": amount, "recurring": {"interval": "month"}}}), &ctx)
        .unwrap();
    p["default_price"].as_str().unwrap().to_owned()
}

fn customer(s: &mut State) -> String {
    id(&s
        .create_customer(&json!({"email": "a@example.com"}), &Ctx::default())
        .unwrap()
        .1)
}

/// A paid one-off charge of `amount`: (charge id, payment intent id).
fn paid_charge(s: &mut State, amount: i64) -> (String, String) {
    let ctx = Ctx::default();
    let (_, p) = s
        .create_product(&json!({"name": "Pack", "default_price_data": {"currency": "usd", "unit_amount": amount}}), &ctx)
        .unwrap();
    let (_, cs) = s
        .create_checkout_session(
            &json!({"mode": "payment", "line_items": [{"price": p["default_price"]}]}),
            &ctx,
        )
        .unwrap();
    let (_, cs) = s.complete_session(&id(&cs), true).unwrap();
    let pi = cs["payment_intent"].as_str().unwrap().to_owned();
    let charge = s
        .charges
        .values()
        .find(|c| c["payment_intent"] == json!(pi))
        .unwrap();
    (id(charge), pi)
}

#[tokio::test]
async fn price_lists_hold_active_prices_unless_asked() {
    let fake = FakeStripe::start().await;
    let (active, archived) = fake.with_state(|s| {
        let a = monthly(s, "A", 100);
        let b = monthly(s, "B", 200);
        s.update_price(&b, &json!({"active": false}), &Ctx::default())
            .unwrap();
        (a, b)
    });
    let ids = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&get(&fake, "/v1/prices").await.1),
        std::slice::from_ref(&active)
    );
    assert_eq!(ids(&get(&fake, "/v1/prices?active=true").await.1), [active]);
    assert_eq!(
        ids(&get(&fake, "/v1/prices?active=false").await.1),
        [archived]
    );
    assert_eq!(
        get(&fake, "/v1/products").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_product_with_prices_cannot_be_deleted() {
    let fake = FakeStripe::start().await;
    let product = fake.with_state(|s| {
        let price = monthly(s, "A", 100);
        s.prices.get(&price).unwrap()["product"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let r = client()
        .delete(format!("{}/v1/products/{product}", fake.url()))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "This product cannot be deleted because it has one or more user-created prices."
    );
    let (status, _) = post(&fake, "/v1/prices/x", None, &[]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_validation_error_is_not_replayed_for_the_same_key() {
    let fake = FakeStripe::start().await;
    let (status, _) = post(&fake, "/v1/products", Some("k"), &[]).await;
    assert_eq!(status, 400, "name is required");
    let (status, p) = post(&fake, "/v1/products", Some("k"), &[("name", "Fixed")]).await;
    assert_eq!((status, p["name"].as_str()), (200, Some("Fixed")));
    let (_, again) = post(&fake, "/v1/products", Some("k"), &[("name", "Fixed")]).await;
    assert_eq!(again["id"], p["id"], "a success is replayed");
}

#[tokio::test]
async fn refunds_are_listed_not_embedded_and_can_fail_later() {
    let fake = FakeStripe::start().await;
    let (charge, pi, refund) = fake.with_state(|s| {
        let (charge, pi) = paid_charge(s, 2000);
        let ctx = Ctx::default();
        s.create_refund(&json!({"charge": charge, "amount": 500}), &ctx)
            .unwrap();
        let (_, r) = s
            .create_refund(&json!({"payment_intent": pi, "amount": 700}), &ctx)
            .unwrap();
        (charge, pi, id(&r))
    });
    let (_, c) = get(&fake, &format!("/v1/charges/{charge}")).await;
    assert!(
        c.get("refunds").is_none(),
        "charges no longer embed refunds"
    );
    assert_eq!(c["amount_refunded"], 1200);
    let (_, list) = get(&fake, &format!("/v1/refunds?charge={charge}&limit=1")).await;
    assert_eq!(
        (list["data"][0]["id"].as_str(), &list["has_more"]),
        (Some(refund.as_str()), &json!(true))
    );
    let (_, list) = get(&fake, &format!("/v1/refunds?payment_intent={pi}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);

    fake.with_state(|s| {
        s.events = Default::default();
        let (_, failed) = s.fail_refund(&refund).unwrap();
        assert_eq!(
            (&failed["status"], &failed["failure_reason"]),
            (&json!("failed"), &json!("expired_or_canceled_card"))
        );
        let c = s.charges.get(&charge).unwrap();
        assert_eq!(
            (&c["amount_refunded"], &c["refunded"]),
            (&json!(500), &json!(false))
        );
        assert_eq!(
            types(s),
            ["refund.updated", "charge.refund.updated", "refund.failed"]
        );
        assert!(
            s.cancel_refund(&refund).is_err(),
            "only requires_action refunds cancel"
        );
    });
}

#[test]
fn pending_refunds_settle_and_requires_action_ones_cancel() {
    let mut s = State::default();
    let (charge, _) = paid_charge(&mut s, 1000);
    s.refund_start_status = "pending".into();
    let (_, r) = s
        .create_refund(&json!({"charge": charge, "amount": 400}), &Ctx::default())
        .unwrap();
    assert_eq!(r["status"], "pending");
    assert_eq!(
        s.settle_refund(&id(&r), true).unwrap().1["status"],
        "succeeded"
    );
    s.refund_start_status = "requires_action".into();
    let (_, r) = s
        .create_refund(&json!({"charge": charge, "amount": 600}), &Ctx::default())
        .unwrap();
    assert_eq!(s.charges.get(&charge).unwrap()["refunded"], true);
    assert_eq!(s.cancel_refund(&id(&r)).unwrap().1["status"], "canceled");
    assert_eq!(s.charges.get(&charge).unwrap()["amount_refunded"], 400);
}

#[test]
fn disputes_withdraw_and_reinstate_funds_without_refunds() {
    let mut s = State::default();
    let (charge, pi) = paid_charge(&mut s, 1000);
    s.events = Default::default();
    let (_, d) = s.create_dispute(&charge, None, false).unwrap();
    assert_eq!(
        (&d["status"], &d["payment_intent"], &d["amount"]),
        (&json!("needs_response"), &json!(pi), &json!(1000))
    );
    assert_eq!(s.charges.get(&charge).unwrap()["disputed"], true);
    let (_, won) = s.close_dispute(&id(&d), true).unwrap();
    assert_eq!(won["status"], "won");
    assert_eq!(
        types(&s),
        [
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated"
        ]
    );
    assert!(s.refunds.is_empty());
    let (_, inquiry) = s.create_dispute(&charge, Some(300), true).unwrap();
    assert_eq!(inquiry["status"], "warning_needs_response");
    let (_, lost) = s.create_dispute(&charge, None, false).unwrap();
    assert_eq!(
        s.close_dispute(&id(&lost), false).unwrap().1["status"],
        "lost"
    );
}

#[test]
fn a_checkout_subscription_is_incomplete_until_its_first_invoice_is_paid() {
    let mut s = State::default();
    let price = monthly(&mut s, "Plan", 5000);
    let ctx = Ctx::default();
    let (_, cs) = s
        .create_checkout_session(
            &json!({"mode": "subscription", "line_items": [{"price": price}]}),
            &ctx,
        )
        .unwrap();
    s.events = Default::default();
    let (_, cs) = s.complete_session(&id(&cs), true).unwrap();
    let created: Vec<Value> = s
        .events
        .values()
        .filter(|e| e["type"] == "customer.subscription.created")
        .cloned()
        .collect();
    assert_eq!(created[0]["data"]["object"]["status"], "incomplete");
    let t = types(&s);
    let pos = |k: &str| t.iter().position(|x| x == k).unwrap();
    assert!(pos("customer.subscription.created") < pos("invoice.paid"));
    assert!(pos("invoice.paid") < pos("customer.subscription.updated"));
    assert!(pos("customer.subscription.updated") < pos("checkout.session.completed"));
    let sub = s
        .subscriptions
        .get(cs["subscription"].as_str().unwrap())
        .unwrap();
    assert_eq!(sub["status"], "active");
}

#[test]
fn a_failed_renewal_is_past_due_until_paid_weeks_later() {
    let mut s = State::default();
    let price = monthly(&mut s, "Plan", 5000);
    let cus = customer(&mut s);
    let (_, sub) = s
        .create_subscription(
            &json!({"customer": cus, "items": [{"price": price}]}),
            &Ctx::default(),
        )
        .unwrap();
    assert_eq!(sub["status"], "active");
    s.advance_clock(30 * DAY);
    let (_, invoice) = s.renew_subscription_unpaid(&id(&sub)).unwrap();
    assert_eq!(invoice["status"], "open");
    assert_eq!(
        s.subscriptions.get(&id(&sub)).unwrap()["status"],
        "past_due"
    );
    s.advance_clock(20 * DAY);
    let before = s.now();
    let (_, paid) = s.pay_invoice(&id(&invoice)).unwrap();
    assert_eq!(paid["status"], "paid");
    // Paid now (the clock may tick between the two readings).
    let paid_at = paid["status_transitions"]["paid_at"].as_i64().unwrap();
    assert!((before..=s.now()).contains(&paid_at), "{paid_at}");
    assert!(
        paid["status_transitions"]["paid_at"].as_i64().unwrap()
            > paid["lines"]["data"][0]["period"]["start"]
                .as_i64()
                .unwrap()
                + 19 * DAY
    );
    assert_eq!(s.subscriptions.get(&id(&sub)).unwrap()["status"], "active");
    assert!(s.pay_invoice(&id(&invoice)).is_err());
}

fn line_parent_proration(line: &Value) -> bool {
    let p = &line["parent"];
    let kind = p["type"].as_str().unwrap();
    p[kind]["proration"].as_bool().unwrap()
}

#[test]
fn an_upgrade_halfway_is_prorated_on_the_next_invoice() {
    let mut s = State::default();
    let basic = monthly(&mut s, "Basic", 1000);
    let pro = monthly(&mut s, "Pro", 3000);
    let cus = customer(&mut s);
    let ctx = Ctx::default();
    let (_, sub) = s
        .create_subscription(&json!({"customer": cus, "items": [{"price": basic}]}), &ctx)
        .unwrap();
    let item = id(&sub["items"]["data"][0]);
    s.advance_clock(15 * DAY);
    let (_, updated) = s
        .update_subscription(
            &id(&sub),
            &json!({"items": [{"id": item, "price": pro}]}),
            &ctx,
        )
        .unwrap();
    assert_eq!(updated["items"]["data"][0]["price"]["id"], json!(pro));
    let pending: Vec<Value> = s.invoice_items.values().cloned().collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0]["amount"], -500);
    assert_eq!(pending[1]["amount"], 1500);
    assert!(
        pending[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("Unused time on Basic after ")
    );
    assert!(
        pending[1]["description"]
            .as_str()
            .unwrap()
            .starts_with("Remaining time on Pro after ")
    );
    let (_, invoice) = s.renew_subscription(&id(&sub)).unwrap();
    let lines = invoice["lines"]["data"].as_array().unwrap();
    let amounts: Vec<i64> = lines
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [3000, -500, 1500]);
    let prorations: Vec<bool> = lines.iter().map(line_parent_proration).collect();
    assert_eq!(prorations, [false, true, true]);
    assert_eq!(lines[1]["parent"]["type"], "invoice_item_details");
    assert_eq!(lines[0]["parent"]["type"], "subscription_item_details");
    assert_eq!(invoice["amount_paid"], 4000);
    assert!(
        s.invoice_items
            .values()
            .all(|ii| ii["invoice"] == invoice["id"])
    );
}

#[test]
fn always_invoice_bills_prorations_now_and_credits_a_downgrade() {
    let mut s = State::default();
    let basic = monthly(&mut s, "Basic", 1000);
    let pro = monthly(&mut s, "Pro", 3000);
    let cus = customer(&mut s);
    let ctx = Ctx::default();
    let (_, sub) = s
        .create_subscription(
            &json!({"customer": cus, "items": [{"price": pro, "quantity": 2}]}),
            &ctx,
        )
        .unwrap();
    let item = id(&sub["items"]["data"][0]);
    let start = sub["items"]["data"][0]["current_period_start"]
        .as_i64()
        .unwrap();
    // A downgrade a third into the period: 6000 → 1000, 20 of 30 days left.
    let (_, sub) = s
        .update_subscription(
            &id(&sub),
            &json!({"items": [{"id": item, "price": basic, "quantity": "1"}], "proration_behavior": "always_invoice", "proration_date": (start + 10 * DAY).to_string()}),
            &ctx,
        )
        .unwrap();
    let invoice = s
        .invoices
        .get(sub["latest_invoice"].as_str().unwrap())
        .unwrap()
        .clone();
    assert_eq!(invoice["billing_reason"], "subscription_update");
    let amounts: Vec<i64> = invoice["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [-4000, 667]);
    assert_eq!(
        (
            &invoice["status"],
            &invoice["amount_due"],
            &invoice["amount_paid"]
        ),
        (&json!("paid"), &json!(0), &json!(0))
    );
    assert_eq!(
        invoice["lines"]["data"][0]["period"],
        json!({"start": start + 10 * DAY, "end": start + 30 * DAY})
    );
    assert_eq!(s.customers.get(&cus).unwrap()["balance"], -3333);
    // The credit pays the next invoice first.
    let (_, next) = s.renew_subscription(&id(&sub)).unwrap();
    assert_eq!(
        (
            &next["total"],
            &next["amount_due"],
            &next["starting_balance"],
            &next["ending_balance"]
        ),
        (&json!(1000), &json!(0), &json!(-3333), &json!(-2333))
    );
    // `none` makes no prorations.
    s.advance_clock(35 * DAY);
    let (_, _) = s
        .update_subscription(
            &id(&sub),
            &json!({"items": [{"id": item, "price": pro}], "proration_behavior": "none"}),
            &ctx,
        )
        .unwrap();
    assert_eq!(s.invoice_items.len(), 2);
}

#[tokio::test]
async fn invoices_embed_ten_lines_and_page_the_rest_and_list_every_payment() {
    let fake = FakeStripe::start().await;
    let (invoice, pis) = fake.with_state(|s| {
        let cus = customer(s);
        let items: Vec<Value> = (0..12)
            .map(|i| json!({"price": monthly(s, &format!("Seat {i}"), 100)}))
            .collect();
        let (_, sub) = s
            .create_subscription(
                &json!({"customer": cus, "items": items, "payment_behavior": "default_incomplete"}),
                &Ctx::default(),
            )
            .unwrap();
        assert_eq!(sub["status"], "incomplete");
        let invoice = sub["latest_invoice"].as_str().unwrap().to_owned();
        let (_, paid) = s.pay_invoice_in_parts(&invoice, &[700, 500]).unwrap();
        assert_eq!(paid["status"], "paid");
        assert_eq!(s.subscriptions.get(&id(&sub)).unwrap()["status"], "active");
        let pis: Vec<String> = s
            .charges
            .values()
            .map(|c| c["payment_intent"].as_str().unwrap().to_owned())
            .collect();
        (invoice, pis)
    });
    let (_, inv) = get(&fake, &format!("/v1/invoices/{invoice}")).await;
    assert_eq!(inv["lines"]["data"].as_array().unwrap().len(), 10);
    assert_eq!(inv["lines"]["has_more"], true);
    let (_, page) = get(&fake, &format!("/v1/invoices/{invoice}/lines?limit=100")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 12);
    let last = id(&inv["lines"]["data"][9]);
    let (_, rest) = get(
        &fake,
        &format!("/v1/invoices/{invoice}/lines?starting_after={last}"),
    )
    .await;
    assert_eq!(
        (rest["data"].as_array().unwrap().len(), &rest["has_more"]),
        (2, &json!(false))
    );

    let (_, payments) = get(&fake, &format!("/v1/invoice_payments?invoice={invoice}")).await;
    let paid: Vec<&Value> = payments["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "paid")
        .collect();
    assert_eq!(paid.len(), 2);
    let mut paid_pis: Vec<String> = paid
        .iter()
        .map(|p| p["payment"]["payment_intent"].as_str().unwrap().to_owned())
        .collect();
    paid_pis.sort();
    let mut pis = pis;
    pis.sort();
    assert_eq!(
        paid_pis, pis,
        "each part has its own payment intent and charge"
    );
    let (_, expanded) = get(&fake, &format!("/v1/invoices/{invoice}?expand[]=payments")).await;
    assert_eq!(
        expanded["payments"]["data"].as_array().unwrap().len(),
        3,
        "two parts and the canceled default"
    );
    // A refund of either part finds its charge.
    let (status, _) = post(
        &fake,
        "/v1/refunds",
        None,
        &[("payment_intent", &pis[1]), ("amount", "100")],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn checkout_sessions_expire_and_free_ones_need_no_payment() {
    let fake = FakeStripe::start().await;
    let (free, paid) = fake.with_state(|s| {
        let ctx = Ctx::default();
        let (_, p) = s.create_product(&json!({"name": "Free", "default_price_data": {"currency": "usd", "unit_amount": 0}}), &ctx).unwrap();
        let (_, free) = s.create_checkout_session(&json!({"mode": "payment", "line_items": [{"price": p["default_price"]}]}), &ctx).unwrap();
        let (_, q) = s.create_product(&json!({"name": "Paid", "default_price_data": {"currency": "usd", "unit_amount": 100}}), &ctx).unwrap();
        let (_, paid) = s.create_checkout_session(&json!({"mode": "payment", "line_items": [{"price": q["default_price"]}]}), &ctx).unwrap();
        (id(&free), id(&paid))
    });
    let (status, expired) = post(
        &fake,
        &format!("/v1/checkout/sessions/{paid}/expire"),
        None,
        &[],
    )
    .await;
    assert_eq!((status, &expired["status"]), (200, &json!("expired")));
    let (status, _) = post(
        &fake,
        &format!("/v1/checkout/sessions/{paid}/expire"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 400);
    fake.with_state(|s| {
        assert!(
            s.events
                .values()
                .any(|e| e["type"] == "checkout.session.expired")
        );
        let (_, done) = s.complete_session(&free, true).unwrap();
        assert_eq!(
            (&done["payment_status"], &done["payment_intent"]),
            (&json!("no_payment_required"), &Value::Null)
        );
        assert!(s.charges.is_empty());
    });
}

#[test]
fn livemode_is_stamped_everywhere() {
    let mut s = State {
        livemode: true,
        ..State::default()
    };
    let (charge, _) = paid_charge(&mut s, 500);
    s.create_refund(&json!({"charge": charge}), &Ctx::default())
        .unwrap();
    s.create_dispute(&charge, None, false).unwrap();
    for e in s.events.values() {
        assert_eq!(e["livemode"], true, "{}", e["type"]);
        if let Some(live) = e["data"]["object"].get("livemode") {
            assert_eq!(live, true, "{}", e["type"]);
        }
    }
}

#[tokio::test]
async fn a_portal_session_opens_for_an_existing_customer_only() {
    let fake = FakeStripe::start().await;
    let cus = fake.with_state(customer);
    let (status, session) = post(
        &fake,
        "/v1/billing_portal/sessions",
        None,
        &[
            ("customer", &cus),
            ("return_url", "https://example.com/account"),
            ("locale", "de"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let default_configuration = fake.with_state(|s| s.portal_configuration.clone());
    assert!(default_configuration.starts_with("bpc_"));
    let mut keys: Vec<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "configuration",
            "created",
            "customer",
            "flow",
            "id",
            "livemode",
            "locale",
            "object",
            "on_behalf_of",
            "return_url",
            "url"
        ]
    );
    assert!(id(&session).starts_with("bps_"));
    assert_eq!(session["object"], "billing_portal.session");
    assert_eq!(session["configuration"], json!(default_configuration));
    assert_eq!(session["customer"], json!(cus));
    assert_eq!(session["locale"], "de");
    assert_eq!(session["return_url"], "https://example.com/account");
    assert_eq!(
        (
            &session["flow"],
            &session["on_behalf_of"],
            &session["livemode"]
        ),
        (&Value::Null, &Value::Null, &json!(false))
    );
    assert!(
        session["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/p/session/test_")
    );
    fake.with_state(|s| {
        assert_eq!(s.portal_sessions.get(&id(&session)), Some(&session));
        assert!(
            s.events
                .values()
                .any(|e| e["type"] == "billing_portal.session.created"
                    && e["data"]["object"]["id"] == session["id"])
        );
    });

    // Optional parameters left out: the default configuration, no locale, no return URL.
    let (_, bare) = post(
        &fake,
        "/v1/billing_portal/sessions",
        None,
        &[("customer", &cus), ("configuration", "bpc_custom")],
    )
    .await;
    assert_eq!(
        (&bare["configuration"], &bare["locale"], &bare["return_url"]),
        (&json!("bpc_custom"), &Value::Null, &Value::Null)
    );

    let (status, e) = post(
        &fake,
        "/v1/billing_portal/sessions",
        None,
        &[("customer", "cus_nope")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        e["error"],
        json!({"type": "invalid_request_error", "code": "resource_missing",
               "message": "No such customer: 'cus_nope'", "param": "customer"})
    );
    let (status, e) = post(&fake, "/v1/billing_portal/sessions", None, &[]).await;
    assert_eq!((status, &e["error"]["param"]), (400, &json!("customer")));
    for (param, value) in [
        ("locale", "xx"),
        ("return_url", "example.com"),
        ("configuration", "nope"),
    ] {
        let (status, e) = post(
            &fake,
            "/v1/billing_portal/sessions",
            None,
            &[("customer", &cus), (param, value)],
        )
        .await;
        assert_eq!((status, &e["error"]["param"]), (400, &json!(param)), "{e}");
    }
    assert_eq!(fake.with_state(|s| s.portal_sessions.len()), 2);
}

#[test]
fn a_trial_starts_with_a_free_invoice_and_bills_when_it_ends() {
    let mut s = State::default();
    let price = monthly(&mut s, "Plan", 5000);
    let cus = customer(&mut s);
    let ctx = Ctx::default();
    s.events = Default::default();
    let start = s.now();
    let (_, sub) = s
        .create_subscription(
            &json!({"customer": cus, "items": [{"price": price}], "trial_period_days": "14"}),
            &ctx,
        )
        .unwrap();
    let trial_end = sub["trial_end"].as_i64().unwrap();
    let trial_start = sub["trial_start"].as_i64().unwrap();
    assert!((start..=s.now()).contains(&trial_start));
    assert_eq!(trial_end, trial_start + 14 * DAY);
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["billing_cycle_anchor"], trial_end);
    let item = &sub["items"]["data"][0];
    assert_eq!(
        (&item["current_period_start"], &item["current_period_end"]),
        (&json!(trial_start), &json!(trial_end))
    );
    let free = s
        .invoices
        .get(sub["latest_invoice"].as_str().unwrap())
        .unwrap()
        .clone();
    assert_eq!(
        (
            &free["status"],
            &free["total"],
            &free["amount_paid"],
            &free["billing_reason"]
        ),
        (
            &json!("paid"),
            &json!(0),
            &json!(0),
            &json!("subscription_create")
        )
    );
    let line = &free["lines"]["data"][0];
    assert_eq!(
        (&line["amount"], &line["description"]),
        (&json!(0), &json!("Trial period for Plan"))
    );
    assert_eq!(
        line["period"],
        json!({"start": trial_start, "end": trial_end})
    );
    assert!(s.charges.is_empty(), "a trial needs no payment");
    assert_eq!(
        types(&s),
        [
            "customer.subscription.created",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );

    s.events = Default::default();
    let (_, invoice) = s.end_trial(&id(&sub)).unwrap();
    assert!(s.now() >= trial_end, "the clock moved to the trial's end");
    let after = s.subscriptions.get(&id(&sub)).unwrap().clone();
    assert_eq!(after["status"], "active");
    assert_eq!(
        (&after["trial_start"], &after["trial_end"]),
        (&json!(trial_start), &json!(trial_end)),
        "the trial stays on record"
    );
    let item = &after["items"]["data"][0];
    assert_eq!(
        (&item["current_period_start"], &item["current_period_end"]),
        (&json!(trial_end), &json!(trial_end + 30 * DAY))
    );
    assert_eq!(
        (
            &invoice["status"],
            &invoice["amount_paid"],
            &invoice["billing_reason"]
        ),
        (&json!("paid"), &json!(5000), &json!("subscription_cycle"))
    );
    assert_eq!(after["latest_invoice"], invoice["id"]);
    assert_eq!(
        types(&s),
        [
            "customer.subscription.updated",
            "invoice.created",
            "invoice.finalized",
            "charge.succeeded",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );
    let updated = &s.events.values().next().unwrap()["data"];
    assert_eq!(updated["object"]["status"], "active");
    assert_eq!(updated["previous_attributes"]["status"], "trialing");
    assert!(s.end_trial(&id(&sub)).is_err(), "no longer trialing");

    // `trial_end` as a time; `now` is no trial; bad values are 400s.
    let at = s.now() + 3 * DAY;
    let (_, timed) = s
        .create_subscription(
            &json!({"customer": cus, "items": [{"price": price}], "trial_end": at.to_string()}),
            &ctx,
        )
        .unwrap();
    assert_eq!(
        (&timed["status"], &timed["trial_end"]),
        (&json!("trialing"), &json!(at))
    );
    let (_, none) = s
        .create_subscription(
            &json!({"customer": cus, "items": [{"price": price}], "trial_end": "now"}),
            &ctx,
        )
        .unwrap();
    assert_eq!(
        (&none["status"], &none["trial_end"]),
        (&json!("active"), &Value::Null)
    );
    for bad in [
        json!({"trial_end": (s.now() - 10).to_string()}),
        json!({"trial_end": at.to_string(), "trial_period_days": "3"}),
        json!({"trial_period_days": "731"}),
        json!({"trial_period_days": "-1"}),
        json!({"trial_end": "soon"}),
    ] {
        let mut p = bad.clone();
        p["customer"] = json!(cus);
        p["items"] = json!([{"price": price}]);
        let e = s.create_subscription(&p, &ctx).unwrap_err();
        assert_eq!(e.status, 400, "{bad}");
    }
}

#[test]
fn a_subscription_set_to_cancel_ends_at_period_end_instead_of_renewing() {
    let mut s = State::default();
    let price = monthly(&mut s, "Plan", 5000);
    let cus = customer(&mut s);
    let ctx = Ctx::default();
    let mut ended = Vec::new();
    for unpaid in [false, true] {
        let (_, sub) = s
            .create_subscription(&json!({"customer": cus, "items": [{"price": price}]}), &ctx)
            .unwrap();
        let period_end = sub["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap();
        s.advance_clock(5 * DAY);
        let requested = s.now();
        s.update_subscription(&id(&sub), &json!({"cancel_at_period_end": "true"}), &ctx)
            .unwrap();
        let invoices = s.invoices.len();
        s.events = Default::default();
        let (_, answer) = if unpaid {
            s.renew_subscription_unpaid(&id(&sub)).unwrap()
        } else {
            s.renew_subscription(&id(&sub)).unwrap()
        };
        assert_eq!(answer["object"], "subscription");
        assert_eq!(answer["status"], "canceled");
        assert_eq!(answer["ended_at"], period_end);
        let canceled_at = answer["canceled_at"].as_i64().unwrap();
        assert!(canceled_at >= requested && canceled_at <= period_end);
        assert!(s.now() >= period_end, "the clock moved to the period end");
        assert_eq!(s.invoices.len(), invoices, "no invoice");
        assert_eq!(types(&s), ["customer.subscription.deleted"]);
        assert_eq!(s.subscriptions.get(&id(&sub)), Some(&answer));
        assert!(
            s.renew_subscription(&id(&sub)).is_err(),
            "a canceled subscription does not renew"
        );
        ended.push(id(&sub));
    }

    // Scheduled with `cancel_subscription(id, true)` (`cancel_at` = period end, and
    // `canceled_at` = the request): it ends at `cancel_at`, even when renewed late.
    let (_, sub) = s
        .create_subscription(&json!({"customer": cus, "items": [{"price": price}]}), &ctx)
        .unwrap();
    let (_, scheduled) = s.cancel_subscription(&id(&sub), true).unwrap();
    let cancel_at = scheduled["cancel_at"].as_i64().unwrap();
    s.advance_clock(40 * DAY);
    let (_, answer) = s.renew_subscription(&id(&sub)).unwrap();
    assert_eq!(
        (
            &answer["status"],
            &answer["ended_at"],
            &answer["canceled_at"]
        ),
        (
            &json!("canceled"),
            &json!(cancel_at),
            &scheduled["canceled_at"]
        )
    );
}

#[tokio::test]
async fn a_resumed_subscription_renews_and_a_delete_ends_it_at_once() {
    let fake = FakeStripe::start().await;
    let (sub, period_end) = fake.with_state(|s| {
        let price = monthly(s, "Plan", 5000);
        let cus = customer(s);
        let (_, sub) = s
            .create_subscription(
                &json!({"customer": cus, "items": [{"price": price}]}),
                &Ctx::default(),
            )
            .unwrap();
        let end = sub["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap();
        (id(&sub), end)
    });
    let path = format!("/v1/subscriptions/{sub}");
    let (status, scheduled) = post(&fake, &path, None, &[("cancel_at_period_end", "true")]).await;
    assert_eq!(
        (
            status,
            &scheduled["cancel_at_period_end"],
            &scheduled["cancel_at"]
        ),
        (200, &json!(true), &json!(period_end))
    );
    let (status, resumed) = post(&fake, &path, None, &[("cancel_at_period_end", "false")]).await;
    assert_eq!(
        (
            status,
            &resumed["cancel_at_period_end"],
            &resumed["cancel_at"]
        ),
        (200, &json!(false), &Value::Null)
    );
    let invoice = fake.with_state(|s| {
        s.advance_clock(30 * DAY);
        s.renew_subscription(&sub).unwrap().1
    });
    assert_eq!(
        (
            &invoice["object"],
            &invoice["status"],
            &invoice["amount_paid"]
        ),
        (&json!("invoice"), &json!("paid"), &json!(5000))
    );
    let (_, renewed) = get(&fake, &path).await;
    assert_eq!(renewed["status"], "active");
    assert_eq!(
        renewed["items"]["data"][0]["current_period_start"],
        period_end
    );

    fake.with_state(|s| s.events = Default::default());
    let r = client()
        .delete(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deleted: Value = r.json().await.unwrap();
    assert_eq!(deleted["status"], "canceled");
    assert!(deleted["ended_at"].is_i64());
    fake.with_state(|s| {
        assert_eq!(types(s), ["customer.subscription.deleted"]);
        assert_eq!(s.subscriptions.get(&sub).unwrap()["status"], "canceled");
    });
}
