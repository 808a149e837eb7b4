//! Holds: an app reserves credits before long work (`POST …/credits/holds`), then
//! captures what the work really cost (`…/capture`, spent as one consumption) or
//! releases them (`…/release`); a hold left alone expires at its `expires_at`.
//!
//! A hold takes from no lot. It lowers what the account may spend — consumptions, other
//! holds and admin deductions see `available − held` — and its capture spends from the
//! lots in the usual order at capture time. So a lot that expires while held is not
//! lost to the hold: the capture takes from the account's other lots, and answers `402`
//! for what they cannot give (the hold then stays open: capture less, or release it).
//! Because every change to an account's holds and lots runs under the account's lock,
//! `available − held` never goes below zero through consumptions, holds or captures;
//! only Stripe taking money back (refunds, disputes) or a lot expiring can make it so,
//! and then new holds and consumptions are refused until it is positive again.
//!
//! Exactly once: the hold's row is its record. Its creation is claimed by the unique
//! `(account, idempotency_key)`; its capture, release or expiry by the one conditional
//! update away from `held` (`sm_store::holds`), in the transaction that writes the
//! capture's journal entries. A second capture answers the first's result; a capture
//! after a release or an expiry is `409`.

use serde::{Deserialize, Serialize};
use sm_domain::credits::{Credits, LotState, allocate, available};
use sm_store::credits::LotRow;
use sm_store::holds::{HoldRow, NewHold, Settlement};
use sm_store::{Store, StoreError};

use super::{Ledger, LedgerError, validate_account};
use crate::outbox::{Spendable, announce, check_levels, emit};

/// A hold lives 15 minutes unless asked otherwise.
pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
/// At most a day: longer work should capture in steps.
pub const MAX_TTL_SECS: i64 = 24 * 3600;
/// Holds past due released per pass of the releaser (each pass is one transaction).
const RELEASE_BATCH: u32 = 200;
/// Open holds per account at most: every debit sums them.
pub const MAX_OPEN_HOLDS: i64 = 1000;

/// `POST /api/v1/accounts/{account}/credits/holds`.
#[derive(utoipa::ToSchema, Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Credits to reserve (more than zero, at most two decimals).
    pub amount: Credits,
    /// The same key with the same body answers the first hold; with another, `409`.
    /// Or the `Idempotency-Key` header (the same value if both are sent).
    #[serde(default)]
    pub idempotency_key: String,
    /// 1 to 86,400; 900 when absent.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// Why, in the app's words (at most 500 characters): kept with the hold and its capture.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST …/credits/holds/{id}/capture`.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// At most the held amount; all of it when absent. The rest is released.
    #[serde(default)]
    pub amount: Option<Credits>,
}

/// A hold as the API shows it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hold {
    /// The hold's id (`hold_…`), for capture and release.
    pub id: String,
    /// The account it reserves credits of.
    pub account: String,
    /// The key it was created under.
    pub idempotency_key: String,
    /// What was reserved.
    pub amount: Credits,
    /// `held`, `captured`, `released` or `expired` (a hold past its `expires_at` is
    /// `expired` from that second on, whether or not the releaser has run yet).
    pub status: &'static str,
    /// What the capture spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured: Option<Credits>,
    /// The description sent with it.
    pub description: Option<String>,
    /// When it was created (unix seconds).
    pub created_at: i64,
    /// When it expires if neither captured nor released (unix seconds).
    pub expires_at: i64,
    /// When it was captured, released or expired (unix seconds); `null` while held.
    pub settled_at: Option<i64>,
    /// The available balance right after the capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Credits>,
    /// True when this answer is the stored result of an earlier request.
    pub replayed: bool,
}

impl Hold {
    fn of(row: HoldRow, now: i64, replayed: bool) -> Self {
        Hold {
            status: effective_status(&row, now),
            captured: row.captured.map(Credits),
            balance: row.balance_after.map(Credits),
            id: row.id,
            account: row.account,
            idempotency_key: row.idempotency_key,
            amount: Credits(row.amount),
            description: row.description,
            created_at: row.created_at,
            expires_at: row.expires_at,
            settled_at: row.settled_at,
            replayed,
        }
    }
}

/// The status a hold has at `now`: an open hold past its `expires_at` is expired.
fn effective_status(row: &HoldRow, now: i64) -> &'static str {
    match row.status.as_str() {
        "held" if row.expires_at <= now => "expired",
        "held" => "held",
        "captured" => "captured",
        "released" => "released",
        _ => "expired",
    }
}

fn check_hold(account: &str, req: &HoldRequest) -> Result<(String, i64), LedgerError> {
    let description = req.description.as_deref();
    super::check_debit(account, &req.idempotency_key, description)?;
    if req.amount.hundredths() <= 0 {
        return Err(LedgerError::Invalid(
            "amount must be greater than zero".into(),
        ));
    }
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(LedgerError::Invalid(format!(
            "ttl_seconds must be 1 to {MAX_TTL_SECS} (got {ttl})"
        )));
    }
    Ok((
        format!("{}|{ttl}|{}", req.amount, description.unwrap_or("")),
        ttl,
    ))
}

/// What the account's lots hold at `now` and what its open holds (but `except`)
/// reserve: the two numbers every debit is checked against.
async fn spendable(
    tx: &mut sm_store::Tx,
    account: &str,
    except: Option<&str>,
    now: i64,
) -> Result<(Vec<LotState>, i64, i64), StoreError> {
    let lots = tx.open_lots(account).await?;
    let states: Vec<LotState> = lots.iter().map(LotRow::state).collect();
    let held = tx.held(account, except, now).await?;
    let avail = available(&states, now);
    Ok((states, avail, held))
}

/// The refusal for `amount` when only `avail − held` may be spent.
pub(crate) fn short(avail: i64, held: i64, amount: i64) -> LedgerError {
    let spendable = (avail - held).max(0);
    LedgerError::Insufficient {
        available: Credits(spendable),
        shortfall: Credits(amount - spendable),
    }
}

impl Ledger {
    /// Reserves credits: `201` with the hold, or [`LedgerError::Insufficient`] when
    /// `available − held` is short (nothing is stored, so it can be retried).
    pub async fn hold(
        &self,
        account: &str,
        req: &HoldRequest,
        now: i64,
    ) -> Result<Hold, LedgerError> {
        let (fingerprint, ttl) = check_hold(account, req)?;
        let key = req.idempotency_key.as_str();
        let amount = req.amount.hundredths();
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        if let Some(done) = tx.hold_by_key(account, key).await? {
            tx.rollback().await?;
            if done.request_hash != fingerprint {
                return Err(LedgerError::KeyReused(key.to_owned()));
            }
            return Ok(Hold::of(done, now, true));
        }
        let (_, avail, held) = spendable(&mut tx, account, None, now).await?;
        if amount > avail - held {
            tx.rollback().await?;
            metrics::counter!("stripe_manager_credit_holds_total", "outcome" => "refused")
                .increment(1);
            return Err(short(avail, held, amount));
        }
        // Every debit sums the account's open holds: their number is bounded.
        if tx.open_holds(account, now).await? >= MAX_OPEN_HOLDS {
            tx.rollback().await?;
            return Err(LedgerError::TooManyHolds(MAX_OPEN_HOLDS));
        }
        let id = format!("hold_{}", uuid::Uuid::new_v4().simple());
        let claimed = tx
            .insert_hold(
                &NewHold {
                    id: &id,
                    account,
                    idempotency_key: key,
                    request_hash: &fingerprint,
                    amount,
                    description: req.description.as_deref(),
                    expires_at: now + ttl,
                },
                now,
            )
            .await?;
        if !claimed {
            // Another transaction claimed the key first (the account lock rules it out;
            // the unique key would catch it whatever the locking): answer its hold.
            tx.rollback().await?;
            return Box::pin(self.hold(account, req, now)).await;
        }
        let row = tx.hold(account, &id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("hold {id} was stored and cannot be read"))
        })?;
        let now_spendable = Spendable {
            available: avail,
            held: held + amount,
        };
        // A hold lowers what may be spent: it can cross the top-up threshold.
        crate::topup::after_debit(
            &mut tx,
            &[(account, avail - held, avail - held - amount)],
            now,
        )
        .await?;
        check_levels(&mut tx, &[(account.to_owned(), now_spendable)], now * 1000).await?;
        tx.commit().await?;
        metrics::counter!("stripe_manager_credit_holds_total", "outcome" => "held").increment(1);
        Ok(Hold::of(row, now, false))
    }

    /// The hold `id` of `account`, as it stands at `now`.
    pub async fn get_hold(&self, account: &str, id: &str, now: i64) -> Result<Hold, LedgerError> {
        validate_account(account)?;
        match self.store.hold(account, id).await? {
            Some(row) => Ok(Hold::of(row, now, false)),
            None => Err(LedgerError::HoldNotFound(id.to_owned())),
        }
    }

    /// The account's holds, newest first (only open ones when `open_only`).
    pub async fn holds(
        &self,
        account: &str,
        open_only: bool,
        now: i64,
        limit: u32,
    ) -> Result<Vec<Hold>, LedgerError> {
        validate_account(account)?;
        Ok(self
            .store
            .holds_of(account, open_only, now, limit)
            .await?
            .into_iter()
            .map(|r| Hold::of(r, now, false))
            .collect())
    }

    /// Begins a transaction with the account locked and reads the hold in it.
    async fn locked_hold(
        &self,
        account: &str,
        id: &str,
        now: i64,
    ) -> Result<(sm_store::Tx, HoldRow), LedgerError> {
        validate_account(account)?;
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        match tx.hold(account, id).await? {
            Some(row) => Ok((tx, row)),
            None => {
                tx.rollback().await?;
                Err(LedgerError::HoldNotFound(id.to_owned()))
            }
        }
    }

    /// Spends up to the held amount as one consumption (journal entries `consume`,
    /// referenced by the hold's id) and releases the rest.
    pub async fn capture(
        &self,
        account: &str,
        id: &str,
        req: &CaptureRequest,
        now: i64,
    ) -> Result<Hold, LedgerError> {
        let (mut tx, row) = self.locked_hold(account, id, now).await?;
        match effective_status(&row, now) {
            "held" => {}
            "captured" => {
                tx.rollback().await?;
                return Ok(Hold::of(row, now, true));
            }
            status => {
                tx.rollback().await?;
                return Err(LedgerError::HoldSettled {
                    id: id.to_owned(),
                    status,
                });
            }
        }
        let amount = req.amount.map_or(row.amount, Credits::hundredths);
        if amount > row.amount {
            tx.rollback().await?;
            return Err(LedgerError::Invalid(format!(
                "amount must be at most the {} held",
                Credits(row.amount)
            )));
        }
        let (states, avail, others) = spendable(&mut tx, account, Some(id), now).await?;
        if amount > 0 && amount > avail - others {
            tx.rollback().await?;
            metrics::counter!("stripe_manager_credit_hold_captures_total", "outcome" => "refused")
                .increment(1);
            return Err(short(avail, others, amount));
        }
        let takes = match allocate(&states, amount, now) {
            Ok(t) => t,
            Err(_) => {
                tx.rollback().await?;
                return Err(short(avail, others, amount));
            }
        };
        super::spend_in(
            &mut tx,
            account,
            &takes,
            id,
            row.description.as_deref(),
            now,
        )
        .await?;
        let balance = avail - amount;
        let how = Settlement::Captured {
            captured: amount,
            balance_after: balance,
        };
        if !tx.settle_hold(id, how, now).await? {
            // Settled by another transaction since it was read (another instance's
            // releaser, whose clock says it expired): answer what that made of it.
            tx.rollback().await?;
            return Box::pin(self.capture(account, id, req, now)).await;
        }
        // A capture spends what its hold reserved: what may be spent does not fall, but
        // a setting saved while the account was below its threshold buys now.
        crate::topup::after_debit(
            &mut tx,
            &[(account, balance - others, balance - others)],
            now,
        )
        .await?;
        let known = std::collections::HashMap::from([(
            account.to_owned(),
            Spendable {
                available: balance,
                held: others,
            },
        )]);
        announce(&mut tx, now, &known).await?;
        let row = settled(tx, account, id).await?;
        metrics::counter!("stripe_manager_credit_hold_captures_total", "outcome" => "captured")
            .increment(1);
        Ok(Hold::of(row, now, false))
    }

    /// Releases all of a hold. Idempotent: a released hold answers as it is, and so does
    /// one that expired (its credits are free either way); a captured one is `409`.
    pub async fn release(&self, account: &str, id: &str, now: i64) -> Result<Hold, LedgerError> {
        let (mut tx, row) = self.locked_hold(account, id, now).await?;
        match effective_status(&row, now) {
            "held" => {}
            "captured" => {
                tx.rollback().await?;
                return Err(LedgerError::HoldSettled {
                    id: id.to_owned(),
                    status: "captured",
                });
            }
            _ => {
                tx.rollback().await?;
                return Ok(Hold::of(row, now, true));
            }
        }
        if !tx.settle_hold(id, Settlement::Released, now).await? {
            tx.rollback().await?;
            return Box::pin(self.release(account, id, now)).await;
        }
        if tx.outbox_enabled() {
            let (_, avail, held) = spendable(&mut tx, account, None, now).await?;
            let balance = Spendable {
                available: avail,
                held,
            };
            check_levels(&mut tx, &[(account.to_owned(), balance)], now * 1000).await?;
        }
        let row = settled(tx, account, id).await?;
        metrics::counter!("stripe_manager_credit_hold_releases_total", "how" => "released")
            .increment(1);
        Ok(Hold::of(row, now, false))
    }
}

/// Reads the hold just settled in `tx`, then commits.
async fn settled(mut tx: sm_store::Tx, account: &str, id: &str) -> Result<HoldRow, StoreError> {
    let row = tx
        .hold(account, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("hold {id} vanished")))?;
    tx.commit().await?;
    Ok(row)
}

/// Marks the holds past due as expired, a batch per transaction, with their accounts
/// locked (in id order, like a consumption group). One releaser at a time on
/// PostgreSQL; returns how many it expired (0 when another instance had the turn).
pub async fn release_due(store: &Store, now: i64) -> Result<u64, StoreError> {
    let mut expired = 0;
    // A read first: on SQLite a write transaction would take the one write lock every
    // second for nothing.
    if !store.has_due_holds(now).await? {
        return Ok(0);
    }
    loop {
        let mut tx = store.begin().await?;
        if !tx.releaser_turn().await? {
            tx.rollback().await?;
            return Ok(expired);
        }
        let due = tx.due_holds(now, RELEASE_BATCH).await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(expired);
        }
        let accounts: Vec<&str> = due.iter().map(|h| h.account.as_str()).collect();
        tx.lock_accounts(&accounts, now).await?;
        let mut batch = 0;
        let mut touched: Vec<String> = Vec::new();
        for hold in &due {
            if !tx.settle_hold(&hold.id, Settlement::Expired, now).await? {
                continue;
            }
            batch += 1;
            let data = serde_json::json!({
                "account": hold.account,
                "hold": {
                    "id": hold.id,
                    "amount": Credits(hold.amount),
                    "idempotency_key": hold.idempotency_key,
                    "description": hold.description,
                    "created_at": hold.created_at,
                    "expires_at": hold.expires_at,
                },
            });
            emit(
                &mut tx,
                &hold.account,
                "credits.hold_expired",
                data,
                now * 1000,
            )
            .await?;
            if !touched.contains(&hold.account) {
                touched.push(hold.account.clone());
            }
        }
        if tx.outbox_enabled() {
            let mut levels = Vec::new();
            for account in touched {
                let balance = crate::outbox::spendable_in(&mut tx, &account, now).await?;
                levels.push((account, balance));
            }
            check_levels(&mut tx, &levels, now * 1000).await?;
        }
        tx.commit().await?;
        metrics::counter!("stripe_manager_credit_hold_releases_total", "how" => "expired")
            .increment(batch);
        expired += batch;
        if due.len() < RELEASE_BATCH as usize {
            return Ok(expired);
        }
    }
}

/// How often each instance looks for holds past due: a hold's credits are free from
/// its `expires_at` on whatever the releaser does; the releaser records it and tells
/// the app (`credits.hold_expired`).
pub const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs [`release_due`] every [`RELEASE_EVERY`] until `stop`.
pub fn spawn_releaser(
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELEASE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = release_due(&store, crate::clock::unix_now()).await {
                tracing::warn!(error = %e, "holds: releasing expired holds failed; trying again in a second");
            }
        }
    })
}
