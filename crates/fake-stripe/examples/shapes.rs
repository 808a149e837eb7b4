//! Drives the fake through scenarios that make every kind of object and every event
//! type it emits, and writes each JSON as served over HTTP and as sent in events to
//! `$FAKE_STRIPE_SHAPES_DIR/shapes.json` (`[{"type": "Stripe.Invoice", "source": …,
//! "value": …}, …]`). `scripts/typecheck-fake` turns that into TypeScript checked
//! against Stripe's own definitions (`stripe@18.0.0`, API version 2025-03-31.basil).

use std::collections::BTreeSet;

use fake_stripe::{Ctx, FakeStripe, State};
use serde_json::{Value, json};

const DAY: i64 = 86_400;

/// The TypeScript type of a Stripe object, from its `object` field.
fn ts_type(v: &Value) -> Option<&'static str> {
    Some(match v["object"].as_str()? {
        "product" if v["deleted"] == json!(true) => "Stripe.DeletedProduct",
        "product" => "Stripe.Product",
        "price" => "Stripe.Price",
        "customer" if v["deleted"] == json!(true) => "Stripe.DeletedCustomer",
        "customer" => "Stripe.Customer",
        "subscription_schedule" => "Stripe.SubscriptionSchedule",
        "credit_note" => "Stripe.CreditNote",
        "credit_note_line_item" => "Stripe.CreditNoteLineItem",
        "checkout.session" => "Stripe.Checkout.Session",
        "item" => "Stripe.LineItem",
        "subscription" => "Stripe.Subscription",
        "subscription_item" => "Stripe.SubscriptionItem",
        "invoice" => "Stripe.Invoice",
        "line_item" => "Stripe.InvoiceLineItem",
        "invoice_payment" => "Stripe.InvoicePayment",
        "invoiceitem" => "Stripe.InvoiceItem",
        "charge" => "Stripe.Charge",
        "refund" => "Stripe.Refund",
        "dispute" => "Stripe.Dispute",
        "billing_portal.session" => "Stripe.BillingPortal.Session",
        "event" => "Stripe.Event",
        "entitlements.feature" => "Stripe.Entitlements.Feature",
        "entitlements.active_entitlement" => "Stripe.Entitlements.ActiveEntitlement",
        "entitlements.active_entitlement_summary" => "Stripe.Entitlements.ActiveEntitlementSummary",
        "product_feature" if v["deleted"] == json!(true) => "Stripe.DeletedProductFeature",
        "product_feature" => "Stripe.ProductFeature",
        "payment_method" => "Stripe.PaymentMethod",
        "payment_intent" => "Stripe.PaymentIntent",
        _ => return None,
    })
}

struct Shapes {
    out: Vec<Value>,
}

impl Shapes {
    fn add(&mut self, source: &str, v: &Value) {
        if v["object"] == json!("list") {
            let item = v["data"]
                .as_array()
                .and_then(|d| d.first())
                .and_then(ts_type);
            if let Some(t) = item {
                self.out.push(
                    json!({"type": format!("Stripe.ApiList<{t}>"), "source": source, "value": v}),
                );
            }
            for x in v["data"].as_array().into_iter().flatten() {
                self.add(source, x);
            }
            return;
        }
        let t = ts_type(v).unwrap_or_else(|| panic!("{source}: no TypeScript type for {v}"));
        self.out
            .push(json!({"type": t, "source": source, "value": v}));
    }
}

async fn get(fake: &FakeStripe, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_shapes")
        .send()
        .await
        .expect("the fake answers");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("JSON")
}

async fn post(fake: &FakeStripe, path: &str, form: &[(&str, &str)]) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_shapes")
        .form(form)
        .send()
        .await
        .expect("the fake answers");
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r.json().await.expect("JSON")
}

/// A POST that may fail (a card error): the status and the body.
async fn post_any(fake: &FakeStripe, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_shapes")
        .form(form)
        .send()
        .await
        .expect("the fake answers");
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

async fn delete(fake: &FakeStripe, path: &str) -> Value {
    let r = reqwest::Client::new()
        .delete(format!("{}{path}", fake.url()))
        .bearer_auth("sk_test_shapes")
        .send()
        .await
        .expect("the fake answers");
    assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
    r.json().await.expect("JSON")
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

fn monthly(s: &mut State, name: &str, amount: i64) -> String {
    let (_, p) = s
        .create_product(&json!({"name": name, "description": format!("The {name} plan"), "default_price_data": {"currency": "usd", "unit_amount": amount, "recurring": {"interval": "month"}}}), &Ctx::default())
        .expect("product");
    id(&json!({"id": p["default_price"]}))
}

fn one_time(s: &mut State, name: &str, amount: i64) -> String {
    let (_, p) = s
        .create_product(&json!({"name": name, "metadata": {"credit_amount": "100"}, "default_price_data": {"currency": "usd", "unit_amount": amount}}), &Ctx::default())
        .expect("product");
    id(&json!({"id": p["default_price"]}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::var("FAKE_STRIPE_SHAPES_DIR")
        .expect("FAKE_STRIPE_SHAPES_DIR names the output directory");
    let fake = FakeStripe::start().await;
    let mut shapes = Shapes { out: Vec::new() };

    // Catalog: products and prices, created, updated, archived, deleted.
    let product = post(
        &fake,
        "/v1/products",
        &[("name", "Credits"), ("metadata[credit_amount]", "10")],
    )
    .await;
    let price = post(
        &fake,
        "/v1/prices",
        &[
            ("product", &id(&product)),
            ("currency", "usd"),
            ("unit_amount", "500"),
        ],
    )
    .await;
    post(
        &fake,
        &format!("/v1/prices/{}", id(&price)),
        &[("nickname", "Five")],
    )
    .await;
    post(
        &fake,
        &format!("/v1/products/{}", id(&product)),
        &[("default_price", &id(&price))],
    )
    .await;
    let lonely = post(&fake, "/v1/products", &[("name", "Lonely")]).await;
    let deleted = reqwest::Client::new()
        .delete(format!("{}/v1/products/{}", fake.url(), id(&lonely)))
        .bearer_auth("sk_test_shapes")
        .send()
        .await
        .expect("delete")
        .json::<Value>()
        .await
        .expect("JSON");
    shapes.add("DELETE /v1/products/{id}", &deleted);
    let gone = fake.with_state(|s| {
        let p = one_time(s, "Gone", 100);
        s.update_price(&p, &json!({"active": false}), &Ctx::default())
            .expect("archive");
        s.delete_price(&p, &Ctx::default())
            .expect("fake-only delete");
        p
    });
    let _ = gone;

    // Payments: a paid one-off checkout, refunds (partial, failed, pending, canceled),
    // disputes (won, lost, inquiry); an async payment settled both ways; an expired
    // session and a free one.
    let (pack, free) = fake.with_state(|s| (one_time(s, "Pack", 2000), one_time(s, "Sample", 0)));
    let cs = post(
        &fake,
        "/v1/checkout/sessions",
        &[
            ("mode", "payment"),
            ("line_items[0][price]", &pack),
            ("line_items[0][quantity]", "2"),
            ("client_reference_id", "acct_1"),
            ("metadata[account]", "acct_1"),
            ("success_url", "https://example.com/ok"),
            ("cancel_url", "https://example.com/no"),
        ],
    )
    .await;
    let (charge, pi) = fake.with_state(|s| {
        let (_, done) = s.complete_session(&id(&cs), true).expect("complete");
        let pi = done["payment_intent"].as_str().expect("pi").to_owned();
        let charge = id(s
            .charges
            .values()
            .find(|c| c["payment_intent"] == json!(pi))
            .expect("charge"));
        (charge, pi)
    });
    let refund = post(
        &fake,
        "/v1/refunds",
        &[
            ("payment_intent", &pi),
            ("amount", "1000"),
            ("reason", "requested_by_customer"),
        ],
    )
    .await;
    fake.with_state(|s| {
        s.fail_refund(&id(&refund)).expect("fail");
        s.refund_start_status = "pending".into();
        let (_, r) = s
            .create_refund(&json!({"charge": charge, "amount": 500}), &Ctx::default())
            .expect("pending");
        s.settle_refund(&id(&r), true).expect("settle");
        s.refund_start_status = "requires_action".into();
        let (_, r) = s
            .create_refund(&json!({"charge": charge, "amount": 500}), &Ctx::default())
            .expect("requires_action");
        s.refund_start_status = "succeeded".into();
        let _ = r;
    });
    let action = fake.with_state(|s| id(s.refunds.values().last().expect("refund")));
    post(&fake, &format!("/v1/refunds/{action}/cancel"), &[]).await;
    let disputes = fake.with_state(|s| {
        let (_, won) = s.create_dispute(&charge, None, false).expect("dispute");
        s.close_dispute(&id(&won), true).expect("won");
        let (_, inquiry) = s.create_dispute(&charge, Some(500), true).expect("inquiry");
        s.close_dispute(&id(&inquiry), false)
            .expect("inquiry closed");
        let (_, lost) = s.create_dispute(&charge, None, false).expect("dispute");
        id(&lost)
    });
    post(&fake, &format!("/v1/disputes/{disputes}/close"), &[]).await;
    let slow = post(
        &fake,
        "/v1/checkout/sessions",
        &[("mode", "payment"), ("line_items[0][price]", &pack)],
    )
    .await;
    let failing = post(
        &fake,
        "/v1/checkout/sessions",
        &[("mode", "payment"), ("line_items[0][price]", &pack)],
    )
    .await;
    fake.with_state(|s| {
        s.complete_session(&id(&slow), false)
            .expect("complete unpaid");
        s.settle_async_payment(&id(&slow), true).expect("settle");
        s.complete_session(&id(&failing), false)
            .expect("complete unpaid");
        s.settle_async_payment(&id(&failing), false).expect("fail");
    });
    let expiring = post(
        &fake,
        "/v1/checkout/sessions",
        &[("mode", "payment"), ("line_items[0][price]", &pack)],
    )
    .await;
    post(
        &fake,
        &format!("/v1/checkout/sessions/{}/expire", id(&expiring)),
        &[],
    )
    .await;
    let free_cs = post(
        &fake,
        "/v1/checkout/sessions",
        &[("mode", "payment"), ("line_items[0][price]", &free)],
    )
    .await;
    fake.with_state(|s| s.complete_session(&id(&free_cs), true).map(|_| ()))
        .expect("free");

    // Billing: a Checkout subscription, plan changes (pending prorations, invoiced at
    // once, a downgrade credited), renewals (paid, failed then paid weeks later), an
    // invoice with many lines paid in parts, cancellations.
    let (basic, pro) = fake.with_state(|s| (monthly(s, "Basic", 1000), monthly(s, "Pro", 3000)));
    let sub_cs = post(
        &fake,
        "/v1/checkout/sessions",
        &[
            ("mode", "subscription"),
            ("line_items[0][price]", &basic),
            ("customer_email", "sub@example.com"),
        ],
    )
    .await;
    let sub = fake.with_state(|s| {
        let (_, done) = s.complete_session(&id(&sub_cs), true).expect("complete");
        done["subscription"].as_str().expect("sub").to_owned()
    });
    let started = get(&fake, &format!("/v1/subscriptions/{sub}")).await;
    shapes.add("GET /v1/subscriptions/{id} items", &started["items"]);
    let item = id(&started["items"]["data"][0]);
    fake.with_state(|s| s.advance_clock(10 * DAY));
    post(
        &fake,
        &format!("/v1/subscriptions/{sub}"),
        &[("items[0][id]", &item), ("items[0][price]", &pro)],
    )
    .await;
    fake.with_state(|s| {
        s.advance_clock(25 * DAY);
        s.renew_subscription(&sub).expect("renew");
        s.advance_clock(10 * DAY);
    });
    post(
        &fake,
        &format!("/v1/subscriptions/{sub}"),
        &[
            ("items[0][id]", &item),
            ("items[0][price]", &basic),
            ("proration_behavior", "always_invoice"),
        ],
    )
    .await;
    fake.with_state(|s| s.advance_clock(3 * DAY));
    post(
        &fake,
        &format!("/v1/subscriptions/{sub}"),
        &[
            ("items[0][id]", &item),
            ("items[0][price]", &pro),
            ("items[0][quantity]", "2"),
            ("proration_behavior", "always_invoice"),
            ("metadata[plan]", "pro"),
        ],
    )
    .await;
    let unpaid = fake.with_state(|s| {
        s.advance_clock(30 * DAY);
        let (_, inv) = s.renew_subscription_unpaid(&sub).expect("unpaid");
        s.advance_clock(20 * DAY);
        id(&inv)
    });
    post(&fake, &format!("/v1/invoices/{unpaid}/pay"), &[]).await;
    let customer = post(
        &fake,
        "/v1/customers",
        &[("email", "many@example.com"), ("name", "Many Seats")],
    )
    .await;
    let mut form = vec![
        ("customer".to_owned(), id(&customer)),
        (
            "payment_behavior".to_owned(),
            "default_incomplete".to_owned(),
        ),
    ];
    let seats: Vec<String> = fake.with_state(|s| {
        (0..12)
            .map(|i| monthly(s, &format!("Seat {i}"), 100 + i))
            .collect()
    });
    for (i, seat) in seats.iter().enumerate() {
        form.push((format!("items[{i}][price]"), seat.clone()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let many = post(&fake, "/v1/subscriptions", &form).await;
    let many_invoice = many["latest_invoice"].as_str().expect("invoice").to_owned();
    fake.with_state(|s| {
        s.pay_invoice_in_parts(&many_invoice, &[600]).expect("part");
        s.pay_invoice_in_parts(&many_invoice, &[666]).expect("rest");
        s.cancel_subscription(&id(&many), true)
            .expect("at period end");
        s.cancel_subscription(&sub, false).expect("now");
    });

    // A trial ($0 invoice, then the first real one when it ends); a subscription set to
    // cancel at period end that ends there instead of renewing; a customer portal session.
    let trial = post(
        &fake,
        "/v1/subscriptions",
        &[
            ("customer", &id(&customer)),
            ("items[0][price]", &basic),
            ("trial_period_days", "7"),
        ],
    )
    .await;
    fake.with_state(|s| s.end_trial(&id(&trial)).expect("trial ends"));
    let leaving = post(
        &fake,
        "/v1/subscriptions",
        &[("customer", &id(&customer)), ("items[0][price]", &pro)],
    )
    .await;
    post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&leaving)),
        &[("cancel_at_period_end", "true")],
    )
    .await;
    fake.with_state(|s| s.renew_subscription(&id(&leaving)).expect("ends"));
    let portal = post(
        &fake,
        "/v1/billing_portal/sessions",
        &[
            ("customer", &id(&customer)),
            ("return_url", "https://example.com/account"),
            ("locale", "fr"),
        ],
    )
    .await;
    shapes.add("POST /v1/billing_portal/sessions", &portal);

    // A downgrade left for the period's end (a subscription schedule made from the
    // subscription, its phases set, released); credit notes (refunding, to the balance,
    // voided, and one on an open invoice); paused collection and a cancel_at of its own;
    // a customer deleted (its subscription canceled).
    let planned = post(
        &fake,
        "/v1/subscriptions",
        &[("customer", &id(&customer)), ("items[0][price]", &pro)],
    )
    .await;
    let schedule = post(
        &fake,
        "/v1/subscription_schedules",
        &[("from_subscription", &id(&planned))],
    )
    .await;
    shapes.add("POST /v1/subscription_schedules", &schedule);
    let phase = &schedule["phases"][0];
    let (start, end) = (
        phase["start_date"].as_i64().expect("start").to_string(),
        phase["end_date"].as_i64().expect("end").to_string(),
    );
    let phased = post(
        &fake,
        &format!("/v1/subscription_schedules/{}", id(&schedule)),
        &[
            ("end_behavior", "release"),
            ("proration_behavior", "none"),
            ("phases[0][items][0][price]", &pro),
            ("phases[0][items][0][quantity]", "1"),
            ("phases[0][start_date]", &start),
            ("phases[0][end_date]", &end),
            ("phases[1][items][0][price]", &basic),
            ("phases[1][items][0][quantity]", "1"),
            ("phases[1][iterations]", "1"),
        ],
    )
    .await;
    shapes.add("POST /v1/subscription_schedules/{id}", &phased);
    fake.with_state(|s| {
        s.advance_clock(31 * DAY);
        s.renew_subscription(&id(&planned))
            .expect("renews on the next phase");
    });
    let released = post(
        &fake,
        &format!("/v1/subscription_schedules/{}/release", id(&schedule)),
        &[],
    )
    .await;
    shapes.add("POST /v1/subscription_schedules/{id}/release", &released);
    let paid_invoice = fake.with_state(|s| {
        s.subscriptions.get(&id(&planned)).expect("sub")["latest_invoice"]
            .as_str()
            .expect("invoice")
            .to_owned()
    });
    let refunding = post(
        &fake,
        "/v1/credit_notes",
        &[
            ("invoice", &paid_invoice),
            ("amount", "300"),
            ("refund_amount", "200"),
            ("credit_amount", "100"),
            ("reason", "product_unsatisfactory"),
        ],
    )
    .await;
    shapes.add("POST /v1/credit_notes", &refunding);
    let to_balance = post(
        &fake,
        "/v1/credit_notes",
        &[("invoice", &paid_invoice), ("credit_amount", "100")],
    )
    .await;
    let voided = post(
        &fake,
        &format!("/v1/credit_notes/{}/void", id(&to_balance)),
        &[],
    )
    .await;
    shapes.add("POST /v1/credit_notes/{id}/void", &voided);
    post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&planned)),
        &[
            ("pause_collection[behavior]", "void"),
            (
                "cancel_at",
                &(end.parse::<i64>().expect("end") + 400 * DAY).to_string(),
            ),
        ],
    )
    .await;
    fake.with_state(|s| {
        s.advance_clock(31 * DAY);
        s.renew_subscription(&id(&planned)).expect("voided renewal");
    });
    post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&planned)),
        &[("pause_collection[behavior]", "mark_uncollectible")],
    )
    .await;
    fake.with_state(|s| {
        s.advance_clock(31 * DAY);
        s.renew_subscription(&id(&planned))
            .expect("uncollectible renewal");
    });
    post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&planned)),
        &[("pause_collection[behavior]", "keep_as_draft")],
    )
    .await;
    let kept_draft = fake.with_state(|s| {
        s.advance_clock(31 * DAY);
        id(&s
            .renew_subscription(&id(&planned))
            .expect("draft renewal")
            .1)
    });
    post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&planned)),
        &[("pause_collection", ""), ("cancel_at", "")],
    )
    .await;
    let open_invoice = fake.with_state(|s| {
        s.advance_clock(31 * DAY);
        id(&s
            .renew_subscription_unpaid(&id(&planned))
            .expect("unpaid")
            .1)
    });
    let pre = post(
        &fake,
        "/v1/credit_notes",
        &[("invoice", &open_invoice), ("amount", "100")],
    )
    .await;
    shapes.add("POST /v1/credit_notes (pre-payment)", &pre);
    let leaving_customer = post(&fake, "/v1/customers", &[("email", "gone@example.com")]).await;
    post(
        &fake,
        "/v1/subscriptions",
        &[
            ("customer", &id(&leaving_customer)),
            ("items[0][price]", &basic),
        ],
    )
    .await;
    let gone = delete(&fake, &format!("/v1/customers/{}", id(&leaving_customer))).await;
    shapes.add("DELETE /v1/customers/{id}", &gone);
    shapes.add(
        "GET /v1/customers/{id} (deleted)",
        &get(&fake, &format!("/v1/customers/{}", id(&leaving_customer))).await,
    );

    // A schedule that cancels its subscription when its last phase ends; a change to a
    // yearly price (the billing date reset, billed at once); a `cancel_at` before the
    // period's end (a credit proration).
    let ending = post(
        &fake,
        "/v1/subscriptions",
        &[("customer", &id(&customer)), ("items[0][price]", &basic)],
    )
    .await;
    let ending_schedule = post(
        &fake,
        "/v1/subscription_schedules",
        &[("from_subscription", &id(&ending))],
    )
    .await;
    let ending_phase = &ending_schedule["phases"][0];
    post(
        &fake,
        &format!("/v1/subscription_schedules/{}", id(&ending_schedule)),
        &[
            ("end_behavior", "cancel"),
            ("phases[0][items][0][price]", &basic),
            (
                "phases[0][start_date]",
                &ending_phase["start_date"].to_string(),
            ),
            ("phases[0][end_date]", &ending_phase["end_date"].to_string()),
            ("phases[0][proration_behavior]", "none"),
        ],
    )
    .await;
    fake.with_state(|s| {
        s.renew_subscription(&id(&ending))
            .expect("ends with its schedule");
    });
    let yearly = fake.with_state(|s| {
        let (_, p) = s
            .create_product(&json!({"name": "Yearly", "default_price_data": {"currency": "usd", "unit_amount": 10000, "recurring": {"interval": "year"}}}), &Ctx::default())
            .expect("product");
        id(&json!({"id": p["default_price"]}))
    });
    let switching = post(
        &fake,
        "/v1/subscriptions",
        &[("customer", &id(&customer)), ("items[0][price]", &basic)],
    )
    .await;
    fake.with_state(|s| s.advance_clock(10 * DAY));
    let switched = post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&switching)),
        &[
            ("items[0][id]", &id(&switching["items"]["data"][0])),
            ("items[0][price]", &yearly),
        ],
    )
    .await;
    shapes.add("POST /v1/subscriptions/{id} (to a yearly price)", &switched);
    let cancel_early = switched["items"]["data"][0]["current_period_start"]
        .as_i64()
        .expect("start")
        + 100 * DAY;
    post(
        &fake,
        &format!("/v1/subscriptions/{}", id(&switching)),
        &[
            ("cancel_at", &cancel_early.to_string()),
            ("proration_behavior", "always_invoice"),
        ],
    )
    .await;

    // Entitlements: features (one renamed, one archived), attached to a plan's product
    // (one detached again), a subscription to it (the customer's active entitlements
    // appear), then canceled (they go).
    let (featured_price, featured_product) = fake.with_state(|s| {
        let price = monthly(s, "Featured", 1500);
        let product = s.prices.get(&price).expect("price")["product"]
            .as_str()
            .expect("product")
            .to_owned();
        (price, product)
    });
    let reports = post(
        &fake,
        "/v1/entitlements/features",
        &[
            ("name", "Advanced reports"),
            ("lookup_key", "advanced-reports"),
            ("metadata[tier]", "pro"),
        ],
    )
    .await;
    let api = post(
        &fake,
        "/v1/entitlements/features",
        &[("name", "API"), ("lookup_key", "api-access")],
    )
    .await;
    let old = post(
        &fake,
        "/v1/entitlements/features",
        &[("name", "Old"), ("lookup_key", "old-feature")],
    )
    .await;
    let renamed = post(
        &fake,
        &format!("/v1/entitlements/features/{}", id(&api)),
        &[("name", "API access")],
    )
    .await;
    shapes.add("POST /v1/entitlements/features/{id}", &renamed);
    let archived = post(
        &fake,
        &format!("/v1/entitlements/features/{}", id(&old)),
        &[("active", "false")],
    )
    .await;
    shapes.add("POST /v1/entitlements/features/{id} (archive)", &archived);
    for feature in [&reports, &api] {
        let attached = post(
            &fake,
            &format!("/v1/products/{featured_product}/features"),
            &[("entitlement_feature", &id(feature))],
        )
        .await;
        shapes.add("POST /v1/products/{id}/features", &attached);
    }
    let spare = post(
        &fake,
        "/v1/entitlements/features",
        &[("name", "Spare"), ("lookup_key", "spare")],
    )
    .await;
    let spare_pf = post(
        &fake,
        &format!("/v1/products/{featured_product}/features"),
        &[("entitlement_feature", &id(&spare))],
    )
    .await;
    let detached = delete(
        &fake,
        &format!("/v1/products/{featured_product}/features/{}", id(&spare_pf)),
    )
    .await;
    shapes.add("DELETE /v1/products/{id}/features/{id}", &detached);
    let entitled = post(&fake, "/v1/customers", &[("email", "entitled@example.com")]).await;
    let entitled_sub = post(
        &fake,
        "/v1/subscriptions",
        &[
            ("customer", &id(&entitled)),
            ("items[0][price]", &featured_price),
        ],
    )
    .await;
    let active = get(
        &fake,
        &format!(
            "/v1/entitlements/active_entitlements?customer={}",
            id(&entitled)
        ),
    )
    .await;
    shapes.add("GET /v1/entitlements/active_entitlements", &active);
    shapes.add(
        "GET /v1/entitlements/active_entitlements/{id}",
        &get(
            &fake,
            &format!(
                "/v1/entitlements/active_entitlements/{}",
                id(&active["data"][0])
            ),
        )
        .await,
    );
    delete(&fake, &format!("/v1/subscriptions/{}", id(&entitled_sub))).await;

    // Saved cards: a Checkout payment that saves the card for off-session use, the
    // card made the customer's default; one-off invoices (a top-up) paid off session
    // with it; declined, needing authentication off and on session, then voided; pending
    // items taken in with `include`.
    let topup = post(&fake, "/v1/customers", &[("email", "topup@example.com")]).await;
    let topup_id = id(&topup);
    let saving = post(
        &fake,
        "/v1/checkout/sessions",
        &[
            ("mode", "payment"),
            ("customer", &topup_id),
            ("line_items[0][price]", &pack),
            ("payment_intent_data[setup_future_usage]", "off_session"),
            (
                "saved_payment_method_options[payment_method_save]",
                "enabled",
            ),
            ("success_url", "https://example.com/ok"),
        ],
    )
    .await;
    shapes.add("POST /v1/checkout/sessions (saving the card)", &saving);
    let saved_pi = fake.with_state(|s| {
        let (_, done) = s.complete_session(&id(&saving), true).expect("complete");
        done["payment_intent"].as_str().expect("pi").to_owned()
    });
    let saved_intent = get(&fake, &format!("/v1/payment_intents/{saved_pi}")).await;
    let card = saved_intent["payment_method"]
        .as_str()
        .expect("the saved card")
        .to_owned();
    post(
        &fake,
        &format!("/v1/customers/{topup_id}"),
        &[
            ("invoice_settings[default_payment_method]", &card),
            ("name", "Top Up"),
        ],
    )
    .await;
    let one_off = |description: &'static str| {
        let topup_id = topup_id.clone();
        let pack = pack.clone();
        let fake = &fake;
        async move {
            let invoice = post(
                fake,
                "/v1/invoices",
                &[
                    ("customer", &topup_id),
                    ("collection_method", "charge_automatically"),
                    ("auto_advance", "false"),
                    ("pending_invoice_items_behavior", "exclude"),
                    ("description", description),
                    ("metadata[purpose]", "top-up"),
                    ("currency", "usd"),
                ],
            )
            .await;
            let item = post(
                fake,
                "/v1/invoiceitems",
                &[
                    ("customer", &topup_id),
                    ("invoice", &id(&invoice)),
                    ("pricing[price]", &pack),
                    ("quantity", "2"),
                    ("description", "2 × Pack"),
                    ("metadata[credits]", "200"),
                ],
            )
            .await;
            let finalized = post(
                fake,
                &format!("/v1/invoices/{}/finalize", id(&invoice)),
                &[("auto_advance", "false")],
            )
            .await;
            (invoice, item, finalized)
        }
    };
    let (draft, item, finalized) = one_off("Credits top-up").await;
    shapes.add("POST /v1/invoices", &draft);
    shapes.add("POST /v1/invoiceitems", &item);
    shapes.add("POST /v1/invoices/{id}/finalize", &finalized);
    let paid = post(
        &fake,
        &format!("/v1/invoices/{}/pay", id(&finalized)),
        &[("off_session", "true")],
    )
    .await;
    shapes.add("POST /v1/invoices/{id}/pay (off session)", &paid);
    let (declining, demanding) = fake.with_state(|s| {
        (
            s.attach_card(&topup_id, "declines").expect("card"),
            s.attach_card(&topup_id, "requires_authentication")
                .expect("card"),
        )
    });
    let (_, _, unpaid) = one_off("Declined top-up").await;
    for (card, off_session) in [
        (&declining, "true"),
        (&demanding, "true"),
        (&demanding, "false"),
    ] {
        let (status, error) = post_any(
            &fake,
            &format!("/v1/invoices/{}/pay", id(&unpaid)),
            &[("off_session", off_session), ("payment_method", card)],
        )
        .await;
        assert_eq!(status, 402, "{error}");
        shapes.add(
            "402 error.payment_intent",
            &error["error"]["payment_intent"],
        );
        shapes.add(
            "402 error.payment_method",
            &error["error"]["payment_method"],
        );
    }
    let voided = post(&fake, &format!("/v1/invoices/{}/void", id(&unpaid)), &[]).await;
    shapes.add("POST /v1/invoices/{id}/void", &voided);
    let pending = post(
        &fake,
        "/v1/invoiceitems",
        &[
            ("customer", &topup_id),
            ("amount", "750"),
            ("currency", "usd"),
            ("description", "Bonus credits"),
        ],
    )
    .await;
    shapes.add("POST /v1/invoiceitems (pending)", &pending);
    let including = post(
        &fake,
        "/v1/invoices",
        &[
            ("customer", &topup_id),
            ("pending_invoice_items_behavior", "include"),
        ],
    )
    .await;
    post(
        &fake,
        &format!("/v1/invoices/{}/finalize", id(&including)),
        &[],
    )
    .await;

    // Everything as served over HTTP.
    for path in [
        "/v1/products?limit=100".to_owned(),
        format!("/v1/products/{}", id(&product)),
        "/v1/prices?limit=100".to_owned(),
        "/v1/prices?active=false&limit=100".to_owned(),
        format!("/v1/prices/{}", id(&price)),
        "/v1/customers?limit=100".to_owned(),
        format!("/v1/customers/{}", id(&customer)),
        "/v1/checkout/sessions?limit=100".to_owned(),
        format!("/v1/checkout/sessions/{}", id(&cs)),
        format!("/v1/checkout/sessions/{}/line_items", id(&cs)),
        "/v1/subscriptions?limit=100".to_owned(),
        "/v1/subscriptions?status=all&limit=100".to_owned(),
        format!("/v1/subscriptions/{sub}"),
        format!("/v1/subscriptions/{}", id(&trial)),
        format!("/v1/subscriptions/{}", id(&leaving)),
        "/v1/invoices?limit=100".to_owned(),
        format!("/v1/invoices/{many_invoice}?expand[]=payments"),
        format!("/v1/invoices/{many_invoice}/lines?limit=100"),
        format!("/v1/invoice_payments?invoice={many_invoice}"),
        "/v1/invoiceitems?limit=100".to_owned(),
        "/v1/charges?limit=100".to_owned(),
        format!("/v1/charges/{charge}"),
        format!("/v1/refunds?charge={charge}&limit=100"),
        format!("/v1/refunds/{}", id(&refund)),
        "/v1/disputes?limit=100".to_owned(),
        format!("/v1/disputes/{disputes}"),
        "/v1/events?limit=100".to_owned(),
        format!("/v1/subscription_schedules/{}", id(&schedule)),
        "/v1/subscription_schedules?limit=100".to_owned(),
        format!("/v1/credit_notes/{}", id(&refunding)),
        format!("/v1/credit_notes?invoice={paid_invoice}&limit=100"),
        format!("/v1/subscriptions/{}", id(&planned)),
        format!("/v1/invoices/{kept_draft}"),
        format!("/v1/subscription_schedules/{}", id(&ending_schedule)),
        format!("/v1/subscriptions/{}", id(&ending)),
        format!("/v1/subscriptions/{}", id(&switching)),
        "/v1/entitlements/features?limit=100".to_owned(),
        "/v1/entitlements/features?archived=true".to_owned(),
        "/v1/entitlements/features?lookup_key=api-access".to_owned(),
        format!("/v1/entitlements/features/{}", id(&reports)),
        format!("/v1/products/{featured_product}/features"),
        format!(
            "/v1/products/{featured_product}/features/{}",
            id(&get(&fake, &format!("/v1/products/{featured_product}/features")).await["data"][0])
        ),
        format!("/v1/customers/{topup_id}/payment_methods?type=card"),
        format!("/v1/payment_methods?customer={topup_id}"),
        format!("/v1/payment_methods/{card}"),
        format!("/v1/payment_intents?customer={topup_id}"),
        format!("/v1/payment_intents/{saved_pi}"),
        format!("/v1/invoices/{}", id(&paid)),
        format!("/v1/invoices/{}", id(&including)),
        format!("/v1/customers/{topup_id}"),
    ] {
        let v = get(&fake, &path).await;
        shapes.add(&format!("GET {path}"), &v);
    }
    let inpay = get(
        &fake,
        &format!("/v1/invoice_payments?invoice={many_invoice}"),
    )
    .await;
    shapes.add(
        "GET /v1/invoice_payments/{id}",
        &get(
            &fake,
            &format!("/v1/invoice_payments/{}", id(&inpay["data"][0])),
        )
        .await,
    );

    // Every event, as sent (also those beyond the first page of the Events API).
    let events: Vec<Value> = fake.with_state(|s| s.events.values().cloned().collect());
    let mut kinds = BTreeSet::new();
    for e in &events {
        kinds.insert(e["type"].as_str().unwrap_or_default().to_owned());
        shapes.add(
            &format!("event {}", e["type"].as_str().unwrap_or_default()),
            e,
        );
    }
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let path = std::path::Path::new(&dir).join("shapes.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&shapes.out).expect("serialize"),
    )
    .expect("write shapes.json");
    println!(
        "{} objects ({} events of {} types) -> {}",
        shapes.out.len(),
        events.len(),
        kinds.len(),
        path.display()
    );
}
