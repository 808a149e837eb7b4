//! Refunds and disputes: money going back to the customer, and credits with it.
//!
//! Each refund or dispute is recorded under its own id with its money and whether it
//! still stands ([`crate::credits::reverse_in`]); the grant it concerns is then brought
//! to the share all its standing reversals call for. So a refund counts once however many
//! events report it (`refund.created`, `refund.updated`, `charge.refunded`), a failed
//! refund or a won dispute gives back what it took, and one that arrives before its
//! grant is applied when the grant arrives.
//!
//! - `charge.refunded`: since API version 2022-11-15 a charge no longer embeds its
//!   refunds, and `refund.*` events are sent for card refunds only from 2024-10-28, so
//!   the charge's refunds are listed from Stripe (`GET /v1/refunds?charge=`).
//! - Refund statuses: `succeeded` and `pending` take back (the money is leaving);
//!   `failed` and `canceled` give back; `requires_action` waits.
//! - Disputes: `warning_*` statuses are inquiries, not chargebacks, and change nothing.
//!   A chargeback takes back like a refund of the disputed amount; `won`, `prevented` or
//!   `charge.dispute.funds_reinstated` give it back; `lost` keeps it taken.
//! - Credit notes (`credit_note.created`, `.updated`, `.voided`): a post-payment note
//!   gives money back on its invoice. Its refunded part is recorded under each refund's
//!   own id (the same row `refund.created` and `charge.refunded` write, so it counts
//!   once whichever arrives first); the rest (to the balance, out of band) under the
//!   note's id, given back when the note is voided. A pre-payment note lowers what the
//!   invoice asks, like a discount: nothing was paid, nothing is taken.

use sm_store::credits::ReversalKind;
use sm_stripe::Client;
use sm_stripe::types::{Charge, Dispute, Refund};

use super::{CreditEffect, EventInfo, need, parse};
use crate::credits::Reversal;
use crate::webhooks::error::ApplyError;

/// Plans `charge.refunded` and `refund.*`: each refund of the payment, listed from Stripe
/// for `charge.refunded`.
pub async fn refund(
    client: Option<&Client>,
    event: EventInfo<'_>,
) -> Result<Option<CreditEffect>, ApplyError> {
    let reversals = if event.kind == "charge.refunded" {
        let charge: Charge = parse(event.object)?;
        let payment = charge.payment_intent.clone().unwrap_or(charge.id.clone());
        let refunds = match charge.refunds {
            Some(list) if !list.has_more => list.data,
            _ => {
                let client = need(client, &format!("the refunds of {}", charge.id))?;
                Client::collect_all(client.charge_refund_pages(&charge.id)).await?
            }
        };
        refunds
            .iter()
            .filter_map(|r| refund_reversal(r, &payment))
            .collect()
    } else {
        let r: Refund = parse(event.object)?;
        let payment = match (r.payment_intent.clone(), r.charge.as_deref()) {
            (Some(pi), _) => pi,
            (None, Some(charge)) => {
                let client = need(client, "the refund's charge")?;
                let c = client.retrieve_charge(charge).await?;
                c.payment_intent.unwrap_or(c.id)
            }
            (None, None) => return Ok(None),
        };
        refund_reversal(&r, &payment)
            .into_iter()
            .collect::<Vec<_>>()
    };
    Ok((!reversals.is_empty()).then_some(CreditEffect::Reversals(reversals)))
}

fn refund_reversal(r: &Refund, payment: &str) -> Option<Reversal> {
    let active = match r.status.as_deref() {
        Some("succeeded" | "pending") | None => true,
        Some("failed" | "canceled") => false,
        // `requires_action` and anything newer: not money moved yet.
        Some(_) => return None,
    };
    Some(Reversal {
        id: r.id.clone(),
        kind: ReversalKind::Refund,
        link: payment.to_owned(),
        amount: r.amount.max(0),
        active,
    })
}

/// Plans `charge.dispute.*`: a chargeback takes back like a refund; won, prevented or
/// reinstated gives back. Inquiries (`warning_*`) do nothing.
pub async fn dispute(
    client: Option<&Client>,
    event: EventInfo<'_>,
) -> Result<Option<CreditEffect>, ApplyError> {
    let d: Dispute = parse(event.object)?;
    if d.status.starts_with("warning_") {
        // An inquiry: no money moved.
        return Ok(None);
    }
    let payment = match &d.payment_intent {
        Some(pi) => pi.id().to_owned(),
        None => {
            let client = need(client, "the disputed charge")?;
            let c = client.retrieve_charge(d.charge.id()).await?;
            c.payment_intent.unwrap_or(c.id)
        }
    };
    let active = event.kind != "charge.dispute.funds_reinstated"
        && !matches!(d.status.as_str(), "won" | "prevented");
    Ok(Some(CreditEffect::Reversals(vec![Reversal {
        id: d.id.clone(),
        kind: ReversalKind::Dispute,
        link: payment,
        amount: d.amount.max(0),
        active,
    }])))
}

/// Plans `credit_note.*`: a post-payment note takes back its share; voided gives back.
/// Other notes do nothing.
pub async fn credit_note(event: EventInfo<'_>) -> Result<Option<CreditEffect>, ApplyError> {
    let note: serde_json::Value = parse(event.object)?;
    if note["type"] != "post_payment" {
        return Ok(None);
    }
    let (Some(id), Some(invoice)) = (note["id"].as_str(), note["invoice"].as_str()) else {
        return Err(ApplyError::Payload(
            "a credit note without id or invoice".into(),
        ));
    };
    let mut reversals = Vec::new();
    let mut refunded = 0;
    for r in note["refunds"].as_array().into_iter().flatten() {
        let refund = r["refund"].as_str().or_else(|| r["refund"]["id"].as_str());
        let amount = r["amount_refunded"].as_i64().unwrap_or(0).max(0);
        refunded += amount;
        if let Some(refund) = refund {
            reversals.push(Reversal {
                id: refund.to_owned(),
                kind: ReversalKind::Refund,
                link: invoice.to_owned(),
                amount,
                active: true,
            });
        }
    }
    let amount = note["amount"].as_i64().unwrap_or(0);
    reversals.push(Reversal {
        id: id.to_owned(),
        kind: ReversalKind::CreditNote,
        link: invoice.to_owned(),
        amount: (amount - refunded).max(0),
        active: note["status"] != "void",
    });
    Ok(Some(CreditEffect::Reversals(reversals)))
}
