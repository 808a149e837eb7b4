//! `credits.expired`: a lot expires by the clock, in no transaction, so a sweeper looks
//! for lots whose expiry has passed and was not announced yet, marks them announced and
//! sends one event for each that still held credits, checking the account's level in
//! the same transaction. One sweeper at a time on PostgreSQL; it runs whether the
//! outbox is on or not (marking only), so turning events on later does not announce
//! old expiries.

use std::collections::BTreeMap;

use serde_json::json;
use sm_domain::credits::Credits;
use sm_store::{Store, StoreError};

use super::{Spendable, check_levels, emit, spendable_in};

/// Lots per transaction.
const BATCH: u32 = 200;
/// How often each instance looks.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Announces the expiries due at `now`; returns how many lots it marked.
pub async fn sweep(store: &Store, now: i64) -> Result<u64, StoreError> {
    let mut marked = 0;
    if !store.has_unannounced_expiries(now).await? {
        return Ok(0);
    }
    loop {
        let mut tx = store.begin().await?;
        if !tx.sweeper_turn().await? {
            tx.rollback().await?;
            return Ok(marked);
        }
        let due = tx.unannounced_expiries(now, BATCH).await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(marked);
        }
        let accounts: Vec<&str> = due.iter().map(|(_, a, _, _)| a.as_str()).collect();
        tx.lock_accounts(&accounts, now).await?;
        let mut touched: BTreeMap<String, ()> = BTreeMap::new();
        for (lot, account, _, expires_at) in &due {
            let Some(remaining) = tx.announce_expiry(*lot).await? else {
                continue;
            };
            marked += 1;
            if remaining > 0 {
                emit(
                    &mut tx,
                    account,
                    "credits.expired",
                    json!({
                        "account": account,
                        "lot": lot,
                        "amount": Credits(remaining),
                        "expired_at": expires_at,
                    }),
                    now.saturating_mul(1000),
                )
                .await?;
                touched.insert(account.clone(), ());
            }
        }
        let mut levels = Vec::new();
        for account in touched.into_keys() {
            let balance: Spendable = spendable_in(&mut tx, &account, now).await?;
            levels.push((account, balance));
        }
        check_levels(&mut tx, &levels, now.saturating_mul(1000)).await?;
        tx.commit().await?;
        if due.len() < BATCH as usize {
            return Ok(marked);
        }
    }
}

/// Runs [`sweep`] every [`EVERY`] until `stop`.
pub fn spawn(
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = sweep(&store, crate::clock::unix_now()).await {
                tracing::warn!(error = %e, "outbox: announcing expired lots failed; trying again soon");
            }
        }
    })
}
