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
use sm_store::credits::{
    EntryRow, LotRow, NewAudit, NewEntry, NewLot, NewOrigin, NewReversal, ReversalKind,
};
use sm_store::{Store, StoreError, Tx};

mod consumer;
pub mod holds;
pub mod import;

use consumer::{Consumer, Job};

/// Why a ledger operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The account reference is empty, too long, or has spaces, `/` or invisible characters
    /// (HTTP 400 `invalid_account`).
    #[error(
        "{0:?} is not an account reference: use 1 to 128 visible characters without spaces, '/', or invisible and direction-changing characters"
    )]
    InvalidAccount(String),
    /// The request is malformed (amount, key, description, reason, expiry); the text says
    /// what (HTTP 400 `invalid_body`).
    #[error("{0}")]
    Invalid(String),
    /// The balance cannot cover the debit (HTTP 402 `insufficient_credits`, with the
    /// shortfall); nothing was written, so it may be retried after a top-up.
    #[error("insufficient credits: {available} available, {shortfall} short")]
    Insufficient {
        /// What could be spent (available less held).
        available: Credits,
        /// What is missing.
        shortfall: Credits,
    },
    /// The idempotency key was used before for another request (HTTP 409
    /// `idempotency_key_reused`): a retry must send the same body.
    #[error(
        "idempotency key {0:?} was already used for a different request (another amount or description)"
    )]
    KeyReused(String),
    /// The account already has this many open holds, the most allowed (HTTP 409 `too_many_holds`).
    #[error("the account has {0} open holds, the most it may have: capture or release some first")]
    TooManyHolds(i64),
    /// No hold with this id on the account (HTTP 404 `hold_not_found`).
    #[error("no hold {0:?} on this account")]
    HoldNotFound(String),
    /// The hold was captured, released or has expired already (HTTP 409
    /// `hold_captured`, `hold_released` or `hold_expired`).
    #[error("hold {id} is {status} already")]
    HoldSettled {
        /// The hold's id.
        id: String,
        /// `captured`, `released` or `expired`.
        status: &'static str,
    },
    /// The database failed (HTTP 500; the log has the cause).
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}

/// Characters that are invisible or reorder text (zero-width, bidirectional controls,
/// the byte-order mark): two references that look the same on a page must be the same.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Checks an account reference chosen by the app.
pub fn validate_account(account: &str) -> Result<(), LedgerError> {
    let ok = !account.is_empty()
        && account.chars().count() <= 128
        && account
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !invisible(c) && c != '/');
    if ok {
        Ok(())
    } else {
        Err(LedgerError::InvalidAccount(
            account.chars().take(60).collect(),
        ))
    }
}

/// A lot as the API shows it.
#[derive(utoipa::ToSchema)]
#[schema(as = Lot)]
#[derive(Debug, Clone, Serialize)]
pub struct LotView {
    /// The lot's id (journal entries name it).
    pub id: i64,
    /// Where the credits came from: `purchase`, `subscription`, `admin` or `promotional`.
    pub source: String,
    /// What granted it, unique per lot: a Checkout session (`cs_…`), an invoice (`in_…`),
    /// `admin:<uuid>`, or a reference made from a promotional grant's or an import's key.
    pub source_ref: String,
    /// Credits granted.
    pub amount: Credits,
    /// Credits not spent yet (nor taken back).
    pub remaining: Credits,
    /// When its remaining credits expire (unix seconds); `null` for never. A subscription's
    /// lot expires with the period it pays for.
    pub expires_at: Option<i64>,
    /// Whether it had expired when this was read: its `remaining` no longer counts.
    pub expired: bool,
    /// The product bought, for purchase and subscription lots.
    pub product: Option<String>,
    /// The price bought, for purchase and subscription lots.
    pub price: Option<String>,
    /// When it was granted (unix seconds).
    pub created_at: i64,
}

/// `GET /api/v1/accounts/{account}/credits`.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Balance {
    /// The account.
    pub account: String,
    /// What can be spent now: non-expired lots.
    pub available: Credits,
    /// Available credits from subscription lots (spent first, earliest expiry first).
    pub subscription: Credits,
    /// Available credits from one-time purchases and operators' grants.
    pub pay_as_you_go: Credits,
    /// Promotional credits from the app (spent before paid ones of the same expiry).
    pub promotional: Credits,
    /// Left in lots that have expired (never spent, never counted).
    pub expired: Credits,
    /// Credits that refunds could not take back because they were already spent.
    pub debt: Credits,
    /// Reserved by open holds: consumptions and new holds may spend `available − held`.
    pub held: Credits,
    /// The account's Stripe customer (`cus_…`), once it has one.
    pub stripe_customer: Option<String>,
    /// Every lot of the account, oldest first, expired and empty ones included.
    pub lots: Vec<LotView>,
}

/// A journal entry as the API shows it.
#[derive(utoipa::ToSchema)]
#[schema(as = Entry)]
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// The entry's id; newer entries have greater ids.
    pub id: i64,
    /// What happened: `grant`, `consume`, `adjust`, `debt`, `forgive`, `restore`, … .
    pub kind: String,
    /// Credits moved, positive for a grant, negative for a spend or a take-back.
    pub amount: Credits,
    /// Credits a take-back could not take because they were already spent (they became debt);
    /// absent when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub shortfall: Credits,
    /// The lot it moved credits of, if one.
    pub lot: Option<i64>,
    /// What caused it: the idempotency key, the refund, the session or invoice, … .
    #[serde(rename = "ref")]
    pub reference: String,
    /// The caller's description or the operator's reason.
    pub description: Option<String>,
    /// Who made it: the operator (adjustments, forgiveness, imports) or the token
    /// (promotional grants); `null` for consumptions and Stripe's effects.
    pub actor: Option<String>,
    /// When it was written (unix seconds).
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
#[derive(utoipa::ToSchema, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    /// Credits to spend (more than zero, at most two decimals).
    pub amount: Credits,
    /// Or the `Idempotency-Key` header (the same value if both are sent).
    #[serde(default)]
    pub idempotency_key: String,
    /// Why, in the app's words (at most 500 characters): kept in the journal.
    #[serde(default)]
    pub description: Option<String>,
}

/// The answer to a consumption; a repeat with the same key gets the same one.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Consumption {
    /// The account charged.
    pub account: String,
    /// The key the consumption was made under.
    pub idempotency_key: String,
    /// Credits spent.
    pub amount: Credits,
    /// The description sent with it.
    pub description: Option<String>,
    /// The available balance right after this consumption.
    pub balance: Credits,
    /// When it was made (unix seconds): the first request's time for a replay.
    pub created_at: i64,
    /// True when this answer is the stored result of an earlier identical request.
    pub replayed: bool,
}

/// Grant or deduct, by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    /// Add credits (a lot of source `admin`).
    Grant,
    /// Take credits away (spent like a consumption; refused when the balance is short).
    Deduct,
}

/// An operator's adjustment: what, how much, why, by whom, from where.
#[derive(Debug, Clone, Copy)]
pub struct AdjustRequest<'a> {
    /// Grant or deduct.
    pub kind: Adjustment,
    /// Credits to move (more than zero).
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
    /// The account adjusted.
    pub account: String,
    /// The audit action: `credits.grant` or `credits.deduct`.
    pub action: &'static str,
    /// Credits moved.
    pub amount: Credits,
    /// The journal reference of the adjustment (`admin:<uuid>`).
    pub reference: String,
    /// The available balance right after it.
    pub balance: Credits,
}

/// Checks what every debit from the app carries: the account, an idempotency key of 1
/// to 255 bytes and a description of at most 500 characters.
fn check_debit(account: &str, key: &str, description: Option<&str>) -> Result<(), LedgerError> {
    validate_account(account)?;
    if key.is_empty() || key.len() > 255 {
        return Err(LedgerError::Invalid(
            "idempotency_key must be 1 to 255 characters".into(),
        ));
    }
    if description.is_some_and(|d| d.chars().count() > 500) {
        return Err(LedgerError::Invalid(
            "description must be at most 500 characters".into(),
        ));
    }
    Ok(())
}

/// Checks a consumption request; returns what identifies its body under its key.
fn check_consumption(account: &str, req: &ConsumeRequest) -> Result<String, LedgerError> {
    let description = req.description.as_deref();
    check_debit(account, &req.idempotency_key, description)?;
    Ok(format!("{}|{}", req.amount, description.unwrap_or("")))
}

/// The ledger over a store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    /// Consumptions go through one writer per ledger (see [`consumer`]), started
    /// on first use on the caller's runtime.
    consumer: std::sync::Arc<std::sync::OnceLock<Consumer>>,
}

impl Ledger {
    /// The ledger of `store`; the consumption writer starts on first use.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            consumer: Default::default(),
        }
    }

    /// The account's balance and lots at `now` (unix seconds), held credits included.
    pub async fn balance(&self, account: &str, now: i64) -> Result<Balance, LedgerError> {
        validate_account(account)?;
        let lots = self.store.credit_lots(account).await?;
        let (_, _, debt) = self.store.credit_totals(account).await?;
        let held = self.store.held(account, now).await?;
        let customer = self
            .store
            .account(account)
            .await?
            .and_then(|a| a.stripe_customer);
        let mut balance = balance_of(account, &lots, debt, customer, now);
        balance.held = Credits(held);
        Ok(balance)
    }

    /// The account's journal, newest first, at most `limit` entries.
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
    ///
    /// Applied in a group with the other consumptions waiting on this instance (see
    /// `consumer`): the same rules, one transaction for many.
    pub async fn consume(
        &self,
        account: &str,
        req: &ConsumeRequest,
        now: i64,
    ) -> Result<Consumption, LedgerError> {
        let fingerprint = check_consumption(account, req)?;
        let consumer = self
            .consumer
            // The writer gets a ledger of its own for its fallback: given this one, it
            // would hold its own sender and never stop (nor close its pool).
            .get_or_init(|| Consumer::start(self.store.clone(), Ledger::new(self.store.clone())));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            account: account.to_owned(),
            req: req.clone(),
            fingerprint,
            now,
            reply,
        };
        match consumer.submit(job, answer).await {
            Ok(answer) => answer,
            // The writer is gone (its runtime is stopping): apply it here.
            Err(()) => self.consume_alone(account, req, now).await,
        }
    }

    /// [`Ledger::consume`] in a transaction of its own: what a request falls back to
    /// when its group could not commit.
    pub(crate) async fn consume_alone(
        &self,
        account: &str,
        req: &ConsumeRequest,
        now: i64,
    ) -> Result<Consumption, LedgerError> {
        let fingerprint = check_consumption(account, req)?;
        let key = req.idempotency_key.as_str();
        let description = req.description.as_deref();
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
        // Open holds keep their credits: only `available − held` may be spent.
        let held = tx.held(account, None, now).await?;
        let avail = available(&states, now);
        if amount > 0 && amount > avail - held {
            tx.rollback().await?;
            return Err(holds::short(avail, held, amount));
        }
        let takes = match allocate(&states, amount, now) {
            Ok(t) => t,
            Err(_) => {
                tx.rollback().await?;
                return Err(holds::short(avail, held, amount));
            }
        };
        spend_in(&mut tx, account, &takes, key, description, now).await?;
        let balance = available(&states, now) - amount;
        // The key is claimed by this insert itself: if another transaction recorded it
        // first (the account lock makes that impossible today, the unique key makes it
        // impossible whatever the locking), nothing of this one is kept.
        let claimed = tx
            .insert_consumption(
                account,
                key,
                &fingerprint,
                amount,
                description,
                balance,
                now,
            )
            .await?;
        if !claimed {
            tx.rollback().await?;
            return Box::pin(self.consume_alone(account, req, now)).await;
        }
        if amount > 0 {
            // A free consumption never buys: it would let a caller buy at will.
            crate::topup::after_debit(&mut tx, &[(account, avail - held, balance - held)], now)
                .await?;
        }
        let known = std::collections::HashMap::from([(
            account.to_owned(),
            crate::outbox::Spendable {
                available: balance,
                held,
            },
        )]);
        crate::outbox::announce(&mut tx, now, &known).await?;
        tx.commit().await?;
        metrics::counter!("stripe_manager_credit_consumptions_total").increment(1);
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
                // Like a consumption, a deduction leaves what open holds reserve.
                let held = tx.held(account, None, now).await?;
                let wanted = amount.hundredths();
                let takes = match allocate(&states, wanted, now) {
                    Ok(t) if wanted <= before - held => t,
                    _ => {
                        tx.rollback().await?;
                        return Err(holds::short(before, held, wanted));
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
        crate::outbox::announce(&mut tx, now, &Default::default()).await?;
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

/// `POST /api/v1/accounts/{account}/credits/grants`: promotional credits from the app.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionalRequest {
    /// Credits to grant (more than zero, at most two decimals).
    pub amount: Credits,
    /// Makes a retried grant one grant: the same key with the same amount and expiry
    /// answers the first grant; with others, `409 idempotency_key_reused`.
    /// Or the `Idempotency-Key` header (the same value if both are sent).
    #[serde(default)]
    pub idempotency_key: String,
    /// Why (sign-up, a campaign): kept in the journal.
    pub reason: String,
    /// Unix seconds; never when absent.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A promotional grant, as the API answers it (the same for a repeat, `replayed`).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PromotionalGrant {
    /// The account granted.
    pub account: String,
    /// The key the grant was made under.
    pub idempotency_key: String,
    /// Credits granted.
    pub amount: Credits,
    /// When they expire (unix seconds); `null` for never.
    pub expires_at: Option<i64>,
    /// The lot the grant made.
    pub lot: i64,
    /// The available balance right after the grant (now, for a repeat).
    pub balance: Credits,
    /// When it was granted (unix seconds): the first request's time for a repeat.
    pub created_at: i64,
    /// True when this answers an earlier identical grant (nothing was granted again).
    pub replayed: bool,
}

/// Promotional grants live at most ten years: a date past that is a mistake.
const MAX_PROMOTION_SECS: i64 = 10 * 366 * 86_400;

impl Ledger {
    /// Grants promotional credits (a lot of source `promotional`): spent before paid
    /// credits of the same or a later expiry, never taken by a refund, settling no debt
    /// (nothing was paid). Exactly once per `(account, idempotency_key)`: the lot's
    /// reference is made of both (length-prefixed, so no two pairs make the same one),
    /// and inserting it is the claim.
    pub async fn grant_promotional(
        &self,
        account: &str,
        req: &PromotionalRequest,
        actor: &str,
        now: i64,
    ) -> Result<PromotionalGrant, LedgerError> {
        validate_account(account)?;
        let key = req.idempotency_key.as_str();
        if key.is_empty() || key.len() > 255 {
            return Err(LedgerError::Invalid(
                "idempotency_key must be 1 to 255 characters".into(),
            ));
        }
        let reason = req.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(LedgerError::Invalid(
                "reason must be 1 to 500 characters".into(),
            ));
        }
        let amount = req.amount.hundredths();
        if amount <= 0 || amount > 100_000_000_000_000 {
            return Err(LedgerError::Invalid(
                "amount must be greater than zero and at most 1000000000000".into(),
            ));
        }
        if let Some(at) = req.expires_at
            && (at <= now || at > now + MAX_PROMOTION_SECS)
        {
            return Err(LedgerError::Invalid(
                "expires_at must be a Unix time in the future, at most ten years ahead".into(),
            ));
        }
        let reference = format!("promo:{}:{account}:{key}", account.len());
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        let (lot, created_at, replayed) = match tx
            .insert_lot(
                &NewLot {
                    account: account.to_owned(),
                    source: Some(LotSource::Promotional),
                    source_ref: reference.clone(),
                    amount,
                    expires_at: req.expires_at,
                    ..Default::default()
                },
                now,
            )
            .await?
        {
            Some(id) => {
                tx.insert_entry(
                    &NewEntry {
                        account,
                        lot: Some(id),
                        kind: "grant",
                        amount,
                        reference: &reference,
                        description: Some(reason),
                        actor: Some(actor),
                        ..Default::default()
                    },
                    now,
                )
                .await?;
                metrics::counter!("stripe_manager_credit_grants_total", "source" => "promotional")
                    .increment(1);
                (id, now, false)
            }
            None => {
                let lot = tx.lot_by_ref(&reference).await?.ok_or_else(|| {
                    LedgerError::Store(StoreError::Corrupt(format!(
                        "promotional lot {reference} exists and cannot be read"
                    )))
                })?;
                if (lot.amount, lot.expires_at) != (amount, req.expires_at) {
                    tx.rollback().await?;
                    return Err(LedgerError::KeyReused(key.to_owned()));
                }
                (lot.id, lot.created_at, true)
            }
        };
        let open = tx.open_lots(account).await?;
        let states: Vec<LotState> = open.iter().map(LotRow::state).collect();
        crate::outbox::announce(&mut tx, now, &Default::default()).await?;
        tx.commit().await?;
        Ok(PromotionalGrant {
            account: account.to_owned(),
            idempotency_key: key.to_owned(),
            amount: req.amount,
            expires_at: req.expires_at,
            lot,
            balance: Credits(available(&states, now)),
            created_at,
            replayed,
        })
    }
}

impl Ledger {
    /// Sets the account's own threshold for `credits.low` (`None`: the service's
    /// `CREDITS_LOW_THRESHOLD`) and re-checks its level against it in the same
    /// transaction: raising the threshold above what the account holds is a crossing.
    pub async fn set_low_threshold(
        &self,
        account: &str,
        below: Option<Credits>,
        now: i64,
    ) -> Result<(), LedgerError> {
        validate_account(account)?;
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        tx.set_low_threshold(account, below.map(Credits::hundredths))
            .await?;
        if tx.outbox_enabled() {
            let balance = crate::outbox::spendable_in(&mut tx, account, now).await?;
            crate::outbox::check_levels(&mut tx, &[(account.to_owned(), balance)], now * 1000)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What `credits forgive` did.
#[derive(Debug, Clone, Serialize)]
pub struct Forgiven {
    /// The account.
    pub account: String,
    /// The debt forgiven (all of it).
    pub amount: Credits,
    /// The available balance after forgiving.
    pub balance: Credits,
}

impl Ledger {
    /// Forgives all of an account's debt (an operator's decision, with a reason, audited):
    /// each lot's debt is recorded as forgiven, so a later settlement of the same grant
    /// does not make it again, and a take-back undone later gives nothing for it.
    pub async fn forgive(
        &self,
        account: &str,
        reason: &str,
        actor: &str,
        origin: &str,
        now: i64,
    ) -> Result<Forgiven, LedgerError> {
        validate_account(account)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(LedgerError::Invalid("a reason is required".into()));
        }
        let mut tx = self.store.begin().await?;
        tx.lock_account(account, now).await?;
        let lots = tx.lots_with_debt(account).await?;
        let mut total = 0;
        let reference = format!("forgive:{}", uuid::Uuid::new_v4());
        for lot in &lots {
            tx.add_take(lot.id, FORGIVEN, lot.debt).await?;
            tx.set_lot_state(lot.id, 0, lot.prorated).await?;
            tx.insert_entry(
                &NewEntry {
                    account,
                    kind: "forgive",
                    shortfall: -lot.debt,
                    reference: &reference,
                    description: Some(reason),
                    actor: Some(actor),
                    ..Default::default()
                },
                now,
            )
            .await?;
            total += lot.debt;
        }
        if total == 0 {
            tx.rollback().await?;
            return Err(LedgerError::Invalid(format!(
                "account {account} has no debt to forgive"
            )));
        }
        let detail = format!("{} credits of debt: {reason}", Credits(total));
        tx.audit(
            &NewAudit {
                actor,
                action: "credits.forgive",
                target: Some(account),
                detail: Some(&detail),
                origin: Some(origin),
                result: "ok",
            },
            now,
        )
        .await?;
        let open = tx.open_lots(account).await?;
        let states: Vec<LotState> = open.iter().map(LotRow::state).collect();
        crate::outbox::announce(&mut tx, now, &Default::default()).await?;
        tx.commit().await?;
        Ok(Forgiven {
            account: account.to_owned(),
            amount: Credits(total),
            balance: Credits(available(&states, now)),
        })
    }
}

/// Writes a consumption's spending: each `(lot, n)` taken from its lot with its journal
/// entry (`consume`, under `reference`); nothing taken is recorded all the same, as an
/// entry of zero (usage at zero cost).
pub(crate) async fn spend_in(
    tx: &mut Tx,
    account: &str,
    takes: &[(i64, i64)],
    reference: &str,
    description: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    if takes.is_empty() {
        tx.insert_entry(
            &NewEntry {
                account,
                kind: "consume",
                reference,
                description,
                ..Default::default()
            },
            now,
        )
        .await?;
    }
    for &(lot, n) in takes {
        tx.take_from_lot(lot, n).await?;
        tx.insert_entry(
            &NewEntry {
                account,
                lot: Some(lot),
                kind: "consume",
                amount: -n,
                reference,
                description,
                ..Default::default()
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Builds the balance view from every lot of the account.
pub fn balance_of(
    account: &str,
    lots: &[LotRow],
    debt: i64,
    stripe_customer: Option<String>,
    now: i64,
) -> Balance {
    let (mut subscription, mut payg, mut promotional, mut expired) = (0, 0, 0, 0);
    for lot in lots {
        let s = lot.state();
        if s.expired(now) {
            expired += lot.remaining;
        } else if s.source == LotSource::Subscription {
            subscription += lot.remaining;
        } else if s.source == LotSource::Promotional {
            promotional += lot.remaining;
        } else {
            payg += lot.remaining;
        }
    }
    Balance {
        account: account.to_owned(),
        available: Credits(subscription + payg + promotional),
        subscription: Credits(subscription),
        pay_as_you_go: Credits(payg),
        promotional: Credits(promotional),
        expired: Credits(expired),
        debt: Credits(debt),
        held: Credits::ZERO,
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

/// The meeting point of a plan period: where a proration take-back for the period of
/// `subscription` on `price` ending at `period_end` finds the lot granted for it.
pub fn plan_link(subscription: &str, price: &str, period_end: i64) -> String {
    format!("plan:{subscription}|{price}|{period_end}")
}

/// A grant from Stripe, decided before the transaction: the session or invoice it comes
/// from, the payments that paid it, its lots, and the proration take-backs it carries.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// The session or invoice the grant comes from (its unique reference is the claim).
    pub origin: NewOrigin,
    /// `pi_…` (or `ch_…`) of every payment of the origin: a refund or dispute of any of
    /// them takes back a share of its credits.
    pub payments: Vec<String>,
    /// The lots to insert, one per line item that grants credits.
    pub lots: Vec<NewLot>,
    /// Proration take-backs the invoice carries (a downgrade's credit lines).
    pub take_backs: Vec<TakeBack>,
}

/// A negative proration line: credits to take back from the lot it credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeBack {
    /// `in_…/il_…`: the line, so it counts once.
    pub id: String,
    /// The subscription whose period the line credits.
    pub subscription: String,
    /// The price the credited period was on.
    pub price: String,
    /// End of the credited period (unix seconds): with the two above, finds its lot.
    pub period_end: i64,
    /// Hundredths, positive.
    pub credits: i64,
    /// The lot of the line it credits (`in_…/il_…`), when Stripe names it
    /// (`proration_details.credited_items`): the take-back comes from exactly that lot.
    /// Otherwise from the lot of the same plan period granted by another invoice.
    pub credited: Option<String>,
}

impl TakeBack {
    fn link(&self) -> String {
        match &self.credited {
            Some(lot) => lot_link(lot),
            None => plan_link(&self.subscription, &self.price, self.period_end),
        }
    }
}

/// The meeting point of one lot (by its `source_ref`).
fn lot_link(source_ref: &str) -> String {
    format!("lot:{source_ref}")
}

/// Records a grant in `tx`, once per origin: claims the origin (a second delivery of the
/// same session or invoice stops here), meets the payments and plan periods it concerns,
/// locks the account, writes its lots, and applies what arrived before it: refunds and
/// disputes of its payments, proration take-backs of its lots. Returns whether it was
/// new.
pub async fn grant_in(tx: &mut Tx, grant: &Grant, now: i64) -> Result<bool, StoreError> {
    if !tx.claim_origin(&grant.origin, now).await? {
        return Ok(false);
    }
    let origin = grant.origin.id.as_str();
    // Links in one global order (sorted), so two transactions never wait on each other
    // in a cycle.
    let mut links: Vec<(String, Option<&str>)> = grant
        .payments
        .iter()
        .map(|p| (p.clone(), Some(origin)))
        .collect();
    // The origin itself: what a credit note (which names its invoice) meets.
    links.push((origin.to_owned(), Some(origin)));
    for lot in &grant.lots {
        if let Some(link) = plan_link_of(lot) {
            links.push((link, None));
            links.push((lot_link(&lot.source_ref), None));
        }
    }
    links.extend(grant.take_backs.iter().map(|t| (t.link(), None)));
    links.sort();
    links.dedup_by(|a, b| a.0 == b.0);
    for (reference, to) in &links {
        tx.link(reference, *to, now).await?;
    }
    let account = grant.origin.account.as_str();
    tx.lock_account(account, now).await?;
    let mut new_lots = Vec::new();
    for lot in &grant.lots {
        // A free lot of a trial that was canceled before this invoice arrived expires
        // when the trial ended (decided under the account's lock: see
        // `Tx::end_trial_lots`, which does it in the other order).
        let ended = match (&lot.subscription, lot.paid_amount.unwrap_or(0)) {
            (Some(sub), 0) => tx.trial_ended_early(sub).await?,
            _ => None,
        };
        let lot = match ended {
            Some((ended, trial_end))
                if lot
                    .period_end
                    .or(lot.expires_at)
                    .is_some_and(|e| e <= trial_end) =>
            {
                &NewLot {
                    expires_at: Some(lot.expires_at.map_or(ended, |e| e.min(ended))),
                    ..lot.clone()
                }
            }
            _ => lot,
        };
        let Some(id) = tx.insert_lot(lot, now).await? else {
            continue;
        };
        new_lots.push(id);
        tx.insert_entry(
            &NewEntry {
                account,
                lot: Some(id),
                kind: "grant",
                amount: lot.amount,
                reference: &lot.source_ref,
                ..Default::default()
            },
            now,
        )
        .await?;
        metrics::counter!("stripe_manager_credit_grants_total", "source" => lot.source.unwrap_or(LotSource::Purchase).as_str()).increment(1);
        if let Some(link) = plan_link_of(lot) {
            tx.attach_prorations(&lot_link(&lot.source_ref), id, origin)
                .await?;
            tx.attach_prorations(&link, id, origin).await?;
        }
    }
    // Take-backs of lots granted earlier settle those grants too.
    let mut touched = vec![origin.to_owned()];
    for t in &grant.take_backs {
        tx.record_reversal(
            &NewReversal {
                id: t.id.clone(),
                kind: ReversalKind::Proration,
                link: t.link(),
                amount: t.credits,
                active: true,
            },
            now,
        )
        .await?;
        match credited_lot(tx, account, t, origin).await? {
            Some(lot) => {
                tx.attach_proration(&t.id, lot.id).await?;
                if let Some(o) = &lot.origin
                    && !touched.contains(o)
                {
                    touched.push(o.clone());
                }
            }
            None => {
                tracing::info!(line = %t.id, "proration take-back before the grant it credits; applied when that grant arrives");
            }
        }
    }
    for o in &touched {
        // Its own lots settle refunds that arrived first; the lots its take-backs
        // credit settle those take-backs.
        let kind = if *o == grant.origin.id {
            "refund"
        } else {
            "proration"
        };
        settle(tx, o, &grant.origin.id, kind, now).await?;
    }
    // Money paid now settles what the account owes first.
    net_debt(tx, account, &new_lots, &grant.origin.id, now).await?;
    Ok(true)
}

fn plan_link_of(lot: &NewLot) -> Option<String> {
    match (&lot.subscription, &lot.price, lot.period_end) {
        (Some(sub), Some(price), Some(end)) => Some(plan_link(sub, price, end)),
        _ => None,
    }
}

/// The lot a take-back credits, if it has been granted: the line Stripe names (or, for
/// a grant made before migration 7, that invoice's lot for the price), else the oldest
/// lot of the same plan period from another invoice.
async fn credited_lot(
    tx: &mut Tx,
    account: &str,
    t: &TakeBack,
    origin: &str,
) -> Result<Option<LotRow>, StoreError> {
    if let Some(credited) = &t.credited {
        if let Some(lot) = tx.lot_by_ref(credited).await? {
            return Ok((lot.account == account).then_some(lot));
        }
        let invoice = credited.split('/').next().unwrap_or(credited);
        return Ok(tx
            .legacy_invoice_lot(invoice, &t.price)
            .await?
            .filter(|l| l.account == account));
    }
    Ok(tx
        .plan_lots(account, &t.subscription, &t.price, t.period_end, origin)
        .await?
        .into_iter()
        .next())
}

/// A refund or dispute, as Stripe reports it now.
pub type Reversal = NewReversal;

/// Records a refund or dispute (or its failure, cancellation, or a won dispute) and, if
/// the grant it concerns is known, brings that grant to what all its reversals add up
/// to. Recording first and settling from the recorded state makes the result the same
/// whatever the order or number of deliveries, on any number of instances. The payment's
/// link is locked before the reversal row, as every ledger transaction does (links
/// before reversal rows before the account), so no two wait on each other in a cycle.
pub async fn reverse_in(tx: &mut Tx, r: &Reversal, now: i64) -> Result<(), StoreError> {
    reverse_all_in(tx, std::slice::from_ref(r), now).await
}

/// [`reverse_in`] for every reversal one event reports (a charge's refunds, a credit
/// note and its refunds): all their links first (sorted), then all their rows (sorted
/// by id), then each grant they concern is settled once (which locks its account).
/// Recording one and settling it before locking the next would wait for a row while
/// holding an account, against a transaction holding that row and waiting for the
/// account.
pub async fn reverse_all_in(tx: &mut Tx, rs: &[Reversal], now: i64) -> Result<(), StoreError> {
    let mut links: Vec<&str> = rs.iter().map(|r| r.link.as_str()).collect();
    links.sort_unstable();
    links.dedup();
    let mut origins = std::collections::HashMap::new();
    for link in links {
        // An invoice is its own meeting point (credit notes name it): a grant recorded
        // before grants linked their own id is found by its origin row.
        let own = if link.starts_with("in_") && tx.origin_known(link).await? {
            Some(link)
        } else {
            None
        };
        origins.insert(link, tx.link(link, own, now).await?);
    }
    let mut sorted: Vec<&Reversal> = rs.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for r in &sorted {
        tx.record_reversal(r, now).await?;
    }
    let mut settled: Vec<&str> = Vec::new();
    for r in sorted {
        let Some(Some(origin)) = origins.get(r.link.as_str()) else {
            tracing::info!(reversal = %r.id, payment = %r.link, "reversal of a payment with no grant yet; applied if a grant arrives");
            continue;
        };
        if settled.contains(&origin.as_str()) {
            continue;
        }
        settled.push(origin);
        let kind = match r.kind {
            ReversalKind::Dispute => "dispute",
            ReversalKind::CreditNote => "credit_note",
            _ => "refund",
        };
        settle(tx, origin, &r.id, kind, now).await?;
    }
    Ok(())
}

/// Brings every lot of `origin` to what its standing reversals call for, computed from
/// all of them at once so the order they arrived in does not matter:
///
/// - refunds and disputes: `round(rest × reversed money ÷ paid)`, where `rest` is what the
///   prorations left of the grant (`amount − min(prorations, amount)`), taken from the
///   lot first (even expired: its remainder was never spendable), the rest from other
///   lots in spending order, what is already spent recorded as debt;
/// - prorations: taken from the lot first, from what the refunds left there (each less
///   the share that refunds of its own invoice gave back, see [`standing_prorations`]);
///   what the lot no longer holds spills like a refund's: other lots, then debt.
///
/// The split is computed from the lot's *base* (what it would hold without this grant's
/// reversals), so a refund and a proration of one lot end the same in either order. A
/// smaller target than what was taken (a refund failed, a dispute was won) gives back
/// exactly where it took: debt canceled first, then the other lots (last taken first),
/// then the lot. Gives happen before takes.
async fn settle(
    tx: &mut Tx,
    origin: &str,
    reference: &str,
    kind: &str,
    now: i64,
) -> Result<(), StoreError> {
    let Some(account) = tx.origin_account(origin).await? else {
        return Ok(());
    };
    // Lock first, read after: a concurrent settle of the same account (another payment
    // of this grant, a proration of its lot) has committed by now, and what follows sees it.
    tx.lock_account(&account, now).await?;
    let mut queue = vec![origin.to_owned()];
    // Origins already re-settled because a refund changed what their take-backs keep.
    let mut prorated = vec![origin.to_owned()];
    // A settlement may reclaim credits another grant's reversals had taken from its lot;
    // that grant is settled again (its take-back goes elsewhere or becomes debt). Each
    // round moves takes off lots their own grants need, so this ends; the bound is a guard.
    for _ in 0..64 {
        let Some(origin) = queue.pop() else {
            return Ok(());
        };
        let lots = tx.origin_lots(&origin).await?;
        let money = tx.reversed_money(&origin).await?;
        // A refund of an invoice that carried take-backs gives back their share too
        // (see [`standing_prorations`]): settle the lots they were taken from.
        for o in tx.origins_prorated_by(&origin).await? {
            if !prorated.contains(&o) {
                prorated.push(o.clone());
                queue.push(o);
            }
        }
        for lot in &lots {
            for reclaimed in settle_lot(tx, &account, lot, money, reference, kind, now).await? {
                if let Some(o) = tx.lot(reclaimed).await?.and_then(|l| l.origin)
                    && !queue.contains(&o)
                {
                    queue.push(o);
                }
            }
        }
    }
    Err(StoreError::Corrupt(format!(
        "settling {origin} for account {account} did not converge"
    )))
}

/// Credits the proration take-backs attached to `lot` still take: each one less the
/// share of it that refunds and disputes of its own invoice gave back. A take-back
/// rides on the invoice that carried it: refunding that (netted) invoice in full
/// leaves the account as it was before it, its grants taken back and its take-backs
/// given back, in proportion to the money returned.
async fn standing_prorations(tx: &mut Tx, lot: i64) -> Result<(i64, i64), StoreError> {
    // (spilling, waived): take-backs recorded before migration 15 keep their old rule.
    let (mut total, mut waived) = (0, 0);
    for (id, credits, old) in tx.prorations_of(lot).await? {
        let invoice = id.split('/').next().unwrap_or(&id);
        let paid = tx.origin_paid(invoice).await?.unwrap_or(0);
        let money = if paid > 0 {
            tx.reversed_money(invoice).await?
        } else {
            0
        };
        let standing = credits - sm_domain::credits::refund_share(credits, paid, money);
        if old {
            waived += standing.max(0);
        } else {
            total += standing.max(0);
        }
    }
    Ok((total, waived))
}

/// Settles one lot of a grant (see [`settle`]); returns the grant lots whose
/// take-backs it reclaimed, to be settled again.
#[allow(clippy::too_many_arguments)]
async fn settle_lot(
    tx: &mut Tx,
    account: &str,
    lot: &LotRow,
    money: i64,
    reference: &str,
    kind: &str,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let paid = lot.paid_amount.unwrap_or(0);
    let (spilling, waived) = standing_prorations(tx, lot.id).await?;
    let prorations = (spilling + waived).clamp(0, lot.amount);
    let target = sm_domain::credits::refund_share(lot.amount - prorations, paid, money)
        .min(lot.amount - prorations);
    let takes = tx.takes_of(lot.id).await?;
    let own = takes
        .iter()
        .find(|(from, _)| *from == lot.id)
        .map_or(0, |t| t.1);
    let others: Vec<(i64, i64)> = takes
        .iter()
        .copied()
        .filter(|(from, _)| *from != lot.id)
        .collect();
    let spilled = others.iter().map(|t| t.1).sum::<i64>() + lot.debt;
    // What other grants' reversals took from this lot: this grant's own reversals come
    // first, so those can be reclaimed.
    let foreign = tx.foreign_takes(lot.id).await?;
    let base = lot.remaining + own + lot.prorated + foreign.iter().map(|t| t.1).sum::<i64>();
    let own_to = target.min(base);
    // The lot gives its take-backs what it holds, new ones first; what it cannot give of
    // a new one (more than it holds, even more than it granted), like a refund's, comes
    // from the account's other lots, then becomes debt: money given back takes its
    // credits back whole. Take-backs recorded before migration 15 are only waived.
    let room = base - own_to;
    let spilling_here = spilling.min(room);
    let prorated_to = spilling_here + waived.min(room - spilling_here);
    let spill_to = (target - own_to) + (spilling - spilling_here);
    let mut debt = lot.debt;

    // Gives first.
    if own_to < own {
        restore(tx, account, lot.id, lot.id, own - own_to, reference, now).await?;
    }
    if prorated_to < lot.prorated {
        let n = lot.prorated - prorated_to;
        tx.give_to_lot(lot.id, n).await?;
        entry(tx, account, Some(lot.id), "proration", n, reference, now).await?;
    }
    if spill_to < spilled {
        let mut back = spilled - spill_to;
        // A waiver shrinks before what is still owed: forgiven debt is undone first.
        let forgiven = others
            .iter()
            .find(|(id, _)| *id == FORGIVEN)
            .map_or(0, |t| t.1)
            .min(back);
        if forgiven > 0 {
            unforgive(tx, account, lot.id, forgiven, reference, now).await?;
            back -= forgiven;
        }
        let cancel = back.min(debt);
        if cancel > 0 {
            tx.insert_entry(
                &NewEntry {
                    account,
                    kind: "debt",
                    shortfall: -cancel,
                    reference,
                    description: Some("debt canceled: the refund failed or the dispute was won"),
                    ..Default::default()
                },
                now,
            )
            .await?;
            debt -= cancel;
            back -= cancel;
        }
        // Last taken first: the reverse of the spending order the takes followed.
        let all = tx.account_lots(account).await?;
        let key = |id: i64| {
            all.iter()
                .find(|l| l.id == id)
                .map(|l| sm_domain::credits::spending_key(&l.state()))
        };
        let mut from: Vec<(i64, i64)> = others
            .iter()
            .copied()
            .filter(|(id, _)| *id != FORGIVEN)
            .collect();
        from.sort_by_key(|(id, _)| std::cmp::Reverse(key(*id)));
        for (id, taken) in from {
            if back == 0 {
                break;
            }
            let n = taken.min(back);
            restore(tx, account, lot.id, id, n, reference, now).await?;
            back -= n;
        }
    }

    // Then takes, reclaiming from other grants' take-backs what this lot's own need.
    let need = (own_to - own).max(0) + (prorated_to - lot.prorated).max(0);
    let held = tx.lot(lot.id).await?.map_or(0, |l| l.remaining);
    let mut reclaimed = Vec::new();
    if need > held {
        let mut short = need - held;
        for (other, taken) in foreign {
            if short == 0 {
                break;
            }
            let n = taken.min(short);
            restore(tx, account, other, lot.id, n, reference, now).await?;
            reclaimed.push(other);
            short -= n;
        }
    }
    if own_to > own {
        let n = own_to - own;
        tx.take_from_lot(lot.id, n).await?;
        tx.add_take(lot.id, lot.id, n).await?;
        entry(tx, account, Some(lot.id), kind, -n, reference, now).await?;
    }
    if prorated_to > lot.prorated {
        let n = prorated_to - lot.prorated;
        tx.take_from_lot(lot.id, n).await?;
        entry(tx, account, Some(lot.id), "proration", -n, reference, now).await?;
    }
    let spilled_now = tx
        .takes_of(lot.id)
        .await?
        .iter()
        .filter(|(from, _)| *from != lot.id)
        .map(|t| t.1)
        .sum::<i64>()
        + debt;
    if spill_to > spilled_now {
        let open = tx.open_lots(account).await?;
        let states: Vec<LotState> = open
            .iter()
            .filter(|l| l.id != lot.id)
            .map(LotRow::state)
            .collect();
        let (takes, short) = take_back(&states, spill_to - spilled_now, None, now);
        for (id, n) in &takes {
            tx.take_from_lot(*id, *n).await?;
            tx.add_take(lot.id, *id, *n).await?;
            entry(tx, account, Some(*id), kind, -n, reference, now).await?;
        }
        if short > 0 {
            tracing::warn!(reversal = %reference, account = %account, shortfall = %Credits(short), "credits taken back were already spent; recorded as debt");
            tx.insert_entry(
                &NewEntry {
                    account,
                    kind: "debt",
                    shortfall: short,
                    reference,
                    description: Some("credits taken back that were already spent"),
                    ..Default::default()
                },
                now,
            )
            .await?;
            debt += short;
        }
    }
    if (debt, prorated_to) != (lot.debt, lot.prorated) {
        tx.set_lot_state(lot.id, debt, prorated_to).await?;
    }
    Ok(reclaimed)
}

/// The `from_lot` of a take that records forgiven debt (no lot has id 0): it counts as
/// taken, so a later settlement does not make the debt again, and undoing it gives no
/// credits (the debt it stood for was never paid).
const FORGIVEN: i64 = 0;

/// A take-back undone that had been forgiven as debt: nothing to give back.
async fn unforgive(
    tx: &mut Tx,
    account: &str,
    lot: i64,
    n: i64,
    reference: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.add_take(lot, FORGIVEN, -n).await?;
    tx.insert_entry(
        &NewEntry {
            account,
            kind: "forgive",
            reference,
            description: Some(
                "forgiven debt no longer owed: the refund failed or the dispute was won",
            ),
            ..Default::default()
        },
        now,
    )
    .await?;
    Ok(())
}

/// Settles the account's debt from grant lots just written (`new`, in order; those money
/// paid for and not expired): each
/// lot whose reversals left debt (oldest first) takes what it can from them, as if that
/// take-back had found these credits. A journal `debt` entry says so. Undoing the
/// take-back later gives them back to the lot they came from.
async fn net_debt(
    tx: &mut Tx,
    account: &str,
    new: &[i64],
    reference: &str,
    now: i64,
) -> Result<(), StoreError> {
    let mut debtors = tx.lots_with_debt(account).await?;
    if debtors.is_empty() {
        return Ok(());
    }
    for id in new {
        // Only credits money paid for, still usable: free credits (a trial, a 100 %
        // coupon) and credits born expired settle nothing.
        let Some(mut left) = tx
            .lot(*id)
            .await?
            .filter(|l| l.paid_amount.unwrap_or(0) > 0 && !l.state().expired(now))
            .map(|l| l.remaining)
        else {
            continue;
        };
        for debtor in debtors.iter_mut() {
            let owed = tx.lot(debtor.id).await?.map_or(0, |l| l.debt);
            let n = owed.min(left);
            if n <= 0 {
                continue;
            }
            tx.take_from_lot(*id, n).await?;
            tx.add_take(debtor.id, *id, n).await?;
            tx.set_lot_state(debtor.id, owed - n, debtor.prorated)
                .await?;
            tx.insert_entry(
                &NewEntry {
                    account,
                    lot: Some(*id),
                    kind: "debt",
                    amount: -n,
                    shortfall: -n,
                    reference,
                    description: Some("debt settled from a new grant"),
                    ..Default::default()
                },
                now,
            )
            .await?;
            left -= n;
        }
    }
    Ok(())
}

/// Gives `n` back to lot `to`, taken earlier by grant lot `lot`'s reversals.
async fn restore(
    tx: &mut Tx,
    account: &str,
    lot: i64,
    to: i64,
    n: i64,
    reference: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.give_to_lot(to, n).await?;
    tx.add_take(lot, to, -n).await?;
    tx.insert_entry(
        &NewEntry {
            account,
            lot: Some(to),
            kind: "restore",
            amount: n,
            reference,
            description: Some("given back: the refund failed or the dispute was won"),
            ..Default::default()
        },
        now,
    )
    .await?;
    Ok(())
}

async fn entry(
    tx: &mut Tx,
    account: &str,
    lot: Option<i64>,
    kind: &str,
    amount: i64,
    reference: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.insert_entry(
        &NewEntry {
            account,
            lot,
            kind,
            amount,
            reference,
            ..Default::default()
        },
        now,
    )
    .await?;
    Ok(())
}
