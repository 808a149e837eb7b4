//! The credit rules of docs/CREDIT_SYSTEM.md, each with its example, on SQLite and
//! PostgreSQL, fed Stripe-shaped events (as the fake Stripe produces them, or written
//! here in the shape of Stripe's API reference for API version 2025-03-31.basil where
//! the case is about an event's content) over real HTTP to the real application.

mod common;

use std::time::Duration;

use common::shop::*;
use common::*;
use fake_stripe::{Ctx, sign};
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_plan_change_invoiced_at_once_takes_back_the_unused_time_and_grants_the_rest,
    a_renewal_carrying_last_periods_prorations_leaves_the_new_plan,
    a_take_back_before_its_grant_waits_for_it,
    a_full_period_line_grants_whatever_was_paid,
    a_refund_before_its_purchase_is_applied_when_the_purchase_arrives,
    disputes_take_back_and_a_won_dispute_gives_back,
    a_failed_refund_gives_back_and_cancels_its_debt,
    partial_refunds_never_take_back_more_than_was_granted,
    a_refund_of_an_expired_subscription_lot_takes_from_it_first,
    a_late_payment_is_usable_for_one_period_from_payment,
    a_subscription_that_is_not_a_credit_plan_grants_nothing_and_never_fails,
    a_free_checkout_grants_the_pack,
    a_checkout_grants_the_credits_its_product_had_when_it_was_created,
    checkout_refuses_prices_whose_credits_are_not_defined_and_records_expiry,
    an_event_of_the_other_mode_is_stored_and_never_applied,
    a_paid_checkout_never_becomes_unpaid,
    same_second_subscription_updates_are_settled_by_a_refetch,
    one_refund_reported_twice_to_two_instances_at_once_is_taken_back_once,
    plan_changes_made_in_stripe_follow_the_money,
    charge_refunded_alone_lists_the_refunds_of_the_charge,
    long_invoices_and_invoices_paid_in_parts_are_read_whole,
    stripes_disputes_and_failed_refunds_move_credits_back_and_forth,
    events_reconciled_newest_first_give_the_same_ledger,
    a_refund_waits_for_its_grant_through_the_dead_letter_and_a_replay,
    refunds_of_two_payments_of_one_invoice_on_two_instances_take_back_their_sum_once,
);

/// Rule 1, first example: plan A (1,000 credits, $10/month) → plan B (3,000, $30/month)
/// at half period, invoiced at once: the −$5.00 line takes back 500, the +$15.00 line
/// grants 1,500 → 2,000 available. Delivered in either order.
async fn a_plan_change_invoiced_at_once_takes_back_the_unused_time_and_grants_the_rest(db: TestDb) {
    let shop = shop(&db).await;
    for (account, change_first) in [("acct_change", false), ("acct_change_reversed", true)] {
        let customer = shop.linked(account).await;
        let sub = id("sub");
        let start = now() - 15 * DAY;
        let end = start + 30 * DAY;
        let first = full_period(
            &customer,
            &sub,
            account,
            &shop.plan_a,
            (1000, 1),
            (start, end),
            (1000, start),
        );
        let mid = now();
        let change = invoice(
            &customer,
            &sub,
            account,
            vec![
                line(&shop.plan_a, &sub, -500, 1, (mid, end), true),
                line(&shop.plan_b, &sub, 1500, 1, (mid, end), true),
            ],
            1000,
            mid,
        );
        let mut bodies = vec![
            event("invoice.paid", &first, start),
            event("invoice.paid", &change, mid),
        ];
        if change_first {
            bodies.reverse();
        }
        for body in &bodies {
            shop.deliver_and_drain(body).await;
            // Delivered twice: nothing changes.
            shop.deliver_and_drain(body).await;
        }
        let b = shop.balance(account).await;
        assert_eq!(b["available"], "2000.00", "{account}: {b}");
        assert_eq!(b["debt"], "0.00");
        let lots = b["lots"].as_array().unwrap();
        let mut amounts: Vec<(&str, &str)> = lots
            .iter()
            .map(|l| {
                (
                    l["amount"].as_str().unwrap(),
                    l["remaining"].as_str().unwrap(),
                )
            })
            .collect();
        amounts.sort();
        assert_eq!(
            amounts,
            [("1000.00", "500.00"), ("1500.00", "1500.00")],
            "{account}"
        );
        // Each lot expires at its own line's period end.
        assert!(lots.iter().all(|l| l["expires_at"] == json!(end)));
        shop.assert_balanced(account).await;
    }
}

/// Rule 2 (deferred prorations are settled net at payment): with the default
/// `create_prorations`, the renewal invoice pays last period's prorations (−$5, +$15)
/// and the new period's line ($30): 3,000 + net 1,000 = 4,000 available, usable for the
/// new period. (Before, the +$15 line granted credits born expired: $10 for nothing.)
async fn a_renewal_carrying_last_periods_prorations_leaves_the_new_plan(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_renewal";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let end = now() - 60;
    let start = end - 30 * DAY;
    let mid = start + 15 * DAY;
    let first = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (1000, 1),
        (start, end),
        (1000, start),
    );
    let renewal = invoice(
        &customer,
        &sub,
        account,
        vec![
            line(&shop.plan_a, &sub, -500, 1, (mid, end), true),
            line(&shop.plan_b, &sub, 1500, 1, (mid, end), true),
            line(&shop.plan_b, &sub, 3000, 1, (end, end + 30 * DAY), false),
        ],
        4000,
        end,
    );
    shop.deliver_and_drain(&event("invoice.paid", &first, start))
        .await;
    shop.deliver_and_drain(&event("invoice.paid", &renewal, end))
        .await;
    let b = shop.balance(account).await;
    assert_eq!(b["available"], "4000.00", "{b}");
    let net = b["lots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["source_ref"] == json!(format!("{}/prorations", renewal["id"].as_str().unwrap()))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no net proration lot: {b}"));
    assert_eq!(net["amount"], "1000.00", "{b}");
    assert_eq!(net["expires_at"], json!(end + 30 * DAY), "{b}");
    // Last period's lot of plan A expired whole: the −$5 line was netted, not taken.
    assert_eq!(b["expired"], "1000.00", "{b}");
    shop.assert_balanced(account).await;
}

/// A take-back that arrives before the grant of its period waits for it; a take-back
/// larger than what is left in the lot takes the rest from the other lots, then as debt
/// (rule 1: money given back takes its credits back).
async fn a_take_back_before_its_grant_waits_for_it(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_take_first";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let start = now() - 15 * DAY;
    let end = start + 30 * DAY;
    let first = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (1000, 1),
        (start, end),
        (1000, start),
    );
    let change = invoice(
        &customer,
        &sub,
        account,
        vec![line(&shop.plan_a, &sub, -500, 1, (now(), end), true)],
        0,
        now(),
    );
    shop.deliver_and_drain(&event("invoice.paid", &change, now()))
        .await;
    assert_eq!(shop.balance(account).await["available"], "0.00");
    shop.deliver_and_drain(&event("invoice.paid", &first, start))
        .await;
    assert_eq!(shop.balance(account).await["available"], "500.00");

    // Spend 900 of a fresh period, then a take-back of 500: the 100 left are taken, 400
    // become debt.
    let account = "acct_take_spent";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let first = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (1000, 1),
        (start, end),
        (1000, start),
    );
    shop.deliver_and_drain(&event("invoice.paid", &first, start))
        .await;
    shop.consume(account, "900").await;
    let change = invoice(
        &customer,
        &sub,
        account,
        vec![line(&shop.plan_a, &sub, -500, 1, (now(), end), true)],
        0,
        now(),
    );
    shop.deliver_and_drain(&event("invoice.paid", &change, now()))
        .await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("0.00".into(), "400.00".into())
    );
    shop.assert_balanced(account).await;
}

/// Rule 1: a full-period line grants the plan's credits whatever was paid (a 100 %
/// coupon: amount 0, nothing paid), quantity included.
async fn a_full_period_line_grants_whatever_was_paid(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_coupon";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let start = now();
    let free = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (0, 2),
        (start, start + 30 * DAY),
        (0, start),
    );
    shop.deliver_and_drain(&event("invoice.paid", &free, start))
        .await;
    assert_eq!(shop.balance(account).await["available"], "2000.00");
}

/// Rule 2: a $5.00 refund of a $10.00 pack of 100 arrives first → after the purchase
/// arrives, 50.00.
async fn a_refund_before_its_purchase_is_applied_when_the_purchase_arrives(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_early_refund";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    let purchase = shop.take_events(&["checkout.session.completed"]);
    shop.refund(&pi, 500);
    for body in shop.take_events(&["refund.created", "charge.refunded"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance(account).await["available"], "0.00");
    for body in &purchase {
        shop.deliver_and_drain(body).await;
    }
    assert_eq!(
        shop.available_and_debt(account).await,
        ("50.00".into(), "0.00".into())
    );
    shop.assert_balanced(account).await;
}

fn dispute(pi: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": "du_rule4", "object": "dispute", "amount": amount, "currency": "usd",
        "charge": "ch_rule4", "payment_intent": pi, "status": status, "reason": "fraudulent",
        "created": now(), "livemode": false, "is_charge_refundable": false,
        "metadata": {}, "balance_transactions": [],
    })
}

/// Rule 4: a chargeback takes back the disputed share like a refund; an inquiry
/// (`warning_*`) changes nothing; won (or funds reinstated) gives it back; lost keeps it.
async fn disputes_take_back_and_a_won_dispute_gives_back(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_dispute";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    shop.deliver_and_drain(&event(
        "charge.dispute.created",
        &dispute(&pi, 1000, "warning_needs_response"),
        now(),
    ))
    .await;
    assert_eq!(
        shop.balance(account).await["available"],
        "100.00",
        "an inquiry moves nothing"
    );
    let mut d = dispute(&pi, 500, "needs_response");
    d["id"] = json!("du_real");
    shop.deliver_and_drain(&event("charge.dispute.created", &d, now()))
        .await;
    shop.deliver_and_drain(&event("charge.dispute.funds_withdrawn", &d, now()))
        .await;
    assert_eq!(shop.balance(account).await["available"], "50.00");
    d["status"] = json!("won");
    shop.deliver_and_drain(&event("charge.dispute.closed", &d, now()))
        .await;
    assert_eq!(shop.balance(account).await["available"], "100.00");
    // A late `created` after the dispute was won changes nothing.
    d["status"] = json!("needs_response");
    shop.deliver_and_drain(&event("charge.dispute.created", &d, now()))
        .await;
    assert_eq!(shop.balance(account).await["available"], "100.00");

    // Lost: the credits stay taken.
    let mut lost = dispute(&pi, 1000, "lost");
    lost["id"] = json!("du_lost");
    shop.deliver_and_drain(&event("charge.dispute.closed", &lost, now()))
        .await;
    assert_eq!(shop.balance(account).await["available"], "0.00");
    let history = shop.app.state.ledger.history(account, 50).await.unwrap();
    assert!(history.iter().any(|e| e.kind == "dispute"));
    assert!(history.iter().any(|e| e.kind == "restore"));
    shop.assert_balanced(account).await;
}

/// Rule 5: a refund that fails after succeeding gives back what it took and cancels the
/// debt it recorded.
async fn a_failed_refund_gives_back_and_cancels_its_debt(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_refund_failed";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    shop.consume(account, "80").await;
    let refund = shop.refund(&pi, 1000);
    let refund_events = shop.take_events(&["refund.created"]);
    for body in &refund_events {
        shop.deliver_and_drain(body).await;
    }
    assert_eq!(
        shop.available_and_debt(account).await,
        ("0.00".into(), "80.00".into())
    );
    let mut failed: Value = serde_json::from_str(&refund_events[0]).unwrap();
    failed["id"] = json!(id("evt"));
    failed["type"] = json!("refund.failed");
    failed["data"]["object"]["status"] = json!("failed");
    failed["data"]["object"]["failure_reason"] = json!("expired_or_canceled_card");
    assert_eq!(failed["data"]["object"]["id"], json!(refund));
    shop.deliver_and_drain(&failed.to_string()).await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("20.00".into(), "0.00".into())
    );
    // The success redelivered after the failure changes nothing.
    for body in &refund_events {
        let mut again: Value = serde_json::from_str(body).unwrap();
        again["id"] = json!(id("evt"));
        again["type"] = json!("refund.updated");
        shop.deliver_and_drain(&again.to_string()).await;
    }
    assert_eq!(
        shop.available_and_debt(account).await,
        ("20.00".into(), "0.00".into())
    );
    shop.assert_balanced(account).await;
}

/// Rule 6: 2 credits bought for 3 cents, three 1-cent refunds → exactly 2.00 taken
/// back, no debt.
async fn partial_refunds_never_take_back_more_than_was_granted(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_cents";
    let (_, pi) = shop.buy(account, &shop.tiny, 1).await;
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance(account).await["available"], "2.00");
    let mut taken = Vec::new();
    for _ in 0..3 {
        shop.refund(&pi, 1);
        for body in shop.take_events(&["refund.created", "charge.refunded"]) {
            shop.deliver_and_drain(&body).await;
        }
        taken.push(
            shop.balance(account).await["available"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(taken, ["1.33", "0.67", "0.00"]);
    assert_eq!(shop.balance(account).await["debt"], "0.00");
    shop.assert_balanced(account).await;
}

/// Rule 7: a refund of an expired subscription lot takes from that lot first (its
/// remainder was never spendable), then as usual; live credits stay.
async fn a_refund_of_an_expired_subscription_lot_takes_from_it_first(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_expired_refund";
    let (_, _) = shop.buy(account, &shop.pack, 1).await;
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let end = now() - DAY;
    let start = end - 30 * DAY;
    // An invoice of API version 2024-06-20: it names its payment intent itself.
    let mut old = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (1000, 1),
        (start, end),
        (1000, start),
    );
    old["payment_intent"] = json!("pi_old_period");
    shop.deliver_and_drain(&event("invoice.paid", &old, start))
        .await;
    assert_eq!(shop.balance(account).await["expired"], "1000.00");
    let refund = json!({"id": id("re"), "object": "refund", "amount": 500, "currency": "usd",
        "charge": "ch_old", "payment_intent": "pi_old_period", "status": "succeeded", "created": now()});
    shop.deliver_and_drain(&event("refund.created", &refund, now()))
        .await;
    let b = shop.balance(account).await;
    assert_eq!(
        (&b["available"], &b["expired"], &b["debt"]),
        (&json!("100.00"), &json!("500.00"), &json!("0.00")),
        "{b}"
    );
    shop.assert_balanced(account).await;
}

/// Rule 8: an invoice paid after its line's period ended (Smart Retries) grants credits
/// usable for one period length from payment.
async fn a_late_payment_is_usable_for_one_period_from_payment(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_late";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let start = now() - 40 * DAY;
    let end = start + 30 * DAY;
    let paid_at = now() - 60;
    let late = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (1000, 1),
        (start, end),
        (1000, paid_at),
    );
    shop.deliver_and_drain(&event("invoice.paid", &late, paid_at))
        .await;
    let b = shop.balance(account).await;
    assert_eq!(b["available"], "1000.00", "{b}");
    assert_eq!(b["lots"][0]["expires_at"], json!(paid_at + 30 * DAY));
}

/// Rule 10: a linked customer's subscription to a product without `credit_amount` is
/// processed and grants nothing; it never retries or reaches the dead letter.
async fn a_subscription_that_is_not_a_credit_plan_grants_nothing_and_never_fails(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_plain";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let start = now();
    let plain = full_period(
        &customer,
        &sub,
        account,
        &shop.plain,
        (500, 1),
        (start, start + 30 * DAY),
        (500, start),
    );
    shop.deliver_and_drain(&event("invoice.paid", &plain, start))
        .await;
    assert_eq!(shop.balance(account).await["available"], "0.00");
    let statuses = shop.event_status("invoice.paid").await;
    assert_eq!(statuses.len(), 1);
    // Processed for the invoice mirror (payment history), with no credits.
    assert_eq!(statuses[0].0, "processed", "{statuses:?}");
}

/// Rule 11: a free checkout (`no_payment_required`: a 100 % promotion code, a free
/// price) grants the pack's credits.
async fn a_free_checkout_grants_the_pack(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_free";
    let price = shop
        .fake
        .with_state(|s| s.retrieve_price(&shop.pack.price).unwrap().1);
    let session = json!({
        "id": id("cs"), "object": "checkout.session", "mode": "payment", "status": "complete",
        "payment_status": "no_payment_required", "amount_total": 0, "amount_subtotal": 1000,
        "currency": "usd", "customer": null, "client_reference_id": account, "metadata": {},
        "payment_intent": null, "created": now(), "livemode": false,
        "line_items": {"object": "list", "has_more": false, "url": "/v1/checkout/sessions/x/line_items",
            "data": [{"id": "li_free", "object": "item", "quantity": 1, "amount_total": 0,
                      "amount_subtotal": 1000, "currency": "usd", "price": price, "description": "Pack"}]},
    });
    shop.deliver_and_drain(&event("checkout.session.completed", &session, now()))
        .await;
    assert_eq!(shop.balance(account).await["available"], "100.00");
}

/// Rule 12: a session created by `POST /api/v1/checkout` grants the `credit_amount` the
/// product had then, not what the catalog says when it is paid.
async fn a_checkout_grants_the_credits_its_product_had_when_it_was_created(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_fixed";
    let session = shop.checkout(account, &shop.pack, 2).await;
    shop.fake.with_state(|s| {
        s.update_product(
            &shop.pack.product,
            &json!({"metadata": {"credit_amount": "500"}}),
            &Ctx::default(),
        )
        .unwrap();
        s.complete_session(&session, true).unwrap();
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance(account).await["available"], "200.00");
}

/// Rule 13: prices whose credits are not well defined cannot be bought; an expired
/// session is recorded as expired.
async fn checkout_refuses_prices_whose_credits_are_not_defined_and_records_expiry(db: TestDb) {
    let shop = shop(&db).await;
    let refused = shop.fake.with_state(|s| {
        let ctx = Ctx::default();
        let mut ids = Vec::new();
        for price in [
            json!({"custom_unit_amount": {"enabled": true, "minimum": 100}}),
            json!({"billing_scheme": "tiered", "tiers_mode": "volume", "recurring": {"interval": "month"},
                   "tiers": [{"up_to": "inf", "unit_amount": 100}]}),
            json!({"unit_amount": 100, "recurring": {"interval": "month", "usage_type": "metered"}}),
        ] {
            let mut price = price;
            price["product"] = json!(shop.pack.product);
            price["currency"] = json!("usd");
            let (_, p) = s.create_price(&price, &ctx).unwrap();
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
        ids
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    for (price, reason) in refused
        .iter()
        .zip(["customer-chosen amount", "tiered", "metered"])
    {
        let (status, body) = post_json(
            &shop.app.url("/api/v1/checkout"),
            json!({"account": "acct_x", "price": price, "success_url": "https://a.example/", "cancel_url": "https://a.example/"}),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(reason), "{reason}: {body}");
    }
    let account = "acct_expiring";
    let session = shop.checkout(account, &shop.pack, 1).await;
    let mut object = shop
        .fake
        .with_state(|s| s.retrieve_session(&session).unwrap().1);
    object["status"] = json!("expired");
    shop.deliver_and_drain(&event("checkout.session.expired", &object, now()))
        .await;
    let row = shop
        .app
        .state
        .store
        .checkout(&session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "expired");
}

/// Rule 14: an event whose `livemode` differs from the key's mode is stored and ignored
/// with that reason, never applied.
async fn an_event_of_the_other_mode_is_stored_and_never_applied(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_live";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let start = now();
    let inv = full_period(
        &customer,
        &sub,
        account,
        &shop.plan_a,
        (1000, 1),
        (start, start + 30 * DAY),
        (0, start),
    );
    let mut body: Value = serde_json::from_str(&event("invoice.paid", &inv, start)).unwrap();
    body["livemode"] = json!(true);
    shop.deliver_and_drain(&body.to_string()).await;
    assert_eq!(shop.balance(account).await["available"], "0.00");
    let statuses = shop.event_status("invoice.paid").await;
    assert_eq!(statuses[0].0, "ignored");
    assert!(
        statuses[0]
            .1
            .as_deref()
            .unwrap_or_default()
            .contains("livemode"),
        "{statuses:?}"
    );
}

/// Rule 14: a checkout never goes from paid back to unpaid, whatever order its events
/// arrive in.
async fn a_paid_checkout_never_becomes_unpaid(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_paid_once";
    let (session, _) = shop.buy(account, &shop.pack, 1).await;
    let events = shop.take_events(&["checkout.session.completed"]);
    shop.deliver_and_drain(&events[0]).await;
    let mut stale: Value = serde_json::from_str(&events[0]).unwrap();
    stale["id"] = json!(id("evt"));
    stale["data"]["object"]["payment_status"] = json!("unpaid");
    shop.deliver_and_drain(&stale.to_string()).await;
    let row = shop
        .app
        .state
        .store
        .checkout(&session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.payment_status.as_deref(), Some("paid"));
    assert_eq!(shop.balance(account).await["available"], "100.00");
}

/// Rule 14: two updates of one subscription in the same second with different content
/// cannot be ordered by time: the second refetches the subscription from Stripe.
async fn same_second_subscription_updates_are_settled_by_a_refetch(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_tie";
    let session = shop.checkout(account, &shop.plan_a, 1).await;
    shop.fake
        .with_state(|s| s.complete_session(&session, true).unwrap());
    let created = shop.take_events(&["customer.subscription.created"]);
    let sub: Value = serde_json::from_str(&created[0]).unwrap();
    let sub_id = sub["data"]["object"]["id"].as_str().unwrap().to_owned();
    let at = now();
    let mut first = sub["data"]["object"].clone();
    first["cancel_at_period_end"] = json!(true);
    let mut second = sub["data"]["object"].clone();
    second["cancel_at_period_end"] = json!(false);
    second["metadata"]["note"] = json!("stale copy");
    shop.deliver_and_drain(&event("customer.subscription.updated", &first, at))
        .await;
    let before = shop.fake.requests().len();
    shop.deliver_and_drain(&event("customer.subscription.updated", &second, at))
        .await;
    let refetched = shop.fake.requests()[before..]
        .iter()
        .any(|r| r.method == "GET" && r.path == format!("/v1/subscriptions/{sub_id}"));
    assert!(refetched, "a tie refetches the subscription");
    let row = shop
        .app
        .state
        .store
        .subscription(&sub_id)
        .await
        .unwrap()
        .unwrap();
    // What Stripe holds now (not canceling), not the stale copy's metadata.
    assert!(!row.raw.contains("stale copy"));
}

/// Stripe reports one refund with two events (`refund.created`, `charge.refunded`).
/// Delivered once each, at the same moment, to two instances on one database, for many
/// accounts: each refund takes back its share once.
async fn one_refund_reported_twice_to_two_instances_at_once_is_taken_back_once(db: TestDb) {
    let shop = shop(&db).await;
    let other = quiet_app(&shop.fake, &db).await;
    let accounts: Vec<String> = (0..15).map(|i| format!("acct_race_{i}")).collect();
    let mut payments = Vec::new();
    for account in &accounts {
        let (_, pi) = shop.buy(account, &shop.pack, 1).await;
        payments.push(pi);
    }
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver(&body).await;
    }
    shop.drain().await;
    for pi in &payments {
        shop.refund(pi, 500);
    }
    let events = shop.take_events(&["refund.created", "charge.refunded"]);
    assert_eq!(events.len(), 30);
    let deliveries = events.iter().map(|body| {
        let url = if body.contains("\"refund.created\"") {
            shop.app.url("/webhooks/stripe")
        } else {
            other.url("/webhooks/stripe")
        };
        async move {
            let status = http()
                .post(url)
                .header(
                    "Stripe-Signature",
                    sign(WEBHOOK_SECRET, now(), body.as_bytes()),
                )
                .body(body.clone())
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    });
    futures_util::future::join_all(deliveries).await;
    shop.drain().await;
    for account in &accounts {
        assert_eq!(
            shop.available_and_debt(account).await,
            ("50.00".into(), "0.00".into()),
            "{account}"
        );
        shop.assert_balanced(account).await;
    }
    other.stop().await;
}

/// Rules 1 and 2 with the prorations the fake computes as Stripe does (to the second,
/// lines of "Unused time" and "Remaining time"): a change at half period invoiced at
/// once leaves 2,000; a change left for the renewal invoice leaves 3,000 + the net
/// 1,000 of its prorations once the new period starts.
async fn plan_changes_made_in_stripe_follow_the_money(db: TestDb) {
    let shop = shop(&db).await;
    let (sub, item) = subscribe(&shop, "acct_now").await;
    assert_eq!(shop.available_at_fake_time("acct_now").await, "1000.00");
    let (sub2, item2) = subscribe(&shop, "acct_later").await;
    shop.fake.with_state(|s| s.advance_clock(15 * DAY));
    shop.fake.with_state(|s| {
        s.update_subscription(
            &sub,
            &json!({"items": [{"id": item, "price": shop.plan_b.price}], "proration_behavior": "always_invoice"}),
            &Ctx::default(),
        )
        .unwrap();
        s.update_subscription(
            &sub2,
            &json!({"items": [{"id": item2, "price": shop.plan_b.price}], "proration_behavior": "create_prorations"}),
            &Ctx::default(),
        )
        .unwrap();
    });
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time("acct_now").await, "2000.00");
    assert_eq!(shop.available_at_fake_time("acct_later").await, "1000.00");
    // The renewal carries last period's prorations and the new period's line.
    shop.fake.with_state(|s| {
        s.advance_clock(15 * DAY + 1);
        s.renew_subscription(&sub2).unwrap();
    });
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time("acct_later").await, "4000.00");
    for account in ["acct_now", "acct_later"] {
        shop.assert_balanced(account).await;
    }
}

/// Rule 3: an endpoint that enables only `charge.refunded` still takes credits back: the
/// charge no longer embeds its refunds, so they are listed from Stripe.
async fn charge_refunded_alone_lists_the_refunds_of_the_charge(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_charge_only";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    for body in shop.take_events(&["checkout.session.completed"]) {
        shop.deliver_and_drain(&body).await;
    }
    shop.refund(&pi, 500);
    let events = shop.take_events(&["charge.refunded"]);
    assert_eq!(events.len(), 1);
    assert!(
        !events[0].contains("\"refunds\""),
        "basil charges do not embed refunds"
    );
    shop.deliver_and_drain(&events[0]).await;
    assert_eq!(shop.balance(account).await["available"], "50.00");
    assert!(
        shop.fake
            .requests()
            .iter()
            .any(|r| r.path == "/v1/refunds" && r.query.contains("charge=ch_")),
        "the charge's refunds were listed"
    );
    // A second refund, reported the same way: the first still counts once.
    shop.refund(&pi, 250);
    for body in shop.take_events(&["charge.refunded"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.balance(account).await["available"], "25.00");
    shop.assert_balanced(account).await;
}

/// Rule 9: an invoice of more lines than its payload embeds is read whole, and a refund
/// of any payment of an invoice paid in parts finds its grant.
async fn long_invoices_and_invoices_paid_in_parts_are_read_whole(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_long";
    let prices: Vec<String> = shop.fake.with_state(|s| {
        (0..12)
            .map(|i| {
                product_with_price(
                    s,
                    json!({"name": format!("Seat {i}"), "metadata": {"credit_amount": "10"}}),
                    json!({"unit_amount": 100, "recurring": {"interval": "month"}}),
                )
                .1
            })
            .collect()
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    let sub = shop.fake.with_state(|s| {
        let (_, c) = s
            .create_customer(&json!({"metadata": {"account": account}}), &Ctx::default())
            .unwrap();
        let items: Vec<Value> = prices.iter().map(|p| json!({"price": p})).collect();
        let (_, sub) = s
            .create_subscription(
                &json!({"customer": c["id"], "items": items, "metadata": {"account": account}}),
                &Ctx::default(),
            )
            .unwrap();
        sub["id"].as_str().unwrap().to_owned()
    });
    let paid = shop.take_events(&["invoice.paid"]);
    assert!(
        paid[0].contains("\"has_more\":true"),
        "the payload embeds only the first lines"
    );
    for body in &paid {
        shop.deliver_and_drain(body).await;
    }
    assert_eq!(shop.available_at_fake_time(account).await, "120.00");

    // The next invoice, paid by two payments of $6.00: a refund of the second one takes
    // back half of that invoice's credits.
    let (invoice, second) = shop.fake.with_state(|s| {
        s.advance_clock(30 * DAY + 1);
        let (_, inv) = s.renew_subscription_unpaid(&sub).unwrap();
        let id = inv["id"].as_str().unwrap().to_owned();
        s.pay_invoice_in_parts(&id, &[600, 600]).unwrap();
        let second = s
            .invoice_payment_objects
            .values()
            .filter(|p| p["invoice"] == json!(id) && p["status"] == json!("paid"))
            .filter_map(|p| p["payment"]["payment_intent"].as_str().map(str::to_owned))
            .last()
            .unwrap();
        (id, second)
    });
    for body in shop.take_events(&["invoice.paid"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(
        shop.available_at_fake_time(account).await,
        "120.00",
        "{invoice}"
    );
    shop.refund(&second, 600);
    for body in shop.take_events(&["refund.created", "charge.refunded"]) {
        shop.deliver_and_drain(&body).await;
    }
    assert_eq!(shop.available_at_fake_time(account).await, "60.00");
    shop.assert_balanced(account).await;
}

/// Rules 4 and 5 with the events the fake sends for them, as Stripe does.
async fn stripes_disputes_and_failed_refunds_move_credits_back_and_forth(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_fake_disputes";
    let (_, pi) = shop.buy(account, &shop.pack, 2).await;
    shop.deliver_all().await;
    assert_eq!(shop.balance(account).await["available"], "200.00");
    let charge = shop.fake.with_state(|s| {
        s.charges
            .values()
            .find(|c| c["payment_intent"] == json!(pi))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let refund = shop.refund(&pi, 500);
    shop.deliver_all().await;
    assert_eq!(shop.balance(account).await["available"], "150.00");
    shop.fake.with_state(|s| s.fail_refund(&refund).unwrap());
    shop.deliver_all().await;
    assert_eq!(shop.balance(account).await["available"], "200.00");
    let dispute = shop.fake.with_state(|s| {
        let (_, d) = s.create_dispute(&charge, Some(1000), false).unwrap();
        d["id"].as_str().unwrap().to_owned()
    });
    shop.deliver_all().await;
    assert_eq!(shop.balance(account).await["available"], "100.00");
    shop.fake
        .with_state(|s| s.close_dispute(&dispute, true).unwrap());
    shop.deliver_all().await;
    assert_eq!(shop.balance(account).await["available"], "200.00");
    shop.assert_balanced(account).await;
}

/// Rule 2: `events reconcile` stores the Events API's pages newest first (the refund
/// before the purchase): the ledger is the same as with webhooks in order.
async fn events_reconciled_newest_first_give_the_same_ledger(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_reconciled";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    shop.refund(&pi, 500);
    // Nothing was delivered: everything comes from the Events API.
    let client = shop.app.state.stripe.client().unwrap().clone();
    let report = stripe_manager::webhooks::reconcile::reconcile(
        &shop.app.state.store,
        &client,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert!(report.stored >= 3, "{report:?}");
    shop.drain().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("50.00".into(), "0.00".into())
    );
    shop.assert_balanced(account).await;
}

/// Rule 2: a grant that fails until an operator fixes the catalog ends in the dead
/// letter; the refund that arrives meanwhile is recorded, and applied when the replayed
/// grant goes through.
async fn a_refund_waits_for_its_grant_through_the_dead_letter_and_a_replay(db: TestDb) {
    let shop = shop(&db).await;
    let mut env = env_for(Some(&shop.fake.url()), &db);
    env.push(("STRIPE_CONNECTIVITY_TEST".to_owned(), "false".to_owned()));
    env.push(("STRIPE_MAX_RPS".to_owned(), "0".to_owned()));
    env.push(("WEBHOOK_MAX_ATTEMPTS".to_owned(), "1".to_owned()));
    let app = TestApp::start(config_from(&env)).await;
    // A plan created in Stripe after the last sync: not in the local catalog yet.
    let fresh = shop.fake.with_state(|s| {
        let (product, price) = product_with_price(
            s,
            json!({"name": "New plan", "metadata": {"credit_amount": "1000"}}),
            json!({"unit_amount": 1000, "recurring": {"interval": "month"}}),
        );
        Item { product, price }
    });
    let account = "acct_dead_letter";
    let customer = shop.linked(account).await;
    let sub = id("sub");
    let start = now();
    let mut inv = full_period(
        &customer,
        &sub,
        account,
        &fresh,
        (1000, 1),
        (start, start + 30 * DAY),
        (1000, start),
    );
    inv["payment_intent"] = json!("pi_dead_letter");
    let deliver = |body: String| {
        let url = app.url("/webhooks/stripe");
        async move {
            let status = http()
                .post(url)
                .header(
                    "Stripe-Signature",
                    sign(WEBHOOK_SECRET, now(), body.as_bytes()),
                )
                .body(body)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };
    deliver(event("invoice.paid", &inv, start)).await;
    let store = &app.state.store;
    for _ in 0..500 {
        if store.inbox_counts(0).await.unwrap().failed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.inbox_counts(0).await.unwrap().failed,
        1,
        "the grant is in the dead letter"
    );
    let refund = json!({"id": id("re"), "object": "refund", "amount": 250, "currency": "usd",
        "charge": "ch_dead_letter", "payment_intent": "pi_dead_letter", "status": "succeeded", "created": now()});
    deliver(event("refund.created", &refund, now())).await;
    // The operator syncs the catalog and replays the dead letter.
    let (status, _) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        store
            .replay_failed(stripe_manager::webhooks::now_ms())
            .await
            .unwrap(),
        1
    );
    shop.drain().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("750.00".into(), "0.00".into())
    );
    shop.assert_balanced(account).await;
    app.stop().await;
}

/// Two refunds of two different payments of one invoice (paid in two parts), each
/// delivered to its own instance at the same moment, for many accounts: the two
/// settlements of the grant queue on the account, so together they take back the
/// invoice's credits exactly once (not one share plus the whole).
async fn refunds_of_two_payments_of_one_invoice_on_two_instances_take_back_their_sum_once(
    db: TestDb,
) {
    let shop = shop(&db).await;
    let other = quiet_app(&shop.fake, &db).await;
    let accounts: Vec<String> = (0..10).map(|i| format!("acct_parts_{i}")).collect();
    let mut payments = Vec::new();
    for account in &accounts {
        let pis = shop.fake.with_state(|s| {
            let ctx = Ctx::default();
            let (_, c) = s
                .create_customer(&json!({"metadata": {"account": account}}), &ctx)
                .unwrap();
            let (_, sub) = s
                .create_subscription(
                    &json!({"customer": c["id"], "items": [{"price": shop.plan_a.price}],
                            "payment_behavior": "default_incomplete", "metadata": {"account": account}}),
                    &ctx,
                )
                .unwrap();
            let invoice = sub["latest_invoice"].as_str().unwrap().to_owned();
            s.pay_invoice_in_parts(&invoice, &[400, 600]).unwrap();
            let mut pis: Vec<(i64, String)> = s
                .invoice_payment_objects
                .values()
                .filter(|p| p["invoice"] == json!(invoice) && p["status"] == json!("paid"))
                .map(|p| {
                    (
                        p["amount_paid"].as_i64().unwrap(),
                        p["payment"]["payment_intent"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            pis.sort();
            pis
        });
        assert_eq!(pis.len(), 2, "{pis:?}");
        payments.push(pis);
    }
    for body in shop.take_events(&["invoice.paid"]) {
        shop.deliver(&body).await;
    }
    shop.drain().await;
    for account in &accounts {
        assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    }
    for pis in &payments {
        for (amount, pi) in pis {
            shop.refund(pi, *amount);
        }
    }
    let events = shop.take_events(&["refund.created"]);
    assert_eq!(events.len(), 20);
    let deliveries = events.iter().map(|body| {
        let first = payments.iter().any(|p| body.contains(&p[0].1));
        let app = if first { &shop.app } else { &other };
        async move { assert_eq!(app.deliver_signed(body).await, 200) }
    });
    futures_util::future::join_all(deliveries).await;
    shop.drain().await;
    for account in &accounts {
        let b = shop
            .app
            .state
            .ledger
            .balance(account, fake_now(&shop))
            .await
            .unwrap();
        assert_eq!(
            (b.available.to_string(), b.debt.to_string()),
            ("0.00".to_owned(), "0.00".to_owned()),
            "{account}"
        );
        shop.assert_balanced(account).await;
    }
    other.stop().await;
}
