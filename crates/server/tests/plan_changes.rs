//! Plan changes, trials and every way Stripe gives money back (issue #22): credits follow
//! the money, both ways. Each example of docs/CREDIT_SYSTEM.md's plan-change rules runs
//! through the real HTTP API against the fake Stripe (which behaves as Stripe's reference
//! for 2025-03-31.basil says, each behaviour cited beside its code), on SQLite and
//! PostgreSQL. Plan A = 1,000 credits for $10/month, plan B = 3,000 for $30/month.

mod common;

use common::shop::*;
use common::*;
use fake_stripe::Ctx;
use serde_json::{Value, json};
use sm_store::testing::TestDb;

sm_store::contract_tests!(
    a_downgrade_now_takes_back_the_unused_time_and_makes_debt,
    a_downgrade_billed_with_the_renewal_takes_back_its_net,
    an_upgrade_billed_with_the_renewal_is_worth_its_money,
    a_plan_change_keeps_the_quantity,
    refunding_a_netted_upgrade_in_full_leaves_the_account_as_before,
    plan_changes_refuse_prices_checkout_would_not_sell,
    a_change_to_a_tiered_price_made_in_stripe_fails_nothing,
    a_downgrade_waits_for_the_period_end_and_can_be_cancelled,
    one_trial_per_account,
    debt_nets_against_later_grants_and_can_be_forgiven,
    credit_notes_take_back_their_share_once_and_voided_ones_give_back,
    a_credit_note_and_its_refund_on_two_instances_are_taken_once,
    an_invoice_waits_for_the_session_that_names_its_account,
    paused_collection_ends_the_entitlement_while_set,
    resume_unsets_a_cancel_at_of_its_own,
    a_customer_deleted_in_stripe_is_unlinked_from_its_account,
    staff_refunds_take_only_a_paid_payment_the_largest_first,
);

/// The latest invoice of a subscription in the fake.
fn latest_invoice(shop: &Shop, sub: &str) -> Value {
    let id = shop.subscription(sub)["latest_invoice"]
        .as_str()
        .unwrap()
        .to_owned();
    shop.fake
        .with_state(|s| s.invoices.get(&id).cloned().unwrap())
}

/// Rule 1 and rule 3's example: B paid and spent on day 1, then changed to A now with
/// `always_invoice`. Stripe puts the unused time (−$29.00 + $9.67 = −$19.33) on the
/// customer's balance; the −2,900 are taken back (the lot is empty: debt) and A's 967
/// granted: available − debt = −1,933.00. Before, nothing was taken and 3,966 credits
/// were had for $10.67.
async fn a_downgrade_now_takes_back_the_unused_time_and_makes_debt(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_downgrade";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    shop.consume(account, "3000").await;
    shop.fake.with_state(|s| s.advance_clock(DAY));
    let changed = shop.change(account, json!({"price": shop.plan_a.price, "when": "now", "proration_behavior": "always_invoice"})).await;
    assert_eq!(changed["price"], json!(shop.plan_a.price), "{changed}");
    assert_eq!(changed["scheduled_change"], Value::Null);
    shop.deliver_all().await;
    let invoice = latest_invoice(&shop, &sub);
    assert_eq!(invoice["total"], -1933, "{invoice}");
    assert_eq!(invoice["amount_paid"], 0);
    assert_eq!(invoice["ending_balance"], -1933);
    let (available, debt) = shop.available_and_debt_at_fake_time(account).await;
    assert_eq!((available.as_str(), debt.as_str()), ("0.00", "1933.00"));
    // Rule 8: A's renewal, paid from the balance Stripe credited, settles debt first.
    shop.fake.with_state(|s| {
        s.advance_clock(29 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    let renewal = latest_invoice(&shop, &sub);
    assert_eq!(
        (
            renewal["amount_paid"].as_i64(),
            renewal["ending_balance"].as_i64()
        ),
        (Some(0), Some(-933)),
        "{renewal}"
    );
    let (available, debt) = shop.available_and_debt_at_fake_time(account).await;
    assert_eq!((available.as_str(), debt.as_str()), ("0.00", "933.00"));
    // That renewal was paid (from the balance): a $5 credit note on it takes back 500.
    credit_note(&shop, &sub, json!({"amount": 500, "credit_amount": 500}));
    shop.deliver_all().await;
    let (available, debt) = shop.available_and_debt_at_fake_time(account).await;
    assert_eq!((available.as_str(), debt.as_str()), ("0.00", "1433.00"));
    shop.assert_balanced(account).await;
}

/// Rule 2 through the API: an upgrade with `create_prorations` (the API's default, and a
/// common portal setting) is paid with the renewal; its +$15/−$5 lines are settled net
/// for the new period: 3,000 + 1,000 = 4,000, instead of $10 for nothing.
async fn an_upgrade_billed_with_the_renewal_is_worth_its_money(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_upgrade_later";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    shop.fake.with_state(|s| s.advance_clock(15 * DAY));
    shop.change(
        account,
        json!({"price": shop.plan_b.price, "proration_behavior": "create_prorations"}),
    )
    .await;
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    shop.fake.with_state(|s| {
        s.advance_clock(15 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    let invoice = latest_invoice(&shop, &sub);
    assert_eq!(invoice["amount_paid"], 4000, "{invoice}");
    assert_eq!(shop.available_at_fake_time(account).await, "4000.00");
    shop.assert_balanced(account).await;
}

/// Rule 3: the quantity is kept unless given. Stripe resets a changed item's quantity to
/// 1 unless it is sent (docs.stripe.com/api/subscriptions/update, `items.price`), and
/// the fake does too: A × 5 → B bills B × 5, and its credits are 5 × 3,000's share.
async fn a_plan_change_keeps_the_quantity(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_five_seats";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 5, None).await;
    assert_eq!(shop.available_at_fake_time(account).await, "5000.00");
    shop.fake.with_state(|s| s.advance_clock(15 * DAY));
    let changed = shop
        .change(account, json!({"price": shop.plan_b.price}))
        .await;
    assert_eq!(changed["quantity"], 5, "{changed}");
    shop.deliver_all().await;
    let item = &shop.subscription(&sub)["items"]["data"][0];
    assert_eq!(item["quantity"], 5, "{item}");
    assert_eq!(item["price"]["id"], json!(shop.plan_b.price));
    // −$25 (A × 5, half a month) + $75 (B × 5): −2,500 + 7,500 → 10,000 available.
    assert_eq!(shop.available_at_fake_time(account).await, "10000.00");
    // A new quantity is taken as given.
    let changed = shop
        .change(
            account,
            json!({"price": shop.plan_b.price, "quantity": 2, "when": "now"}),
        )
        .await;
    assert_eq!(changed["quantity"], 2, "{changed}");
    shop.deliver_all().await;
    shop.assert_balanced(account).await;

    // The fake, asked directly without a quantity, resets it to 1 as Stripe does.
    let item_id = shop.subscription(&sub)["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = shop.fake.with_state(|s| {
        s.update_subscription(
            &sub,
            &json!({"items": [{"id": item_id, "price": shop.plan_a.price}], "proration_behavior": "none"}),
            &Ctx::default(),
        )
        .unwrap()
        .1
    });
    assert_eq!(after["items"]["data"][0]["quantity"], 1, "{after}");
}

/// Rule 4: the upgrade invoice paid $10 net (−500 of A taken back, +1,500 of B granted);
/// refunding half gives half of both back, refunding all of it leaves the 1,000 the
/// account had before (before: 500 left, for $0 net).
async fn refunding_a_netted_upgrade_in_full_leaves_the_account_as_before(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_refund_upgrade";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    shop.fake.with_state(|s| s.advance_clock(15 * DAY));
    shop.change(account, json!({"price": shop.plan_b.price, "when": "now"}))
        .await;
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time(account).await, "2000.00");
    let invoice = latest_invoice(&shop, &sub);
    assert_eq!(invoice["amount_paid"], 1000, "{invoice}");
    let pi = shop.fake.with_state(|s| {
        s.invoice_payments
            .get(invoice["id"].as_str().unwrap())
            .cloned()
            .unwrap()
    });
    shop.refund(&pi, 500);
    shop.deliver_all().await;
    // Half of the money: 750 of B's 1,500 taken back, 250 of A's 500 given back.
    assert_eq!(shop.available_at_fake_time(account).await, "1500.00");
    shop.refund(&pi, 500);
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    let (_, debt) = shop.available_and_debt_at_fake_time(account).await;
    assert_eq!(debt, "0.00");
    shop.assert_balanced(account).await;
}

/// Rule 3: only prices checkout would sell (recurring, active, a valid credit product,
/// per unit, licensed): a tiered or metered price gets a 400 before Stripe is asked.
async fn plan_changes_refuse_prices_checkout_would_not_sell(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_refusals";
    subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    let refused = shop.fake.with_state(|s| {
        let ctx = Ctx::default();
        [
            json!({"billing_scheme": "tiered", "tiers_mode": "volume", "recurring": {"interval": "month"},
                   "tiers": [{"up_to": "inf", "unit_amount": 100}]}),
            json!({"unit_amount": 100, "recurring": {"interval": "month", "usage_type": "metered"}}),
        ]
        .map(|mut price| {
            price["product"] = json!(shop.plan_b.product);
            price["currency"] = json!("usd");
            let (_, p) = s.create_price(&price, &ctx).unwrap();
            p["id"].as_str().unwrap().to_owned()
        })
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    take_fake_events(&shop.fake, &[]);
    for (price, reason) in refused.iter().zip(["tiered", "metered"]) {
        let (status, body) = shop
            .act(account, "subscription/change", json!({"price": price}))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(reason), "{reason}: {body}");
    }
    // One-time prices and nonsense are refused too, and Stripe was never asked.
    for body in [
        json!({"price": shop.pack.price}),
        json!({"price": shop.plan_b.price, "when": "tomorrow"}),
        json!({"price": shop.plan_b.price, "quantity": 0}),
        json!({"price": shop.plan_b.price, "when": "period_end", "proration_behavior": "always_invoice"}),
    ] {
        let (status, answer) = shop.act(account, "subscription/change", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    assert!(
        take_fake_events(&shop.fake, &[]).is_empty(),
        "nothing reached Stripe"
    );
}

/// Rule 3: a downgrade without `when` waits for the period's end (a subscription
/// schedule): nothing invoiced or taken now, the account view shows the scheduled
/// change, the renewal bills the new price and grants its credits; a scheduled change
/// can be cancelled, and the plan then renews unchanged.
async fn a_downgrade_waits_for_the_period_end_and_can_be_cancelled(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_scheduled";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    let first = latest_invoice(&shop, &sub);
    shop.fake.with_state(|s| s.advance_clock(10 * DAY));
    let changed = shop
        .change(account, json!({"price": shop.plan_a.price}))
        .await;
    // Still on B until the period ends.
    assert_eq!(changed["price"], json!(shop.plan_b.price), "{changed}");
    let period_end = changed["current_period_end"].as_i64().unwrap();
    assert_eq!(
        changed["scheduled_change"]["price"],
        json!(shop.plan_a.price),
        "{changed}"
    );
    assert_eq!(changed["scheduled_change"]["at"], json!(period_end));
    assert_eq!(changed["scheduled_change"]["quantity"], 1);
    shop.deliver_all().await;
    assert_eq!(
        latest_invoice(&shop, &sub)["id"],
        first["id"],
        "nothing invoiced"
    );
    assert_eq!(shop.available_at_fake_time(account).await, "3000.00");
    let view = shop.account(account).await;
    assert_eq!(
        view["subscriptions"][0]["scheduled_change"]["price"],
        json!(shop.plan_a.price),
        "{view}"
    );
    // A second change while one is scheduled is refused: cancel it first.
    let (status, body) = shop
        .act(
            account,
            "subscription/change",
            json!({"price": shop.plan_a.price, "when": "now"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // The renewal bills A and grants its 1,000 for the new period.
    shop.fake.with_state(|s| {
        s.advance_clock(20 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    let renewal = latest_invoice(&shop, &sub);
    assert_eq!(renewal["amount_paid"], 1000, "{renewal}");
    assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    let view = shop.account(account).await;
    assert_eq!(view["subscriptions"][0]["price"], json!(shop.plan_a.price));
    assert_eq!(view["subscriptions"][0]["scheduled_change"], Value::Null);
    // One period later the schedule is released and the plan carries on as A.
    shop.fake.with_state(|s| {
        s.advance_clock(30 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    let sub_now = shop.subscription(&sub);
    assert_eq!(sub_now["schedule"], Value::Null, "{sub_now}");
    assert_eq!(
        sub_now["items"]["data"][0]["price"]["id"],
        json!(shop.plan_a.price)
    );
    shop.assert_balanced(account).await;

    // Cancelled: the plan renews on B.
    let account = "acct_scheduled_cancelled";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    shop.change(
        account,
        json!({"price": shop.plan_a.price, "when": "period_end"}),
    )
    .await;
    shop.deliver_all().await;
    let (status, cancelled) = delete_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/subscription/change")),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["scheduled_change"], Value::Null, "{cancelled}");
    shop.deliver_all().await;
    let (status, again) = delete_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/subscription/change")),
    )
    .await;
    assert_eq!(status, 409, "{again}");
    shop.fake.with_state(|s| {
        s.advance_clock(30 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    assert_eq!(latest_invoice(&shop, &sub)["amount_paid"], 3000);
    assert_eq!(
        shop.account(account).await["subscriptions"][0]["price"],
        json!(shop.plan_b.price)
    );

    // A schedule made in the Dashboard (not by stripe-manager) is not the app's to
    // release.
    let account = "acct_staff_schedule";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    shop.fake.with_state(|s| {
        s.create_schedule(&json!({"from_subscription": sub}), &Ctx::default())
            .unwrap()
    });
    shop.deliver_all().await;
    let (status, refused) = delete_json(
        &shop
            .app
            .url(&format!("/api/v1/accounts/{account}/subscription/change")),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(shop.subscription(&sub)["schedule"].is_string());

    // Stripe refuses the second call (the phases): the change fails with Stripe's
    // error and the bare schedule is released, so nothing blocks the next change.
    let account = "acct_schedule_refused";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    shop.fake.inject(
        fake_stripe::Fault::on_path(
            "/v1/subscription_schedules/",
            fake_stripe::Fault::status(400),
        )
        .times(1),
    );
    let (status, failed) = shop
        .act(
            account,
            "subscription/change",
            json!({"price": shop.plan_a.price}),
        )
        .await;
    assert_eq!(status, 502, "{failed}");
    assert_eq!(shop.subscription(&sub)["schedule"], Value::Null);
    shop.deliver_all().await;
    let changed = shop
        .change(account, json!({"price": shop.plan_a.price}))
        .await;
    assert_eq!(
        changed["scheduled_change"]["price"],
        json!(shop.plan_a.price)
    );
}

/// Rule 6: one trial per account, and a trial canceled before any payment keeps only
/// what was spent. A trial cancelled at once does not open a second one
/// (409 `trial_already_used`, before Stripe is asked for a session); neither does a
/// subscription the customer has in Stripe that the mirror has not seen. A checkout
/// without a trial is still sold.
async fn one_trial_per_account(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_trial_once";
    subscribe_to(&shop, account, &shop.plan_a, 1, Some(14)).await;
    assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    shop.consume(account, "300").await;
    let (status, cancelled) = shop
        .act(account, "subscription/cancel", json!({"immediately": true}))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    shop.deliver_all().await;
    // A trial canceled before any payment keeps only what was spent: the 700 unspent
    // expire when it ended (a journal entry says so).
    assert_eq!(shop.available_at_fake_time(account).await, "0.00");
    let history = shop.app.state.ledger.history(account, 20).await.unwrap();
    assert!(history.iter().any(|e| e.kind == "trial_end"), "{history:?}");
    shop.assert_balanced(account).await;
    let trial = json!({"account": account, "price": shop.plan_a.price, "trial_period_days": 14,
                       "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"});
    let (status, body) = post_json(&shop.app.url("/api/v1/checkout"), trial.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "trial_already_used", "{body}");
    // The same, with the trial's $0 invoice arriving after the cancellation.
    let late = "acct_trial_late_invoice";
    let (status, created) = post_json(
        &shop.app.url("/api/v1/checkout"),
        json!({"account": late, "price": shop.plan_a.price, "trial_period_days": 14,
               "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    shop.fake.with_state(|s| {
        let (_, done) = s
            .complete_session(created["id"].as_str().unwrap(), true)
            .unwrap();
        let sub = done["subscription"].as_str().unwrap().to_owned();
        s.advance_clock(60);
        s.cancel_subscription(&sub, false).unwrap();
    });
    let mut events = shop.take_events(&[]);
    events.sort_by_key(|e| e.contains("\"invoice.paid\""));
    for body in &events {
        assert_eq!(shop.deliver(body).await, 200);
    }
    shop.drain().await;
    assert_eq!(shop.available_at_fake_time(late).await, "0.00");

    // Two trial checkouts made one after the other, before either completes: the
    // second is refused (completed, each would start a trial).
    let pending = "acct_trial_pending";
    let mut first = trial.clone();
    first["account"] = json!(pending);
    let (status, body) = post_json(&shop.app.url("/api/v1/checkout"), first.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_json(&shop.app.url("/api/v1/checkout"), first).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "trial_already_used", "{body}");

    // Without a trial it sells.
    let mut paid = trial.clone();
    paid.as_object_mut().unwrap().remove("trial_period_days");
    let (status, body) = post_json(&shop.app.url("/api/v1/checkout"), paid).await;
    assert_eq!(status, 200, "{body}");

    // A subscription only Stripe knows of (made in the Dashboard, its events not here).
    let account = "acct_trial_elsewhere";
    let customer = shop.fake.with_state(|s| {
        let (_, c) = s
            .create_customer(&json!({"metadata": {"account": account}}), &Ctx::default())
            .unwrap();
        let id = c["id"].as_str().unwrap().to_owned();
        s.create_subscription(
            &json!({"customer": id, "items": [{"price": shop.plan_a.price}]}),
            &Ctx::default(),
        )
        .unwrap();
        id
    });
    take_fake_events(&shop.fake, &[]);
    shop.app
        .state
        .store
        .ensure_account(account, Some(&customer), now())
        .await
        .unwrap();
    let mut trial = trial;
    trial["account"] = json!(account);
    let (status, body) = post_json(&shop.app.url("/api/v1/checkout"), trial).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "trial_already_used", "{body}");
}

/// Rule 8: a later grant to an account with debt settles the debt first (a journal entry
/// says so); undoing the take-back that made the debt gives back where the settlement
/// took. An operator can forgive debt (`credits forgive ACCOUNT --reason`, audited); a
/// forgiven debt is not made again by a repeated event, and a take-back undone later
/// gives nothing for it.
async fn debt_nets_against_later_grants_and_can_be_forgiven(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_nets";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    shop.consume(account, "80").await;
    let refund = shop.refund(&pi, 1000);
    shop.deliver_all().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("0.00".into(), "80.00".into())
    );
    shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("20.00".into(), "0.00".into())
    );
    let history = shop.app.state.ledger.history(account, 50).await.unwrap();
    assert!(
        history.iter().any(|e| e.kind == "debt"
            && e.description.as_deref() == Some("debt settled from a new grant")),
        "{history:?}"
    );
    // The refund fails: its debt was paid by the second pack, which gets it back.
    shop.fake.with_state(|s| s.fail_refund(&refund).unwrap());
    shop.deliver_all().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("120.00".into(), "0.00".into())
    );
    shop.assert_balanced(account).await;

    // Forgiven through the CLI.
    let account = "acct_forgiven";
    let (_, pi) = shop.buy(account, &shop.pack, 1).await;
    shop.deliver_all().await;
    shop.consume(account, "80").await;
    let refund = shop.refund(&pi, 1000);
    let refund_events = shop.take_events(&[]);
    for body in &refund_events {
        shop.deliver(body).await;
    }
    shop.drain().await;
    let env = env_for(None, &db);
    let (code, out, err) = run_cli(
        &env,
        &[
            "credits", "forgive", account, "--reason", "goodwill", "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["amount"], "80.00", "{done}");
    assert_eq!(
        shop.available_and_debt(account).await,
        ("0.00".into(), "0.00".into())
    );
    let (code, _, err) = run_cli(&env, &["credits", "forgive", account, "--reason", "again"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no debt"), "{err}");
    // The same refund reported again changes nothing.
    for body in &refund_events {
        let again = body.replace("\"id\":\"evt_", "\"id\":\"evt_again_");
        shop.deliver(&again).await;
    }
    shop.drain().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("0.00".into(), "0.00".into())
    );
    // The refund fails: the 20 it took come back, nothing for the forgiven 80.
    shop.fake.with_state(|s| s.fail_refund(&refund).unwrap());
    shop.deliver_all().await;
    assert_eq!(
        shop.available_and_debt(account).await,
        ("20.00".into(), "0.00".into())
    );
    shop.assert_balanced(account).await;
    let audit = shop
        .app
        .state
        .store
        .audit_log(Some("credits.forgive"), 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "credits.forgive" && a.target.as_deref() == Some(account)),
        "{audit:?}"
    );
}

/// A credit note on the latest invoice of `sub`, made in the fake.
fn credit_note(shop: &Shop, sub: &str, params: Value) -> Value {
    let invoice = latest_invoice(shop, sub);
    let mut params = params;
    params["invoice"] = invoice["id"].clone();
    shop.fake
        .with_state(|s| s.create_credit_note(&params, &Ctx::default()).unwrap().1)
}

/// Rule 5: a post-payment credit note takes back its share of the invoice's credits;
/// the part it refunds is taken once, whichever of the note and the refund's own events
/// arrive first; a voided note gives back. A pre-payment note is a discount.
async fn credit_notes_take_back_their_share_once_and_voided_ones_give_back(db: TestDb) {
    let shop = shop(&db).await;
    // A $15 credit note to the balance on B's $30 invoice → 1,500 left; voided → 3,000.
    let account = "acct_credit_note";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    let note = credit_note(
        &shop,
        &sub,
        json!({"amount": 1500, "credit_amount": 1500, "reason": "product_unsatisfactory"}),
    );
    assert_eq!(note["type"], "post_payment", "{note}");
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time(account).await, "1500.00");
    let customer = shop.subscription(&sub)["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    let balance = |shop: &Shop| {
        shop.fake
            .with_state(|s| s.customers.get(&customer).unwrap()["balance"].as_i64())
    };
    assert_eq!(balance(&shop), Some(-1500));
    shop.fake.with_state(|s| {
        s.void_credit_note(note["id"].as_str().unwrap(), &Ctx::default())
            .unwrap()
    });
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time(account).await, "3000.00");
    assert_eq!(balance(&shop), Some(0));
    shop.assert_balanced(account).await;

    // A note refunding $10, its refund's events delivered too, in both orders → 2,000.
    for (account, note_first) in [("acct_cn_refund", true), ("acct_cn_refund_late", false)] {
        let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
        credit_note(&shop, &sub, json!({"amount": 1000, "refund_amount": 1000}));
        let mut events = shop.take_events(&[]);
        assert!(events.iter().any(|e| e.contains("\"refund.created\"")));
        assert!(events.iter().any(|e| e.contains("\"credit_note.created\"")));
        if note_first {
            events.reverse();
        }
        for body in &events {
            assert_eq!(shop.deliver(body).await, 200);
        }
        shop.drain().await;
        assert_eq!(
            shop.available_at_fake_time(account).await,
            "2000.00",
            "{account}"
        );
        // Refunded money is refunded: the note cannot be voided.
        shop.assert_balanced(account).await;
    }

    // A pre-payment note lowers what an open invoice asks: the period's credits stay.
    let account = "acct_cn_open";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    let open = shop.fake.with_state(|s| {
        s.advance_clock(30 * DAY + 1);
        s.renew_subscription_unpaid(&sub).unwrap().1
    });
    let note = credit_note(&shop, &sub, json!({"amount": 1000}));
    assert_eq!(note["type"], "pre_payment", "{note}");
    shop.fake
        .with_state(|s| s.pay_invoice(open["id"].as_str().unwrap()).unwrap());
    shop.deliver_all().await;
    assert_eq!(latest_invoice(&shop, &sub)["amount_paid"], 2000);
    assert_eq!(shop.available_at_fake_time(account).await, "3000.00");
}

/// Rule 5 on two instances: a credit note that refunds, its `credit_note.created` sent to
/// one instance and its refund's `refund.created` and `charge.refunded` to the other, at
/// the same moment, for 10 accounts: each takes back its share once.
async fn a_credit_note_and_its_refund_on_two_instances_are_taken_once(db: TestDb) {
    let shop = shop(&db).await;
    let other = quiet_app(&shop.fake, &db).await;
    let accounts: Vec<String> = (0..10).map(|i| format!("acct_cn_race_{i}")).collect();
    let mut subs = Vec::new();
    for account in &accounts {
        subs.push(subscribe_to(&shop, account, &shop.plan_b, 1, None).await);
    }
    for sub in &subs {
        credit_note(
            &shop,
            sub,
            json!({"amount": 1500, "refund_amount": 1000, "credit_amount": 500}),
        );
    }
    let events = shop.take_events(&["credit_note.created", "refund.created", "charge.refunded"]);
    assert_eq!(events.len(), 30);
    let deliveries = events.iter().map(|body| {
        let app = if body.contains("\"credit_note.created\"") {
            &shop.app
        } else {
            &other
        };
        async move { assert_eq!(app.deliver_signed(body).await, 200) }
    });
    futures_util::future::join_all(deliveries).await;
    shop.drain().await;
    other.drain_inbox().await;
    for account in &accounts {
        // $15 of $30 given back: 1,500 of 3,000 taken, once.
        assert_eq!(
            shop.available_at_fake_time(account).await,
            "1500.00",
            "{account}"
        );
        shop.assert_balanced(account).await;
    }
    other.stop().await;
}

/// Rule 7: a payment-link subscription whose `invoice.paid` arrives before the
/// `checkout.session.completed` that names the account stays `pending` (never
/// `processed`, never dead-lettered, never pruned), says why in `events list --status
/// pending`, and is applied when the session arrives.
async fn an_invoice_waits_for_the_session_that_names_its_account(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_payment_link";
    let (customer, sub) = shop.fake.with_state(|s| {
        let (_, c) = s.create_customer(&json!({}), &Ctx::default()).unwrap();
        let customer = c["id"].as_str().unwrap().to_owned();
        let (_, sub) = s
            .create_subscription(
                &json!({"customer": customer, "items": [{"price": shop.plan_a.price}]}),
                &Ctx::default(),
            )
            .unwrap();
        (customer, sub["id"].as_str().unwrap().to_owned())
    });
    let invoices = shop.take_events(&["invoice.paid"]);
    assert_eq!(invoices.len(), 1);
    assert_eq!(shop.deliver(&invoices[0]).await, 200);
    let store = &shop.app.state.store;
    let parked = shop.app.parked_event("invoice.paid").await;
    assert_eq!(parked.attempts, 0, "waiting is not failing");
    assert!(
        parked.last_error.as_deref().unwrap().contains(&customer),
        "{parked:?}"
    );
    let (code, out, err) = run_cli(
        &env_for(None, &db),
        &["events", "list", "--status", "pending"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no account is known"), "{out}");
    assert_eq!(shop.available_and_debt(account).await.0, "0.00");

    // The session that names the account arrives: the invoice is applied.
    let session = json!({
        "id": id("cs"), "object": "checkout.session", "mode": "subscription",
        "client_reference_id": account, "customer": customer, "subscription": sub,
        "status": "complete", "payment_status": "paid", "metadata": {},
        "amount_total": 1000, "currency": "usd", "livemode": false, "created": now(),
    });
    shop.deliver_and_drain(&event("checkout.session.completed", &session, now()))
        .await;
    assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    let done = store.get_event(&parked.id).await.unwrap().unwrap();
    assert_eq!(done.status, "processed");
}

/// Rule 9: `pause_collection` (any behavior) ends the entitlement while set; the paused
/// renewal is not collected (voided) and grants nothing; resumed, the plan entitles again.
async fn paused_collection_ends_the_entitlement_while_set(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_paused";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    assert_eq!(shop.account(account).await["entitlement"]["active"], true);
    let pause = |params: Value| {
        shop.fake.with_state(|s| {
            s.update_subscription(&sub, &params, &Ctx::default())
                .unwrap()
        })
    };
    pause(json!({"pause_collection": {"behavior": "void"}}));
    shop.deliver_all().await;
    let view = shop.account(account).await;
    assert_eq!(view["entitlement"]["active"], false, "{view}");
    assert_eq!(view["entitlement"]["status"], "paused_collection");
    assert_eq!(
        view["subscriptions"][0]["status"], "active",
        "Stripe keeps it active"
    );
    shop.fake.with_state(|s| {
        s.advance_clock(30 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    assert_eq!(latest_invoice(&shop, &sub)["status"], "void");
    assert_eq!(shop.available_at_fake_time(account).await, "0.00");
    pause(json!({"pause_collection": ""}));
    shop.deliver_all().await;
    assert_eq!(shop.account(account).await["entitlement"]["active"], true);
}

/// Rule 9: resume also unsets a `cancel_at` of its own (set in the Dashboard), which
/// `cancel_at_period_end=false` leaves in place.
async fn resume_unsets_a_cancel_at_of_its_own(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_cancel_at";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    let end = shop.subscription(&sub)["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    shop.fake.with_state(|s| {
        s.update_subscription(&sub, &json!({"cancel_at": end - 5 * DAY}), &Ctx::default())
            .unwrap()
    });
    shop.deliver_all().await;
    // cancel_at_period_end=false alone would keep it, as Stripe does.
    let kept = shop.fake.with_state(|s| {
        s.update_subscription(
            &sub,
            &json!({"cancel_at_period_end": "false"}),
            &Ctx::default(),
        )
        .unwrap()
        .1
    });
    assert_eq!(kept["cancel_at"], json!(end - 5 * DAY), "{kept}");
    shop.deliver_all().await;
    let (status, resumed) = shop.act(account, "subscription/resume", json!({})).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["cancel_at"], Value::Null, "{resumed}");
    assert_eq!(shop.subscription(&sub)["cancel_at"], Value::Null);
}

/// Rule 9: a customer deleted in Stripe is unlinked from its account and gone from the
/// account view; the next checkout creates a new customer (before: "No such customer"
/// on every checkout).
async fn a_customer_deleted_in_stripe_is_unlinked_from_its_account(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_deleted_customer";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    let customer = shop.subscription(&sub)["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        shop.account(account).await["customer"]["id"],
        json!(customer)
    );
    shop.fake
        .with_state(|s| s.delete_customer(&customer, &Ctx::default()).unwrap());
    shop.deliver_all().await;
    let view = shop.account(account).await;
    assert_eq!(view["customer"], Value::Null, "{view}");
    assert_eq!(view["subscriptions"][0]["status"], "canceled", "{view}");
    assert_eq!(view["entitlement"]["active"], false);
    // Credits already granted stay: they were paid for.
    assert_eq!(shop.available_at_fake_time(account).await, "1000.00");
    let session = shop.checkout(account, &shop.pack, 1).await;
    let new_customer = shop.fake.with_state(|s| {
        s.sessions.get(&session).unwrap()["customer"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    assert_ne!(new_customer, customer);
    assert_eq!(
        shop.account(account).await["customer"]["id"],
        json!(new_customer)
    );
}

/// Rule 9: a staff refund takes only a `paid` invoice payment (an open or canceled one
/// moved no money), the largest first when the invoice was paid in parts.
async fn staff_refunds_take_only_a_paid_payment_the_largest_first(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_staff_refund";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    let open = shop.fake.with_state(|s| {
        s.advance_clock(30 * DAY + 1);
        s.renew_subscription_unpaid(&sub).unwrap().1
    });
    let invoice = open["id"].as_str().unwrap().to_owned();
    shop.fake
        .with_state(|s| s.pay_invoice_in_parts(&invoice, &[400, 600]).unwrap());
    shop.deliver_all().await;
    let payments = shop.fake.with_state(|s| {
        s.invoice_payment_objects
            .values()
            .filter(|p| p["invoice"] == json!(invoice))
            .map(|p| {
                (
                    p["status"].as_str().unwrap().to_owned(),
                    p["amount_paid"].as_i64(),
                    p["payment"]["payment_intent"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    });
    assert!(payments.iter().any(|p| p.0 == "canceled"), "{payments:?}");
    let largest = payments
        .iter()
        .find(|p| p.1 == Some(600))
        .map(|p| p.2.clone())
        .unwrap();
    let billing = stripe_manager::billing::Billing::new(
        shop.app.state.store.clone(),
        shop.app.state.stripe.clone(),
    );
    let refund = billing
        .refund(
            account,
            &stripe_manager::billing::RefundRequest {
                payment: invoice.clone(),
                amount: Some(300),
                reason: "goodwill".into(),
            },
            None,
            stripe_manager::billing::Actor {
                name: "staff",
                origin: "cli",
            },
        )
        .await
        .unwrap();
    let refunded_pi = shop.fake.with_state(|s| {
        s.refunds.get(&refund.refund).unwrap()["payment_intent"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    assert_eq!(refunded_pi, largest);
}

/// Rule 2, negative: B spent on day 1, changed to A with `create_prorations`; the
/// renewal invoice settles −$29.00 + $9.67 with A's $10 (total −$9.33, to the balance):
/// the net −1,933 credits are taken back — from B's lot (empty), then A's new 1,000, then
/// 933 as debt. Before, nothing was ever taken back.
async fn a_downgrade_billed_with_the_renewal_takes_back_its_net(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_downgrade_later";
    let sub = subscribe_to(&shop, account, &shop.plan_b, 1, None).await;
    shop.consume(account, "3000").await;
    shop.fake.with_state(|s| s.advance_clock(DAY));
    shop.change(
        account,
        json!({"price": shop.plan_a.price, "when": "now", "proration_behavior": "create_prorations"}),
    )
    .await;
    shop.deliver_all().await;
    shop.fake.with_state(|s| {
        s.advance_clock(29 * DAY + 1);
        s.renew_subscription(&sub).unwrap();
    });
    shop.deliver_all().await;
    let renewal = latest_invoice(&shop, &sub);
    assert_eq!(renewal["total"], -933, "{renewal}");
    let (available, debt) = shop.available_and_debt_at_fake_time(account).await;
    assert_eq!((available.as_str(), debt.as_str()), ("0.00", "933.00"));
    shop.assert_balanced(account).await;
}

/// A plan changed in the Dashboard or the portal to a price whose credits are not
/// defined (tiered): its lines grant nothing, and the invoice's other lines (A's unused
/// time taken back) are applied; nothing ends in the dead letter.
async fn a_change_to_a_tiered_price_made_in_stripe_fails_nothing(db: TestDb) {
    let shop = shop(&db).await;
    let account = "acct_tiered_elsewhere";
    let sub = subscribe_to(&shop, account, &shop.plan_a, 1, None).await;
    let tiered = shop.fake.with_state(|s| {
        let price = json!({"billing_scheme": "tiered", "tiers_mode": "volume",
            "recurring": {"interval": "month"}, "tiers": [{"up_to": "inf", "unit_amount": 100}],
            "product": shop.plan_b.product, "currency": "usd"});
        s.create_price(&price, &Ctx::default()).unwrap().1["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let (status, _) = post_json(&shop.app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200);
    take_fake_events(&shop.fake, &[]);
    let item = shop.subscription(&sub)["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    shop.fake.with_state(|s| {
        s.advance_clock(15 * DAY);
        s.update_subscription(
            &sub,
            &json!({"items": [{"id": item, "price": tiered}], "proration_behavior": "always_invoice"}),
            &Ctx::default(),
        )
        .unwrap();
    });
    shop.deliver_all().await;
    assert_eq!(shop.available_at_fake_time(account).await, "500.00");
    shop.assert_balanced(account).await;
}
