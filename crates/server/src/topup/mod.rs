//! Automatic top-ups: when a consumption, a hold or a capture leaves what an account may
//! spend (`available − held`) below its threshold, buy its pack off-session with the
//! customer's saved card.
//!
//! - **Once per crossing, on any number of instances**: the decision is made in the
//!   ledger transaction that crossed ([`after_debit`]), under the account's lock: the
//!   setting is disarmed and one purchase row (`top_ups`) is written with the change, or
//!   neither. It fires when the setting is armed (saved since the last purchase) or the
//!   account was at or above the threshold before the change; so a failed purchase is
//!   not retried by the next consumption, but the next crossing buys again. At most
//!   `max_per_day` purchases per UTC day; one over it is recorded `skipped`.
//! - **Paid later, by the charger** ([`charge`]), never in the request that crossed (a
//!   consumption must not wait on Stripe, and must commit whatever Stripe says).
//! - **Credits come only through `invoice.paid`**, the usual webhook path: the purchase
//!   is an invoice (see [`charge`] for why), and its lines grant like any pack.

pub mod charge;

use serde::{Deserialize, Serialize};
use sm_domain::credits::Credits;
use sm_store::top_ups::{TopUpRow, TopUpSetting};
use sm_store::{Store, StoreError, Tx};
use tokio::sync::Notify;

/// Wakes this process's charger when a purchase is queued here (others poll).
pub(crate) static WAKE: Notify = Notify::const_new();

/// The largest pack quantity and daily maximum accepted: far above any real use, so a
/// typo cannot buy a thousand packs.
pub const MAX_QUANTITY: i64 = 100;
/// The largest `max_per_day` accepted (see [`MAX_QUANTITY`]).
pub const MAX_PER_DAY: i64 = 100;

/// For each `(account, before, after)` (what it may spend before and after a debit made
/// in `tx`, the account locked), queues a purchase on a crossing of its threshold.
/// Costs one query for accounts without top-ups only where `lock_accounts` did not read
/// their row already (SQLite, the single path).
pub async fn after_debit(
    tx: &mut Tx,
    changes: &[(&str, i64, i64)],
    now: i64,
) -> Result<(), StoreError> {
    let below_now: Vec<&str> = changes.iter().map(|(a, _, _)| *a).collect();
    if below_now.is_empty() {
        return Ok(());
    }
    let thresholds = tx.top_up_thresholds(&below_now).await?;
    for (account, below) in thresholds {
        let Some((_, before, after)) = changes.iter().find(|c| c.0 == account) else {
            continue;
        };
        if *after >= below {
            continue;
        }
        if let Some((id, status)) = tx.cross_top_up(&account, *before, *after, now).await? {
            metrics::counter!("stripe_manager_top_ups_total", "outcome" => status.clone())
                .increment(1);
            tracing::info!(%account, top_up = %id, %status, "the account crossed its top-up threshold");
            if status == "queued" {
                WAKE.notify_one();
            }
        }
    }
    Ok(())
}

/// `PUT /api/v1/accounts/{account}/top-up`.
#[derive(utoipa::ToSchema, Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// Buy when what the account may spend falls below this.
    pub below: Credits,
    /// The pack's price: one-time, active, of a product with a valid `credit_amount`.
    pub price: String,
    /// Packs bought each time (1 to 100; default 1).
    #[serde(default = "one")]
    pub quantity: i64,
    /// Purchases per UTC day at most (1 to 100; default 1); one over it is recorded `skipped`.
    #[serde(default = "one")]
    pub max_per_day: i64,
}

fn one() -> i64 {
    1
}

/// What `GET …/top-up` shows.
#[derive(utoipa::ToSchema)]
#[schema(as = TopUp)]
#[derive(Debug, Clone, Serialize)]
pub struct TopUpView {
    /// The account.
    pub account: String,
    /// Whether purchases are made; false after the service turned it off (see
    /// `disabled_reason`).
    pub enabled: bool,
    /// Buy when what the account may spend falls below this.
    pub below: Credits,
    /// The pack's price (`price_…`).
    pub price: String,
    /// Packs bought each time.
    pub quantity: i64,
    /// Purchases per UTC day at most.
    pub max_per_day: i64,
    /// Why the service turned it off (a card that needs authentication).
    pub disabled_reason: Option<String>,
    /// When the setting last changed (unix seconds).
    pub updated_at: i64,
    /// The latest purchases, newest first.
    pub recent: Vec<TopUpRow>,
}

impl TopUpView {
    /// The view of setting `s` with its latest purchases.
    pub fn new(s: TopUpSetting, recent: Vec<TopUpRow>) -> Self {
        Self {
            account: s.account,
            enabled: s.enabled,
            below: Credits(s.below),
            price: s.price,
            quantity: s.quantity,
            max_per_day: s.max_per_day,
            disabled_reason: s.disabled_reason,
            updated_at: s.updated_at,
            recent,
        }
    }
}

/// Why a setting is refused.
#[derive(Debug, thiserror::Error)]
pub enum TopUpError {
    /// The setting is refused (amount, price, quantity, daily maximum); the text says why
    /// (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}

/// Checks a setting against the local catalog: a pack checkout would sell (one-time,
/// active, whole credits), a sane quantity and daily maximum, and a customer to charge.
pub async fn validate(store: &Store, account: &str, req: &TopUpRequest) -> Result<(), TopUpError> {
    if req.below.hundredths() <= 0 {
        return Err(TopUpError::Invalid("below must be more than 0".into()));
    }
    if !(1..=MAX_QUANTITY).contains(&req.quantity) {
        return Err(TopUpError::Invalid(format!(
            "quantity must be between 1 and {MAX_QUANTITY}"
        )));
    }
    if !(1..=MAX_PER_DAY).contains(&req.max_per_day) {
        return Err(TopUpError::Invalid(format!(
            "max_per_day must be between 1 and {MAX_PER_DAY}"
        )));
    }
    if let Some(why) = pack_refusal(store, &req.price).await? {
        return Err(TopUpError::Invalid(why));
    }
    let linked = store
        .account(account)
        .await?
        .and_then(|a| a.stripe_customer)
        .is_some();
    if !linked {
        return Err(TopUpError::Invalid(format!(
            "account {account} has no Stripe customer yet: top-ups need a first purchase that saved a card \
             (POST /api/v1/checkout with \"save_payment_method\": true)"
        )));
    }
    Ok(())
}

/// Marks a purchase `succeeded` when its invoice's grant (`credits`, hundredths) is written (in the same
/// transaction, the account locked by the grant) and sends `top_up.succeeded`. A second
/// `invoice.paid` for the invoice finds it succeeded and sends nothing.
pub async fn succeeded_in(
    tx: &mut Tx,
    top_up: &str,
    invoice: &str,
    credits: i64,
    now: i64,
) -> Result<(), StoreError> {
    let Some(row) = tx
        .move_top_up(
            top_up,
            &["queued", "paid", "failed"],
            "succeeded",
            None,
            now,
        )
        .await?
    else {
        return Ok(());
    };
    tx.lock_account(&row.account, now).await?;
    // Paid: the next debit that finds the account below its threshold buys again (a
    // lot that expired, or a take-back, may have taken it below meanwhile).
    tx.arm_top_up(&row.account).await?;
    let data = serde_json::json!({
        "account": row.account,
        "top_up": row.id,
        "invoice": invoice,
        "price": row.price,
        "quantity": row.quantity,
        "credits": Credits(credits),
    });
    crate::outbox::emit(tx, &row.account, "top_up.succeeded", data, now * 1000).await?;
    metrics::counter!("stripe_manager_top_ups_total", "outcome" => "succeeded").increment(1);
    Ok(())
}

/// Why `price` cannot be bought as a top-up, if it cannot: it must be a pack checkout
/// would sell (a valid, active credit product; an active one-time price whose credits
/// are defined). Checked when the setting is saved and again before each purchase.
pub async fn pack_refusal(store: &Store, price: &str) -> Result<Option<String>, StoreError> {
    let Some(product) = store.price_product(price).await? else {
        return Ok(Some(format!("price {price} is not in the catalog")));
    };
    let Some(record) = store.get_product(&product).await? else {
        return Ok(Some(format!("product {product} is not in the catalog")));
    };
    let Some(p) = record.prices.iter().find(|p| p.id == price) else {
        return Ok(Some(format!("price {price} is not in the catalog")));
    };
    if let Some(why) = crate::sellable::refusal(&record, p) {
        return Ok(Some(format!(
            "price {price} cannot top up: its product {product} {why}"
        )));
    }
    if p.recurring {
        return Ok(Some(format!(
            "price {price} is a plan's (recurring): a top-up buys a pack, a one-time price"
        )));
    }
    Ok(None)
}
