//! The credit ledger's storage: accounts, lots, the append-only journal, consumption
//! idempotency keys, refunds already applied, subscriptions and checkout sessions.
//!
//! Every change to the ledger happens in one [`Tx`] that starts with
//! [`Tx::lock_account`]: on PostgreSQL a row lock on the account (concurrent debits of
//! one account queue behind each other, other accounts are not blocked); on SQLite the
//! transaction already holds the database's write lock (`BEGIN IMMEDIATE`). The rules
//! for which lots a debit spends live in `sm_domain::credits`; this module reads the
//! lots and writes what those rules decided.
//!
//! **PostgreSQL statements of a consumption group** (`lock_accounts` … `insert_consumptions`)
//! have a fixed text over arrays (`= ANY($1)`, `UNNEST`), stay prepared, and are planned
//! for the arrays they are given: the group's transaction starts with
//! [`Tx::plan_each_statement`]. With the plans PostgreSQL caches, a lookup first
//! planned while its table was nearly empty keeps scanning the whole table until the
//! table is next analysed: with autovacuum off here, groups slowed from ~2,800/s to
//! ~1,400/s over four 8-second runs as `credit_consumptions` grew to 60,000 rows, the
//! key lookup taking most of the time. Sent unprepared instead, each statement cost a
//! parse, a plan and an extra round trip (~2,500–2,800/s); prepared with a plan per
//! execution, 4,218–4,376/s on 16 accounts over four rounds on growing tables
//! (`BENCH_ROUNDS=4 scripts/bench-credits`, docs/BENCHMARKS.md). `plan_cache_mode`
//! needs PostgreSQL 12 or later (README). SQLite keeps lists of `$n`: it plans a
//! statement once, from its indexes, and has no arrays.

use serde::Serialize;
use sm_domain::credits::{LotSource, LotState};

use crate::catalog::{Ties, WriteCounts};
use crate::objects::{Cell, ObjectWrite, SUBSCRIPTIONS};
use crate::{Store, StoreError, Tx, TxConn, on_pool, on_tx, on_write};

/// A lot as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LotRow {
    pub id: i64,
    pub account: String,
    pub source: String,
    pub source_ref: String,
    pub amount: i64,
    pub remaining: i64,
    pub expires_at: Option<i64>,
    pub product: Option<String>,
    pub price: Option<String>,
    pub quantity: Option<i64>,
    pub payment_ref: Option<String>,
    pub paid_amount: Option<i64>,
    pub currency: Option<String>,
    pub created_at: i64,
    /// The session or invoice that granted it (none for admin grants).
    pub origin: Option<String>,
    pub subscription: Option<String>,
    /// The end of the period its invoice line paid for (subscription lots).
    pub period_end: Option<i64>,
    /// What this grant's refunds and disputes could not take back (already spent).
    pub debt: i64,
    /// Credits proration take-backs took from this lot.
    pub prorated: i64,
}

impl LotRow {
    /// What the allocation rules need.
    pub fn state(&self) -> LotState {
        LotState {
            id: self.id,
            source: LotSource::parse(&self.source).unwrap_or(LotSource::Purchase),
            remaining: self.remaining,
            expires_at: self.expires_at,
        }
    }
}

const LOT_COLUMNS: &str = "id, account, source, source_ref, amount, remaining, expires_at, product, price, quantity, \
    payment_ref, paid_amount, currency, created_at, origin, subscription, period_end, debt, prorated";

/// A grant to record.
#[derive(Debug, Clone, Default)]
pub struct NewLot {
    pub account: String,
    pub source: Option<LotSource>,
    pub source_ref: String,
    pub amount: i64,
    pub expires_at: Option<i64>,
    pub product: Option<String>,
    pub price: Option<String>,
    pub quantity: Option<i64>,
    pub payment_ref: Option<String>,
    pub paid_amount: Option<i64>,
    pub currency: Option<String>,
    /// The session or invoice it is part of (see [`Tx::claim_origin`]).
    pub origin: Option<String>,
    pub subscription: Option<String>,
    pub period_end: Option<i64>,
}

/// A session or invoice that grants credits, claimed once.
#[derive(Debug, Clone, Default)]
pub struct NewOrigin {
    pub id: String,
    pub account: String,
    pub source: Option<LotSource>,
    pub paid_amount: i64,
    pub currency: Option<String>,
}

/// What a reversal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReversalKind {
    /// A refund of a payment: takes back its share of the credits, debt if spent.
    Refund,
    /// A chargeback: like a refund, given back if the dispute is won.
    Dispute,
    /// A negative proration line: takes credits back from its plan's lot first, then
    /// the other lots, then as debt.
    Proration,
    /// The part of a post-payment credit note that is not refunded (credited to the
    /// customer's balance, or out of band): takes back like a refund, given back if the
    /// note is voided. Its refunded part is a refund of its own.
    CreditNote,
}

impl ReversalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReversalKind::Refund => "refund",
            ReversalKind::Dispute => "dispute",
            ReversalKind::Proration => "proration",
            ReversalKind::CreditNote => "credit_note",
        }
    }
}

/// A reversal as Stripe reported it (see migration `0007_ledger_origins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReversal {
    pub id: String,
    pub kind: ReversalKind,
    /// The payment (`pi_…`/`ch_…`), or the plan period link for prorations.
    pub link: String,
    /// Money (refunds, disputes) or credits in hundredths (prorations).
    pub amount: i64,
    /// False for a failed or canceled refund, a won dispute.
    pub active: bool,
}

/// A journal entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub account: String,
    pub lot: Option<i64>,
    pub kind: String,
    pub amount: i64,
    pub shortfall: i64,
    #[sqlx(rename = "ref")]
    #[serde(rename = "ref")]
    pub reference: String,
    pub description: Option<String>,
    pub actor: Option<String>,
    pub created_at: i64,
}

/// A journal entry to write.
#[derive(Debug, Clone, Default)]
pub struct NewEntry<'a> {
    pub account: &'a str,
    pub lot: Option<i64>,
    pub kind: &'a str,
    pub amount: i64,
    pub shortfall: i64,
    pub reference: &'a str,
    pub description: Option<&'a str>,
    pub actor: Option<&'a str>,
}

/// A consumption to record (see [`Tx::insert_consumptions`]).
#[derive(Debug, Clone)]
pub struct NewConsumption<'a> {
    pub account: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub amount: i64,
    pub description: Option<&'a str>,
    pub balance_after: i64,
}

/// A consumption already recorded under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsumptionRow {
    pub request_hash: String,
    pub amount: i64,
    pub description: Option<String>,
    pub balance_after: i64,
    pub created_at: i64,
}

/// One subscription row by id (`$1`).
pub(crate) const SUBSCRIPTION_BY_ID: &str = "SELECT id, account, customer, status, price, product, quantity, \
     current_period_start, current_period_end, cancel_at_period_end, canceled_at, event_created, raw, updated_at \
     FROM subscriptions WHERE id = $1";

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub account: Option<String>,
    pub customer: String,
    pub status: String,
    pub price: Option<String>,
    pub product: Option<String>,
    pub quantity: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub event_created: i64,
    #[serde(skip)]
    pub raw: String,
    pub updated_at: i64,
}

impl SubscriptionRow {
    /// The row as a write of the generic pipeline.
    fn object(&self) -> ObjectWrite {
        ObjectWrite {
            id: self.id.clone(),
            version: self.event_created,
            deleted: false,
            cells: vec![
                Cell::Text(self.account.clone()),
                Cell::Text(Some(self.customer.clone())),
                Cell::Text(Some(self.status.clone())),
                Cell::Text(self.price.clone()),
                Cell::Text(self.product.clone()),
                Cell::Int(self.quantity),
                Cell::Int(self.current_period_start),
                Cell::Int(self.current_period_end),
                Cell::Bool(self.cancel_at_period_end),
                Cell::Int(self.canceled_at),
            ],
            raw: self.raw.clone(),
        }
    }
}

/// A checkout session created through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CheckoutRow {
    pub id: String,
    pub account: String,
    pub customer: Option<String>,
    pub mode: String,
    pub price: String,
    pub product: String,
    pub quantity: i64,
    pub status: String,
    pub payment_status: Option<String>,
    pub url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Whole credits per unit the product had when the session was created: what the
    /// session grants, whenever it is paid.
    pub credit_amount: Option<i64>,
}

/// An audit record to write.
#[derive(Debug, Clone, Default)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub result: &'a str,
}

/// An audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub origin: Option<String>,
    pub result: String,
}

/// An account with its totals, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub stripe_customer: Option<String>,
    pub created_at: i64,
}

/// A journal entry as the transaction's events to the app need it.
fn note_of(e: &NewEntry<'_>) -> crate::outbox::JournalNote {
    crate::outbox::JournalNote {
        account: e.account.to_owned(),
        kind: e.kind.to_owned(),
        amount: e.amount,
        shortfall: e.shortfall,
        reference: e.reference.to_owned(),
        lot: e.lot,
    }
}

/// `$1, $2, …, $n`: an SQLite `IN` list.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `VALUES` rows of a multi-row insert: `rows` tuples of `width` parameters
/// numbered in order (`$1` …), each followed by one parameter all rows share, numbered
/// last (`now`, bound after the rows).
fn rows_sharing_last(rows: usize, width: usize) -> String {
    let shared = rows * width + 1;
    (0..rows)
        .map(|r| {
            let own: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({}, ${shared})", own.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Tx {
    /// Creates the account if needed and locks it until this transaction ends.
    pub async fn lock_account(&mut self, account: &str, now: i64) -> Result<(), StoreError> {
        const INSERT: &str = "INSERT INTO credit_accounts (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
        match &mut self.conn {
            // The transaction holds SQLite's write lock already.
            TxConn::Sqlite(t, _) => {
                sqlx::query(INSERT)
                    .bind(account)
                    .bind(now)
                    .execute(&mut **t)
                    .await?;
            }
            // Lock first (one round trip for an existing account); create and lock if new.
            TxConn::Postgres(t) => {
                const LOCK: &str = "SELECT id FROM credit_accounts WHERE id = $1 FOR UPDATE";
                let found: Option<String> = sqlx::query_scalar(LOCK)
                    .bind(account)
                    .fetch_optional(&mut **t)
                    .await?;
                if found.is_none() {
                    sqlx::query(INSERT)
                        .bind(account)
                        .bind(now)
                        .execute(&mut **t)
                        .await?;
                    sqlx::query(LOCK).bind(account).execute(&mut **t).await?;
                }
            }
        }
        Ok(())
    }

    /// The account's lots that still hold credits, oldest first.
    pub async fn open_lots(&mut self, account: &str) -> Result<Vec<LotRow>, StoreError> {
        let sql = format!(
            "SELECT {LOT_COLUMNS} FROM credit_lots WHERE account = $1 AND remaining > 0 ORDER BY id"
        );
        let rows = on_tx!(self, t => sqlx::query_as(&sql).bind(account).fetch_all(&mut **t).await?);
        Ok(rows)
    }

    /// Every lot of the account, spent and expired ones too.
    pub async fn account_lots(&mut self, account: &str) -> Result<Vec<LotRow>, StoreError> {
        let sql = format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE account = $1 ORDER BY id");
        let rows = on_tx!(self, t => sqlx::query_as(&sql).bind(account).fetch_all(&mut **t).await?);
        Ok(rows)
    }

    /// The account's lots whose take-backs left debt, oldest first: what a new grant
    /// settles (read on every grant, so only those rows).
    pub async fn lots_with_debt(&mut self, account: &str) -> Result<Vec<LotRow>, StoreError> {
        let sql = format!(
            "SELECT {LOT_COLUMNS} FROM credit_lots WHERE account = $1 AND debt > 0 ORDER BY id"
        );
        let rows = on_tx!(self, t => sqlx::query_as(&sql).bind(account).fetch_all(&mut **t).await?);
        Ok(rows)
    }

    /// Records a grant; `None` when a lot with this `source_ref` exists (granted before).
    pub async fn insert_lot(&mut self, lot: &NewLot, now: i64) -> Result<Option<i64>, StoreError> {
        let source = lot.source.unwrap_or(LotSource::Purchase).as_str();
        let id = on_tx!(self, t => sqlx::query_scalar(
            "INSERT INTO credit_lots (account, source, source_ref, amount, remaining, expires_at, product, price, quantity, \
             payment_ref, paid_amount, currency, created_at, origin, subscription, period_end) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (source_ref) DO NOTHING RETURNING id"
        )
        .bind(&lot.account)
        .bind(source)
        .bind(&lot.source_ref)
        .bind(lot.amount)
        .bind(lot.expires_at)
        .bind(&lot.product)
        .bind(&lot.price)
        .bind(lot.quantity)
        .bind(&lot.payment_ref)
        .bind(lot.paid_amount)
        .bind(&lot.currency)
        .bind(now)
        .bind(&lot.origin)
        .bind(&lot.subscription)
        .bind(lot.period_end)
        .fetch_optional(&mut **t)
        .await?);
        Ok(id)
    }

    /// Takes `n` from a lot. An error if the lot holds less: the caller's allocation was
    /// made from a stale read, which the account lock rules out.
    pub async fn take_from_lot(&mut self, lot: i64, n: i64) -> Result<(), StoreError> {
        let changed = on_tx!(self, t => sqlx::query(
            "UPDATE credit_lots SET remaining = remaining - $2 WHERE id = $1 AND remaining >= $2"
        )
        .bind(lot)
        .bind(n)
        .execute(&mut **t)
        .await?
        .rows_affected());
        if changed != 1 {
            return Err(StoreError::Corrupt(format!(
                "lot {lot} holds less than {n} hundredths"
            )));
        }
        Ok(())
    }

    pub async fn insert_entry(&mut self, e: &NewEntry<'_>, now: i64) -> Result<i64, StoreError> {
        self.note_entry(|| note_of(e));
        let id = on_tx!(self, t => sqlx::query_scalar(
            "INSERT INTO credit_entries (account, lot, kind, amount, shortfall, ref, description, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
        )
        .bind(e.account)
        .bind(e.lot)
        .bind(e.kind)
        .bind(e.amount)
        .bind(e.shortfall)
        .bind(e.reference)
        .bind(e.description)
        .bind(e.actor)
        .bind(now)
        .fetch_one(&mut **t)
        .await?);
        Ok(id)
    }

    pub async fn find_consumption(
        &mut self,
        account: &str,
        key: &str,
    ) -> Result<Option<ConsumptionRow>, StoreError> {
        let row = on_tx!(self, t => sqlx::query_as(
            "SELECT request_hash, amount, description, balance_after, created_at FROM credit_consumptions \
             WHERE account = $1 AND idempotency_key = $2"
        )
        .bind(account)
        .bind(key)
        .fetch_optional(&mut **t)
        .await?);
        Ok(row)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_consumption(
        &mut self,
        account: &str,
        key: &str,
        request_hash: &str,
        amount: i64,
        description: Option<&str>,
        balance_after: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_tx!(self, t => sqlx::query(
            "INSERT INTO credit_consumptions (account, idempotency_key, request_hash, amount, description, balance_after, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account, idempotency_key) DO NOTHING"
        )
        .bind(account)
        .bind(key)
        .bind(request_hash)
        .bind(amount)
        .bind(description)
        .bind(balance_after)
        .bind(now)
        .execute(&mut **t)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Makes PostgreSQL plan each statement of this transaction with the values it is
    /// given, prepared or not (`SET LOCAL plan_cache_mode = force_custom_plan`): see the
    /// module's notes. Nothing on SQLite.
    pub async fn plan_each_statement(&mut self) -> Result<(), StoreError> {
        if let TxConn::Postgres(t) = &mut self.conn {
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// Locks the accounts until this transaction ends, in the order of their ids (as
    /// the single path's `lock_account` does one), creating those that do not exist;
    /// returns the ones this transaction created. On PostgreSQL, existing rows are
    /// locked first (one round trip in the common case); missing ones are inserted and
    /// then locked by a *separate* statement: a row another transaction created while
    /// our insert waited is only visible, and lockable, to a statement that starts
    /// after that transaction committed.
    pub async fn lock_accounts(
        &mut self,
        accounts: &[&str],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut sorted = accounts.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Ok(Vec::new());
        }
        let created: Vec<String> = match &mut self.conn {
            // The transaction holds SQLite's write lock already.
            TxConn::Sqlite(t, _) => {
                let sql = format!(
                    "INSERT INTO credit_accounts (id, created_at) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
                    (0..sorted.len())
                        .map(|i| format!("(${}, $1)", i + 2))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query_scalar(&sql).bind(now);
                for a in &sorted {
                    q = q.bind(*a);
                }
                q.fetch_all(&mut **t).await?
            }
            TxConn::Postgres(t) => {
                const LOCK: &str = "SELECT id, open_holds, top_up_below FROM credit_accounts WHERE id = ANY($1) \
                     ORDER BY id FOR UPDATE";
                let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(LOCK)
                    .bind(&sorted)
                    .fetch_all(&mut **t)
                    .await?;
                let with_holds: Vec<String> = rows
                    .iter()
                    .filter(|(_, n, _)| *n > 0)
                    .map(|(id, _, _)| id.clone())
                    .collect();
                // Accounts created below have no top-up either.
                self.top_up_hint = Some(
                    sorted
                        .iter()
                        .map(|a| {
                            let below = rows.iter().find(|r| r.0 == *a).and_then(|r| r.2);
                            ((*a).to_owned(), below)
                        })
                        .collect(),
                );
                let found: Vec<String> = rows.into_iter().map(|(id, _, _)| id).collect();
                // Accounts created below have no holds.
                self.holds_hint =
                    Some((sorted.iter().map(|a| (*a).to_owned()).collect(), with_holds));
                let missing: Vec<&str> = sorted
                    .iter()
                    .copied()
                    .filter(|a| !found.iter().any(|f| f == a))
                    .collect();
                if missing.is_empty() {
                    Vec::new()
                } else {
                    let created: Vec<String> = sqlx::query_scalar(
                        "INSERT INTO credit_accounts (id, created_at) SELECT a, $2 FROM unnest($1::text[]) AS a \
                         ORDER BY a ON CONFLICT (id) DO NOTHING RETURNING id",
                    )
                    .bind(&missing)
                    .bind(now)
                    .fetch_all(&mut **t)
                    .await?;
                    sqlx::query(LOCK).bind(&missing).execute(&mut **t).await?;
                    created
                }
            }
        };
        Ok(created)
    }

    /// Removes accounts this transaction created and then wrote nothing for (a
    /// consumption refused on an account nobody had used): a refusal leaves no trace,
    /// as on the single path, where the transaction that created it rolls back.
    pub async fn forget_new_accounts(&mut self, ids: &[&str]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                let sql = format!(
                    "DELETE FROM credit_accounts WHERE id IN ({})",
                    placeholders(ids.len())
                );
                let mut q = sqlx::query(&sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(&mut **t).await?;
            }
            TxConn::Postgres(t) => {
                sqlx::query("DELETE FROM credit_accounts WHERE id = ANY($1)")
                    .bind(ids)
                    .execute(&mut **t)
                    .await?;
            }
        }
        Ok(())
    }

    /// The consumptions already recorded under any of `keys` (`(account, key)` pairs), as
    /// `(account, key, row)`. A pair given twice may come back twice (PostgreSQL joins
    /// the arrays); callers key the rows by pair.
    pub async fn find_consumptions(
        &mut self,
        keys: &[(&str, &str)],
    ) -> Result<Vec<(String, String, ConsumptionRow)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        type Found = (String, String, String, i64, Option<String>, i64, i64);
        let rows: Vec<Found> = match &mut self.conn {
            // A row-value IN over the primary key's columns.
            TxConn::Sqlite(t, _) => {
                let sql = format!(
                    "SELECT account, idempotency_key, request_hash, amount, description, balance_after, created_at \
                     FROM credit_consumptions WHERE (account, idempotency_key) IN (VALUES {})",
                    (0..keys.len())
                        .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query_as(&sql);
                for (account, key) in keys {
                    q = q.bind(*account).bind(*key);
                }
                q.fetch_all(&mut **t).await?
            }
            // Over arrays: see the module's notes on PostgreSQL statements.
            TxConn::Postgres(t) => {
                let (accounts, keys): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
                sqlx::query_as(
                    "SELECT c.account, c.idempotency_key, c.request_hash, c.amount, c.description, c.balance_after, c.created_at \
                     FROM credit_consumptions c JOIN UNNEST($1::text[], $2::text[]) AS k (account, key) \
                     ON c.account = k.account AND c.idempotency_key = k.key",
                )
                .bind(&accounts)
                .bind(&keys)
                .fetch_all(&mut **t)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(
                |(account, key, request_hash, amount, description, balance_after, created_at)| {
                    (
                        account,
                        key,
                        ConsumptionRow {
                            request_hash,
                            amount,
                            description,
                            balance_after,
                            created_at,
                        },
                    )
                },
            )
            .collect())
    }

    /// The open lots (something remaining) of `accounts`, oldest first.
    pub async fn open_lots_of(&mut self, accounts: &[&str]) -> Result<Vec<LotRow>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                let sql = format!(
                    "SELECT {LOT_COLUMNS} FROM credit_lots WHERE account IN ({}) AND remaining > 0 ORDER BY id",
                    placeholders(accounts.len())
                );
                let mut q = sqlx::query_as(&sql);
                for a in accounts {
                    q = q.bind(*a);
                }
                q.fetch_all(&mut **t).await?
            }
            TxConn::Postgres(t) => {
                let sql = format!(
                    "SELECT {LOT_COLUMNS} FROM credit_lots WHERE account = ANY($1) AND remaining > 0 ORDER BY id"
                );
                sqlx::query_as(&sql)
                    .bind(accounts)
                    .fetch_all(&mut **t)
                    .await?
            }
        };
        Ok(rows)
    }

    /// Takes from several lots in one statement: `takes` is `(lot, n)`, each lot once.
    /// An error if any lot holds less (the allocation was made from a stale read, which
    /// the account locks rule out).
    pub async fn take_from_lots(&mut self, takes: &[(i64, i64)]) -> Result<(), StoreError> {
        if takes.is_empty() {
            return Ok(());
        }
        let changed = match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                let mut n = 0;
                let mut next = || {
                    n += 1;
                    format!("${n}")
                };
                let mut cases = String::new();
                let mut ids = Vec::new();
                for _ in takes {
                    cases.push_str(&format!(" WHEN {} THEN {}", next(), next()));
                }
                for _ in takes {
                    ids.push(next());
                }
                let sql = format!(
                    "UPDATE credit_lots SET remaining = remaining - (CASE id{cases} END) WHERE id IN ({})",
                    ids.join(", ")
                );
                let mut q = sqlx::query(&sql);
                for (lot, n) in takes {
                    q = q.bind(*lot).bind(*n);
                }
                for (lot, _) in takes {
                    q = q.bind(*lot);
                }
                q.execute(&mut **t).await?.rows_affected()
            }
            TxConn::Postgres(t) => {
                let (lots, amounts): (Vec<i64>, Vec<i64>) = takes.iter().copied().unzip();
                sqlx::query(
                    "UPDATE credit_lots l SET remaining = l.remaining - t.n \
                     FROM UNNEST($1::bigint[], $2::bigint[]) AS t (id, n) WHERE l.id = t.id",
                )
                .bind(&lots)
                .bind(&amounts)
                .execute(&mut **t)
                .await?
                .rows_affected()
            }
        };
        if changed != takes.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "{} of {} lots to take from were found",
                changed,
                takes.len()
            )));
        }
        Ok(())
    }

    /// Journal entries in one statement.
    pub async fn insert_entries(
        &mut self,
        entries: &[NewEntry<'_>],
        now: i64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        for e in entries {
            self.note_entry(|| note_of(e));
        }
        // In the group's order: entry ids follow it.
        match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                for chunk in entries.chunks(500) {
                    let sql = format!(
                        "INSERT INTO credit_entries (account, lot, kind, amount, shortfall, ref, description, actor, created_at) VALUES {}",
                        rows_sharing_last(chunk.len(), 8)
                    );
                    let mut q = sqlx::query(&sql);
                    for e in chunk {
                        q = q
                            .bind(e.account)
                            .bind(e.lot)
                            .bind(e.kind)
                            .bind(e.amount)
                            .bind(e.shortfall)
                            .bind(e.reference)
                            .bind(e.description)
                            .bind(e.actor);
                    }
                    q.bind(now).execute(&mut **t).await?;
                }
            }
            TxConn::Postgres(t) => {
                sqlx::query(
                    "INSERT INTO credit_entries (account, lot, kind, amount, shortfall, ref, description, actor, created_at) \
                     SELECT account, lot, kind, amount, shortfall, ref, description, actor, $9 \
                     FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[]) \
                     WITH ORDINALITY AS e (account, lot, kind, amount, shortfall, ref, description, actor, n) \
                     ORDER BY n",
                )
                .bind(entries.iter().map(|e| e.account).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.lot).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.kind).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.amount).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.shortfall).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.reference).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.description).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.actor).collect::<Vec<_>>())
                .bind(now)
                .execute(&mut **t)
                .await?;
            }
        }
        Ok(())
    }

    /// Records consumptions in one statement; returns how many were new (a key recorded
    /// meanwhile is left as it was, and the caller must not commit).
    pub async fn insert_consumptions(
        &mut self,
        rows: &[NewConsumption<'_>],
        now: i64,
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                let sql = format!(
                    "INSERT INTO credit_consumptions (account, idempotency_key, request_hash, amount, description, balance_after, created_at) \
                     VALUES {} ON CONFLICT (account, idempotency_key) DO NOTHING",
                    rows_sharing_last(rows.len(), 6)
                );
                let mut q = sqlx::query(&sql);
                for r in rows {
                    q = q
                        .bind(r.account)
                        .bind(r.key)
                        .bind(r.request_hash)
                        .bind(r.amount)
                        .bind(r.description)
                        .bind(r.balance_after);
                }
                q.bind(now).execute(&mut **t).await?.rows_affected()
            }
            TxConn::Postgres(t) => sqlx::query(
                "INSERT INTO credit_consumptions (account, idempotency_key, request_hash, amount, description, balance_after, created_at) \
                 SELECT account, key, request_hash, amount, description, balance_after, $7 \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) \
                 WITH ORDINALITY AS c (account, key, request_hash, amount, description, balance_after, n) \
                 ORDER BY n ON CONFLICT (account, idempotency_key) DO NOTHING",
            )
            .bind(rows.iter().map(|r| r.account).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.key).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.request_hash).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.amount).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.description).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.balance_after).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut **t)
            .await?
            .rows_affected(),
        };
        Ok(n)
    }

    /// Claims a grant's origin (a session or invoice); false when it was claimed before,
    /// in which case nothing of it may be written again.
    pub async fn claim_origin(&mut self, o: &NewOrigin, now: i64) -> Result<bool, StoreError> {
        let source = o.source.unwrap_or(LotSource::Purchase).as_str();
        let id: Option<String> = on_tx!(self, t => sqlx::query_scalar(
            "INSERT INTO credit_origins (id, account, kind, paid_amount, currency, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id"
        )
        .bind(&o.id)
        .bind(&o.account)
        .bind(source)
        .bind(o.paid_amount)
        .bind(&o.currency)
        .bind(now)
        .fetch_optional(&mut **t)
        .await?);
        Ok(id.is_some())
    }

    /// Creates (or finds) the meeting point `reference` and locks it until this transaction
    /// ends; sets its origin if it has none. Returns the origin it leads to, if known.
    /// A grant and a reversal of the same payment both pass here before reading each
    /// other's rows, so on PostgreSQL the second waits for the first to commit.
    pub async fn link(
        &mut self,
        reference: &str,
        origin: Option<&str>,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let found: Option<String> = on_tx!(self, t => sqlx::query_scalar(
            "INSERT INTO credit_links (ref, origin, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (ref) DO UPDATE SET origin = COALESCE(credit_links.origin, excluded.origin) \
             RETURNING origin"
        )
        .bind(reference)
        .bind(origin)
        .bind(now)
        .fetch_one(&mut **t)
        .await?);
        Ok(found)
    }

    /// Records a reversal, or updates the one recorded: `active` only ever goes from
    /// true to false (a failed refund never succeeds again; a won dispute stays won), so
    /// the result does not depend on the order of the events. A refund first seen on a
    /// credit note (linked to its invoice) takes its payment's link when its own event
    /// names it: a payment always leads to the grant it paid, an invoice only when the
    /// invoice itself granted.
    pub async fn record_reversal(&mut self, r: &NewReversal, now: i64) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "INSERT INTO credit_reversals (id, kind, link, amount, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (id) DO UPDATE SET active = (credit_reversals.active AND excluded.active), \
             link = CASE WHEN substr(credit_reversals.link, 1, 3) = 'in_' AND substr(excluded.link, 1, 3) <> 'in_' \
                    THEN excluded.link ELSE credit_reversals.link END, \
             updated_at = excluded.updated_at"
        )
        .bind(&r.id)
        .bind(r.kind.as_str())
        .bind(&r.link)
        .bind(r.amount)
        .bind(r.active)
        .bind(now)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The lots an origin granted, oldest first.
    pub async fn origin_lots(&mut self, origin: &str) -> Result<Vec<LotRow>, StoreError> {
        let sql = format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE origin = $1 ORDER BY id");
        let rows = on_tx!(self, t => sqlx::query_as(&sql).bind(origin).fetch_all(&mut **t).await?);
        Ok(rows)
    }

    /// Money of the active refunds, disputes and credit notes of every payment linked to
    /// `origin` (and of the origin itself: credit notes name their invoice).
    pub async fn reversed_money(&mut self, origin: &str) -> Result<i64, StoreError> {
        let sum: Option<i64> = on_tx!(self, t => sqlx::query_scalar(
            "SELECT CAST(SUM(r.amount) AS BIGINT) FROM credit_reversals r JOIN credit_links l ON l.ref = r.link \
             WHERE l.origin = $1 AND r.active AND r.kind IN ('refund', 'dispute', 'credit_note')"
        )
        .bind(origin)
        .fetch_one(&mut **t)
        .await?);
        Ok(sum.unwrap_or(0))
    }

    /// Sets a grant lot's debt and what prorations took from it.
    pub async fn set_lot_state(
        &mut self,
        lot: i64,
        debt: i64,
        prorated: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("UPDATE credit_lots SET debt = $2, prorated = $3 WHERE id = $1")
            .bind(lot)
            .bind(debt)
            .bind(prorated)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Where grant lot `lot`'s refunds and disputes took their credits from:
    /// `(from_lot, amount)`, only non-zero ones.
    pub async fn takes_of(&mut self, lot: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = on_tx!(self, t => sqlx::query_as(
            "SELECT from_lot, amount FROM credit_takes WHERE lot = $1 AND amount <> 0 ORDER BY from_lot"
        )
        .bind(lot)
        .fetch_all(&mut **t)
        .await?);
        Ok(rows)
    }

    /// What the reversals of *other* grant lots took from `lot`: `(grant lot, amount)`.
    pub async fn foreign_takes(&mut self, lot: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = on_tx!(self, t => sqlx::query_as(
            "SELECT lot, amount FROM credit_takes WHERE from_lot = $1 AND lot <> $1 AND amount > 0 ORDER BY lot"
        )
        .bind(lot)
        .fetch_all(&mut **t)
        .await?);
        Ok(rows)
    }

    /// One lot by id.
    pub async fn lot(&mut self, id: i64) -> Result<Option<LotRow>, StoreError> {
        let sql = format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE id = $1");
        let row = on_tx!(self, t => sqlx::query_as(&sql).bind(id).fetch_optional(&mut **t).await?);
        Ok(row)
    }

    /// Adds `delta` (negative for a give-back) to what `lot`'s reversals took from `from_lot`.
    pub async fn add_take(
        &mut self,
        lot: i64,
        from_lot: i64,
        delta: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "INSERT INTO credit_takes (lot, from_lot, amount) VALUES ($1, $2, $3) \
             ON CONFLICT (lot, from_lot) DO UPDATE SET amount = credit_takes.amount + excluded.amount"
        )
        .bind(lot)
        .bind(from_lot)
        .bind(delta)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The account an origin granted to.
    pub async fn origin_account(&mut self, origin: &str) -> Result<Option<String>, StoreError> {
        let account = on_tx!(self, t => sqlx::query_scalar("SELECT account FROM credit_origins WHERE id = $1")
            .bind(origin)
            .fetch_optional(&mut **t)
            .await?);
        Ok(account)
    }

    /// Whether an origin was claimed (its grant recorded).
    pub async fn origin_known(&mut self, origin: &str) -> Result<bool, StoreError> {
        Ok(self.origin_account(origin).await?.is_some())
    }

    /// A lot by its `source_ref`.
    pub async fn lot_by_ref(&mut self, source_ref: &str) -> Result<Option<LotRow>, StoreError> {
        let sql = format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE source_ref = $1");
        let row = on_tx!(self, t => sqlx::query_as(&sql).bind(source_ref).fetch_optional(&mut **t).await?);
        Ok(row)
    }

    /// Puts `n` back into a lot (a reversal undone). An error if that would exceed what
    /// the lot granted: the caller's arithmetic is wrong.
    pub async fn give_to_lot(&mut self, lot: i64, n: i64) -> Result<(), StoreError> {
        let changed = on_tx!(self, t => sqlx::query(
            "UPDATE credit_lots SET remaining = remaining + $2 WHERE id = $1 AND remaining + $2 <= amount"
        )
        .bind(lot)
        .bind(n)
        .execute(&mut **t)
        .await?
        .rows_affected());
        if changed != 1 {
            return Err(StoreError::Corrupt(format!(
                "lot {lot} cannot take back {n} hundredths"
            )));
        }
        Ok(())
    }

    /// Attaches to `lot` the proration take-backs met at `link` that no lot holds yet,
    /// except those of the lot's own invoice (`origin`): a line never takes back from a
    /// lot of its own invoice. Returns how many.
    pub async fn attach_prorations(
        &mut self,
        link: &str,
        lot: i64,
        origin: &str,
    ) -> Result<u64, StoreError> {
        let own = format!("{origin}/%");
        let n = on_tx!(self, t => sqlx::query(
            "UPDATE credit_reversals SET lot = $2 WHERE link = $1 AND kind = 'proration' AND lot IS NULL \
             AND id NOT LIKE $3"
        )
        .bind(link)
        .bind(lot)
        .bind(&own)
        .execute(&mut **t)
        .await?
        .rows_affected());
        Ok(n)
    }

    /// Attaches one proration take-back to `lot`.
    pub async fn attach_proration(&mut self, id: &str, lot: i64) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "UPDATE credit_reversals SET lot = $2 WHERE id = $1 AND kind = 'proration' AND lot IS NULL"
        )
        .bind(id)
        .bind(lot)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The standing proration take-backs attached to `lot`: `(id, credits, waived)`, where
    /// the id is `in_…/…` (the invoice that carried it, then the line) and `waived` marks
    /// one recorded before migration 15 (what its lot cannot give is waived, not debt).
    pub async fn prorations_of(
        &mut self,
        lot: i64,
    ) -> Result<Vec<(String, i64, bool)>, StoreError> {
        let rows = on_tx!(self, t => sqlx::query_as(
            "SELECT id, amount, waived FROM credit_reversals WHERE lot = $1 AND kind = 'proration' AND active ORDER BY id"
        )
        .bind(lot)
        .fetch_all(&mut **t)
        .await?);
        Ok(rows)
    }

    /// What was paid for an origin (minor units), if it was claimed.
    pub async fn origin_paid(&mut self, origin: &str) -> Result<Option<i64>, StoreError> {
        let paid = on_tx!(self, t => sqlx::query_scalar("SELECT paid_amount FROM credit_origins WHERE id = $1")
            .bind(origin)
            .fetch_optional(&mut **t)
            .await?);
        Ok(paid)
    }

    /// The origins of the lots that proration take-backs carried by invoice `origin`
    /// are attached to: a refund of that invoice changes what those take-backs keep.
    pub async fn origins_prorated_by(&mut self, origin: &str) -> Result<Vec<String>, StoreError> {
        let own = format!("{origin}/%");
        let rows: Vec<Option<String>> = on_tx!(self, t => sqlx::query_scalar(
            "SELECT DISTINCT l.origin FROM credit_reversals r JOIN credit_lots l ON l.id = r.lot \
             WHERE r.kind = 'proration' AND r.id LIKE $1 ORDER BY l.origin"
        )
        .bind(&own)
        .fetch_all(&mut **t)
        .await?);
        Ok(rows.into_iter().flatten().collect())
    }

    /// The account's lots for a plan period (subscription, price, period end) granted by
    /// other invoices than `origin`, oldest first: where a proration take-back that does
    /// not name the line it credits comes from. Lots granted before migration 7 have no
    /// subscription; they match on price and period end.
    pub async fn plan_lots(
        &mut self,
        account: &str,
        subscription: &str,
        price: &str,
        period_end: i64,
        origin: &str,
    ) -> Result<Vec<LotRow>, StoreError> {
        let sql = format!(
            "SELECT {LOT_COLUMNS} FROM credit_lots WHERE account = $1 AND (subscription = $2 OR subscription IS NULL) \
             AND price = $3 AND period_end = $4 AND origin <> $5 ORDER BY id"
        );
        let rows = on_tx!(self, t => sqlx::query_as(&sql)
            .bind(account)
            .bind(subscription)
            .bind(price)
            .bind(period_end)
            .bind(origin)
            .fetch_all(&mut **t)
            .await?);
        Ok(rows)
    }

    /// A lot granted before migration 7 for `price` by invoice `invoice` (one lot per
    /// invoice then, `source_ref` the invoice).
    pub async fn legacy_invoice_lot(
        &mut self,
        invoice: &str,
        price: &str,
    ) -> Result<Option<LotRow>, StoreError> {
        let sql =
            format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE source_ref = $1 AND price = $2");
        let row = on_tx!(self, t => sqlx::query_as(&sql).bind(invoice).bind(price).fetch_optional(&mut **t).await?);
        Ok(row)
    }

    /// Stores a subscription through the generic pipeline ([`SUBSCRIPTIONS`]): unless the
    /// stored one comes from a later event, or from an event of the same second with
    /// other content (a tie, counted in `ties`: refetch, then write with
    /// [`Ties::Refresh`]); the account once known is kept.
    pub async fn upsert_subscriptions(
        &mut self,
        rows: &[SubscriptionRow],
        ties: Ties,
    ) -> Result<WriteCounts, StoreError> {
        let writes: Vec<ObjectWrite> = rows.iter().map(SubscriptionRow::object).collect();
        let now = rows.iter().map(|r| r.updated_at).max().unwrap_or(0);
        // Only subscriptions without an account need their customer's (see
        // `adopt_subscriptions`). Their customers are locked before the subscription
        // rows: the customer writer takes this lock, then these rows; taking them in the
        // same order cannot deadlock.
        let customers: Vec<&str> = rows
            .iter()
            .filter(|r| r.account.is_none())
            .map(|r| r.customer.as_str())
            .collect();
        self.lock_customers(&customers).await?;
        let counts = self
            .upsert_objects(&SUBSCRIPTIONS, &writes, ties, now)
            .await?;
        self.adopt_subscriptions(&customers).await?;
        Ok(counts)
    }

    /// On PostgreSQL, a lock per customer until the transaction ends (see
    /// [`Tx::adopt_subscriptions`]); nothing on SQLite, whose writers take turns anyway.
    async fn lock_customers(&mut self, customers: &[&str]) -> Result<(), StoreError> {
        if let TxConn::Postgres(t) = &mut self.conn
            && !customers.is_empty()
        {
            let mut keys: Vec<&str> = customers.to_vec();
            keys.sort_unstable();
            keys.dedup();
            // In one order (the array's), so two transactions never wait in a cycle.
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtext('stripe_manager.customer.' || c)) \
                 FROM UNNEST($1::text[]) AS u(c)",
            )
            .bind(&keys)
            .persistent(false)
            .execute(&mut **t)
            .await?;
        }
        Ok(())
    }

    /// Gives subscriptions of `customers` that have no account yet the account of their
    /// customer's `metadata.account` (from the customers mirror). Both writers call it
    /// after their write: the customer's (for subscriptions that came first) and the
    /// subscriptions' (for a customer that came first). On PostgreSQL each takes a
    /// transaction lock per customer first, so of two concurrent transactions the later
    /// one sees the other's row once it committed: without it, a customer and its
    /// subscription applied at once by two instances each missed the other, and the
    /// subscription stayed without an account.
    pub async fn adopt_subscriptions(&mut self, customers: &[&str]) -> Result<u64, StoreError> {
        if customers.is_empty() {
            return Ok(0);
        }
        self.lock_customers(customers).await?;
        let marks: Vec<String> = (1..=customers.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE subscriptions SET account = (SELECT c.account FROM customers c \
             WHERE c.id = subscriptions.customer AND NOT c.deleted) \
             WHERE account IS NULL AND customer IN ({}) AND EXISTS (SELECT 1 FROM customers c \
             WHERE c.id = subscriptions.customer AND c.account IS NOT NULL AND NOT c.deleted)",
            marks.join(", ")
        );
        let n = on_tx!(self, t => {
            let mut q = sqlx::query(&sql);
            for c in customers {
                q = q.bind(*c);
            }
            q.execute(&mut **t).await?.rows_affected()
        });
        Ok(n)
    }

    /// Links a subscription to an account (from its checkout session), whatever the
    /// order in which the session and subscription events arrive.
    pub async fn link_subscription(
        &mut self,
        id: &str,
        account: &str,
        customer: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "INSERT INTO subscriptions (id, account, customer, status, cancel_at_period_end, event_created, raw, updated_at) \
             VALUES ($1, $2, $3, 'incomplete', FALSE, 0, '{}', $4) \
             ON CONFLICT (id) DO UPDATE SET account = excluded.account"
        )
        .bind(id)
        .bind(account)
        .bind(customer)
        .bind(now)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Links an account to its Stripe customer unless it has one.
    pub async fn link_customer(&mut self, account: &str, customer: &str) -> Result<(), StoreError> {
        let linked = on_tx!(self, t => sqlx::query(
            "UPDATE credit_accounts SET stripe_customer = $2 WHERE id = $1 AND stripe_customer IS NULL \
             AND (unlinked_customer IS NULL OR unlinked_customer <> $2) \
             AND NOT EXISTS (SELECT 1 FROM credit_accounts WHERE stripe_customer = $2)"
        )
        .bind(account)
        .bind(customer)
        .execute(&mut **t)
        .await?
        .rows_affected());
        // The account's entitlements are now its customer's.
        self.entitlements_written |= linked > 0;
        Ok(())
    }

    /// A trial that ended before any paid invoice of its subscription (canceled during
    /// the trial): the unspent credits of its trial (lots for periods ending by
    /// `trial_end`) expire at `ended_at` (never later than they would anyway), each lot
    /// changed noted in the journal (amount 0). Lots that money paid for are not touched;
    /// nor is anything once a paid invoice exists. Run under the account's lock, as
    /// [`Tx::trial_ended_early`] is, so a trial invoice and its cancellation on two
    /// instances see each other. Returns the lots changed.
    pub async fn end_trial_lots(
        &mut self,
        subscription: &str,
        (ended_at, trial_end): (i64, i64),
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64, String)> = on_tx!(self, t => sqlx::query_as(
            "UPDATE credit_lots SET expires_at = $2 WHERE subscription = $1 AND source = 'subscription' \
             AND COALESCE(paid_amount, 0) = 0 AND (expires_at IS NULL OR expires_at > $2) \
             AND COALESCE(period_end, expires_at) <= $3 \
             AND NOT EXISTS (SELECT 1 FROM credit_lots p WHERE p.subscription = $1 AND p.paid_amount > 0) \
             RETURNING id, account"
        )
        .bind(subscription)
        .bind(ended_at)
        .bind(trial_end)
        .fetch_all(&mut **t)
        .await?);
        for (lot, account) in &rows {
            self.insert_entry(
                &NewEntry {
                    account,
                    lot: Some(*lot),
                    kind: "trial_end",
                    reference: subscription,
                    description: Some(
                        "trial canceled before any payment: its unspent credits expire",
                    ),
                    ..Default::default()
                },
                now,
            )
            .await?;
        }
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// When the trial of subscription `subscription` ended early, if it did: `(ended_at,
    /// trial_end)` of a canceled subscription that had a trial and no lot money paid for.
    /// Read in the transaction, after the account's lock (see [`Tx::end_trial_lots`]).
    pub async fn trial_ended_early(
        &mut self,
        subscription: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let row: Option<(String, String)> = on_tx!(self, t => sqlx::query_as(
            "SELECT status, raw FROM subscriptions WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM credit_lots p WHERE p.subscription = $1 AND p.paid_amount > 0)"
        )
        .bind(subscription)
        .fetch_optional(&mut **t)
        .await?);
        let Some((status, raw)) = row else {
            return Ok(None);
        };
        if status != "canceled" {
            return Ok(None);
        }
        let raw: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
        if raw["trial_start"].is_null() {
            return Ok(None);
        }
        Ok(raw["ended_at"].as_i64().zip(raw["trial_end"].as_i64()))
    }

    /// Unlinks a customer Stripe deleted from the account it was linked to (kept as
    /// `unlinked_customer`); returns the account, if one was linked.
    pub async fn unlink_customer(&mut self, customer: &str) -> Result<Option<String>, StoreError> {
        let account: Option<String> = on_tx!(self, t => sqlx::query_scalar(
            "UPDATE credit_accounts SET stripe_customer = NULL, unlinked_customer = $1 \
             WHERE stripe_customer = $1 RETURNING id"
        )
        .bind(customer)
        .fetch_optional(&mut **t)
        .await?);
        self.entitlements_written |= account.is_some();
        Ok(account)
    }

    /// Updates a session's status as Stripe reports it. A paid session never becomes
    /// unpaid again, and a finished one never open again, whatever order events arrive in.
    pub async fn update_checkout(
        &mut self,
        id: &str,
        status: &str,
        payment_status: Option<&str>,
        customer: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "UPDATE checkout_sessions SET \
             status = CASE WHEN status IN ('complete', 'expired') AND $2 = 'open' THEN status ELSE $2 END, \
             payment_status = CASE WHEN payment_status = 'paid' THEN payment_status ELSE COALESCE($3, payment_status) END, \
             customer = COALESCE($4, customer), updated_at = $5 WHERE id = $1"
        )
        .bind(id)
        .bind(status)
        .bind(payment_status)
        .bind(customer)
        .bind(now)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn audit(&mut self, a: &NewAudit<'_>, now: i64) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, origin, result) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(now)
        .bind(a.actor)
        .bind(a.action)
        .bind(a.target)
        .bind(a.detail)
        .bind(a.origin)
        .bind(a.result)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }
}

impl Store {
    /// A lot by its `source_ref` (outside a transaction: what `credits import` checks
    /// before it writes).
    pub async fn lot_by_ref(&self, source_ref: &str) -> Result<Option<LotRow>, StoreError> {
        let sql = format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE source_ref = $1");
        let row = on_pool!(self, pool => sqlx::query_as(&sql).bind(source_ref).fetch_optional(pool).await?);
        Ok(row)
    }

    /// Every lot of the account (spent ones too), oldest first.
    pub async fn credit_lots(&self, account: &str) -> Result<Vec<LotRow>, StoreError> {
        let sql = format!("SELECT {LOT_COLUMNS} FROM credit_lots WHERE account = $1 ORDER BY id");
        let rows =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(account).fetch_all(pool).await?);
        Ok(rows)
    }

    /// The account's journal, newest first.
    pub async fn credit_entries(
        &self,
        account: &str,
        limit: u32,
    ) -> Result<Vec<EntryRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, account, lot, kind, amount, shortfall, ref, description, actor, created_at FROM credit_entries \
             WHERE account = $1 ORDER BY id DESC LIMIT $2"
        )
        .bind(account)
        .bind(i64::from(limit.max(1)))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// `(sum of entries, sum of remaining, outstanding debt)` for an account: the first
    /// two are equal unless the ledger is broken.
    pub async fn credit_totals(&self, account: &str) -> Result<(i64, i64, i64), StoreError> {
        let (journal, debt): (Option<i64>, Option<i64>) = on_pool!(self, pool => sqlx::query_as(
            "SELECT CAST(SUM(amount) AS BIGINT), CAST(SUM(shortfall) AS BIGINT) FROM credit_entries WHERE account = $1"
        )
        .bind(account)
        .fetch_one(pool)
        .await?);
        let lots: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT CAST(SUM(remaining) AS BIGINT) FROM credit_lots WHERE account = $1"
        )
        .bind(account)
        .fetch_one(pool)
        .await?);
        Ok((journal.unwrap_or(0), lots.unwrap_or(0), debt.unwrap_or(0)))
    }

    pub async fn account(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as("SELECT id, stripe_customer, created_at FROM credit_accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// The account that checked out with this Stripe customer (the link on the account
    /// row), not the customer's own metadata.
    pub async fn account_linked_to_customer(
        &self,
        customer: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM credit_accounts WHERE stripe_customer = $1")
            .bind(customer)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// The account a Stripe customer belongs to: the account that checked out with it,
    /// else the customer's `metadata.account` (a customer created outside this service).
    pub async fn account_for_customer(&self, customer: &str) -> Result<Option<String>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT account FROM (SELECT id AS account, 0 AS rank FROM credit_accounts WHERE stripe_customer = $1 \
             UNION ALL SELECT account, 1 AS rank FROM customers WHERE id = $1 AND account IS NOT NULL AND NOT deleted) a \
             ORDER BY rank LIMIT 1"
        )
            .bind(customer)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// The accounts linked to `customers` (at most a page of them: one bound parameter
    /// each), by customer.
    pub async fn accounts_for_customers(
        &self,
        customers: &[&str],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        if customers.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=customers.len()).map(|i| format!("${i}")).collect();
        // The account row's link wins over the customer's `metadata.account`: rows are
        // collected in order, so it comes last.
        let sql = format!(
            "SELECT customer, account FROM (SELECT stripe_customer AS customer, id AS account, 0 AS rank \
             FROM credit_accounts WHERE stripe_customer IN ({m}) UNION ALL SELECT id, account, 1 \
             FROM customers WHERE id IN ({m}) AND account IS NOT NULL AND NOT deleted) a ORDER BY rank DESC",
            m = marks.join(", ")
        );
        let rows: Vec<(String, String)> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(&sql);
            for c in customers {
                q = q.bind(*c);
            }
            q.fetch_all(pool).await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Accounts, most recent first.
    pub async fn list_accounts(&self, limit: u32) -> Result<Vec<AccountRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, stripe_customer, created_at FROM credit_accounts ORDER BY created_at DESC, id LIMIT $1"
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// Creates the account if needed and links its customer (once).
    /// Whether money paid for any lot of the subscription.
    pub async fn subscription_paid(&self, subscription: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM credit_lots WHERE subscription = $1 AND paid_amount > 0"
        )
        .bind(subscription)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    /// An open subscription-mode checkout of the account made after `since`, if any.
    pub async fn open_subscription_checkout(
        &self,
        account: &str,
        since: i64,
    ) -> Result<Option<String>, StoreError> {
        let id = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM checkout_sessions WHERE account = $1 AND mode = 'subscription' \
             AND status = 'open' AND created_at > $2 ORDER BY created_at DESC LIMIT 1"
        )
        .bind(account)
        .bind(since)
        .fetch_optional(pool)
        .await?);
        Ok(id)
    }

    /// The customer the account was linked to before Stripe deleted it, if any.
    pub async fn unlinked_customer(&self, account: &str) -> Result<Option<String>, StoreError> {
        let c: Option<Option<String>> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT unlinked_customer FROM credit_accounts WHERE id = $1"
        )
        .bind(account)
        .fetch_optional(pool)
        .await?);
        Ok(c.flatten())
    }

    pub async fn ensure_account(
        &self,
        account: &str,
        customer: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_account(account, now).await?;
        if let Some(c) = customer {
            tx.link_customer(account, c).await?;
        }
        tx.commit().await
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as(SUBSCRIPTION_BY_ID)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    pub async fn insert_checkout(&self, c: &CheckoutRow) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query(
            "INSERT INTO checkout_sessions (id, account, customer, mode, price, product, quantity, status, payment_status, url, \
             created_at, updated_at, credit_amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO NOTHING"
        )
        .bind(&c.id)
        .bind(&c.account)
        .bind(&c.customer)
        .bind(&c.mode)
        .bind(&c.price)
        .bind(&c.product)
        .bind(c.quantity)
        .bind(&c.status)
        .bind(&c.payment_status)
        .bind(&c.url)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.credit_amount)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn checkout(&self, id: &str) -> Result<Option<CheckoutRow>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, account, customer, mode, price, product, quantity, status, payment_status, url, created_at, updated_at, \
             credit_amount FROM checkout_sessions WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row)
    }

    /// Appends one audit record in a transaction of its own.
    pub async fn audit(&self, a: &NewAudit<'_>, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.audit(a, now).await?;
        tx.commit().await
    }

    /// One page of the audit log, newest first, with ids below `before` (keyset).
    pub async fn audit_log_page(
        &self,
        action: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, origin, result FROM audit_log \
             WHERE ($1 IS NULL OR action = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
        )
        .bind(action)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit.max(1)))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// One page of accounts, newest first (by creation, then id descending), after
    /// `before` = the (created_at, id) of the previous page's last row (keyset).
    pub async fn list_accounts_page(
        &self,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<AccountRow>, StoreError> {
        let limit = i64::from(limit.max(1));
        let rows = on_pool!(self, pool => match before {
            None => sqlx::query_as(
                "SELECT id, stripe_customer, created_at FROM credit_accounts \
                 ORDER BY created_at DESC, id DESC LIMIT $1"
            )
            .bind(limit)
            .fetch_all(pool)
            .await?,
            Some((at, id)) => sqlx::query_as(
                "SELECT id, stripe_customer, created_at FROM credit_accounts \
                 WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3"
            )
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?,
        });
        Ok(rows)
    }

    /// Whether a successful `billing.refund` already recorded Stripe's refund `id`: the
    /// same idempotency key sent again is answered with the same refund, which is then a
    /// replay, not a second refund. (Refund ids are `re_` and letters, digits and `_`;
    /// LIKE's wildcards are escaped all the same.)
    pub async fn refund_audited(&self, id: &str) -> Result<bool, StoreError> {
        let escaped = id
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%\"refund\":\"{escaped}\"%");
        let found: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM audit_log WHERE action = 'billing.refund' AND result = 'ok' \
             AND detail LIKE $1 ESCAPE '\\' LIMIT 1"
        )
        .bind(pattern)
        .fetch_optional(pool)
        .await?);
        Ok(found.is_some())
    }

    /// The audit log, newest first, optionally for one action.
    pub async fn audit_log(
        &self,
        action: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, origin, result FROM audit_log \
             WHERE ($1 IS NULL OR action = $1) ORDER BY id DESC LIMIT $2"
        )
        .bind(action)
        .bind(i64::from(limit.max(1)))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }
}
