//! `checkout.session.*`: the session's status, the account's customer and
//! subscription links, and for a paid one-time session its grant.

use sm_domain::credits::LotSource;
use sm_store::credits::{NewLot, NewOrigin};
use sm_store::{Store, Tx};
use sm_stripe::Client;
use sm_stripe::types::CheckoutSession;

use super::{CreditEffect, EventInfo, PriceCredits, need, parse, price_credits, whole_credits};
use crate::credits::{Grant, grant_in};
use crate::webhooks::error::ApplyError;

/// What a session event writes.
#[derive(Debug, Clone)]
pub struct SessionEffect {
    /// The session's id (`cs_…`).
    pub id: String,
    /// The account it was opened for.
    pub account: String,
    /// The customer Stripe made or used: linked to the account.
    pub customer: Option<String>,
    /// Stripe's session status (`complete`), or `expired` from the event.
    pub status: String,
    /// Stripe's `payment_status` (`paid`, `unpaid`, `no_payment_required`), or `failed`
    /// after `async_payment_failed`.
    pub payment_status: Option<String>,
    /// The subscription a plan checkout made: linked to the account.
    pub subscription: Option<String>,
    /// The credits a paid (or free) one-time session grants.
    pub grant: Option<Grant>,
}

/// Plans a `checkout.session.*` event of a session opened for an account (others are not
/// ours): a paid or free one-time session grants its lines' credits, read from Stripe
/// with no transaction open.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    event: EventInfo<'_>,
) -> Result<Option<CreditEffect>, ApplyError> {
    let s: CheckoutSession = parse(event.object)?;
    let Some(account) = s
        .client_reference_id
        .clone()
        .or_else(|| s.metadata.get("account").cloned())
        .filter(|a| crate::credits::validate_account(a).is_ok())
    else {
        // A session made elsewhere (a payment link, another app): not ours to credit.
        return Ok(None);
    };
    let (status, payment_status, grants) = match event.kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => (
            s.status.clone().unwrap_or_else(|| "complete".into()),
            s.payment_status.clone(),
            // Paid, or free (a 100 % promotion code, a free price): Stripe's
            // `no_payment_required`.
            s.mode == "payment"
                && matches!(s.payment_status.as_str(), "paid" | "no_payment_required"),
        ),
        "checkout.session.async_payment_failed" => (
            s.status.clone().unwrap_or_else(|| "complete".into()),
            "failed".to_owned(),
            false,
        ),
        "checkout.session.expired" => ("expired".to_owned(), s.payment_status.clone(), false),
        _ => return Ok(None),
    };
    let grant = if grants {
        session_grant(store, client, &s, &account).await?
    } else {
        None
    };
    Ok(Some(CreditEffect::Session(SessionEffect {
        id: s.id.clone(),
        account,
        customer: s.customer.as_ref().map(|c| c.id().to_owned()),
        status,
        payment_status: Some(payment_status),
        subscription: s.subscription.as_ref().map(|x| x.id().to_owned()),
        grant,
    })))
}

/// `credit_amount × quantity` per line. A session made by `POST /api/v1/checkout`
/// grants the credits the product had when the session was created (kept with the
/// checkout); its lines must be credit products, or the event fails for an operator to
/// see. Other sessions (a payment link with a `client_reference_id`) use the catalog
/// and skip lines that are not credits.
async fn session_grant(
    store: &Store,
    client: Option<&Client>,
    s: &CheckoutSession,
    account: &str,
) -> Result<Option<Grant>, ApplyError> {
    let ours = s.metadata.contains_key("account");
    let fixed = if ours {
        store
            .checkout(&s.id)
            .await?
            .and_then(|c| Some((c.price, c.credit_amount?)))
    } else {
        None
    };
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
        let q = item.quantity.unwrap_or(1);
        let per_unit = match &fixed {
            Some((fixed_price, per_unit)) if *fixed_price == p.id => *per_unit,
            _ => match price_credits(store, &p.id, None).await {
                Ok(PriceCredits::Credits { per_unit, .. }) => per_unit,
                Ok(PriceCredits::NotCredits) | Err(ApplyError::Credit(_)) if !ours => continue,
                Ok(PriceCredits::NotCredits) => {
                    return Err(ApplyError::Credit(format!(
                        "price {} of session {} has no credit_amount; fix its metadata in Stripe, sync, then replay the event",
                        p.id, s.id
                    )));
                }
                Err(e) => return Err(e),
            },
        };
        let line = whole_credits(per_unit, q, &format!("session {}", s.id))?;
        credits = credits
            .checked_add(line)
            .ok_or_else(|| ApplyError::Credit(format!("session {} grants too much", s.id)))?;
        product.get_or_insert(p.product.id().to_owned());
        price.get_or_insert(p.id.clone());
        quantity = quantity.saturating_add(i64::try_from(q).unwrap_or(i64::MAX));
    }
    if credits == 0 {
        return Ok(None);
    }
    let paid = s.amount_total.unwrap_or(0);
    Ok(Some(Grant {
        origin: NewOrigin {
            id: s.id.clone(),
            account: account.to_owned(),
            source: Some(LotSource::Purchase),
            paid_amount: paid,
            currency: s.currency.clone(),
        },
        payments: s.payment_intent.iter().cloned().collect(),
        lots: vec![NewLot {
            account: account.to_owned(),
            source: Some(LotSource::Purchase),
            source_ref: s.id.clone(),
            amount: credits,
            product,
            price,
            quantity: Some(quantity),
            payment_ref: s.payment_intent.clone(),
            paid_amount: Some(paid),
            currency: s.currency.clone(),
            expires_at: None,
            origin: Some(s.id.clone()),
            subscription: None,
            period_end: None,
        }],
        take_backs: Vec::new(),
    }))
}

/// Writes a planned session in the event's transaction: its grant (claimed once by the
/// session), then the session row and the account's links.
pub async fn write(tx: &mut Tx, s: &SessionEffect, now: i64) -> Result<(), ApplyError> {
    // The grant first: it takes its claims and links before the account lock, the order
    // every ledger transaction follows.
    if let Some(grant) = &s.grant {
        grant_in(tx, grant, now).await?;
    }
    tx.lock_account(&s.account, now).await?;
    if let Some(c) = &s.customer {
        tx.link_customer(&s.account, c).await?;
        if let Some(sub) = &s.subscription {
            tx.link_subscription(sub, &s.account, c, now).await?;
        }
        // Invoices that waited for this customer's account (a payment link's first
        // invoice.paid came first) are due now.
        tx.wake_events(&format!("customer:{c}"), now.saturating_mul(1000))
            .await?;
    }
    tx.update_checkout(
        &s.id,
        &s.status,
        s.payment_status.as_deref(),
        s.customer.as_deref(),
        now,
    )
    .await?;
    Ok(())
}
