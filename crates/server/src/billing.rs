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
    pub name: &'a str,
    /// `api`, `admin` or `cli`.
    pub origin: &'a str,
}

/// `POST …/subscription/change`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub price: String,
    /// `create_prorations` (Stripe's default), `always_invoice` or `none`.
    #[serde(default)]
    pub proration_behavior: Option<String>,
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
    pub account: String,
    pub payment: String,
    pub refund: String,
    pub amount: i64,
    pub currency: Option<String>,
    pub status: Option<String>,
}

/// What a subscription action answers.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionChanged {
    pub account: String,
    pub subscription: String,
    pub status: String,
    pub price: Option<String>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("{0}")]
    Invalid(String),
    #[error("account {0} has no Stripe customer yet (it has never checked out)")]
    NoCustomer(String),
    #[error("account {0} has no running subscription")]
    NoSubscription(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("Stripe refused: {0}")]
    Stripe(StripeError),
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
    key.map(|k| bounded_key(format!("sm-{action}:{account}:{k}")))
}

/// Stripe takes idempotency keys of at most 255 characters: a longer composite key (a
/// long account and a long caller key) is replaced by its SHA-256, the same for the same
/// request, so a retry still maps to one Stripe operation.
fn bounded_key(key: String) -> String {
    use sha2::{Digest, Sha256};
    if key.len() <= 255 {
        key
    } else {
        format!("sm-sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
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
        tx.upsert_subscriptions(std::slice::from_ref(&row), sm_store::catalog::Ties::Refresh)
            .await?;
        tx.commit().await?;
        Ok(SubscriptionChanged {
            account: account.to_owned(),
            subscription: row.id,
            status: row.status,
            price: row.price,
            cancel_at_period_end: row.cancel_at_period_end,
            cancel_at: sub.value.cancel_at,
            current_period_end: row.current_period_end,
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
        self.audited(
            actor,
            "billing.refund",
            account,
            json!({ "payment": req.payment, "amount": req.amount, "reason": req.reason }),
            self.refund_inner(account, req, key),
        )
        .await
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
        let key = key.map(|k| bounded_key(format!("sm-refund:{account}:{}:{k}", payment.id)));
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
            let form = Form::new().push("cancel_at_period_end", "false");
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
            json!({ "price": req.price, "proration_behavior": req.proration_behavior }),
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
        let behavior = req
            .proration_behavior
            .as_deref()
            .unwrap_or("create_prorations");
        if !matches!(behavior, "create_prorations" | "always_invoice" | "none") {
            return Err(BillingError::Invalid(format!(
                "proration_behavior must be create_prorations, always_invoice or none, not {behavior:?}"
            )));
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
        if !price.recurring || !price.active || price.deleted || !product.sellable() {
            return Err(BillingError::Invalid(format!(
                "price {} is not an active plan price of a sellable product",
                req.price
            )));
        }
        let sub = self.current(account).await?;
        if sub.price.as_deref() == Some(req.price.as_str()) {
            return Err(BillingError::Conflict(format!(
                "subscription {} is already on price {}",
                sub.id, req.price
            )));
        }
        let raw: serde_json::Value = serde_json::from_str(&sub.raw).unwrap_or_default();
        let item = raw["items"]["data"][0]["id"].as_str().ok_or_else(|| {
            BillingError::Conflict(format!(
                "subscription {} has no item in the local copy; run `sync --objects subscriptions`",
                sub.id
            ))
        })?;
        let client = self.stripe.ensure_available()?;
        let form = Form::new()
            .push("items[0][id]", item)
            .push("items[0][price]", req.price.as_str())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_fit_stripes_255_characters_and_stay_stable() {
        let account = "a".repeat(128);
        let key = "k".repeat(200);
        let long = stripe_key("cancel", &account, Some(&key)).unwrap();
        assert!(long.len() <= 255, "{}", long.len());
        assert_eq!(Some(long), stripe_key("cancel", &account, Some(&key)));
        assert_ne!(
            stripe_key("cancel", &account, Some(&key)),
            stripe_key("resume", &account, Some(&key))
        );
        assert_eq!(
            stripe_key("cancel", "acct_1", Some("k1")).as_deref(),
            Some("sm-cancel:acct_1:k1")
        );
        assert_eq!(stripe_key("cancel", "acct_1", None), None);
    }
}
