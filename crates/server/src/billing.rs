//! Billing actions on an account: the customer portal, cancel, resume and change plan.
//! They write to Stripe — billing, never catalog data — each with an idempotency key
//! (the caller's `Idempotency-Key`, scoped to the account and the action, so a retried
//! request is one Stripe operation) and an audit record.
//!
//! A plan change updates the existing subscription's item (never a second subscription:
//! the system we replace created one and billed customers twice); the credits follow
//! from the invoices Stripe then sends, by the proration rules of docs/CREDIT_SYSTEM.md.
//! Stripe's answer is written to the local subscription row at once, so the account
//! endpoint shows the change before its webhook arrives.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sm_store::Store;
use sm_store::credits::{NewAudit, SubscriptionRow};
use sm_stripe::idempotency::idempotency_key;
use sm_stripe::types::{Raw, Subscription};
use sm_stripe::{Form, StripeError};

use crate::clock::{compact_json, unix_now};
use crate::credits::{LedgerError, validate_account};
use crate::manager::{StripeManager, Unavailable};

/// Statuses of a subscription that is still running: the one actions apply to, and one
/// that makes a second plan checkout a double billing.
pub const RUNNING: [&str; 5] = ["active", "trialing", "past_due", "unpaid", "paused"];

/// The running subscription of these rows (newest period first), if any.
pub fn running(subs: &[SubscriptionRow]) -> Option<&SubscriptionRow> {
    subs.iter().find(|s| RUNNING.contains(&s.status.as_str()))
}

/// Who asked (for the audit log).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The token's name, the admin's email or `cli`: who the audit entry names.
    pub name: &'a str,
    /// `api`, `admin` or `cli`.
    pub origin: &'a str,
}

/// `POST …/subscription/change`.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// The new price (`price_…`): a recurring price of the catalog, sellable now.
    pub price: String,
    /// With `when: "now"`: `always_invoice` (the default: the change is paid, and its
    /// credits granted, at once), `create_prorations` (billed with the next renewal,
    /// settled net then) or `none`. With `"period_end"`: absent or `none`.
    #[serde(default)]
    pub proration_behavior: Option<String>,
    /// `now`, or `period_end` (a subscription schedule: nothing invoiced or taken now,
    /// the new price from the next period). Default: `now` for an upgrade (the new plan
    /// costs at least as much per unit of time), `period_end` for a downgrade.
    #[serde(default)]
    pub when: Option<String>,
    /// The new quantity; the subscription's own is kept when absent (Stripe would reset
    /// it to 1).
    #[serde(default)]
    pub quantity: Option<u32>,
}

/// A staff refund of one payment (`POST` from the admin, `payments refund` in the CLI).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The payment: an invoice (`in_…`) or a one-time checkout (`cs_…`) of the account.
    pub payment: String,
    /// Minor units of the payment's currency; the rest that is not refunded yet when
    /// absent.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Why, in words: kept in the audit log and in the refund's metadata.
    pub reason: String,
}

/// What a refund answers. The ledger follows when Stripe's refund events arrive.
#[derive(Debug, Clone, Serialize)]
pub struct RefundCreated {
    /// The account the payment belongs to.
    pub account: String,
    /// The refunded payment (`in_…` or `cs_…`).
    pub payment: String,
    /// Stripe's refund id (`re_…`).
    pub refund: String,
    /// The refunded amount, in minor units of `currency` (cents for USD).
    pub amount: i64,
    /// The payment's currency (lower-case ISO code).
    pub currency: Option<String>,
    /// Stripe's refund status (`succeeded`, `pending`, …) as it answered.
    pub status: Option<String>,
}

/// What a subscription action answers.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct SubscriptionChanged {
    /// The account acted on.
    pub account: String,
    /// The subscription acted on (`sub_…`).
    pub subscription: String,
    /// Its status as Stripe answered after the action.
    pub status: String,
    /// Its (first) item's price after the action.
    pub price: Option<String>,
    /// Whether it now ends at the end of the current period instead of renewing.
    pub cancel_at_period_end: bool,
    /// When it ends (unix seconds), if cancellation is scheduled at a set time.
    pub cancel_at: Option<i64>,
    /// End of the current billing period (unix seconds).
    pub current_period_end: Option<i64>,
    /// Its (first) item's quantity after the action.
    pub quantity: Option<i64>,
    /// A change left for the end of the period (`when: "period_end"`), if one is set.
    pub scheduled_change: Option<sm_store::schedules::ScheduledChange>,
}

/// Why a billing action (cancel, resume, plan change, portal, refund, top-up) was refused
/// or failed; the API maps each to its HTTP answer (noted per variant).
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The request is malformed (a bad account, price, URL or Idempotency-Key): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// The account has no Stripe customer yet (never checked out): HTTP 404 `no_customer`.
    #[error("account {0} has no Stripe customer yet (it has never checked out)")]
    NoCustomer(String),
    /// The account has no running subscription to act on: HTTP 404 `no_subscription`.
    #[error("account {0} has no running subscription")]
    NoSubscription(String),
    /// The action does not fit the subscription's state (nothing to resume, already on that
    /// price, a schedule staff made, …): HTTP 409; the text says why.
    #[error("{0}")]
    Conflict(String),
    /// Stripe is disabled or unreachable (circuit open): HTTP 503, nothing was changed here.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// Stripe refused the request: HTTP 502 with Stripe's message.
    #[error("Stripe refused: {0}")]
    Stripe(StripeError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] sm_store::StoreError),
}

impl From<StripeError> for BillingError {
    fn from(e: StripeError) -> Self {
        match Unavailable::from_error(&e) {
            Some(u) => BillingError::Unavailable(u),
            None => BillingError::Stripe(e),
        }
    }
}

impl From<LedgerError> for BillingError {
    fn from(e: LedgerError) -> Self {
        BillingError::Invalid(e.to_string())
    }
}

/// The Stripe idempotency key for `action` on `account` from the caller's key; without
/// one, each request is its own operation (the client's fresh key per POST).
fn stripe_key(action: &str, account: &str, key: Option<&str>) -> Option<String> {
    key.map(|k| idempotency_key(action, &[account, k]))
}

fn check_key(key: Option<&str>) -> Result<(), BillingError> {
    match key {
        Some(k) if k.is_empty() || k.len() > 200 || k.chars().any(char::is_control) => Err(
            BillingError::Invalid("Idempotency-Key must be 1–200 printable characters".into()),
        ),
        _ => Ok(()),
    }
}

fn valid_url(u: &str) -> bool {
    reqwest::Url::parse(u)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Billing actions for one process.
#[derive(Debug, Clone)]
pub struct Billing {
    store: Store,
    stripe: StripeManager,
}

impl Billing {
    /// Billing actions against `stripe`, recorded in `store` (mirrors and the audit log).
    pub fn new(store: Store, stripe: StripeManager) -> Self {
        Self { store, stripe }
    }

    async fn audit(
        &self,
        actor: Actor<'_>,
        action: &str,
        account: &str,
        detail: serde_json::Value,
        result: &Result<impl Sized, BillingError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let detail = detail.to_string();
        let record = NewAudit {
            actor: actor.name,
            action,
            target: Some(account),
            detail: Some(&detail),
            origin: Some(actor.origin),
            result: &outcome,
        };
        if let Err(e) = self.store.audit(&record, unix_now()).await {
            tracing::error!(error = %crate::error_chain(&e), action, account, "could not write the audit record");
        }
    }

    /// Runs `work` and records its outcome in the audit log.
    async fn audited<T>(
        &self,
        actor: Actor<'_>,
        action: &str,
        account: &str,
        detail: serde_json::Value,
        work: impl std::future::Future<Output = Result<T, BillingError>>,
    ) -> Result<T, BillingError> {
        let result = work.await;
        self.audit(actor, action, account, detail, &result).await;
        result
    }

    /// A Billing Portal session URL for the account's customer.
    pub async fn portal(
        &self,
        account: &str,
        return_url: &str,
        key: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<String, BillingError> {
        self.audited(
            actor,
            "billing.portal",
            account,
            json!({ "return_url": return_url }),
            self.portal_inner(account, return_url, key),
        )
        .await
    }

    async fn portal_inner(
        &self,
        account: &str,
        return_url: &str,
        key: Option<&str>,
    ) -> Result<String, BillingError> {
        validate_account(account)?;
        check_key(key)?;
        if !valid_url(return_url) {
            return Err(BillingError::Invalid(
                "return_url must be an http(s) URL".into(),
            ));
        }
        let customer = self
            .store
            .account_customers(account)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| BillingError::NoCustomer(account.to_owned()))?;
        let client = self.stripe.ensure_available()?;
        let form = Form::new()
            .push("customer", customer.as_str())
            .push("return_url", return_url);
        let session: serde_json::Value = client
            .post(
                "billing_portal.sessions.create",
                "/v1/billing_portal/sessions",
                &form,
                stripe_key("portal", account, key),
            )
            .await?;
        session["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BillingError::Invalid("Stripe's portal session has no url".into()))
    }

    async fn current(&self, account: &str) -> Result<SubscriptionRow, BillingError> {
        validate_account(account)?;
        let subs = self.store.account_subscriptions(account).await?;
        running(&subs)
            .cloned()
            .ok_or_else(|| BillingError::NoSubscription(account.to_owned()))
    }

    /// Writes Stripe's answer to the local row (it was just read: it wins a same-second
    /// tie), and describes it.
    async fn keep(
        &self,
        account: &str,
        sub: Raw<Subscription>,
    ) -> Result<SubscriptionChanged, BillingError> {
        let raw = compact_json(sub.json.get());
        let row =
            crate::mirror::subscription_row(&self.store, &sub.value, unix_now(), &raw).await?;
        let mut tx = self.store.begin().await?;
        // The account first, as every writer of its subscriptions does.
        if tx.outbox_enabled() {
            tx.lock_account(account, unix_now()).await?;
        }
        let counts = tx
            .upsert_subscriptions(std::slice::from_ref(&row), sm_store::catalog::Ties::Refresh)
            .await?;
        if counts.created + counts.updated > 0 {
            crate::outbox::subscription_updated(&mut tx, &row.id, unix_now()).await?;
        }
        tx.commit().await?;
        // A change whose time has come shows in the subscription itself once its period
        // started (Stripe sends no schedule event when a phase begins).
        let after = unix_now().max(row.current_period_start.unwrap_or(0));
        let scheduled_change = self.store.scheduled_change(&row.id, after).await?;
        Ok(SubscriptionChanged {
            account: account.to_owned(),
            subscription: row.id,
            status: row.status,
            price: row.price,
            cancel_at_period_end: row.cancel_at_period_end,
            cancel_at: sub.value.cancel_at,
            current_period_end: row.current_period_end,
            quantity: row.quantity,
            scheduled_change,
        })
    }

    /// Refunds (part of) one of the account's payments in Stripe. Nothing is written to
    /// the ledger here: Stripe's `refund.created` / `charge.refunded` events take the
    /// credits back, exactly once, as for a refund made in the Dashboard.
    pub async fn refund(
        &self,
        account: &str,
        req: &RefundRequest,
        key: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<RefundCreated, BillingError> {
        let result = self.refund_inner(account, req, key).await;
        let mut detail =
            json!({ "payment": req.payment, "amount": req.amount, "reason": req.reason });
        // Stripe's refund id, and whether it was recorded before: the same idempotency
        // key sent again gets the same refund back, which must not read as another one.
        if let Ok(created) = &result
            && !created.refund.is_empty()
        {
            let replay = self
                .store
                .refund_audited(&created.refund)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %crate::error_chain(&e), "could not look the refund up in the audit log");
                    false
                });
            detail["refund"] = json!(created.refund);
            detail["replay"] = json!(replay);
        }
        self.audit(actor, "billing.refund", account, detail, &result)
            .await;
        result
    }

    async fn refund_inner(
        &self,
        account: &str,
        req: &RefundRequest,
        key: Option<&str>,
    ) -> Result<RefundCreated, BillingError> {
        validate_account(account)?;
        check_key(key)?;
        let reason = req.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(BillingError::Invalid(
                "reason must be 1–500 characters".into(),
            ));
        }
        let payment = self
            .store
            .account_payment(account, &req.payment)
            .await?
            .ok_or_else(|| {
                BillingError::Invalid(format!(
                    "{:?} is not a payment of account {account}",
                    req.payment
                ))
            })?;
        let left = payment.amount_paid.unwrap_or(0) - payment.refunded;
        let amount = req.amount.unwrap_or(left);
        if amount < 1 || amount > left {
            return Err(BillingError::Invalid(format!(
                "the amount must be between 1 and {left} (paid {}, refunded {}), in minor units",
                payment.amount_paid.unwrap_or(0),
                payment.refunded
            )));
        }
        let client = self.stripe.ensure_available()?;
        let intent = if payment.kind == "invoice" {
            client.invoice_payment_intent(&payment.id).await?
        } else {
            client
                .retrieve_checkout_session(&payment.id)
                .await?
                .payment_intent
        };
        let intent = intent.ok_or_else(|| {
            BillingError::Conflict(format!("{} has no payment to refund", payment.id))
        })?;
        let amount_text = amount.to_string();
        let form = Form::new()
            .push("payment_intent", intent.as_str())
            .push("amount", amount_text.as_str())
            .push_map("metadata", [("account", account), ("staff_reason", reason)]);
        let key = key.map(|k| idempotency_key("refund", &[account, &payment.id, k]));
        let refund: serde_json::Value = client
            .post("refunds.create", "/v1/refunds", &form, key)
            .await?;
        Ok(RefundCreated {
            account: account.to_owned(),
            payment: payment.id,
            refund: refund["id"].as_str().unwrap_or_default().to_owned(),
            amount: refund["amount"].as_i64().unwrap_or(amount),
            currency: refund["currency"].as_str().map(str::to_owned),
            status: refund["status"].as_str().map(str::to_owned),
        })
    }

    /// Cancels the running subscription at the end of its period (`immediately`: now).
    pub async fn cancel(
        &self,
        account: &str,
        immediately: bool,
        key: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<SubscriptionChanged, BillingError> {
        let detail = json!({ "immediately": immediately });
        self.audited(actor, "billing.cancel", account, detail, async {
            check_key(key)?;
            let sub = self.current(account).await?;
            let client = self.stripe.ensure_available()?;
            let path = format!("/v1/subscriptions/{}", sub.id);
            let fresh: Raw<Subscription> = if immediately {
                client.delete("subscriptions.cancel", &path).await?
            } else {
                let form = Form::new().push("cancel_at_period_end", "true");
                client
                    .post(
                        "subscriptions.update",
                        &path,
                        &form,
                        stripe_key("cancel", account, key),
                    )
                    .await?
            };
            self.keep(account, fresh).await
        })
        .await
    }

    /// Takes back a scheduled cancellation.
    pub async fn resume(
        &self,
        account: &str,
        key: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<SubscriptionChanged, BillingError> {
        self.audited(actor, "billing.resume", account, json!({}), async {
            check_key(key)?;
            let sub = self.current(account).await?;
            let raw: serde_json::Value = serde_json::from_str(&sub.raw).unwrap_or_default();
            if !sub.cancel_at_period_end && raw["cancel_at"].is_null() {
                return Err(BillingError::Conflict(format!(
                    "subscription {} is not scheduled to cancel; nothing to resume",
                    sub.id
                )));
            }
            let client = self.stripe.ensure_available()?;
            let mut form = Form::new().push("cancel_at_period_end", "false");
            if !raw["cancel_at"].is_null() {
                // A `cancel_at` of its own (set in the Dashboard) is not cleared by
                // `cancel_at_period_end=false`: unset it too (`Emptyable<number>` in
                // stripe@18.0.0's SubscriptionUpdateParams; docs.stripe.com/api/subscriptions/update).
                form = form.push("cancel_at", "");
            }
            let fresh: Raw<Subscription> = client
                .post(
                    "subscriptions.update",
                    &format!("/v1/subscriptions/{}", sub.id),
                    &form,
                    stripe_key("resume", account, key),
                )
                .await?;
            self.keep(account, fresh).await
        })
        .await
    }

    /// Moves the running subscription to another recurring price of the catalog.
    pub async fn change(
        &self,
        account: &str,
        req: &ChangeRequest,
        key: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<SubscriptionChanged, BillingError> {
        self.audited(
            actor,
            "billing.change",
            account,
            json!({ "price": req.price, "proration_behavior": req.proration_behavior,
                    "when": req.when, "quantity": req.quantity }),
            self.change_inner(account, req, key),
        )
        .await
    }

    async fn change_inner(
        &self,
        account: &str,
        req: &ChangeRequest,
        key: Option<&str>,
    ) -> Result<SubscriptionChanged, BillingError> {
        check_key(key)?;
        if let Some(b) = req.proration_behavior.as_deref()
            && !matches!(b, "create_prorations" | "always_invoice" | "none")
        {
            return Err(BillingError::Invalid(format!(
                "proration_behavior must be always_invoice, create_prorations or none, not {b:?}"
            )));
        }
        if let Some(w) = req.when.as_deref()
            && !matches!(w, "now" | "period_end")
        {
            return Err(BillingError::Invalid(format!(
                "when must be now or period_end, not {w:?}"
            )));
        }
        if req.quantity.is_some_and(|q| !(1..=1000).contains(&q)) {
            return Err(BillingError::Invalid(
                "quantity must be between 1 and 1000".into(),
            ));
        }
        let product = self.store.price_product(&req.price).await?.ok_or_else(|| {
            BillingError::Invalid(format!("price {:?} is not in the catalog", req.price))
        })?;
        let product = self.store.get_product(&product).await?.ok_or_else(|| {
            BillingError::Invalid(format!("product {product} is not in the catalog"))
        })?;
        let price = product
            .prices
            .iter()
            .find(|p| p.id == req.price)
            .ok_or_else(|| BillingError::Invalid(format!("price {} is unknown", req.price)))?;
        // Only what checkout would sell: a plan change to a tiered or metered price would
        // bill lines whose credits are not defined.
        if let Some(why) = crate::sellable::refusal(&product, price) {
            return Err(BillingError::Invalid(format!(
                "product {} {why}; a plan cannot change to it",
                product.id
            )));
        }
        if !price.recurring {
            return Err(BillingError::Invalid(format!(
                "price {} is one-time, not a plan price",
                req.price
            )));
        }
        let sub = self.current(account).await?;
        let raw: serde_json::Value = serde_json::from_str(&sub.raw).unwrap_or_default();
        let old_item = &raw["items"]["data"][0];
        let item = old_item["id"].as_str().ok_or_else(|| {
            BillingError::Conflict(format!(
                "subscription {} has no item in the local copy; run `sync --objects subscriptions`",
                sub.id
            ))
        })?;
        let old_quantity = old_item["quantity"].as_i64().unwrap_or(1).max(1);
        let quantity = req.quantity.map_or(old_quantity, i64::from);
        if sub.price.as_deref() == Some(req.price.as_str()) && quantity == old_quantity {
            return Err(BillingError::Conflict(format!(
                "subscription {} is already on price {} × {quantity}",
                sub.id, req.price
            )));
        }
        if let Some(schedule) = raw["schedule"].as_str() {
            return Err(BillingError::Conflict(format!(
                "subscription {} has a scheduled change ({schedule}); cancel it first \
                 (DELETE …/subscription/change) ",
                sub.id
            )));
        }
        let upgrade = is_upgrade(old_item, quantity, price);
        let when = match req.when.as_deref() {
            None if upgrade => "now",
            None => "period_end",
            Some(w) => w,
        };
        let quantity_text = quantity.to_string();
        if when == "period_end" {
            if req
                .proration_behavior
                .as_deref()
                .is_some_and(|b| b != "none")
            {
                return Err(BillingError::Invalid(
                    "a change at period_end invoices nothing now: leave proration_behavior out (or none)"
                        .into(),
                ));
            }
            return self
                .schedule_change(account, &sub.id, old_item, &req.price, &quantity_text, key)
                .await;
        }
        let behavior = req
            .proration_behavior
            .as_deref()
            .unwrap_or("always_invoice");
        let client = self.stripe.ensure_available()?;
        // `error_if_incomplete`: when the proration invoice cannot be paid, Stripe refuses
        // the update and nothing changes (the caller sees Stripe's error), instead of a
        // plan that changed with its money still owed.
        // The quantity is always sent: "When changing a subscription item's price,
        // `quantity` is set to 1 unless a `quantity` parameter is provided."
        // (docs.stripe.com/api/subscriptions/update, `items.price`).
        let form = Form::new()
            .push("items[0][id]", item)
            .push("items[0][price]", req.price.as_str())
            .push("items[0][quantity]", quantity_text.as_str())
            .push("proration_behavior", behavior)
            .push("payment_behavior", "error_if_incomplete");
        let fresh: Raw<Subscription> = client
            .post(
                "subscriptions.update",
                &format!("/v1/subscriptions/{}", sub.id),
                &form,
                stripe_key("change", account, key),
            )
            .await?;
        self.keep(account, fresh).await
    }

    /// A change at the end of the period: a subscription schedule made from the
    /// subscription, its current phase kept as it is and the new price as the next phase
    /// (one period, then released: the subscription carries on with the new price).
    /// Stripe takes no phases with `from_subscription`, so it is two calls
    /// (docs.stripe.com/api/subscription_schedules/create: "When using this parameter,
    /// other parameters (such as phase values) cannot be set"), each with its own
    /// idempotency key derived from the caller's.
    async fn schedule_change(
        &self,
        account: &str,
        subscription: &str,
        old_item: &serde_json::Value,
        price: &str,
        quantity: &str,
        key: Option<&str>,
    ) -> Result<SubscriptionChanged, BillingError> {
        let client = self.stripe.ensure_available()?;
        let form = Form::new().push("from_subscription", subscription);
        let created: serde_json::Value = client
            .post(
                "subscription_schedules.create",
                "/v1/subscription_schedules",
                &form,
                stripe_key("schedule", account, key),
            )
            .await?;
        let id = created["id"].as_str().ok_or_else(|| {
            BillingError::Invalid("Stripe's subscription schedule has no id".into())
        })?;
        let phase = &created["phases"][0];
        let (start, end) = match (phase["start_date"].as_i64(), phase["end_date"].as_i64()) {
            (Some(s), Some(e)) => (s.to_string(), e.to_string()),
            _ => {
                return Err(BillingError::Invalid(format!(
                    "Stripe's subscription schedule {id} has no current phase"
                )));
            }
        };
        // The current phase as Stripe made it from the subscription (not our copy, which
        // may be behind).
        let old_price = phase["items"][0]["price"]
            .as_str()
            .or_else(|| phase["items"][0]["price"]["id"].as_str())
            .or_else(|| old_item["price"]["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let old_quantity = phase["items"][0]["quantity"]
            .as_i64()
            .or_else(|| old_item["quantity"].as_i64())
            .unwrap_or(1)
            .to_string();
        let form = Form::new()
            .push("end_behavior", "release")
            .push("proration_behavior", "none")
            // What DELETE …/subscription/change may release: only ours.
            .push(format!("metadata[{SCHEDULE_MARK}]"), "plan_change")
            .push("phases[0][items][0][price]", old_price.as_str())
            .push("phases[0][items][0][quantity]", old_quantity.as_str())
            .push("phases[0][start_date]", start.as_str())
            .push("phases[0][end_date]", end.as_str())
            .push("phases[1][items][0][price]", price)
            .push("phases[1][items][0][quantity]", quantity)
            .push("phases[1][iterations]", "1");
        let updated: serde_json::Value = match client
            .post(
                "subscription_schedules.update",
                &format!("/v1/subscription_schedules/{id}"),
                &form,
                stripe_key("schedule-phases", account, key),
            )
            .await
        {
            Ok(u) => u,
            Err(e) => {
                // Nothing half done: the bare schedule (one phase, unmarked, so DELETE
                // would refuse it) would block every later change. Release it; if that
                // fails too, say so beside Stripe's error.
                let released: Result<serde_json::Value, _> = client
                    .post(
                        "subscription_schedules.release",
                        &format!("/v1/subscription_schedules/{id}/release"),
                        &Form::new(),
                        stripe_key("schedule-undo", account, key),
                    )
                    .await;
                if let Err(r) = released {
                    tracing::error!(schedule = %id, error = %crate::error_chain(&r), "a plan change failed half way and its schedule could not be released; release it in the Stripe Dashboard");
                }
                return Err(e.into());
            }
        };
        let now = unix_now();
        if let Some(row) = crate::mirror::schedule_row(&updated, now, now) {
            self.store.upsert_schedule(&row).await?;
        }
        let fresh = client.retrieve_subscription_raw(subscription).await?;
        self.keep(account, fresh).await
    }

    /// Cancels a change left for the end of the period: releases the subscription's
    /// schedule (the subscription carries on unchanged, the schedule is kept by Stripe as
    /// `released`).
    pub async fn cancel_change(
        &self,
        account: &str,
        key: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<SubscriptionChanged, BillingError> {
        self.audited(actor, "billing.cancel_change", account, json!({}), async {
            check_key(key)?;
            let sub = self.current(account).await?;
            let raw: serde_json::Value = serde_json::from_str(&sub.raw).unwrap_or_default();
            let schedule = match raw["schedule"].as_str() {
                Some(s) => s.to_owned(),
                None => match self.store.scheduled_change(&sub.id, unix_now()).await? {
                    Some(c) => c.schedule,
                    None => {
                        return Err(BillingError::Conflict(format!(
                            "subscription {} has no scheduled change",
                            sub.id
                        )));
                    }
                },
            };
            let client = self.stripe.ensure_available()?;
            let current: serde_json::Value = client
                .get(
                    "subscription_schedules.retrieve",
                    &format!("/v1/subscription_schedules/{schedule}"),
                    &[],
                )
                .await?;
            if current["metadata"][SCHEDULE_MARK].as_str() != Some("plan_change") {
                // A schedule made in the Dashboard (an introductory price, say) is staff's
                // to change: the app may not release it.
                return Err(BillingError::Conflict(format!(
                    "subscription {} follows schedule {schedule}, which stripe-manager did not \
                     make; change it in the Stripe Dashboard",
                    sub.id
                )));
            }
            let released: serde_json::Value = client
                .post(
                    "subscription_schedules.release",
                    &format!("/v1/subscription_schedules/{schedule}/release"),
                    &Form::new(),
                    stripe_key("release", account, key),
                )
                .await?;
            let now = unix_now();
            if let Some(row) = crate::mirror::schedule_row(&released, now, now) {
                self.store.upsert_schedule(&row).await?;
            }
            let fresh = client.retrieve_subscription_raw(&sub.id).await?;
            self.keep(account, fresh).await
        })
        .await
    }
}

/// The metadata key that marks a subscription schedule stripe-manager made for a plan
/// change (the only kind `DELETE …/subscription/change` releases).
const SCHEDULE_MARK: &str = "stripe_manager";

/// Seconds in one billing interval (a month counted as 30 days, a year as 365: only
/// used to compare two plans' cost per unit of time).
fn interval_seconds(interval: Option<&str>, count: i64) -> Option<i64> {
    let unit = match interval? {
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    };
    Some(unit * count.max(1))
}

/// Whether moving from `old_item` to `quantity` × `price` costs at least as much per
/// unit of time: an upgrade, made now; otherwise a downgrade, left for the period's end.
/// Unknown amounts count as an upgrade (made now, as before).
fn is_upgrade(
    old_item: &serde_json::Value,
    quantity: i64,
    price: &sm_store::catalog::PriceRecord,
) -> bool {
    let old_price = &old_item["price"];
    let old = old_price["unit_amount"].as_i64().zip(interval_seconds(
        old_price["recurring"]["interval"].as_str(),
        old_price["recurring"]["interval_count"]
            .as_i64()
            .unwrap_or(1),
    ));
    let new = price.unit_amount.zip(interval_seconds(
        price.interval.as_deref(),
        i64::from(price.interval_count.unwrap_or(1)),
    ));
    match (old, new) {
        (Some((old_unit, old_len)), Some((new_unit, new_len))) => {
            let old_quantity = old_item["quantity"].as_i64().unwrap_or(1);
            // new per second ≥ old per second, without division.
            i128::from(new_unit) * i128::from(quantity) * i128::from(old_len)
                >= i128::from(old_unit) * i128::from(old_quantity) * i128::from(new_len)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_per_action_and_account() {
        assert_eq!(
            stripe_key("cancel", "acct_1", Some("k1")).as_deref(),
            Some("sm-cancel:6:acct_1:2:k1")
        );
        assert_eq!(stripe_key("cancel", "acct_1", None), None);
        // `:` is allowed in account ids: one account's key is never another's.
        assert_ne!(
            stripe_key("cancel", "x:y", Some("z")),
            stripe_key("cancel", "x", Some("y:z"))
        );
    }
}
