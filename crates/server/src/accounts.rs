//! "What may this account do right now?" — an account's customer, subscriptions,
//! entitlement and credits, and its payment history, answered from the mirrors (see
//! [`crate::mirror`]) without calling Stripe.
//!
//! # Entitlement
//! `active` is true when a subscription is `active` or `trialing`, or `past_due` for less
//! than the grace period (`PAST_DUE_GRACE_DAYS`, default 7) since the start of the period
//! whose renewal failed: Stripe keeps retrying the payment meanwhile (Smart Retries),
//! and a customer should not lose access on the first declined card. `incomplete`,
//! `incomplete_expired`, `unpaid`, `canceled` and `paused` are not active; nor is a
//! subscription whose payment collection is paused (`pause_collection`, any behavior:
//! Stripe keeps it `active` but collects nothing): the entitlement's status then says
//! `paused_collection`.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sm_store::accounts::PaymentRow;
use sm_store::objects::CUSTOMERS;
use sm_store::{Store, StoreError};

use crate::credits::{Balance, Ledger, LedgerError, validate_account};

/// The customer an account is linked to.
#[derive(utoipa::ToSchema)]
#[schema(as = Customer)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CustomerView {
    /// Stripe's customer id (`cus_…`).
    pub id: String,
    /// The customer's email in Stripe, if set.
    pub email: Option<String>,
    /// The customer's name in Stripe, if set.
    pub name: Option<String>,
}

/// One subscription as the account endpoint shows it.
#[derive(utoipa::ToSchema)]
#[schema(as = Subscription)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriptionView {
    /// Stripe's subscription id (`sub_…`).
    pub id: String,
    /// Stripe's status (`active`, `trialing`, `past_due`, `canceled`, …).
    pub status: String,
    /// The product of its (first) item.
    pub product: Option<String>,
    /// The price of its (first) item.
    pub price: Option<String>,
    /// The item's quantity (seats).
    pub quantity: Option<i64>,
    /// Start of the current billing period (unix seconds).
    pub current_period_start: Option<i64>,
    /// End of the current billing period (unix seconds): the next renewal.
    pub current_period_end: Option<i64>,
    /// Whether it ends at the end of the current period instead of renewing.
    pub cancel_at_period_end: bool,
    /// When it ends, if cancellation is scheduled (`cancel_at`).
    pub cancel_at: Option<i64>,
    /// When it was canceled (unix seconds), if it was.
    pub canceled_at: Option<i64>,
    /// When the trial ends (unix seconds), while there is one.
    pub trial_end: Option<i64>,
    /// A plan change left for the end of the period (a subscription schedule).
    pub scheduled_change: Option<sm_store::schedules::ScheduledChange>,
    /// Stripe's `pause_collection` while set (`{"behavior","resumes_at"}`): the
    /// subscription stays `active` in Stripe but collects nothing, so it does not entitle.
    pub pause_collection: Option<Value>,
}

/// What the account may do.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, PartialEq)]
pub struct Entitlement {
    /// Whether the account is entitled now: a subscription `active` or `trialing`, or
    /// `past_due` within the grace period, and not with its payment collection paused.
    pub active: bool,
    /// The status that decided it (`active`, `trialing`, `past_due`, …), `none` without
    /// a subscription.
    pub status: String,
    /// The subscription that decided it.
    pub subscription: Option<String>,
    /// The product of that subscription.
    pub product: Option<String>,
    /// For `past_due`: until when it still counts as active.
    pub grace_until: Option<i64>,
}

/// `GET /api/v1/accounts/{account}`.
#[derive(utoipa::ToSchema)]
#[schema(as = Account)]
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// The account id, as the app names it.
    pub account: String,
    /// The Stripe customer linked to the account, if any.
    pub customer: Option<CustomerView>,
    /// Every subscription of the account's customers, as mirrored.
    pub subscriptions: Vec<SubscriptionView>,
    /// What the account may do now, decided from `subscriptions`.
    pub entitlement: Entitlement,
    /// The features Stripe says the account's customer is entitled to now (its active
    /// entitlements), by lookup key.
    pub features: Vec<sm_store::entitlements::EntitlementRow>,
    /// The account's credit balance.
    pub credits: Balance,
}

/// One page of `GET /api/v1/accounts/{account}/payments`.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct PaymentsPage {
    /// The account id.
    pub account: String,
    /// Payments, newest first.
    pub data: Vec<PaymentRow>,
    /// Whether more payments follow this page.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Why reading an account failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The account id is not a valid one (an HTTP 400).
    #[error(transparent)]
    Invalid(#[from] LedgerError),
    /// A `cursor` this API did not hand out (an HTTP 400).
    #[error("the cursor {0:?} is not one this API returned (pass a page's next_cursor)")]
    Cursor(String),
    /// The database failed.
    #[error("reading the account failed: {0}")]
    Store(#[from] StoreError),
}

/// Reads accounts.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    ledger: Ledger,
    grace: Duration,
}

impl Accounts {
    /// Reads from `store`; `grace` is how long `past_due` still entitles (`PAST_DUE_GRACE_DAYS`).
    pub fn new(store: Store, grace: Duration) -> Self {
        Self {
            ledger: Ledger::new(store.clone()),
            store,
            grace,
        }
    }

    /// The account's customer, subscriptions, entitlement, features and credits at `now`
    /// (unix seconds), from the mirrors alone.
    pub async fn show(&self, account: &str, now: i64) -> Result<AccountView, AccountError> {
        validate_account(account)?;
        let customers = self.store.account_customers(account).await?;
        let customer = match customers.first() {
            Some(id) => Some(self.customer(id).await?),
            None => None,
        };
        let mut subscriptions = Vec::new();
        for row in self.store.account_subscriptions(account).await? {
            let scheduled_change = if crate::billing::RUNNING.contains(&row.status.as_str()) {
                // Past once the period it starts has begun (no event says so).
                let after = now.max(row.current_period_start.unwrap_or(0));
                self.store.scheduled_change(&row.id, after).await?
            } else {
                None
            };
            let raw: Value = serde_json::from_str(&row.raw).unwrap_or(Value::Null);
            subscriptions.push(SubscriptionView {
                id: row.id,
                status: row.status,
                product: row.product,
                price: row.price,
                quantity: row.quantity,
                current_period_start: row.current_period_start,
                current_period_end: row.current_period_end,
                cancel_at_period_end: row.cancel_at_period_end,
                cancel_at: raw["cancel_at"].as_i64(),
                canceled_at: row.canceled_at,
                trial_end: raw["trial_end"].as_i64(),
                scheduled_change,
                pause_collection: Some(raw["pause_collection"].clone()).filter(Value::is_object),
            });
        }
        let entitlement = entitlement(&subscriptions, self.grace, now);
        let credits = self.ledger.balance(account, now).await?;
        let features = self
            .store
            .account_entitlements(account)
            .await?
            .unwrap_or_default();
        Ok(AccountView {
            account: account.to_owned(),
            customer,
            subscriptions,
            entitlement,
            features,
            credits,
        })
    }

    async fn customer(&self, id: &str) -> Result<CustomerView, StoreError> {
        let raw: Value = match self.store.get_object(&CUSTOMERS, id).await? {
            Some(o) => serde_json::from_str(&o.raw).unwrap_or(Value::Null),
            None => Value::Null,
        };
        Ok(CustomerView {
            id: id.to_owned(),
            email: raw["email"].as_str().map(str::to_owned),
            name: raw["name"].as_str().map(str::to_owned),
        })
    }

    /// Payments newest first; `cursor` is a previous page's `next_cursor`.
    pub async fn payments(
        &self,
        account: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PaymentsPage, AccountError> {
        validate_account(account)?;
        let limit = limit.clamp(1, 100);
        let before = match cursor {
            Some(c) => Some(
                parse_cursor(c)
                    .ok_or_else(|| AccountError::Cursor(c.chars().take(64).collect()))?,
            ),
            None => None,
        };
        let mut data = self
            .store
            .account_payments(
                account,
                before.as_ref().map(|(t, id)| (*t, id.as_str())),
                limit + 1,
            )
            .await?;
        let has_more = data.len() > limit as usize;
        data.truncate(limit as usize);
        let next_cursor = has_more
            .then(|| data.last().map(|p| format!("{}.{}", p.created, p.id)))
            .flatten();
        Ok(PaymentsPage {
            account: account.to_owned(),
            data,
            has_more,
            next_cursor,
        })
    }
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('.')?;
    let ok = !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| Some((t.parse().ok()?, id.to_owned())))?
}

/// See the module docs. The deciding subscription: an active or trialing one first,
/// then a past-due one within its grace, else the most recent.
pub fn entitlement(subs: &[SubscriptionView], grace: Duration, now: i64) -> Entitlement {
    let decided = |s: &SubscriptionView, active: bool, grace_until: Option<i64>| Entitlement {
        active,
        status: s.status.clone(),
        subscription: Some(s.id.clone()),
        product: s.product.clone(),
        grace_until,
    };
    // Paused collection: "the subscription remains `active` and invoices continue to
    // generate, but Stripe doesn't collect payment" (docs.stripe.com/billing/subscriptions/
    // pause-payment), whatever the behavior: nothing is paid, nothing is entitled.
    let collecting = |s: &&SubscriptionView| s.pause_collection.is_none();
    if let Some(s) = subs
        .iter()
        .filter(collecting)
        .find(|s| matches!(s.status.as_str(), "active" | "trialing"))
    {
        return decided(s, true, None);
    }
    for s in subs
        .iter()
        .filter(collecting)
        .filter(|s| s.status == "past_due")
    {
        let until = s
            .current_period_start
            .map(|start| start.saturating_add(grace.as_secs() as i64));
        if until.is_some_and(|u| now < u) {
            return decided(s, true, until);
        }
    }
    match subs.first() {
        Some(s) if s.pause_collection.is_some() => Entitlement {
            status: "paused_collection".into(),
            ..decided(s, false, None)
        },
        Some(s) => decided(s, false, None),
        None => Entitlement {
            active: false,
            status: "none".into(),
            subscription: None,
            product: None,
            grace_until: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, status: &str, start: i64) -> SubscriptionView {
        SubscriptionView {
            id: id.into(),
            status: status.into(),
            product: Some("prod_1".into()),
            price: None,
            quantity: Some(1),
            current_period_start: Some(start),
            current_period_end: Some(start + 30 * 86_400),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            trial_end: None,
            scheduled_change: None,
            pause_collection: None,
        }
    }

    #[test]
    fn past_due_counts_as_active_only_within_the_grace() {
        let week = Duration::from_secs(7 * 86_400);
        let e = entitlement(&[sub("sub_1", "past_due", 1000)], week, 1000 + 86_400);
        assert!(e.active);
        assert_eq!(e.grace_until, Some(1000 + 7 * 86_400));
        let e = entitlement(&[sub("sub_1", "past_due", 1000)], week, 1000 + 7 * 86_400);
        assert!(!e.active);
        assert_eq!(e.status, "past_due");
    }

    #[test]
    fn an_active_subscription_wins_over_an_ended_one() {
        let e = entitlement(
            &[sub("sub_old", "canceled", 0), sub("sub_new", "trialing", 5)],
            Duration::ZERO,
            10,
        );
        assert_eq!(
            (e.active, e.subscription.as_deref()),
            (true, Some("sub_new"))
        );
        let none = entitlement(&[], Duration::ZERO, 0);
        assert_eq!((none.active, none.status.as_str()), (false, "none"));
    }

    #[test]
    fn cursors_are_checked() {
        assert_eq!(parse_cursor("17.in_1"), Some((17, "in_1".into())));
        assert_eq!(parse_cursor("x.in_1"), None);
        assert_eq!(parse_cursor("17.in 1"), None);
        assert_eq!(parse_cursor("17"), None);
    }
}
