//! The credit ledger: balances, consumption with idempotency keys, admin adjustments,
//! and the ledger writes that Stripe events cause (grants, take-backs on refunds).
//!
//! Every change runs in one transaction that first locks the account
//! ([`sm_store::Tx::lock_account`]), reads the account's open lots, lets
//! `sm_domain::credits` decide which lots to touch, and writes each change to a lot
//! together with its journal entry. Exactly-once comes from unique keys checked in that
//! same transaction: a lot's `source_ref` (session, invoice, `admin:<uuid>`), a
//! consumption's `(account, idempotency_key)`, a refund's id.

use serde::Serialize;
use sm_domain::credits::{Credits, LotSource, LotState, allocate, available, take_back};
use sm_store::credits::{EntryRow, LotRow, NewAudit, NewEntry, NewLot};
use sm_store::{Store, StoreError, Tx};

/// Why a ledger operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "{0:?} is not an account reference: use 1 to 128 visible characters without spaces or '/'"
    )]
    InvalidAccount(String),
    #[error("{0}")]
    Invalid(String),
    #[error("insufficient credits: {available} available, {shortfall} short")]
    Insufficient {
        available: Credits,
        shortfall: Credits,
    },
    #[error(
        "idempotency key {0:?} was already used for a different request (another amount or description)"
    )]
    KeyReused(String),
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}

/// Checks an account reference chosen by the app.
pub fn validate_account(account: &str) -> Result<(), LedgerError> {
    let ok = !account.is_empty()
        && account.chars().count() <= 128
        && account
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(LedgerError::InvalidAccount(
            account.chars().take(60).collect(),
        ))
    }
}

/// A lot as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LotView {
    pub id: i64,
    pub source: String,
    pub source_ref: String,
    pub amount: Credits,
    pub remaining: Credits,
    pub expires_at: Option<i64>,
    pub expired: bool,
    pub product: Option<String>,
    pub price: Option<String>,
    pub created_at: i64,
}

/// `GET /api/v1/accounts/{account}/credits`.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub account: String,
    /// What can be spent now: non-expired lots.
    pub available: Credits,
    pub subscription: Credits,
    pub pay_as_you_go: Credits,
    /// Left in lots that have expired (never spent, never counted).
    pub expired: Credits,
    /// Credits that refunds could not take back because they were already spent.
    pub debt: Credits,
    pub stripe_customer: Option<String>,
    pub lots: Vec<LotView>,
}

/// A journal entry as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    pub id: i64,
    pub kind: String,
    pub amount: Credits,
    #[serde(skip_serializing_if = "is_zero")]
    pub shortfall: Credits,
    pub lot: Option<i64>,
    #[serde(rename = "ref")]
    pub reference: String,
    pub description: Option<String>,
    pub actor: Option<String>,
    pub created_at: i64,
}

fn is_zero(c: &Credits) -> bool {
    *c == Credits::ZERO
}

impl From<EntryRow> for EntryView {
    fn from(e: EntryRow) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            amount: Credits(e.amount),
            shortfall: Credits(e.shortfall),
            lot: e.lot,
            reference: e.reference,
            description: e.description,
            actor: e.actor,
            created_at: e.created_at,
        }
    }
}

/// A consumption request (`POST …/credits/consume`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    pub amount: Credits,
    pub idempotency_key: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// The answer to a consumption; a repeat with the same key gets the same one.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Consumption {
    pub account: String,
    pub idempotency_key: String,
    pub amount: Credits,
    pub description: Option<String>,
    /// The available balance right after this consumption.
    pub balance: Credits,
    pub created_at: i64,
    /// True when this answer is the stored result of an earlier identical request.
    pub replayed: bool,
}

/// Grant or deduct, by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    Grant,
    Deduct,
}

/// An operator's adjustment: what, how much, why, by whom, from where.
#[derive(Debug, Clone, Copy)]
pub struct AdjustRequest<'a> {
    pub kind: Adjustment,
    pub amount: Credits,
    /// Required; shown in the history and the audit log.
    pub reason: &'a str,
    /// `cli:<user>`, `admin:<email>`, …
    pub actor: &'a str,
    /// `cli`, or the client address for the admin UI.
    pub origin: &'a str,
}

/// The result of an admin adjustment.
#[derive(Debug, Clone, Serialize)]
pub struct Adjusted {
    pub account: String,
    pub action: &'static str,
    pub amount: Credits,
    pub reference: String,
    pub balance: Credits,
}

/// The ledger over a store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
}

impl Ledger {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn balance(&self, account: &str, now: i64) -> Result<Balance, LedgerError> {
        validate_account(account)?;
        let lots = self.store.credit_lots(account).await?;
        let (_, _, debt) = self.store.credit_totals(account).await?;
        let customer = self
            .store
            .account(account)
            .await?
            .and_then(|a| a.stripe_customer);
        Ok(balance_of(account, &lots, debt, customer, now))
    }

    pub async fn history(&self, account: &str, limit: u32) -> Result<Vec<EntryView>, LedgerError> {
        validate_account(account)?;
        Ok(self
            .store
            .credit_entries(account, limit)
            .await?
            .into_iter()
            .map(EntryView::from)
            .collect())
    }

    /// Spends credits: subscription lots first (earliest expiry), then the others
    /// (oldest first); never expired ones. Same key and body → the stored answer;
    /// same key, other body → [`LedgerError::KeyReused`]. A refused consumption
    /// (insufficient credits) stores nothing, so it can be retried after a top-up.
    pub async fn consume(
        &self,
        account: &str,
        req: &ConsumeRequest,
        now: i64,
    ) -> Result<Consumption, LedgerError> {
        validate_account(account)?;
        let key = req.idempotency_key.as_str();
        if key.is_empty() || key.len() > 255 {
            return Err(LedgerError::Invalid(
                "idempotency_key must be 1 to 255 characters".into(),
            ));
        }
        let description = req.description.as_deref();
        if description.is_some_and(|d| d.chars().count() > 500) {
            return Err(LedgerError::Invalid(
                "description must be at most 500 characters".into(),
            ));
        }
        let fingerprint = format!("{}|{}", req.amount, description.unwrap_or(""));
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        if let Some(done) = tx.find_consumption(account, key).await? {
            tx.rollback().await?;
            if done.request_hash != fingerprint {
                return Err(LedgerError::KeyReused(key.to_owned()));
            }
            return Ok(Consumption {
                account: account.to_owned(),
                idempotency_key: key.to_owned(),
                amount: Credits(done.amount),
                description: done.description,
                balance: Credits(done.balance_after),
                created_at: done.created_at,
                replayed: true,
            });
        }
        let lots = tx.open_lots(account).await?;
        let states: Vec<LotState> = lots.iter().map(LotRow::state).collect();
        let amount = req.amount.hundredths();
        let takes = match allocate(&states, amount, now) {
            Ok(t) => t,
            Err(short) => {
                tx.rollback().await?;
                return Err(LedgerError::Insufficient {
                    available: Credits(available(&states, now)),
                    shortfall: Credits(short),
                });
            }
        };
        if takes.is_empty() {
            // A free consumption is recorded all the same: usage at zero cost.
            tx.insert_entry(
                &NewEntry {
                    account,
                    kind: "consume",
                    reference: key,
                    description,
                    ..Default::default()
                },
                now,
            )
            .await?;
        }
        for (lot, n) in &takes {
            tx.take_from_lot(*lot, *n).await?;
            tx.insert_entry(
                &NewEntry {
                    account,
                    lot: Some(*lot),
                    kind: "consume",
                    amount: -n,
                    reference: key,
                    description,
                    ..Default::default()
                },
                now,
            )
            .await?;
        }
        let balance = available(&states, now) - amount;
        tx.insert_consumption(
            account,
            key,
            &fingerprint,
            amount,
            description,
            balance,
            now,
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("credit_consumptions_total").increment(1);
        Ok(Consumption {
            account: account.to_owned(),
            idempotency_key: key.to_owned(),
            amount: req.amount,
            description: description.map(str::to_owned),
            balance: Credits(balance),
            created_at: now,
            replayed: false,
        })
    }

    /// An operator's grant (a lot of its own, `admin:<uuid>`) or deduction (spent like a
    /// consumption; refused when the balance is short). The reason is required; both
    /// land in the journal and the audit log in the same transaction.
    pub async fn adjust(
        &self,
        account: &str,
        req: &AdjustRequest<'_>,
        now: i64,
    ) -> Result<Adjusted, LedgerError> {
        let AdjustRequest {
            kind,
            amount,
            reason,
            actor,
            origin,
        } = *req;
        validate_account(account)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(LedgerError::Invalid("a reason is required".into()));
        }
        if amount.hundredths() <= 0 {
            return Err(LedgerError::Invalid(
                "the amount must be greater than zero".into(),
            ));
        }
        let reference = format!("admin:{}", uuid::Uuid::new_v4());
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        let lots = tx.open_lots(account).await?;
        let states: Vec<LotState> = lots.iter().map(LotRow::state).collect();
        let before = available(&states, now);
        let action = match kind {
            Adjustment::Grant => {
                let lot = tx
                    .insert_lot(
                        &NewLot {
                            account: account.to_owned(),
                            source: Some(LotSource::Admin),
                            source_ref: reference.clone(),
                            amount: amount.hundredths(),
                            ..Default::default()
                        },
                        now,
                    )
                    .await?;
                tx.insert_entry(
                    &NewEntry {
                        account,
                        lot,
                        kind: "adjust",
                        amount: amount.hundredths(),
                        reference: &reference,
                        description: Some(reason),
                        actor: Some(actor),
                        ..Default::default()
                    },
                    now,
                )
                .await?;
                "credits.grant"
            }
            Adjustment::Deduct => {
                let takes = match allocate(&states, amount.hundredths(), now) {
                    Ok(t) => t,
                    Err(short) => {
                        tx.rollback().await?;
                        return Err(LedgerError::Insufficient {
                            available: Credits(before),
                            shortfall: Credits(short),
                        });
                    }
                };
                for (lot, n) in takes {
                    tx.take_from_lot(lot, n).await?;
                    tx.insert_entry(
                        &NewEntry {
                            account,
                            lot: Some(lot),
                            kind: "adjust",
                            amount: -n,
                            reference: &reference,
                            description: Some(reason),
                            actor: Some(actor),
                            ..Default::default()
                        },
                        now,
                    )
                    .await?;
                }
                "credits.deduct"
            }
        };
        let balance = match kind {
            Adjustment::Grant => before + amount.hundredths(),
            Adjustment::Deduct => before - amount.hundredths(),
        };
        let detail = format!("{amount} credits: {reason}");
        tx.audit(
            &NewAudit {
                actor,
                action,
                target: Some(account),
                detail: Some(&detail),
                origin: Some(origin),
                result: "ok",
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Adjusted {
            account: account.to_owned(),
            action,
            amount,
            reference,
            balance: Credits(balance),
        })
    }
}

/// Builds the balance view from every lot of the account.
pub fn balance_of(
    account: &str,
    lots: &[LotRow],
    debt: i64,
    stripe_customer: Option<String>,
    now: i64,
) -> Balance {
    let (mut subscription, mut payg, mut expired) = (0, 0, 0);
    for lot in lots {
        let s = lot.state();
        if s.expired(now) {
            expired += lot.remaining;
        } else if s.source == LotSource::Subscription {
            subscription += lot.remaining;
        } else {
            payg += lot.remaining;
        }
    }
    Balance {
        account: account.to_owned(),
        available: Credits(subscription + payg),
        subscription: Credits(subscription),
        pay_as_you_go: Credits(payg),
        expired: Credits(expired),
        debt: Credits(debt),
        stripe_customer,
        lots: lots
            .iter()
            .map(|l| LotView {
                id: l.id,
                source: l.source.clone(),
                source_ref: l.source_ref.clone(),
                amount: Credits(l.amount),
                remaining: Credits(l.remaining),
                expires_at: l.expires_at,
                expired: l.state().expired(now),
                product: l.product.clone(),
                price: l.price.clone(),
                created_at: l.created_at,
            })
            .collect(),
    }
}

/// Records a grant from Stripe in `tx`, once per `source_ref`. Returns whether it was new.
pub async fn grant_in(tx: &mut Tx, lot: &NewLot, now: i64) -> Result<bool, StoreError> {
    tx.lock_account(&lot.account, now).await?;
    let Some(id) = tx.insert_lot(lot, now).await? else {
        return Ok(false);
    };
    tx.insert_entry(
        &NewEntry {
            account: &lot.account,
            lot: Some(id),
            kind: "grant",
            amount: lot.amount,
            reference: &lot.source_ref,
            ..Default::default()
        },
        now,
    )
    .await?;
    metrics::counter!("credit_grants_total", "source" => lot.source.unwrap_or(LotSource::Purchase).as_str()).increment(1);
    Ok(true)
}

/// A refund to take into account: its id, the payment it refunds, the money refunded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    pub id: String,
    pub payment_ref: String,
    pub refunded: i64,
}

/// Takes back the refunded share of the purchase paid by `payment_ref`, once per refund:
/// from that purchase's lot first, then in spending order; what is already spent is
/// recorded as a debt entry. A refund of a payment that granted nothing is ignored.
pub async fn refund_in(tx: &mut Tx, refund: &RefundPlan, now: i64) -> Result<(), StoreError> {
    if tx.refund_known(&refund.id).await? {
        return Ok(());
    }
    let Some(lot) = tx.lot_for_payment(&refund.payment_ref).await? else {
        tracing::info!(refund = %refund.id, payment = %refund.payment_ref, "refund of a payment that granted no credits; nothing to take back");
        return Ok(());
    };
    tx.lock_account(&lot.account, now).await?;
    let share =
        sm_domain::credits::refund_share(lot.amount, lot.paid_amount.unwrap_or(0), refund.refunded);
    let lots = tx.open_lots(&lot.account).await?;
    let states: Vec<LotState> = lots.iter().map(LotRow::state).collect();
    let (takes, short) = take_back(&states, share, Some(lot.id), now);
    for (id, n) in &takes {
        tx.take_from_lot(*id, *n).await?;
        tx.insert_entry(
            &NewEntry {
                account: &lot.account,
                lot: Some(*id),
                kind: "refund",
                amount: -n,
                reference: &refund.id,
                ..Default::default()
            },
            now,
        )
        .await?;
    }
    if short > 0 {
        tracing::warn!(refund = %refund.id, account = %lot.account, shortfall = %Credits(short), "refund took back more credits than were left; recorded as debt");
        tx.insert_entry(
            &NewEntry {
                account: &lot.account,
                kind: "debt",
                shortfall: short,
                reference: &refund.id,
                description: Some("refunded credits that were already spent"),
                ..Default::default()
            },
            now,
        )
        .await?;
    }
    tx.insert_refund(
        &refund.id,
        &lot.account,
        Some(lot.id),
        refund.refunded,
        share - short,
        short,
        now,
    )
    .await?;
    Ok(())
}
