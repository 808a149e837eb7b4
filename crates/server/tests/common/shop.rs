//! A shop for the credit-rule tests: the real application over real HTTP against the
//! fake Stripe, a catalog of packs and plans, and Stripe-shaped events (basil) written
//! the way the fake writes them.

use fake_stripe::{Ctx, FakeStripe};
use serde_json::{Value, json};
use sm_store::testing::TestDb;

use super::*;

pub const DAY: i64 = 86_400;

pub fn now() -> i64 {
    unix_now()
}

pub fn id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A product (with `metadata`) and one USD price for it in the fake: `(product, price)`.
pub fn product_with_price(
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

/// The product and price of a catalog entry.
#[derive(Clone)]
pub struct Item {
    pub product: String,
    pub price: String,
}

pub struct Shop {
    pub fake: FakeStripe,
    pub app: TestApp,
    /// 100 credits for $10.00, one-time.
    pub pack: Item,
    /// 2 credits for $0.03, one-time.
    pub tiny: Item,
    /// 1,000 credits for $10.00 a month.
    pub plan_a: Item,
    /// 3,000 credits for $30.00 a month.
    pub plan_b: Item,
    /// $5.00 a month, no `credit_amount`: not a credit plan.
    pub plain: Item,
}

pub async fn shop(db: &TestDb) -> Shop {
    shop_with(db, &[]).await
}

/// [`shop`] with more settings (events to the app, thresholds).
pub async fn shop_with(db: &TestDb, extra: &[(String, String)]) -> Shop {
    let fake = FakeStripe::start().await;
    let [pack, tiny, plan_a, plan_b, plain] = fake.with_state(|s| {
        let monthly =
            |amount: i64| json!({"unit_amount": amount, "recurring": {"interval": "month"}});
        [
            (
                json!({"name": "Pack", "metadata": {"credit_amount": "100"}}),
                json!({"unit_amount": 1000}),
            ),
            (
                json!({"name": "Tiny", "metadata": {"credit_amount": "2"}}),
                json!({"unit_amount": 3}),
            ),
            (
                json!({"name": "Plan A", "metadata": {"credit_amount": "1000"}}),
                monthly(1000),
            ),
            (
                json!({"name": "Plan B", "metadata": {"credit_amount": "3000"}}),
                monthly(3000),
            ),
            (json!({"name": "Support"}), monthly(500)),
        ]
        .map(|(p, price)| {
            let (product, price) = product_with_price(s, p, price);
            Item { product, price }
        })
    });
    let app = quiet_app_with(&fake, db, extra).await;
    let (status, report) = post_json(&app.url("/api/v1/sync"), json!({})).await;
    assert_eq!(status, 200, "{report}");
    Shop {
        fake,
        app,
        pack,
        tiny,
        plan_a,
        plan_b,
        plain,
    }
}

/// A signed-ready event body of `kind` about `object`, created `created`.
pub fn event(kind: &str, object: &Value, created: i64) -> String {
    json!({
        "id": id("evt"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
    })
    .to_string()
}

/// An invoice line in the basil shape: `pricing.price_details`, and the `parent`
/// that says whether it is a proration.
pub fn line(
    item: &Item,
    sub: &str,
    amount: i64,
    quantity: u64,
    period: (i64, i64),
    proration: bool,
) -> Value {
    json!({
        "id": id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": "usd",
        "description": if proration { "Proration" } else { "1 × plan" },
        "quantity": quantity,
        "period": {"start": period.0, "end": period.1},
        "pricing": {"type": "price_details", "price_details": {"price": item.price, "product": item.product}, "unit_amount_decimal": null},
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {"proration": proration, "subscription": sub, "subscription_item": "si_test", "invoice_item": null, "proration_details": {"credited_items": null}},
            "invoice_item_details": null,
        },
    })
}

/// A paid basil invoice of subscription `sub` of `customer` (whose subscription names
/// `account` in its metadata), paid at `paid_at`.
pub fn invoice(
    customer: &str,
    sub: &str,
    account: &str,
    lines: Vec<Value>,
    amount_paid: i64,
    paid_at: i64,
) -> Value {
    json!({
        "id": id("in"),
        "object": "invoice",
        "customer": customer,
        "status": "paid",
        "amount_paid": amount_paid,
        "currency": "usd",
        "billing_reason": "subscription_update",
        "parent": {"type": "subscription_details", "quote_details": null,
                   "subscription_details": {"subscription": sub, "metadata": {"account": account}}},
        "status_transitions": {"paid_at": paid_at, "finalized_at": paid_at, "marked_uncollectible_at": null, "voided_at": null},
        "lines": {"object": "list", "data": lines, "has_more": false, "url": "/v1/invoices/in_x/lines"},
        "period_start": paid_at,
        "period_end": paid_at,
        "created": paid_at,
        "livemode": false,
    })
}

/// A paid invoice of one full-period line of `item`: `(amount, quantity)` of the line,
/// `(amount paid, paid at)` of the invoice.
pub fn full_period(
    customer: &str,
    sub: &str,
    account: &str,
    item: &Item,
    (amount, quantity): (i64, u64),
    period: (i64, i64),
    (paid, paid_at): (i64, i64),
) -> Value {
    let lines = vec![line(item, sub, amount, quantity, period, false)];
    invoice(customer, sub, account, lines, paid, paid_at)
}

impl Shop {
    pub async fn deliver(&self, body: &str) -> u16 {
        self.app.deliver_signed(body).await
    }

    pub async fn deliver_and_drain(&self, body: &str) {
        assert_eq!(self.deliver(body).await, 200);
        self.drain().await;
    }

    pub async fn drain(&self) {
        self.app.drain_inbox().await;
    }

    pub async fn balance(&self, account: &str) -> Value {
        self.app.credits(account).await
    }

    /// `(available, debt)`.
    pub async fn available_and_debt(&self, account: &str) -> (String, String) {
        let b = self.balance(account).await;
        (
            b["available"].as_str().unwrap().to_owned(),
            b["debt"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn consume(&self, account: &str, amount: &str) {
        let (status, body) = post_json(
            &self
                .app
                .url(&format!("/api/v1/accounts/{account}/credits/consume")),
            json!({"amount": amount, "idempotency_key": id("k")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn assert_balanced(&self, account: &str) {
        self.app.assert_ledger_balanced(account).await;
    }

    /// Checkout through the API, completed (paid) in the fake: `(session, payment intent)`.
    pub async fn buy(&self, account: &str, item: &Item, quantity: u32) -> (String, String) {
        let session = self.checkout(account, item, quantity).await;
        let pi = self.fake.with_state(|s| {
            let (_, done) = s.complete_session(&session, true).unwrap();
            done["payment_intent"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        (session, pi)
    }

    pub async fn checkout(&self, account: &str, item: &Item, quantity: u32) -> String {
        let (status, body) = post_json(
            &self.app.url("/api/v1/checkout"),
            json!({"account": account, "price": item.price, "quantity": quantity,
                   "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// The fake's events of these types since the last call, oldest first.
    pub fn take_events(&self, kinds: &[&str]) -> Vec<String> {
        take_fake_events(&self.fake, kinds)
            .iter()
            .map(Value::to_string)
            .collect()
    }

    pub fn refund(&self, payment_intent: &str, amount: i64) -> String {
        self.fake.with_state(|s| {
            let (_, r) = s
                .create_refund(
                    &json!({"payment_intent": payment_intent, "amount": amount}),
                    &Ctx::default(),
                )
                .unwrap();
            r["id"].as_str().unwrap().to_owned()
        })
    }

    /// Links `account` to a new customer id, as a checkout through the API does.
    pub async fn linked(&self, account: &str) -> String {
        let customer = id("cus");
        self.app
            .state
            .store
            .ensure_account(account, Some(&customer), now())
            .await
            .unwrap();
        customer
    }

    pub async fn event_status(&self, kind: &str) -> Vec<(String, Option<String>)> {
        self.app
            .state
            .store
            .list_events(&sm_store::inbox::EventFilter {
                kind: Some(kind.into()),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.status, e.last_error))
            .collect()
    }
}

/// The fake's clock (it may run ahead of the wall clock after `advance_clock`).
pub fn fake_now(shop: &Shop) -> i64 {
    shop.fake.with_state(|s| s.now())
}

/// Starts plan A through the API's checkout; returns the subscription and its item.
pub async fn subscribe(shop: &Shop, account: &str) -> (String, String) {
    let session = shop.checkout(account, &shop.plan_a, 1).await;
    let sub = shop.fake.with_state(|s| {
        let (_, done) = s.complete_session(&session, true).unwrap();
        done["subscription"].as_str().unwrap().to_owned()
    });
    shop.deliver_all().await;
    let item = shop.fake.with_state(|s| {
        s.subscriptions.get(&sub).unwrap()["items"]["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    (sub, item)
}

impl Shop {
    /// Delivers every event the fake produced since the last call, in order.
    pub async fn deliver_all(&self) {
        for body in self.take_events(&[]) {
            assert_eq!(self.deliver(&body).await, 200);
        }
        self.drain().await;
    }

    /// The available balance at the fake's time.
    pub async fn available_at_fake_time(&self, account: &str) -> String {
        let at = fake_now(self);
        self.app
            .state
            .ledger
            .balance(account, at)
            .await
            .unwrap()
            .available
            .to_string()
    }
}

/// Starts `item` × `quantity` through the API's checkout (with a trial of `trial_days`
/// when given), completed in the fake, its events delivered: the subscription.
pub async fn subscribe_to(
    shop: &Shop,
    account: &str,
    item: &Item,
    quantity: u32,
    trial_days: Option<u32>,
) -> String {
    let mut body = json!({"account": account, "price": item.price, "quantity": quantity,
           "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"});
    if let Some(days) = trial_days {
        body["trial_period_days"] = json!(days);
    }
    let (status, created) = post_json(&shop.app.url("/api/v1/checkout"), body).await;
    assert_eq!(status, 200, "{created}");
    let session = created["id"].as_str().unwrap().to_owned();
    let sub = shop.fake.with_state(|s| {
        let (_, done) = s.complete_session(&session, true).unwrap();
        done["subscription"].as_str().unwrap().to_owned()
    });
    shop.deliver_all().await;
    sub
}

impl Shop {
    /// A billing action through the API: `POST /api/v1/accounts/{account}/{action}`.
    pub async fn act(&self, account: &str, action: &str, body: Value) -> (u16, Value) {
        post_json(
            &self
                .app
                .url(&format!("/api/v1/accounts/{account}/{action}")),
            body,
        )
        .await
    }

    /// `POST …/subscription/change` that must succeed: the answer.
    pub async fn change(&self, account: &str, body: Value) -> Value {
        let (status, changed) = self.act(account, "subscription/change", body).await;
        assert_eq!(status, 200, "{changed}");
        changed
    }

    /// `GET /api/v1/accounts/{account}`.
    pub async fn account(&self, account: &str) -> Value {
        let (status, a) = get_json(&self.app.url(&format!("/api/v1/accounts/{account}"))).await;
        assert_eq!(status, 200, "{a}");
        a
    }

    /// `(available, debt)` at the fake's time.
    pub async fn available_and_debt_at_fake_time(&self, account: &str) -> (String, String) {
        let b = self
            .app
            .state
            .ledger
            .balance(account, fake_now(self))
            .await
            .unwrap();
        (b.available.to_string(), b.debt.to_string())
    }

    /// The fake's subscription object.
    pub fn subscription(&self, id: &str) -> Value {
        self.fake
            .with_state(|s| s.subscriptions.get(id).cloned().unwrap())
    }
}
