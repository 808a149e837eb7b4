//! Creating a Stripe Checkout Session for an account to buy a credit product.
//!
//! Only a price of a **sellable** product (valid `credit_amount`, active, not deleted,
//! per the local catalog) with an active price can be bought. The account's Stripe
//! customer is created once (idempotency key derived from the account, so two
//! concurrent first checkouts create one customer) and linked before the session
//! exists, so every later event for that customer finds the account whatever order
//! they arrive in. The session carries the account as `client_reference_id` and in
//! metadata (and in the subscription's metadata for plans).

use serde::{Deserialize, Serialize};
use sm_store::Store;
use sm_store::credits::CheckoutRow;
use sm_stripe::{Form, StripeError};

use crate::credits::{LedgerError, validate_account};
use crate::manager::{StripeManager, Unavailable};

fn one() -> u32 {
    1
}

/// `POST /api/v1/checkout`.
#[derive(utoipa::ToSchema, Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The app's account the purchase is for (its credits, entitlement and customer).
    pub account: String,
    /// The price to buy (`price_…`): one of a sellable product of the catalog.
    pub price: String,
    /// Units to buy (1 to 1000; default 1): packs, or seats for a plan.
    #[serde(default = "one")]
    pub quantity: u32,
    /// Where Stripe sends the customer after paying (http or https).
    pub success_url: String,
    /// Where Stripe sends the customer who leaves the checkout (http or https).
    pub cancel_url: String,
    /// A free trial before the first charge, for a plan (Stripe's
    /// `subscription_data[trial_period_days]`, 1 to 730 days). The account is entitled
    /// while `trialing`; credits come with the first paid invoice.
    #[serde(default)]
    pub trial_period_days: Option<u32>,
    /// For a pack: save the card for payments the customer is not present for (an
    /// automatic top-up). Stripe's `payment_intent_data[setup_future_usage]=off_session`:
    /// "Checkout will attach the payment method to the Customer"
    /// (stripe@18.0.0 `Checkout/SessionsResource.d.ts`). A plan's card is kept by its
    /// subscription anyway.
    #[serde(default)]
    pub save_payment_method: bool,
}

/// `POST /api/v1/checkout`'s answer: the Stripe Checkout session to send the customer to.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct CheckoutCreated {
    /// Stripe's Checkout session id (`cs_…`).
    pub id: String,
    /// The session's hosted page: redirect the customer there.
    pub url: Option<String>,
    /// `payment` (one-time price) or `subscription` (recurring price).
    pub mode: String,
    /// The account it is for.
    pub account: String,
    /// The product bought.
    pub product: String,
    /// The price bought.
    pub price: String,
    /// Units bought.
    pub quantity: u32,
}

/// Why a checkout session was not created; the API answers each with its own status and code.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The request is malformed (account, quantity, URLs, trial days): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// The price or its product is unknown, inactive or has invalid metadata: HTTP 422
    /// `product_not_sellable`.
    #[error("{0}")]
    NotSellable(String),
    /// A plan checkout for an account whose plan is still running: a second subscription
    /// would bill it twice.
    #[error("{0}")]
    PlanActive(String),
    /// A trial for an account that has had a subscription (or trial) before.
    #[error("{0}")]
    TrialUsed(String),
    /// Stripe is disabled or unreachable: HTTP 503, no session was made.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// Stripe refused the session: HTTP 502 with Stripe's message.
    #[error("Stripe refused the checkout: {0}")]
    Stripe(StripeError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] sm_store::StoreError),
}

impl From<LedgerError> for CheckoutError {
    fn from(e: LedgerError) -> Self {
        CheckoutError::Invalid(e.to_string())
    }
}

impl From<StripeError> for CheckoutError {
    fn from(e: StripeError) -> Self {
        match Unavailable::from_error(&e) {
            Some(u) => CheckoutError::Unavailable(u),
            None => CheckoutError::Stripe(e),
        }
    }
}

fn valid_url(u: &str) -> bool {
    reqwest::Url::parse(u)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Creates the session. `idempotency_key` (the caller's `Idempotency-Key` header) makes
/// a retried request return the same session.
pub async fn create(
    store: &Store,
    stripe: &StripeManager,
    req: &CheckoutRequest,
    idempotency_key: Option<&str>,
    now: i64,
) -> Result<CheckoutCreated, CheckoutError> {
    validate_account(&req.account)?;
    if !(1..=1000).contains(&req.quantity) {
        return Err(CheckoutError::Invalid(
            "quantity must be between 1 and 1000".into(),
        ));
    }
    if req
        .trial_period_days
        .is_some_and(|d| !(1..=730).contains(&d))
    {
        return Err(CheckoutError::Invalid(
            "trial_period_days must be between 1 and 730 (Stripe's limits)".into(),
        ));
    }
    for (name, url) in [
        ("success_url", &req.success_url),
        ("cancel_url", &req.cancel_url),
    ] {
        if !valid_url(url) {
            return Err(CheckoutError::Invalid(format!(
                "{name} must be an http(s) URL"
            )));
        }
    }
    let product_id = store.price_product(&req.price).await?.ok_or_else(|| {
        CheckoutError::NotSellable(format!("price {} is not in the catalog", req.price))
    })?;
    let product = store.get_product(&product_id).await?.ok_or_else(|| {
        CheckoutError::NotSellable(format!("product {product_id} is not in the catalog"))
    })?;
    let price = product
        .prices
        .iter()
        .find(|p| p.id == req.price)
        .ok_or_else(|| CheckoutError::NotSellable(format!("price {} is unknown", req.price)))?;
    if let Some(why) = crate::sellable::refusal(&product, price) {
        return Err(CheckoutError::NotSellable(format!(
            "product {product_id} {why}; it cannot be bought"
        )));
    }
    let mode = if price.recurring {
        "subscription"
    } else {
        "payment"
    };
    if mode != "subscription" && req.trial_period_days.is_some() {
        return Err(CheckoutError::Invalid(
            "trial_period_days is for plans (recurring prices); this price is one-time".into(),
        ));
    }
    let subs = if mode == "subscription" {
        store.account_subscriptions(&req.account).await?
    } else {
        Vec::new()
    };
    if let Some(s) = crate::billing::running(&subs) {
        return Err(CheckoutError::PlanActive(format!(
            "account {} already has a running plan (subscription {}, {}); change it with \
             POST /api/v1/accounts/{}/subscription/change instead of a second subscription",
            req.account, s.id, s.status, req.account
        )));
    }
    // One trial per account: any earlier subscription (trial or paid, of any plan, even
    // canceled at once) in the mirror uses it up. Stripe does not enforce this.
    if req.trial_period_days.is_some()
        && let Some(s) = subs.first()
    {
        return Err(CheckoutError::TrialUsed(format!(
            "account {} has had a subscription before ({}, {}): the free trial is for new \
             accounts only; check out without trial_period_days",
            req.account, s.id, s.status
        )));
    }
    // … nor while another plan checkout of the account is open: sessions made one after
    // the other, completed later, would each start a trial.
    if req.trial_period_days.is_some()
        && let Some(open) = store
            .open_subscription_checkout(&req.account, now - 86_400)
            .await?
    {
        return Err(CheckoutError::TrialUsed(format!(
            "account {} has an open plan checkout ({open}); a trial is once per account: \
             complete or let that one expire first",
            req.account
        )));
    }
    let client = stripe.ensure_available()?;
    // … and in Stripe, for a customer whose subscriptions the mirror has not seen.
    if req.trial_period_days.is_some()
        && let Some(customer) = store
            .account(&req.account)
            .await?
            .and_then(|a| a.stripe_customer)
    {
        let query = [
            ("customer".to_owned(), customer.clone()),
            ("status".to_owned(), "all".to_owned()),
            ("limit".to_owned(), "1".to_owned()),
        ];
        let page: serde_json::Value = client
            .get("subscriptions.list", "/v1/subscriptions", &query)
            .await?;
        if let Some(s) = page["data"].as_array().and_then(|d| d.first()) {
            return Err(CheckoutError::TrialUsed(format!(
                "account {} has had a subscription before ({} in Stripe, {}): the free trial \
                 is for new accounts only; check out without trial_period_days",
                req.account,
                s["id"].as_str().unwrap_or("?"),
                s["status"].as_str().unwrap_or("?")
            )));
        }
    }

    let customer = match store
        .account(&req.account)
        .await?
        .and_then(|a| a.stripe_customer)
    {
        Some(c) => c,
        None => {
            let form = Form::new().push_map("metadata", [("account", req.account.as_str())]);
            // After Stripe deleted the account's customer, a key of its own: the first
            // one would replay the deleted customer for 24 hours.
            let key = match store.unlinked_customer(&req.account).await? {
                Some(old) => {
                    sm_stripe::idempotency::idempotency_key("customer-after", &[&req.account, &old])
                }
                None => sm_stripe::idempotency::idempotency_key("customer", &[&req.account]),
            };
            let created = client.create_customer(&form, Some(key)).await?;
            store
                .ensure_account(&req.account, Some(&created.id), now)
                .await?;
            // Another request may have linked a different customer first: use the linked one.
            store
                .account(&req.account)
                .await?
                .and_then(|a| a.stripe_customer)
                .unwrap_or(created.id)
        }
    };

    let quantity = req.quantity.to_string();
    let mut form = Form::new()
        .push("mode", mode)
        .push("line_items[0][price]", req.price.as_str())
        .push("line_items[0][quantity]", quantity.as_str())
        .push("customer", customer.as_str())
        .push("client_reference_id", req.account.as_str())
        .push("success_url", req.success_url.as_str())
        .push("cancel_url", req.cancel_url.as_str())
        .push_map(
            "metadata",
            [
                ("account", req.account.as_str()),
                ("product", product_id.as_str()),
            ],
        );
    form = if mode == "subscription" {
        form.push_map(
            "subscription_data[metadata]",
            [
                ("account", req.account.as_str()),
                ("product", product_id.as_str()),
            ],
        )
    } else {
        let form = form.push_map(
            "payment_intent_data[metadata]",
            [("account", req.account.as_str())],
        );
        if req.save_payment_method {
            form.push("payment_intent_data[setup_future_usage]", "off_session")
        } else {
            form
        }
    };
    let trial = req.trial_period_days.map(|d| d.to_string());
    if let Some(days) = &trial {
        form = form.push("subscription_data[trial_period_days]", days.as_str());
    }
    let key = idempotency_key
        .map(|k| sm_stripe::idempotency::idempotency_key("checkout", &[&req.account, k]));
    let session = client.create_checkout_session(&form, key).await?;
    store
        .insert_checkout(&CheckoutRow {
            id: session.id.clone(),
            account: req.account.clone(),
            customer: Some(customer),
            mode: mode.to_owned(),
            price: req.price.clone(),
            product: product_id.clone(),
            quantity: i64::from(req.quantity),
            status: session.status.clone().unwrap_or_else(|| "open".into()),
            payment_status: Some(session.payment_status.clone()),
            url: session.url.clone(),
            created_at: now,
            updated_at: now,
            credit_amount: product.credit_amount.map(i64::from),
        })
        .await?;
    Ok(CheckoutCreated {
        id: session.id,
        url: session.url,
        mode: mode.to_owned(),
        account: req.account.clone(),
        product: product_id,
        price: req.price.clone(),
        quantity: req.quantity,
    })
}
