//! Events to the app: what changed in an account's credits or subscription, written in
//! the transaction of the change (`sm_store::outbox`) and delivered by [`deliver`],
//! signed per the Standard Webhooks specification.
//!
//! Where events come from:
//! - [`announce`], called by every ledger transaction before it commits, turns the
//!   journal entries the transaction wrote into `credits.granted` (grants, operator
//!   grants, credits given back) and `credits.taken_back` (refunds, disputes, credit
//!   notes, plan changes, operator deductions; with the debt they left), one of each per
//!   account and transaction at most, and checks each account it touched for
//!   `credits.low` / `credits.depleted` ([`check_levels`]);
//! - the hold paths check levels too (a hold lowers what may be spent) and the releaser
//!   sends `credits.hold_expired`; [`expiry`] sends `credits.expired` for each lot that
//!   expired holding credits; the subscription writers send `subscription.updated`.
//!
//! Levels: an account is `depleted` when what it may spend (`available − held`) is zero
//! or less, `low` when it is below its threshold (its own, else `CREDITS_LOW_THRESHOLD`),
//! else `ok`. The level last seen is stored on the account; an event goes out when a
//! change moves it down (`credits.low` when it crosses the threshold, `credits.depleted`
//! when it reaches zero: both when one change does both), and moving back up re-arms
//! them. So each crossing is announced once, whichever instance made it.

pub mod deliver;
pub mod expiry;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use sm_domain::credits::{Credits, LotState, available};
use sm_store::credits::LotRow;
use sm_store::outbox::JournalNote;
use sm_store::{StoreError, Tx};

/// Every type of event the app may receive.
pub const TYPES: &[&str] = &[
    "credits.granted",
    "credits.taken_back",
    "credits.expired",
    "credits.low",
    "credits.depleted",
    "credits.hold_expired",
    "subscription.updated",
    "entitlements.updated",
    "top_up.succeeded",
    "top_up.failed",
];

/// Stores one event of `kind` about `account` for every endpoint (nothing when the
/// outbox is off). The caller holds the account's lock: events of one account are
/// stored, and delivered, in the order of their transactions.
pub async fn emit(
    tx: &mut Tx,
    account: &str,
    kind: &str,
    data: Value,
    now_ms: i64,
) -> Result<(), StoreError> {
    if !tx.outbox_enabled() {
        return Ok(());
    }
    debug_assert!(TYPES.contains(&kind), "{kind} is not an event type");
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let timestamp = jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let payload = json!({"type": kind, "timestamp": timestamp, "data": data}).to_string();
    tx.emit_app_event(&id, account, kind, &payload, now_ms)
        .await?;
    metrics::counter!("stripe_manager_app_events_emitted_total", "type" => kind.to_owned())
        .increment(1);
    Ok(())
}

/// What an account may spend and what it holds, as a ledger path already knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spendable {
    /// Credits in non-expired lots, in hundredths.
    pub available: i64,
    /// Credits reserved by open holds, in hundredths: the account may spend `available − held`.
    pub held: i64,
}

impl Spendable {
    fn json(self) -> Value {
        json!({"available": Credits(self.available), "held": Credits(self.held)})
    }
}

/// Reads an account's [`Spendable`] in `tx` at `now`.
pub async fn spendable_in(tx: &mut Tx, account: &str, now: i64) -> Result<Spendable, StoreError> {
    let lots = tx.open_lots(account).await?;
    let states: Vec<LotState> = lots.iter().map(LotRow::state).collect();
    let held = tx.held(account, None, now).await?;
    Ok(Spendable {
        available: available(&states, now),
        held,
    })
}

/// Turns the journal entries `tx` wrote since the last call into events, and checks the
/// levels of every account they touched. `known` gives accounts' balances the caller
/// has already computed (the consumption group); the others are read. Called before
/// the transaction commits, with the accounts locked.
pub async fn announce(
    tx: &mut Tx,
    now: i64,
    known: &HashMap<String, Spendable>,
) -> Result<(), StoreError> {
    let notes = tx.take_journal();
    if !tx.outbox_enabled() || notes.is_empty() {
        return Ok(());
    }
    let mut by_account: BTreeMap<&str, Vec<&JournalNote>> = BTreeMap::new();
    for n in &notes {
        by_account.entry(n.account.as_str()).or_default().push(n);
    }
    let now_ms = now.saturating_mul(1000);
    let mut levels = Vec::new();
    for (account, notes) in by_account {
        let balance = match known.get(account) {
            Some(s) => *s,
            None => spendable_in(tx, account, now).await?,
        };
        let granted: Vec<&&JournalNote> = notes
            .iter()
            .filter(|n| {
                n.amount > 0
                    && matches!(
                        n.kind.as_str(),
                        "grant" | "adjust" | "restore" | "proration"
                    )
            })
            .collect();
        // Debt settled from a new grant: part of what was just granted went to it.
        let settled: i64 = notes
            .iter()
            .filter(|n| n.kind == "debt" && n.amount < 0)
            .map(|n| -n.amount)
            .sum();
        if !granted.is_empty() {
            let amount: i64 = granted.iter().map(|n| n.amount).sum();
            let mut data = json!({
                "account": account,
                "amount": Credits(amount),
                "debt_settled": Credits(settled),
                "grants": granted.iter().map(|n| json!({
                    "lot": n.lot, "amount": Credits(n.amount),
                    "reason": reason_of(n), "reference": n.reference,
                })).collect::<Vec<_>>(),
            });
            merge(&mut data, balance.json());
            emit(tx, account, "credits.granted", data, now_ms).await?;
        }
        let taken: Vec<&&JournalNote> = notes
            .iter()
            .filter(|n| {
                n.amount < 0
                    && matches!(
                        n.kind.as_str(),
                        "refund" | "dispute" | "credit_note" | "proration" | "adjust"
                    )
            })
            .collect();
        // What a take-back could not take because it was spent.
        let debt: i64 = notes
            .iter()
            .filter(|n| n.kind == "debt" && n.shortfall > 0)
            .map(|n| n.shortfall)
            .sum();
        if !taken.is_empty() || debt > 0 {
            let amount: i64 = taken.iter().map(|n| -n.amount).sum();
            let mut data = json!({
                "account": account,
                "amount": Credits(amount),
                "debt": Credits(debt),
                "take_backs": taken.iter().map(|n| json!({
                    "lot": n.lot, "amount": Credits(-n.amount),
                    "reason": reason_of(n), "reference": n.reference,
                })).collect::<Vec<_>>(),
            });
            merge(&mut data, balance.json());
            emit(tx, account, "credits.taken_back", data, now_ms).await?;
        }
        levels.push((account.to_owned(), balance));
    }
    check_levels(tx, &levels, now_ms).await
}

/// Why credits moved, in the app's words.
fn reason_of(n: &JournalNote) -> &'static str {
    match n.kind.as_str() {
        "grant" if n.reference.starts_with("promo:") => "promotional",
        "grant" => "purchase",
        "adjust" => "adjustment",
        "restore" => "restored",
        "refund" => "refund",
        "dispute" => "dispute",
        "credit_note" => "credit_note",
        "proration" => "plan_change",
        _ => "other",
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// `ok`, `low` or `depleted` for what an account may spend.
pub fn level_of(spendable: i64, threshold: Option<i64>) -> &'static str {
    if spendable <= 0 {
        "depleted"
    } else if threshold.is_some_and(|t| spendable < t) {
        "low"
    } else {
        "ok"
    }
}

fn rank(level: &str) -> u8 {
    match level {
        "depleted" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// Compares each account's level now with the one stored, stores the new one, and
/// sends `credits.low` / `credits.depleted` for each crossing downwards. The accounts
/// are locked by the caller.
pub async fn check_levels(
    tx: &mut Tx,
    accounts: &[(String, Spendable)],
    now_ms: i64,
) -> Result<(), StoreError> {
    if !tx.outbox_enabled() || accounts.is_empty() {
        return Ok(());
    }
    let default = tx.outbox_settings().low_threshold;
    let ids: Vec<&str> = accounts.iter().map(|(a, _)| a.as_str()).collect();
    let stored: HashMap<String, (String, Option<i64>)> = tx
        .balance_levels(&ids)
        .await?
        .into_iter()
        .map(|(id, level, own)| (id, (level, own)))
        .collect();
    for (account, balance) in accounts {
        let Some((was, own)) = stored.get(account) else {
            continue;
        };
        let threshold = own.or(default);
        let spendable = balance.available - balance.held;
        let now_level = level_of(spendable, threshold);
        if now_level == was.as_str() {
            continue;
        }
        tx.set_balance_level(account, now_level).await?;
        let (from, to) = (rank(was), rank(now_level));
        if to <= from {
            continue;
        }
        let mut data = json!({
            "account": account,
            "spendable": Credits(spendable),
            "threshold": threshold.map(Credits),
        });
        merge(&mut data, balance.json());
        if from == 0 && threshold.is_some() {
            emit(tx, account, "credits.low", data.clone(), now_ms).await?;
        }
        if to == 2 {
            emit(tx, account, "credits.depleted", data, now_ms).await?;
        }
    }
    Ok(())
}

/// Sends `subscription.updated` for subscription `id` as `tx` now sees it (its status,
/// plan, period and scheduled change), if it names an account. Locks the account.
pub async fn subscription_updated(tx: &mut Tx, id: &str, now: i64) -> Result<(), StoreError> {
    if !tx.outbox_enabled() {
        return Ok(());
    }
    let Some(row) = tx.subscription_in(id).await? else {
        return Ok(());
    };
    let Some(account) = row.account.clone() else {
        return Ok(());
    };
    tx.lock_account(&account, now).await?;
    let scheduled = tx.scheduled_change_in(id, now).await?;
    let data = json!({
        "account": account,
        "subscription": {
            "id": row.id,
            "status": row.status,
            "customer": row.customer,
            "product": row.product,
            "price": row.price,
            "quantity": row.quantity,
            "current_period_start": row.current_period_start,
            "current_period_end": row.current_period_end,
            "cancel_at_period_end": row.cancel_at_period_end,
            "canceled_at": row.canceled_at,
            "scheduled_change": scheduled,
        },
    });
    emit(
        tx,
        &account,
        "subscription.updated",
        data,
        now.saturating_mul(1000),
    )
    .await
}
