//! `customer.subscription.*`: the subscription row, newest event first. Two events of
//! the same second with different content cannot be ordered by time; as for the
//! catalog, the object is then refetched from Stripe and the fresh copy written.

use sm_store::catalog::Ties;
use sm_store::credits::SubscriptionRow;
use sm_store::{Store, Tx};
use sm_stripe::Client;
use sm_stripe::types::Subscription;

use super::{CreditEffect, EventInfo, need, parse};
use crate::webhooks::error::ApplyError;

/// A subscription row to write; `refreshed` when it was just read from Stripe (it wins a
/// same-second tie).
#[derive(Debug, Clone)]
pub struct SubscriptionWrite {
    /// The row as it will be stored.
    pub row: SubscriptionRow,
    /// Read from Stripe just now (after a same-second tie), so it overwrites a tie.
    pub refreshed: bool,
}

/// Plans `customer.subscription.*`: the event's object, or a fresh copy from Stripe when
/// a stored row of the same second differs.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    event: EventInfo<'_>,
) -> Result<Option<CreditEffect>, ApplyError> {
    let sub: Subscription = parse(event.object)?;
    let stored = store.subscription(&sub.id).await?;
    let tie = stored
        .as_ref()
        .is_some_and(|s| s.event_created == event.created && s.raw != event.object);
    if tie {
        let client = need(client, &format!("subscription {}", sub.id))?;
        let fresh = client.retrieve_subscription_raw(&sub.id).await?;
        let raw = crate::clock::compact_json(fresh.json.get());
        let row = crate::mirror::subscription_row(store, &fresh.value, event.created, &raw).await?;
        return Ok(Some(CreditEffect::Subscription(SubscriptionWrite {
            row,
            refreshed: true,
        })));
    }
    let row = crate::mirror::subscription_row(store, &sub, event.created, event.object).await?;
    Ok(Some(CreditEffect::Subscription(SubscriptionWrite {
        row,
        refreshed: false,
    })))
}

/// Writes the subscription row in the event's transaction (newest event wins) and, for a
/// trial canceled before it was paid, ends the trial's credits.
pub async fn write(tx: &mut Tx, w: &SubscriptionWrite, now: i64) -> Result<(), ApplyError> {
    // A canceled trial may end its credits (below): lock the account first, as every
    // writer of the account's subscriptions does (account, then subscription rows), so a
    // trial invoice granting on another instance waits or is waited for.
    let trial = trial_end_of(&w.row);
    if (trial.is_some() || tx.outbox_enabled())
        && let Some(account) = &w.row.account
    {
        tx.lock_account(account, now).await?;
    }
    let ties = if w.refreshed {
        Ties::Refresh
    } else {
        Ties::Reject
    };
    let counts = tx
        .upsert_subscriptions(std::slice::from_ref(&w.row), ties)
        .await?;
    if counts.ties > 0 {
        // A same-second event with other content landed after we planned: fail this
        // attempt; the next one sees the tie and refetches.
        return Err(ApplyError::Tie(format!("subscription {}", w.row.id)));
    }
    if counts.created + counts.updated > 0 {
        crate::outbox::subscription_updated(tx, &w.row.id, now).await?;
    }
    // A trial canceled before any paid invoice keeps only what was spent (one trial per
    // account, docs/CREDIT_SYSTEM.md): its unspent credits expire when it ended.
    if let Some(ended) = trial {
        tx.end_trial_lots(&w.row.id, ended, now).await?;
    }
    if w.row.account.is_some() {
        // The subscription names its account: its customer's waiting invoices can go.
        tx.wake_events(
            &format!("customer:{}", w.row.customer),
            crate::clock::unix_now().saturating_mul(1000),
        )
        .await?;
    }
    Ok(())
}

/// `(ended_at, trial_end)` of a canceled subscription that had a trial.
fn trial_end_of(row: &SubscriptionRow) -> Option<(i64, i64)> {
    if row.status != "canceled" {
        return None;
    }
    let raw: serde_json::Value = serde_json::from_str(&row.raw).ok()?;
    if raw["trial_start"].is_null() {
        return None;
    }
    raw["ended_at"].as_i64().zip(raw["trial_end"].as_i64())
}
