//! `invoice.paid`: credits follow the money, line by line.
//!
//! - A full-period line of a credit plan grants `credit_amount × quantity`, whatever
//!   was paid for it (coupons, trials, 100 % discounts), expiring at the end of **its
//!   own** period, or one period length after payment when it was paid after that
//!   period ended (Smart Retries can pay weeks late).
//! - A proration line (basil: `parent.*_details.proration`; before: `line.proration`)
//!   grants, or takes back, `credit_amount × amount ÷ unit_amount`, to the hundredth,
//!   toward zero. A take-back comes from the lot of that plan period (subscription,
//!   price, period end), never below what remains there; if that lot has not arrived
//!   yet it waits for it.
//! - Lines of products without `credit_amount` are not credits and grant nothing.
//!
//! Every line and every payment is read: the rest of a long invoice's lines from
//! `GET /v1/invoices/{id}/lines`, its payments from `GET /v1/invoice_payments`, so a
//! refund of any of them finds the grant.

use serde_json::Value;
use sm_domain::credits::{LotSource, proration_credits};
use sm_store::Store;
use sm_store::credits::{NewLot, NewOrigin};
use sm_stripe::Client;
use sm_stripe::types::{Invoice, InvoiceLine};

use super::{CreditEffect, EventInfo, PriceCredits, need, parse, price_credits, whole_credits};
use crate::credits::{Grant, TakeBack};
use crate::webhooks::error::ApplyError;

/// Plans `invoice.paid`: per line, the plan's credits for a full period or a proration's
/// share (granted or taken back); reads the lines and payments from Stripe if needed.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    event: EventInfo<'_>,
) -> Result<Option<CreditEffect>, ApplyError> {
    let inv: Invoice = parse(event.object)?;
    let object: Value = serde_json::from_str(event.object).unwrap_or(Value::Null);
    if let Some(top_up) = object["metadata"]["stripe_manager_top_up"].as_str() {
        return top_up_plan(store, client, event, &inv, &object, top_up).await;
    }
    let Some(sub_id) = inv.subscription_id().map(str::to_owned) else {
        return Ok(None);
    };
    let lines = lines_of(client, &inv).await?;
    let Some(account) = account_of(store, client, &inv, &sub_id, &object).await? else {
        let mut credit_lines = false;
        for line in &lines {
            if let Some(price) = line.price_id()
                && let PriceCredits::Credits { .. } =
                    price_credits(store, price, inv.currency.as_deref()).await?
            {
                credit_lines = true;
                break;
            }
        }
        if !credit_lines {
            // Not a credit plan: nothing to grant, whoever it belongs to.
            tracing::info!(invoice = %inv.id, subscription = %sub_id, "invoice of a subscription with no known account and no credit lines; nothing granted");
            return Ok(None);
        }
        // Credits were paid for: the account is named by something still on its way (a
        // payment link's `checkout.session.completed`, a customer's `metadata.account`).
        // Wait for it; never drop a paid grant.
        let customer = inv
            .customer
            .as_ref()
            .map(|c| c.id().to_owned())
            .unwrap_or_default();
        return Err(ApplyError::Waiting {
            what: format!("customer:{customer}"),
            reason: format!(
                "invoice {} of subscription {sub_id} pays for credits, but no account is known for customer {customer} yet \
                 (a payment link's checkout.session.completed, or the customer's metadata.account); \
                 applied when that arrives",
                inv.id
            ),
        });
    };
    let paid_at = inv
        .status_transitions
        .as_ref()
        .and_then(|t| t.paid_at)
        .unwrap_or(event.created);
    let mut lots = Vec::new();
    let mut take_backs = Vec::new();
    let mut deferred = Deferred::default();
    for line in &lines {
        let Some(price) = line.price_id() else {
            continue;
        };
        let PriceCredits::Credits {
            product,
            per_unit,
            unit_amount,
        } = price_credits(store, price, inv.currency.as_deref()).await?
        else {
            continue;
        };
        let subscription = line.subscription_id().unwrap_or(&sub_id).to_owned();
        let reference = format!("{}/{}", inv.id, line.id);
        let period = line.period.as_ref().map(|p| (p.start, p.end));
        let period_end = period.map(|p| p.1).or(inv.period_end);
        let credits = if line.is_proration() {
            // The price's full-period unit amount in the invoice's currency (the line's own
            // `unit_amount_decimal` is the prorated amount per unit, not the price's).
            let unit = unit_amount.map(|u| (u, 0)).ok_or_else(|| {
                ApplyError::Credit(format!(
                    "proration line {reference}: price {price} has no unit amount in {} to share its credits by",
                    inv.currency.as_deref().unwrap_or("the invoice's currency")
                ))
            })?;
            proration_credits(per_unit, line.amount, unit)
                .filter(|c| c.abs() <= super::MAX_GRANT)
                .ok_or_else(|| {
                    ApplyError::Credit(format!("proration line {reference} is out of range"))
                })?
        } else if line.amount < 0 {
            // Not a proration: nothing to grant or take.
            continue;
        } else {
            whole_credits(per_unit, line.quantity.unwrap_or(1), &reference)?
        };
        if line.is_proration() && period.is_some_and(|(_, end)| paid_at >= end) {
            // Paid after the time it prorates has passed (a `create_prorations` change
            // paid with the renewal): settled net, for the new period (rule 2).
            deferred.add(credits, period, price, &product, &subscription, line);
            continue;
        }
        if credits < 0 {
            let Some(period_end) = period_end else {
                continue;
            };
            take_backs.push(TakeBack {
                id: reference,
                subscription,
                price: price.to_owned(),
                period_end,
                credits: -credits,
                credited: credited_line(line),
            });
            continue;
        }
        if credits == 0 {
            continue;
        }
        let expires_at = match period {
            // A one-time price billed with the subscription: a pack, which never expires.
            Some((start, end)) if start == end => None,
            // Paid after its period ended: usable for one period length from payment.
            Some((start, end)) if !line.is_proration() && paid_at >= end => {
                Some(paid_at + (end - start))
            }
            Some((_, end)) => Some(end),
            None => inv.period_end,
        };
        lots.push(NewLot {
            account: account.clone(),
            source: Some(LotSource::Subscription),
            source_ref: reference,
            amount: credits,
            expires_at,
            product: Some(product),
            price: Some(price.to_owned()),
            quantity: line.quantity.map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
            payment_ref: None,
            paid_amount: Some(inv.money()),
            currency: inv.currency.clone(),
            origin: Some(inv.id.clone()),
            subscription: Some(subscription),
            period_end,
        });
    }
    deferred.settle(&inv, &account, paid_at, &mut lots, &mut take_backs);

    if lots.is_empty() && take_backs.is_empty() {
        return Ok(None);
    }
    let payments = payments_of(client, &inv, &object).await?;
    for lot in &mut lots {
        lot.payment_ref = payments.first().cloned();
    }
    Ok(Some(CreditEffect::Grant(Grant {
        origin: NewOrigin {
            id: inv.id.clone(),
            account,
            source: Some(LotSource::Subscription),
            paid_amount: inv.money(),
            currency: inv.currency.clone(),
        },
        payments,
        lots,
        take_backs,
    })))
}

/// Every line of the invoice: its payload embeds the first page only.
async fn lines_of(client: Option<&Client>, inv: &Invoice) -> Result<Vec<InvoiceLine>, ApplyError> {
    if !inv.lines.has_more {
        return Ok(inv.lines.data.clone());
    }
    let client = need(client, &format!("the other lines of {}", inv.id))?;
    Ok(Client::collect_all(client.invoice_line_pages(&inv.id)).await?)
}

/// The lot of the line a credit proration reverses, as basil names it:
/// `parent.*_details.proration_details.credited_items` (the first line, if several).
fn credited_line(line: &InvoiceLine) -> Option<String> {
    let parent = line.parent.as_ref()?;
    ["subscription_item_details", "invoice_item_details"]
        .iter()
        .find_map(|d| {
            let items = parent
                .get(d)?
                .get("proration_details")?
                .get("credited_items")?;
            let invoice = items.get("invoice")?.as_str()?;
            let first = items
                .get("invoice_line_items")?
                .as_array()?
                .first()?
                .as_str()?;
            Some(format!("{invoice}/{first}"))
        })
}

/// The account an invoice's credits go to. In order: the subscription row's account;
/// the account that checked out with the customer; the subscription's own
/// `metadata.account` (in the invoice, else from Stripe); only then the customer's
/// `metadata.account` (mirrored, else from Stripe) — a subscription that names an
/// account wins over its customer's.
async fn account_of(
    store: &Store,
    client: Option<&Client>,
    inv: &Invoice,
    sub_id: &str,
    object: &Value,
) -> Result<Option<String>, ApplyError> {
    if let Some(a) = store.subscription(sub_id).await?.and_then(|s| s.account) {
        return Ok(Some(a));
    }
    let customer = inv.customer.as_ref().map(|c| c.id().to_owned());
    if let Some(c) = &customer
        && let Some(a) = store.account_linked_to_customer(c).await?
    {
        return Ok(Some(a));
    }
    if let Some(a) = object["parent"]["subscription_details"]["metadata"]["account"].as_str() {
        return Ok(Some(a.to_owned()));
    }
    if let Some(client) = client
        && let Some(a) = client
            .retrieve_subscription(sub_id)
            .await?
            .metadata
            .get("account")
    {
        return Ok(Some(a.clone()));
    }
    let Some(c) = customer else {
        return Ok(None);
    };
    if let Some(a) = store.account_for_customer(&c).await? {
        return Ok(Some(a));
    }
    // A customer created outside this service whose own event has not arrived yet.
    match client {
        Some(client) => Ok(client
            .retrieve_customer(&c)
            .await?
            .metadata
            .get("account")
            .cloned()),
        None => Ok(None),
    }
}

/// Every payment of the invoice: pre-basil invoices name their payment intent; basil
/// ones list their payments only on request, and may have several.
async fn payments_of(
    client: Option<&Client>,
    inv: &Invoice,
    object: &Value,
) -> Result<Vec<String>, ApplyError> {
    if let Some(pi) = object["payment_intent"].as_str() {
        return Ok(vec![pi.to_owned()]);
    }
    let embedded: Vec<String> = object["payments"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let payment = &p["payment"];
            payment["payment_intent"]
                .as_str()
                .or_else(|| payment["charge"].as_str())
                .map(str::to_owned)
        })
        .collect();
    if !embedded.is_empty() && object["payments"]["has_more"] != Value::Bool(true) {
        return Ok(embedded);
    }
    if inv.amount_paid <= 0 {
        return Ok(Vec::new());
    }
    // Without its payments a later refund could never find this grant: wait for Stripe.
    let client = need(client, &format!("the payments of {}", inv.id))?;
    let payments = Client::collect_all(client.invoice_payment_pages(&inv.id)).await?;
    Ok(payments
        .iter()
        .filter_map(|p| p.payment_ref().map(str::to_owned))
        .collect())
}

/// The proration lines of an invoice paid after the time they prorate had passed.
/// Granting each positive line for its own (past) period would give credits that are
/// born expired, and taking each negative one from its (expired) lot would take
/// nothing usable: instead they are added up, and the net is granted for the new period
/// when positive, or taken back (from the lot of the largest credit line first, then
/// the other lots, then as debt) when negative. *A → B at half period with
/// `create_prorations`, paid with the renewal: −500 + 1,500 → 1,000 usable credits.*
#[derive(Debug, Default)]
struct Deferred {
    /// Hundredths, signed.
    net: i64,
    /// The longest positive line: the plan the net is granted on, and the time it paid for.
    grant: Option<(String, String, String, i64)>,
    /// The largest negative line: where a negative net is taken back from.
    take: Option<(i64, TakeBack)>,
}

impl Deferred {
    fn add(
        &mut self,
        credits: i64,
        period: Option<(i64, i64)>,
        price: &str,
        product: &str,
        subscription: &str,
        line: &InvoiceLine,
    ) {
        self.net += credits;
        let (start, end) = period.unwrap_or((0, 0));
        if credits > 0 {
            let length = end - start;
            if self.grant.as_ref().is_none_or(|g| length > g.3) {
                self.grant = Some((
                    price.to_owned(),
                    product.to_owned(),
                    subscription.to_owned(),
                    length,
                ));
            }
        } else if credits < 0 && self.take.as_ref().is_none_or(|t| -credits > t.0) {
            self.take = Some((
                -credits,
                TakeBack {
                    id: String::new(),
                    subscription: subscription.to_owned(),
                    price: price.to_owned(),
                    period_end: end,
                    credits: 0,
                    credited: credited_line(line),
                },
            ));
        }
    }

    /// Adds the net as a lot (`in_…/prorations`) or a take-back of that id.
    fn settle(
        self,
        inv: &Invoice,
        account: &str,
        paid_at: i64,
        lots: &mut Vec<NewLot>,
        take_backs: &mut Vec<TakeBack>,
    ) {
        let reference = format!("{}/prorations", inv.id);
        if self.net > 0
            && let Some((price, product, subscription, length)) = self.grant
        {
            // Usable for the new period the invoice opens (its full-period lines of the
            // same subscription), and at least for the time it paid for, from payment.
            let period_end = lots
                .iter()
                .filter(|l| l.subscription.as_deref() == Some(subscription.as_str()))
                .filter_map(|l| l.expires_at)
                .max();
            let expires_at = period_end.unwrap_or(0).max(paid_at + length.max(0));
            lots.push(NewLot {
                account: account.to_owned(),
                source: Some(LotSource::Subscription),
                source_ref: reference,
                amount: self.net,
                expires_at: Some(expires_at),
                product: Some(product),
                price: Some(price),
                quantity: None,
                payment_ref: None,
                paid_amount: Some(inv.money()),
                currency: inv.currency.clone(),
                origin: Some(inv.id.clone()),
                subscription: Some(subscription),
                // No plan period: later take-backs of a plan period find its own line's lot.
                period_end: None,
            });
        } else if self.net < 0
            && let Some((_, mut take)) = self.take
        {
            take.id = reference;
            take.credits = -self.net;
            take_backs.push(take);
        }
    }
}

/// An automatic top-up's invoice (`metadata.stripe_manager_top_up`, made by the charger):
/// its pack lines grant like a pack bought at checkout — `credit_amount × quantity`,
/// never expiring — to the account that made the purchase, and the purchase is marked
/// `succeeded` in the same transaction. An invoice naming a purchase this service did
/// not make, or another invoice than the one the charger made for it, grants nothing;
/// one whose pack lines cannot be counted fails (and is replayed after a fix).
async fn top_up_plan(
    store: &Store,
    client: Option<&Client>,
    event: EventInfo<'_>,
    inv: &Invoice,
    object: &Value,
    top_up: &str,
) -> Result<Option<CreditEffect>, ApplyError> {
    let Some(row) = store.top_up(top_up).await? else {
        tracing::warn!(invoice = %inv.id, %top_up, "an invoice names a top-up this service did not make; nothing granted");
        return Ok(None);
    };
    // Only the invoice the charger made for this purchase (recorded before it could be
    // paid): a copy made in the Dashboard, or another integration's invoice naming the
    // purchase, grants nothing.
    if row.invoice.as_deref() != Some(inv.id.as_str()) {
        tracing::warn!(invoice = %inv.id, %top_up, "an invoice names a top-up that was paid by another invoice; nothing granted");
        return Ok(None);
    }
    let lines = lines_of(client, inv).await?;
    let mut lots = Vec::new();
    for line in &lines {
        let Some(price) = line.price_id() else {
            continue;
        };
        let PriceCredits::Credits {
            product, per_unit, ..
        } = price_credits(store, price, inv.currency.as_deref()).await?
        else {
            continue;
        };
        if line.amount < 0 {
            continue;
        }
        let reference = format!("{}/{}", inv.id, line.id);
        let credits = whole_credits(per_unit, line.quantity.unwrap_or(1), &reference)?;
        if credits == 0 {
            continue;
        }
        lots.push(NewLot {
            account: row.account.clone(),
            source: Some(LotSource::Purchase),
            source_ref: reference,
            amount: credits,
            expires_at: None,
            product: Some(product),
            price: Some(price.to_owned()),
            quantity: line.quantity.map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
            payment_ref: None,
            paid_amount: Some(inv.money()),
            currency: inv.currency.clone(),
            origin: Some(inv.id.clone()),
            subscription: None,
            period_end: None,
        });
    }
    if lots.is_empty() {
        // Paid for credits that cannot be counted now (the pack lost its credit_amount,
        // or left the local catalog): fail loudly, never claim the invoice for nothing.
        return Err(ApplyError::Credit(format!(
            "top-up invoice {} has no line of a credit pack in the local catalog; fix the product in Stripe, sync, then replay the event",
            inv.id
        )));
    }
    let payments = payments_of(client, inv, object).await?;
    for lot in &mut lots {
        lot.payment_ref = payments.first().cloned();
    }
    let _ = event;
    Ok(Some(CreditEffect::TopUp {
        top_up: row.id,
        invoice: inv.id.clone(),
        grant: Grant {
            origin: NewOrigin {
                id: inv.id.clone(),
                account: row.account,
                source: Some(LotSource::Purchase),
                paid_amount: inv.money(),
                currency: inv.currency.clone(),
            },
            payments,
            lots,
            take_backs: Vec::new(),
        },
    }))
}
