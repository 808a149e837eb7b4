//! What credit-related events do. Planned like catalog events: everything that needs
//! Stripe (line items, a subscription's metadata, a refund's charge) is read first,
//! with no transaction open; then [`write`] applies the effect in the event's
//! transaction, where unique keys make each grant and each refund count once.
//!
//! | event | effect |
//! |---|---|
//! | `checkout.session.completed`, `…async_payment_succeeded` | session status; links customer and subscription to the account; a paid `payment` session grants `credit_amount × quantity` per line (lot `cs_…`) |
//! | `checkout.session.async_payment_failed` | session marked `failed`; nothing granted |
//! | `customer.subscription.created/updated/deleted` | the subscription row (newest event wins) |
//! | `invoice.paid` for a subscription | grants the plan's credits (lot `in_…`), expiring at the period end |
//! | `charge.refunded`, `refund.created/updated` (succeeded) | takes back the refunded share, once per refund |
//!
//! Sessions, subscriptions and invoices are matched to an account by, in order: the
//! subscription row, the session's `client_reference_id`/`metadata.account`, the
//! customer linked at checkout, the subscription's `metadata.account` (fetched if
//! needed). None of these depends on the order in which the events arrive. An invoice
//! or session with no account found that way is not ours and grants nothing.

use serde_json::Value;
use sm_domain::credits::LotSource;
use sm_store::credits::{NewLot, SubscriptionRow};
use sm_store::{Store, Tx};
use sm_stripe::Client;
use sm_stripe::types::{CheckoutSession, Invoice, Subscription};

use super::apply::ApplyError;
use crate::credits::{RefundPlan, grant_in, refund_in};

/// A credit event's effect, decided and ready to write.
#[derive(Debug, Clone)]
pub enum CreditEffect {
    Session {
        id: String,
        account: String,
        customer: Option<String>,
        status: String,
        payment_status: Option<String>,
        subscription: Option<String>,
        grant: Option<NewLot>,
    },
    Subscription(SubscriptionRow),
    Grant(NewLot),
    Refunds(Vec<RefundPlan>),
}

fn parse<T: serde::de::DeserializeOwned>(object: &str) -> Result<T, ApplyError> {
    serde_json::from_str(object).map_err(|e| ApplyError::Payload(e.to_string()))
}

fn credit_error(message: String) -> ApplyError {
    ApplyError::Credit(message)
}

/// Plans a credit event; `None` for types (or objects) that do not concern the ledger.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    kind: &str,
    event_created: i64,
    object: &str,
) -> Result<Option<CreditEffect>, ApplyError> {
    match kind {
        "checkout.session.completed"
        | "checkout.session.async_payment_succeeded"
        | "checkout.session.async_payment_failed" => {
            session(store, client, kind, parse(object)?).await
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let sub: Subscription = parse(object)?;
            Ok(Some(CreditEffect::Subscription(
                subscription_row(store, &sub, event_created, object).await?,
            )))
        }
        "invoice.paid" => invoice(store, client, parse(object)?, object).await,
        "charge.refunded" => {
            let charge: sm_stripe::types::Charge = parse(object)?;
            let Some(payment) = charge.payment_intent.clone() else {
                return Ok(None);
            };
            let refunds = charge
                .refunds
                .map(|l| l.data)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.status.as_deref().is_none_or(|s| s == "succeeded"))
                .map(|r| RefundPlan {
                    id: r.id,
                    payment_ref: payment.clone(),
                    refunded: r.amount,
                })
                .collect::<Vec<_>>();
            Ok((!refunds.is_empty()).then_some(CreditEffect::Refunds(refunds)))
        }
        "refund.created" | "refund.updated" => {
            let refund: sm_stripe::types::Refund = parse(object)?;
            if refund.status.as_deref() != Some("succeeded") {
                return Ok(None);
            }
            let payment = match (refund.payment_intent.clone(), refund.charge.as_deref()) {
                (Some(pi), _) => Some(pi),
                (None, Some(charge)) => {
                    let client = need(client, "the refund's charge")?;
                    client.retrieve_charge(charge).await?.payment_intent
                }
                (None, None) => None,
            };
            Ok(payment.map(|payment_ref| {
                CreditEffect::Refunds(vec![RefundPlan {
                    id: refund.id,
                    payment_ref,
                    refunded: refund.amount,
                }])
            }))
        }
        _ => Ok(None),
    }
}

fn need<'a>(client: Option<&'a Client>, what: &str) -> Result<&'a Client, ApplyError> {
    client.ok_or_else(|| ApplyError::Disabled(what.to_owned()))
}

async fn session(
    store: &Store,
    client: Option<&Client>,
    kind: &str,
    s: CheckoutSession,
) -> Result<Option<CreditEffect>, ApplyError> {
    let Some(account) = s
        .client_reference_id
        .clone()
        .or_else(|| s.metadata.get("account").cloned())
        .filter(|a| crate::credits::validate_account(a).is_ok())
    else {
        // A session made elsewhere (a payment link, another app): not ours to credit.
        return Ok(None);
    };
    // Sessions made by POST /api/v1/checkout carry the account in metadata: a line that
    // cannot be credited there is an error to surface. Others (a payment link with a
    // client_reference_id) may sell things that are not credits: such lines are skipped.
    let ours = s.metadata.contains_key("account");
    let failed = kind == "checkout.session.async_payment_failed";
    let payment_status = if failed {
        "failed".to_owned()
    } else {
        s.payment_status.clone()
    };
    let grant = if !failed && s.mode == "payment" && s.payment_status == "paid" {
        let items = match &s.line_items {
            Some(list) if !list.has_more => list.data.clone(),
            _ => {
                need(client, &format!("the line items of {}", s.id))?
                    .checkout_session_line_items(&s.id)
                    .await?
                    .data
            }
        };
        let mut credits = 0i64;
        let (mut product, mut price, mut quantity) = (None, None, 0i64);
        for item in &items {
            let Some(p) = &item.price else { continue };
            let q = item.quantity.unwrap_or(1) as i64;
            let (prod, amount) = match credit_amount_of(store, &p.id).await {
                Ok(found) => found,
                Err(ApplyError::Credit(_)) if !ours => continue,
                Err(e) => return Err(e),
            };
            credits += amount * q * 100;
            product.get_or_insert(prod);
            price.get_or_insert(p.id.clone());
            quantity += q;
        }
        (credits > 0).then(|| NewLot {
            account: account.clone(),
            source: Some(LotSource::Purchase),
            source_ref: s.id.clone(),
            amount: credits,
            product,
            price,
            quantity: Some(quantity),
            payment_ref: s.payment_intent.clone(),
            paid_amount: s.amount_total,
            currency: s.currency.clone(),
            expires_at: None,
        })
    } else {
        None
    };
    Ok(Some(CreditEffect::Session {
        id: s.id.clone(),
        account,
        customer: s.customer.as_ref().map(|c| c.id().to_owned()),
        status: s.status.clone().unwrap_or_else(|| "complete".into()),
        payment_status: Some(payment_status),
        subscription: s.subscription.as_ref().map(|x| x.id().to_owned()),
        grant,
    }))
}

/// The product of a price and its credit amount from the local catalog, as it is now.
/// A product without a valid `credit_amount` cannot be granted: the event fails (and
/// after its attempts sits in the dead letter) until the metadata is fixed in Stripe,
/// synced, and the event replayed.
async fn credit_amount_of(store: &Store, price: &str) -> Result<(String, i64), ApplyError> {
    let product = store.price_product(price).await?.ok_or_else(|| {
        credit_error(format!(
            "price {price} is not in the local catalog; run a sync, then replay the event"
        ))
    })?;
    let record = store.get_product(&product).await?.ok_or_else(|| {
        credit_error(format!(
            "product {product} is not in the local catalog; run a sync, then replay the event"
        ))
    })?;
    match (record.valid, record.credit_amount) {
        (true, Some(n)) => Ok((product, i64::from(n))),
        _ => Err(credit_error(format!(
            "product {product} has no valid credit_amount ({}); fix its metadata in Stripe, sync, then replay the event",
            record.validation_error.as_deref().unwrap_or("missing")
        ))),
    }
}

async fn subscription_row(
    store: &Store,
    sub: &Subscription,
    event_created: i64,
    raw: &str,
) -> Result<SubscriptionRow, ApplyError> {
    let customer = sub.customer.id().to_owned();
    let account = match sub.metadata.get("account") {
        Some(a) => Some(a.clone()),
        None => store.account_for_customer(&customer).await?,
    };
    let item = sub.items.data.first();
    let price = item.map(|i| i.price.id.clone());
    let product = item.map(|i| i.price.product.id().to_owned());
    let period = sub.current_period();
    Ok(SubscriptionRow {
        id: sub.id.clone(),
        account,
        customer,
        status: sub.status.clone(),
        price,
        product,
        quantity: item.and_then(|i| i.quantity).map(|q| q as i64),
        current_period_start: period.map(|p| p.0),
        current_period_end: period.map(|p| p.1),
        cancel_at_period_end: sub.cancel_at_period_end,
        canceled_at: sub.canceled_at,
        event_created,
        raw: raw.to_owned(),
        updated_at: crate::sync::unix_now(),
    })
}

async fn invoice(
    store: &Store,
    client: Option<&Client>,
    inv: Invoice,
    raw: &str,
) -> Result<Option<CreditEffect>, ApplyError> {
    let Some(sub_id) = inv.subscription_id().map(str::to_owned) else {
        return Ok(None);
    };
    let customer = inv.customer.as_ref().map(|c| c.id().to_owned());
    let object: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let mut account = store.subscription(&sub_id).await?.and_then(|s| s.account);
    if account.is_none()
        && let Some(c) = &customer
    {
        account = store.account_for_customer(c).await?;
    }
    if account.is_none() {
        account = object["parent"]["subscription_details"]["metadata"]["account"]
            .as_str()
            .map(str::to_owned);
    }
    if account.is_none()
        && let Some(client) = client
    {
        account = client
            .retrieve_subscription(&sub_id)
            .await?
            .metadata
            .get("account")
            .cloned();
    }
    let Some(account) = account else {
        // Checkouts made here link the customer before the session exists and put the
        // account in the subscription's metadata, so an invoice with no account found
        // either way belongs to a subscription that is not a credit plan.
        tracing::info!(invoice = %inv.id, subscription = %sub_id, "invoice of a subscription with no known account; not a credit plan, nothing granted");
        return Ok(None);
    };
    let mut credits = 0i64;
    let (mut product, mut price, mut quantity, mut expires) = (None, None, 0i64, None);
    for line in &inv.lines.data {
        // Proration credits (negative lines) grant nothing.
        let Some(price_id) = line.price_id() else {
            continue;
        };
        if line.amount < 0 {
            continue;
        }
        let q = line.quantity.unwrap_or(1) as i64;
        let (prod, amount) = credit_amount_of(store, price_id).await?;
        credits += amount * q * 100;
        product.get_or_insert(prod);
        price.get_or_insert(price_id.to_owned());
        quantity += q;
        if let Some(p) = &line.period {
            expires = Some(expires.map_or(p.end, |e: i64| e.max(p.end)));
        }
    }
    if credits == 0 {
        return Ok(None);
    }
    // Needed to match a later refund to this grant. Pre-basil invoices name it; basil
    // ones only list it when `payments` is expanded, so ask Stripe (one call per invoice).
    let mut payment_ref = object["payment_intent"]
        .as_str()
        .or_else(|| object["payments"]["data"][0]["payment"]["payment_intent"].as_str())
        .map(str::to_owned);
    if payment_ref.is_none()
        && inv.amount_paid > 0
        && let Some(client) = client
    {
        payment_ref = client.invoice_payment_intent(&inv.id).await?;
    }
    Ok(Some(CreditEffect::Grant(NewLot {
        account,
        source: Some(LotSource::Subscription),
        source_ref: inv.id.clone(),
        amount: credits,
        expires_at: expires.or(inv.period_end),
        product,
        price,
        quantity: Some(quantity),
        payment_ref,
        paid_amount: Some(inv.amount_paid),
        currency: inv.currency.clone(),
    })))
}

/// Applies a planned credit effect in the event's transaction.
pub async fn write(tx: &mut Tx, effect: &CreditEffect, now: i64) -> Result<(), ApplyError> {
    match effect {
        CreditEffect::Session {
            id,
            account,
            customer,
            status,
            payment_status,
            subscription,
            grant,
        } => {
            tx.lock_account(account, now).await?;
            if let Some(c) = customer {
                tx.link_customer(account, c).await?;
                if let Some(s) = subscription {
                    tx.link_subscription(s, account, c, now).await?;
                }
            }
            tx.update_checkout(
                id,
                status,
                payment_status.as_deref(),
                customer.as_deref(),
                now,
            )
            .await?;
            if let Some(lot) = grant {
                grant_in(tx, lot, now).await?;
            }
        }
        CreditEffect::Subscription(row) => {
            tx.upsert_subscription(row).await?;
        }
        CreditEffect::Grant(lot) => {
            grant_in(tx, lot, now).await?;
        }
        CreditEffect::Refunds(refunds) => {
            for r in refunds {
                refund_in(tx, r, now).await?;
            }
        }
    }
    Ok(())
}
