//! What credit-related events do, one module per family of events. Planned like catalog
//! events: everything that needs Stripe (line items, an invoice's other lines and
//! payments, a charge's refunds) is read first, with no transaction open; then
//! [`write()`] applies the effect in the event's transaction, where the ledger's claims
//! (an origin per session or invoice, a reversal per refund, dispute or proration line)
//! make each count once.
//!
//! | event | module | effect |
//! |---|---|---|
//! | `checkout.session.completed`, `…async_payment_succeeded` | [`checkout`] | session status; links customer and subscription to the account; a paid (or free) `payment` session grants `credit_amount × quantity` |
//! | `checkout.session.async_payment_failed`, `…expired` | [`checkout`] | session marked `failed` / `expired`; nothing granted |
//! | `customer.subscription.created/updated/deleted` | [`subscription`] | the subscription row (newest event wins; same-second ties refetch) |
//! | `customer.deleted` | here | the customer is unlinked from its account (the next checkout makes a new one) |
//! | `subscription_schedule.*` | here | the schedule's next change (price, quantity, when), shown on the account |
//! | `invoice.paid` | [`invoice`] | per line: full periods grant the plan's credits, proration lines grant or take back their share; an automatic top-up's invoice grants its pack and marks the purchase succeeded |
//! | `charge.refunded`, `refund.created/updated/failed` | [`reversal`] | records each refund (listed from Stripe for `charge.refunded`) and brings the grant to its share |
//! | `charge.dispute.created/updated/closed/funds_withdrawn/funds_reinstated` | [`reversal`] | a chargeback takes back like a refund; won or reinstated gives back |
//! | `credit_note.created/updated/voided` | [`reversal`] | a post-payment note takes back its share (its refunds once, with their own events); voided gives back |
//!
//! Sessions, subscriptions and invoices are matched to an account by, in order: the
//! subscription row, the session's `client_reference_id`/`metadata.account`, the
//! customer linked at checkout, the subscription's `metadata.account` (fetched if
//! needed). None of these depends on the order in which the events arrive. An invoice
//! or session with no account found that way is not ours and grants nothing.

pub mod checkout;
pub mod invoice;
pub mod reversal;
pub mod subscription;

use sm_store::{Store, Tx};
use sm_stripe::Client;

use super::error::ApplyError;
use crate::credits::{Grant, Reversal, grant_in, reverse_all_in};

/// A credit event's effect, decided and ready to write.
#[derive(Debug, Clone)]
pub enum CreditEffect {
    /// A Checkout session's status, links and grant ([`checkout`]).
    Session(checkout::SessionEffect),
    /// A subscription row ([`subscription`]).
    Subscription(subscription::SubscriptionWrite),
    /// A subscription schedule: the plan change it will make next.
    Schedule(sm_store::schedules::ScheduleRow),
    /// A customer Stripe deleted: unlinked from its account.
    CustomerDeleted(String),
    /// A paid invoice's grant and proration take-backs ([`invoice`]).
    Grant(Grant),
    /// An automatic top-up's invoice paid: its grant, and the purchase marked succeeded.
    TopUp {
        /// The purchase (its id in `top_ups`).
        top_up: String,
        /// The invoice that paid it (`in_…`).
        invoice: String,
        /// The pack's credits.
        grant: Grant,
    },
    /// Refunds, disputes or credit notes, each bringing its payment's grant to its share
    /// ([`reversal`]).
    Reversals(Vec<Reversal>),
}

/// The parts of an event's envelope a handler needs; the envelope is parsed once, each
/// handler parses `object` into its own type.
#[derive(Debug, Clone, Copy)]
pub struct EventInfo<'a> {
    /// The event's type (`invoice.paid`).
    pub kind: &'a str,
    /// The event's `created` (unix seconds): orders events of one object.
    pub created: i64,
    /// `data.object`, compact JSON.
    pub object: &'a str,
}

/// Plans a credit event; `None` for types (or objects) that do not concern the ledger.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    event: EventInfo<'_>,
) -> Result<Option<CreditEffect>, ApplyError> {
    let kind = event.kind;
    if kind.starts_with("checkout.session.") {
        checkout::plan(store, client, event).await
    } else if kind.starts_with("customer.subscription.") {
        subscription::plan(store, client, event).await
    } else if kind == "customer.deleted" {
        let customer: serde_json::Value = parse(event.object)?;
        Ok(customer["id"]
            .as_str()
            .map(|id| CreditEffect::CustomerDeleted(id.to_owned())))
    } else if kind.starts_with("subscription_schedule.") {
        let schedule: serde_json::Value = parse(event.object)?;
        Ok(
            crate::mirror::schedule_row(&schedule, event.created, crate::clock::unix_now())
                .map(CreditEffect::Schedule),
        )
    } else if kind == "invoice.paid" {
        invoice::plan(store, client, event).await
    } else if matches!(
        kind,
        "charge.refunded" | "refund.created" | "refund.updated" | "refund.failed"
    ) {
        reversal::refund(client, event).await
    } else if kind.starts_with("charge.dispute.") {
        reversal::dispute(client, event).await
    } else if kind.starts_with("credit_note.") {
        reversal::credit_note(event).await
    } else {
        Ok(None)
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(object: &str) -> Result<T, ApplyError> {
    serde_json::from_str(object).map_err(|e| ApplyError::Payload(e.to_string()))
}

pub(crate) fn need<'a>(client: Option<&'a Client>, what: &str) -> Result<&'a Client, ApplyError> {
    client.ok_or_else(|| ApplyError::Disabled(what.to_owned()))
}

/// What the local catalog says about the credits of a price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PriceCredits {
    /// A credit product: whole credits per unit, and the price's unit amount (minor
    /// units) when it has one.
    Credits {
        product: String,
        per_unit: i64,
        unit_amount: Option<i64>,
    },
    /// A product without `credit_amount` metadata: not sold as credits.
    NotCredits,
}

/// The credits of a price from the local catalog, as it is now, with its unit amount in
/// `currency` (its own currency, or one of its `currency_options`). A product whose
/// `credit_amount` is present but invalid is an error: the event retries and ends in the
/// dead letter until the metadata is fixed in Stripe, synced, and the event replayed.
pub(crate) async fn price_credits(
    store: &Store,
    price: &str,
    currency: Option<&str>,
) -> Result<PriceCredits, ApplyError> {
    let product = store.price_product(price).await?.ok_or_else(|| {
        ApplyError::Credit(format!(
            "price {price} is not in the local catalog; run a sync, then replay the event"
        ))
    })?;
    let record = store.get_product(&product).await?.ok_or_else(|| {
        ApplyError::Credit(format!(
            "product {product} is not in the local catalog; run a sync, then replay the event"
        ))
    })?;
    if !record
        .metadata
        .contains_key(sm_domain::catalog::CREDIT_AMOUNT)
    {
        return Ok(PriceCredits::NotCredits);
    }
    // A price whose credits are not defined (tiered, metered, pay-what-you-want): checkout
    // and our plan changes refuse it, but a change made in the Dashboard or the portal
    // can bill it. Its lines grant nothing (and its proration lines, which have no unit
    // amount to share by, do not fail the invoice's other lines).
    if let Some(p) = record.prices.iter().find(|p| p.id == price)
        && let Some(why) = crate::sellable::credits_undefined(p)
    {
        tracing::warn!(%price, %product, "a line of price {price} {why}: no credits granted for it");
        return Ok(PriceCredits::NotCredits);
    }
    match (record.valid, record.credit_amount) {
        (true, Some(n)) => Ok(PriceCredits::Credits {
            unit_amount: record
                .prices
                .iter()
                .find(|p| p.id == price)
                .and_then(|p| unit_amount_in(p, currency)),
            product,
            per_unit: i64::from(n),
        }),
        _ => Err(ApplyError::Credit(format!(
            "product {product} has no valid credit_amount ({}); fix its metadata in Stripe, sync, then replay the event",
            record.validation_error.as_deref().unwrap_or("missing")
        ))),
    }
}

/// A price's unit amount in `currency` (minor units): its own, or its
/// `currency_options` entry.
fn unit_amount_in(p: &sm_store::catalog::PriceRecord, currency: Option<&str>) -> Option<i64> {
    match currency {
        None => p.unit_amount,
        Some(c) if c.eq_ignore_ascii_case(&p.currency) => p.unit_amount,
        Some(c) => {
            let raw: serde_json::Value = serde_json::from_str(&p.raw).ok()?;
            raw["currency_options"][c.to_ascii_lowercase()]["unit_amount"].as_i64()
        }
    }
}

/// The largest grant one line may make: 10^12 credits, in hundredths. Far above any
/// real sale, far below where sums of lots could overflow.
pub(crate) const MAX_GRANT: i64 = 100_000_000_000_000;

/// `per_unit × quantity` whole credits in hundredths, refusing absurd quantities.
pub(crate) fn whole_credits(per_unit: i64, quantity: u64, what: &str) -> Result<i64, ApplyError> {
    i64::try_from(quantity)
        .ok()
        .and_then(|q| per_unit.checked_mul(q)?.checked_mul(100))
        .filter(|c| *c <= MAX_GRANT)
        .ok_or_else(|| {
            ApplyError::Credit(format!(
                "{what}: {quantity} × {per_unit} credits is not a credit amount this ledger can hold"
            ))
        })
}

/// Applies a planned credit effect in the event's transaction.
pub async fn write(tx: &mut Tx, effect: &CreditEffect, now: i64) -> Result<(), ApplyError> {
    match effect {
        CreditEffect::Session(s) => checkout::write(tx, s, now).await?,
        CreditEffect::Subscription(w) => subscription::write(tx, w, now).await?,
        CreditEffect::Schedule(row) => {
            tx.upsert_schedule(row).await?;
            // A change scheduled or dropped is news about the subscription.
            if let Some(sub) = &row.subscription {
                crate::outbox::subscription_updated(tx, sub, now).await?;
            }
        }
        CreditEffect::CustomerDeleted(customer) => {
            if let Some(account) = tx.unlink_customer(customer).await? {
                tracing::info!(%customer, %account, "customer deleted in Stripe; unlinked from its account");
            }
        }
        CreditEffect::Grant(grant) => {
            grant_in(tx, grant, now).await?;
        }
        CreditEffect::TopUp {
            top_up,
            invoice,
            grant,
        } => {
            grant_in(tx, grant, now).await?;
            let credits = grant.lots.iter().map(|l| l.amount).sum();
            crate::topup::succeeded_in(tx, top_up, invoice, credits, now).await?;
        }
        CreditEffect::Reversals(reversals) => {
            reverse_all_in(tx, reversals, now).await?;
        }
    }
    // What the effect wrote to the journal, as events to the app.
    crate::outbox::announce(tx, now, &Default::default()).await?;
    Ok(())
}
