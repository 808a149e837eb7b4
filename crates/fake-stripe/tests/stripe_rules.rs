//! Rules of Stripe's reference (2025-03-31.basil) the fake follows, each cited beside
//! its code: a change of billing interval or from free to paid resets the billing date
//! and bills at once; `cancel_at` before the period's end prorates; `canceled_at` of a
//! cancellation at period end; paused collection (`keep_as_draft`, `void`); the customer
//! balance both ways and the minimum charge; schedules that cancel and their phases'
//! own `proration_behavior`; a deleted customer's stub.

use fake_stripe::{Ctx, FakeStripe, State};
use serde_json::{Value, json};

const DAY: i64 = 86_400;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn price(s: &mut State, name: &str, amount: i64, interval: &str) -> String {
    let (_, p) = s
        .create_product(&json!({"name": name, "default_price_data": {"currency": "usd", "unit_amount": amount, "recurring": {"interval": interval}}}), &Ctx::default())
        .unwrap();
    p["default_price"].as_str().unwrap().to_owned()
}

fn customer(s: &mut State) -> String {
    id(&s
        .create_customer(&json!({"email": "a@example.com"}), &Ctx::default())
        .unwrap()
        .1)
}

fn subscribe(s: &mut State, cus: &str, price: &str) -> Value {
    s.create_subscription(
        &json!({"customer": cus, "items": [{"price": price}]}),
        &Ctx::default(),
    )
    .unwrap()
    .1
}

fn latest_invoice(s: &State, sub: &str) -> Value {
    let inv = s.subscriptions.get(sub).unwrap()["latest_invoice"]
        .as_str()
        .unwrap()
        .to_owned();
    s.invoices.get(&inv).unwrap().clone()
}

fn amounts(invoice: &Value) -> Vec<i64> {
    invoice["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect()
}

fn balance(s: &State, cus: &str) -> i64 {
    s.customers.get(cus).unwrap()["balance"].as_i64().unwrap()
}

fn pending(s: &State, sub: &str) -> Vec<Value> {
    s.invoice_items
        .values()
        .filter(|ii| {
            ii["invoice"].is_null()
                && ii["parent"]["subscription_details"]["subscription"] == json!(sub)
        })
        .cloned()
        .collect()
}

fn types(s: &State) -> Vec<String> {
    s.events
        .values()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_new_billing_interval_resets_the_billing_date_and_bills_at_once() {
    for behavior in ["create_prorations", "always_invoice", "none"] {
        let mut s = State::default();
        let monthly = price(&mut s, "Basic", 3000, "month");
        let yearly = price(&mut s, "Yearly", 30000, "year");
        let cus = customer(&mut s);
        let sub = subscribe(&mut s, &cus, &monthly);
        let item = id(&sub["items"]["data"][0]);
        s.advance_clock(10 * DAY);
        let now = s.now();
        let (_, changed) = s
            .update_subscription(
                &id(&sub),
                &json!({"items": [{"id": item, "price": yearly}], "proration_behavior": behavior}),
                &Ctx::default(),
            )
            .unwrap();
        let it = &changed["items"]["data"][0];
        assert_eq!(
            (
                &it["current_period_start"],
                &it["current_period_end"],
                &changed["billing_cycle_anchor"]
            ),
            (&json!(now), &json!(now + 365 * DAY), &json!(now)),
            "{behavior}"
        );
        let invoice = latest_invoice(&s, &id(&sub));
        assert_eq!(invoice["billing_reason"], "subscription_update");
        // The whole new year, and (unless `none`) a credit for the 20 unused days.
        let expected: Vec<i64> = if behavior == "none" {
            vec![30000]
        } else {
            vec![30000, -2000]
        };
        assert_eq!(amounts(&invoice), expected, "{behavior}");
        assert_eq!(invoice["status"], "paid");
        assert_eq!(invoice["amount_paid"], expected.iter().sum::<i64>());
        assert_eq!(
            invoice["lines"]["data"][0]["period"],
            json!({"start": now, "end": now + 365 * DAY})
        );
        assert!(pending(&s, &id(&sub)).is_empty(), "nothing left pending");
    }
}

#[test]
fn free_to_paid_bills_the_new_period_at_once() {
    let mut s = State::default();
    let free = price(&mut s, "Free", 0, "month");
    let paid = price(&mut s, "Paid", 2000, "month");
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &free);
    s.advance_clock(12 * DAY);
    let now = s.now();
    let item = id(&sub["items"]["data"][0]);
    let (_, changed) = s
        .update_subscription(
            &id(&sub),
            &json!({"items": [{"id": item, "price": paid}]}),
            &Ctx::default(),
        )
        .unwrap();
    assert_eq!(
        changed["items"]["data"][0]["current_period_start"],
        json!(now)
    );
    let invoice = latest_invoice(&s, &id(&sub));
    assert_eq!(amounts(&invoice), [2000], "no $0 credit line");
    assert_eq!(
        (&invoice["status"], &invoice["amount_paid"]),
        (&json!("paid"), &json!(2000))
    );
    // A price change of the same interval between paid prices keeps the billing date.
    let more = price(&mut s, "More", 4000, "month");
    s.advance_clock(DAY);
    let (_, again) = s
        .update_subscription(
            &id(&sub),
            &json!({"items": [{"id": item, "price": more}]}),
            &Ctx::default(),
        )
        .unwrap();
    assert_eq!(
        again["items"]["data"][0]["current_period_start"],
        json!(now)
    );
    assert_eq!(pending(&s, &id(&sub)).len(), 2);
}

#[test]
fn cancel_at_before_the_period_end_credits_the_time_after_it() {
    for behavior in ["create_prorations", "always_invoice", "none"] {
        let mut s = State::default();
        let plan = price(&mut s, "Plan", 3000, "month");
        let cus = customer(&mut s);
        let sub = subscribe(&mut s, &cus, &plan);
        let end = sub["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap();
        s.advance_clock(5 * DAY);
        let cancel_at = end - 10 * DAY;
        let (_, updated) = s
            .update_subscription(
                &id(&sub),
                &json!({"cancel_at": cancel_at.to_string(), "proration_behavior": behavior}),
                &Ctx::default(),
            )
            .unwrap();
        assert_eq!(updated["cancel_at"], cancel_at);
        let first = s.subscriptions.get(&id(&sub)).unwrap()["latest_invoice"].clone();
        match behavior {
            "none" => {
                assert!(s.invoice_items.values().next().is_none());
            }
            "create_prorations" => {
                let items = pending(&s, &id(&sub));
                assert_eq!(items.len(), 1);
                assert_eq!(items[0]["amount"], -1000);
                assert_eq!(items[0]["period"], json!({"start": cancel_at, "end": end}));
                assert_eq!(latest_invoice(&s, &id(&sub))["id"], first);
            }
            _ => {
                let invoice = latest_invoice(&s, &id(&sub));
                assert_eq!(amounts(&invoice), [-1000]);
                assert_eq!(invoice["status"], "paid");
                assert_eq!(balance(&s, &cus), -1000);
            }
        }
        // It ends at `cancel_at`, without an invoice.
        let (_, ended) = s.renew_subscription(&id(&sub)).unwrap();
        assert_eq!(
            (&ended["status"], &ended["ended_at"]),
            (&json!("canceled"), &json!(cancel_at))
        );
    }
}

#[test]
fn canceled_at_is_the_request_that_set_cancel_at_period_end() {
    let mut s = State::default();
    let plan = price(&mut s, "Plan", 3000, "month");
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &plan);
    s.advance_clock(3 * DAY);
    let asked = s.now();
    let (_, set) = s
        .update_subscription(
            &id(&sub),
            &json!({"cancel_at_period_end": "true"}),
            &Ctx::default(),
        )
        .unwrap();
    assert_eq!(set["canceled_at"], asked);
    s.advance_clock(DAY);
    let (_, again) = s
        .update_subscription(
            &id(&sub),
            &json!({"cancel_at_period_end": "true"}),
            &Ctx::default(),
        )
        .unwrap();
    assert_eq!(again["canceled_at"], asked + DAY, "the most recent request");
    let (_, taken_back) = s
        .update_subscription(
            &id(&sub),
            &json!({"cancel_at_period_end": "false"}),
            &Ctx::default(),
        )
        .unwrap();
    assert_eq!(
        (&taken_back["canceled_at"], &taken_back["cancel_at"]),
        (&Value::Null, &Value::Null)
    );
    assert!(s.invoice_items.values().next().is_none(), "no proration");
}

#[test]
fn paused_collection_keeps_drafts_or_voids_without_the_balance() {
    for behavior in ["keep_as_draft", "void"] {
        let mut s = State::default();
        let plan = price(&mut s, "Plan", 3000, "month");
        let cus = customer(&mut s);
        let sub = subscribe(&mut s, &cus, &plan);
        s.customers.get_mut(&cus).unwrap()["balance"] = json!(-500);
        s.update_subscription(
            &id(&sub),
            &json!({"pause_collection": {"behavior": behavior}}),
            &Ctx::default(),
        )
        .unwrap();
        s.advance_clock(30 * DAY);
        s.events = Default::default();
        let (_, invoice) = s.renew_subscription(&id(&sub)).unwrap();
        assert_eq!(
            balance(&s, &cus),
            -500,
            "{behavior}: the balance is not used"
        );
        assert_eq!(invoice["auto_advance"], false);
        assert_eq!(invoice["amount_paid"], 0);
        let payments: Vec<Value> = s
            .invoice_payment_objects
            .values()
            .filter(|p| p["invoice"] == invoice["id"])
            .cloned()
            .collect();
        let events: Vec<String> = types(&s)
            .into_iter()
            .filter(|t| t.starts_with("invoice."))
            .collect();
        if behavior == "keep_as_draft" {
            assert_eq!(
                (
                    &invoice["status"],
                    &invoice["number"],
                    &invoice["ending_balance"]
                ),
                (&json!("draft"), &Value::Null, &Value::Null)
            );
            assert!(payments.is_empty());
            assert_eq!(events, ["invoice.created"]);
            // Finalized later, it takes the balance as any invoice does.
            let (_, finalized) = s
                .finalize_invoice(&id(&invoice), &json!({}), &Ctx::default())
                .unwrap();
            assert_eq!(
                (&finalized["amount_due"], &finalized["ending_balance"]),
                (&json!(2500), &json!(0))
            );
        } else {
            assert_eq!(invoice["status"], "void");
            assert_eq!(
                (&invoice["starting_balance"], &invoice["ending_balance"]),
                (&json!(-500), &json!(-500))
            );
            assert!(payments.iter().all(|p| p["status"] == "canceled"));
            assert_eq!(
                events,
                ["invoice.created", "invoice.finalized", "invoice.voided"]
            );
        }
        assert_eq!(s.subscriptions.get(&id(&sub)).unwrap()["status"], "active");
    }
}

#[test]
fn a_debit_balance_is_added_to_what_is_due() {
    let mut s = State::default();
    let plan = price(&mut s, "Plan", 3000, "month");
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &plan);
    s.customers.get_mut(&cus).unwrap()["balance"] = json!(700);
    s.advance_clock(30 * DAY);
    let (_, invoice) = s.renew_subscription(&id(&sub)).unwrap();
    assert_eq!(
        (
            &invoice["total"],
            &invoice["starting_balance"],
            &invoice["amount_due"],
            &invoice["amount_paid"],
            &invoice["ending_balance"]
        ),
        (
            &json!(3000),
            &json!(700),
            &json!(3700),
            &json!(3700),
            &json!(0)
        )
    );
    assert_eq!(balance(&s, &cus), 0);
}

#[test]
fn an_amount_below_the_minimum_charge_is_left_on_the_balance() {
    let mut s = State::default();
    let basic = price(&mut s, "Basic", 3000, "month");
    let a_bit_more = price(&mut s, "A bit more", 3060, "month");
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &basic);
    let item = id(&sub["items"]["data"][0]);
    s.advance_clock(15 * DAY);
    let charges = s.charges.len();
    s.update_subscription(
        &id(&sub),
        &json!({"items": [{"id": item, "price": a_bit_more}], "proration_behavior": "always_invoice"}),
        &Ctx::default(),
    )
    .unwrap();
    let invoice = latest_invoice(&s, &id(&sub));
    assert_eq!(amounts(&invoice), [-1500, 1530]);
    assert_eq!(
        (
            &invoice["status"],
            &invoice["amount_due"],
            &invoice["amount_paid"],
            &invoice["ending_balance"]
        ),
        (&json!("paid"), &json!(0), &json!(0), &json!(30))
    );
    assert_eq!(s.charges.len(), charges, "no charge");
    assert_eq!(balance(&s, &cus), 30, "a debit");
    // The next invoice collects it.
    s.advance_clock(15 * DAY);
    let (_, renewal) = s.renew_subscription(&id(&sub)).unwrap();
    assert_eq!(
        (&renewal["amount_paid"], &renewal["ending_balance"]),
        (&json!(3090), &json!(0))
    );
}

#[test]
fn a_schedule_that_cancels_ends_its_subscription_and_phases_keep_their_prorations() {
    let mut s = State::default();
    let ctx = Ctx::default();
    let plan = price(&mut s, "Plan", 3000, "month");
    let other = price(&mut s, "Other", 1000, "month");
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &plan);
    let (_, schedule) = s
        .create_schedule(&json!({"from_subscription": id(&sub)}), &ctx)
        .unwrap();
    let start = schedule["phases"][0]["start_date"].as_i64().unwrap();
    let end = schedule["phases"][0]["end_date"].as_i64().unwrap();
    let (_, updated) = s
        .update_schedule(
            &id(&schedule),
            &json!({
                "end_behavior": "cancel",
                "proration_behavior": "none",
                "phases": [
                    {"items": [{"price": plan}], "start_date": start.to_string(), "end_date": end.to_string()},
                    {"items": [{"price": other}], "iterations": "1", "proration_behavior": "none"},
                ],
            }),
            &ctx,
        )
        .unwrap();
    let phases: Vec<&Value> = updated["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["proration_behavior"])
        .collect();
    assert_eq!(phases, [&json!("create_prorations"), &json!("none")]);
    let last_end = end + 30 * DAY;
    let current = s.subscriptions.get(&id(&sub)).unwrap().clone();
    assert_eq!(
        current["cancel_at"], last_end,
        "the schedule set the cancellation"
    );
    let e = s
        .update_schedule(
            &id(&schedule),
            &json!({"phases": [{"items": [{"price": plan}], "start_date": start.to_string(), "proration_behavior": "sometimes"}]}),
            &ctx,
        )
        .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("phases[0][proration_behavior]"));

    // The next phase starts, then the subscription ends with the last one.
    let (_, renewal) = s.renew_subscription(&id(&sub)).unwrap();
    assert_eq!(renewal["amount_paid"], 1000);
    let invoices = s.invoices.len();
    s.events = Default::default();
    let (_, ended) = s.renew_subscription(&id(&sub)).unwrap();
    assert_eq!(
        (&ended["status"], &ended["ended_at"]),
        (&json!("canceled"), &json!(last_end))
    );
    assert_eq!(s.invoices.len(), invoices, "no invoice");
    let done = s.schedules.get(&id(&schedule)).unwrap();
    assert_eq!(
        (&done["status"], &done["completed_at"]),
        (&json!("completed"), &json!(last_end))
    );
    assert_eq!(
        types(&s),
        [
            "customer.subscription.deleted",
            "subscription_schedule.completed"
        ]
    );
}

#[test]
fn releasing_a_schedule_that_cancels_takes_its_cancellation_back() {
    let mut s = State::default();
    let ctx = Ctx::default();
    let plan = price(&mut s, "Plan", 3000, "month");
    let cus = customer(&mut s);
    let sub = subscribe(&mut s, &cus, &plan);
    for preserve in [false, true] {
        let (_, schedule) = s
            .create_schedule(&json!({"from_subscription": id(&sub)}), &ctx)
            .unwrap();
        s.update_schedule(&id(&schedule), &json!({"end_behavior": "cancel"}), &ctx)
            .unwrap();
        let end = schedule["phases"][0]["end_date"].clone();
        assert_eq!(s.subscriptions.get(&id(&sub)).unwrap()["cancel_at"], end);
        s.release_schedule(
            &id(&schedule),
            &json!({"preserve_cancel_date": preserve.to_string()}),
            &ctx,
        )
        .unwrap();
        let after = s.subscriptions.get(&id(&sub)).unwrap().clone();
        if preserve {
            assert_eq!(after["cancel_at"], end);
        } else {
            assert_eq!(
                (&after["cancel_at"], &after["canceled_at"]),
                (&Value::Null, &Value::Null)
            );
        }
    }
}

#[tokio::test]
async fn a_deleted_customer_is_retrieved_as_a_stub_and_refused_elsewhere() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeStripe::start().await;
    let (cus, plan) = fake.with_state(|s| {
        let plan = price(s, "Plan", 3000, "month");
        let cus = customer(s);
        s.delete_customer(&cus, &Ctx::default()).unwrap();
        (cus, plan)
    });
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/v1/customers/{cus}", fake.url()))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stub: Value = r.json().await.unwrap();
    assert_eq!(
        stub,
        json!({"id": cus, "object": "customer", "deleted": true})
    );
    let missing = http
        .get(format!("{}/v1/customers/cus_never", fake.url()))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    for (path, form) in [
        (
            "/v1/subscriptions",
            vec![
                ("customer", cus.as_str()),
                ("items[0][price]", plan.as_str()),
            ],
        ),
        (
            "/v1/checkout/sessions",
            vec![
                ("mode", "subscription"),
                ("customer", cus.as_str()),
                ("line_items[0][price]", plan.as_str()),
                ("success_url", "https://example.com/ok"),
            ],
        ),
        ("/v1/invoices", vec![("customer", cus.as_str())]),
    ] {
        let r = http
            .post(format!("{}{path}", fake.url()))
            .bearer_auth("sk_test_x")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(
            e["error"],
            json!({"type": "invalid_request_error", "code": "resource_missing",
                   "message": format!("No such customer: '{cus}'"), "param": "customer"}),
            "{path}"
        );
    }
}
