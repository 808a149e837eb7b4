//! Holds' storage: credits reserved by an app, then captured, released or expired.
//!
//! A hold takes nothing from a lot; while it is open (`status = 'held'` and
//! `expires_at > now`) it lowers what the account may spend. Every change to an
//! account's holds happens in a [`Tx`] that holds the account's lock
//! ([`Tx::lock_account`]), like every other change to its credits, so "what is held"
//! read in that transaction stays true until it commits. The one way out of `held` is a
//! conditional update ([`Tx::settle_hold`]): a capture, a release and the expiry releaser
//! racing on one hold change it once.

use serde::Serialize;

use crate::{Store, StoreError, Tx, TxConn, on_pool, on_tx};

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HoldRow {
    pub id: String,
    pub account: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub amount: i64,
    pub description: Option<String>,
    pub status: String,
    pub captured: Option<i64>,
    pub balance_after: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub settled_at: Option<i64>,
}

const COLUMNS: &str = "id, account, idempotency_key, request_hash, amount, description, status, captured, \
     balance_after, created_at, expires_at, settled_at";

/// A hold to record.
#[derive(Debug, Clone)]
pub struct NewHold<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub idempotency_key: &'a str,
    pub request_hash: &'a str,
    pub amount: i64,
    pub description: Option<&'a str>,
    pub expires_at: i64,
}

/// How a hold left `held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Spent `captured` (the rest released); `balance_after` is the available balance.
    Captured {
        captured: i64,
        balance_after: i64,
    },
    Released,
    Expired,
}

impl Settlement {
    pub fn status(self) -> &'static str {
        match self {
            Settlement::Captured { .. } => "captured",
            Settlement::Released => "released",
            Settlement::Expired => "expired",
        }
    }
}

impl Tx {
    /// Records a hold; `false` when the account already has one under this key.
    pub async fn insert_hold(&mut self, h: &NewHold<'_>, now: i64) -> Result<bool, StoreError> {
        let n = on_tx!(self, t => sqlx::query(
            "INSERT INTO credit_holds (id, account, idempotency_key, request_hash, amount, description, status, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8) \
             ON CONFLICT (account, idempotency_key) DO NOTHING"
        )
        .bind(h.id)
        .bind(h.account)
        .bind(h.idempotency_key)
        .bind(h.request_hash)
        .bind(h.amount)
        .bind(h.description)
        .bind(now)
        .bind(h.expires_at)
        .execute(&mut **t)
        .await?
        .rows_affected());
        if n == 1 {
            self.count_open_holds(h.account, 1).await?;
        }
        Ok(n == 1)
    }

    /// Keeps `credit_accounts.open_holds` (see migration 16) with the holds.
    async fn count_open_holds(&mut self, account: &str, by: i64) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "UPDATE credit_accounts SET open_holds = open_holds + $2 WHERE id = $1"
        )
        .bind(account)
        .bind(by)
        .execute(&mut **t)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn hold_by_key(
        &mut self,
        account: &str,
        key: &str,
    ) -> Result<Option<HoldRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM credit_holds WHERE account = $1 AND idempotency_key = $2"
        );
        let row = on_tx!(self, t => sqlx::query_as(&sql).bind(account).bind(key).fetch_optional(&mut **t).await?);
        Ok(row)
    }

    /// The hold `id` of `account` (another account's hold is not found).
    pub async fn hold(&mut self, account: &str, id: &str) -> Result<Option<HoldRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM credit_holds WHERE id = $1 AND account = $2");
        let row = on_tx!(self, t => sqlx::query_as(&sql).bind(id).bind(account).fetch_optional(&mut **t).await?);
        Ok(row)
    }

    /// What `account`'s open holds reserve at `now`, leaving `except` out (the hold being
    /// captured). A hold past its `expires_at` reserves nothing, released yet or not.
    pub async fn held(
        &mut self,
        account: &str,
        except: Option<&str>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let held: Option<i64> = on_tx!(self, t => sqlx::query_scalar(
            "SELECT CAST(SUM(amount) AS BIGINT) FROM credit_holds \
             WHERE account = $1 AND status = 'held' AND expires_at > $2 AND id <> $3"
        )
        .bind(account)
        .bind(now)
        .bind(except.unwrap_or(""))
        .fetch_one(&mut **t)
        .await?);
        Ok(held.unwrap_or(0))
    }

    /// How many holds of `account` are open at `now`.
    pub async fn open_holds(&mut self, account: &str, now: i64) -> Result<i64, StoreError> {
        let n = on_tx!(self, t => sqlx::query_scalar(
            "SELECT COUNT(*) FROM credit_holds WHERE account = $1 AND status = 'held' AND expires_at > $2"
        )
        .bind(account)
        .bind(now)
        .fetch_one(&mut **t)
        .await?);
        Ok(n)
    }

    /// [`Tx::held`] for several accounts at once (a consumption group): `(account,
    /// held)` for those that hold something.
    pub async fn held_of(
        &mut self,
        accounts: &[&str],
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        // Locked by this transaction and known to have no hold: nothing to read.
        if let Some((locked, with_holds)) = &self.holds_hint
            && accounts
                .iter()
                .all(|a| locked.iter().any(|l| l == a) && !with_holds.iter().any(|w| w == a))
        {
            return Ok(Vec::new());
        }
        let rows = match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                let list = (2..accounts.len() + 2)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT account, CAST(SUM(amount) AS BIGINT) FROM credit_holds \
                     WHERE account IN ({list}) AND status = 'held' AND expires_at > $1 GROUP BY account"
                );
                let mut q = sqlx::query_as(&sql).bind(now);
                for a in accounts {
                    q = q.bind(*a);
                }
                q.fetch_all(&mut **t).await?
            }
            TxConn::Postgres(t) => {
                sqlx::query_as(
                    "SELECT account, CAST(SUM(amount) AS BIGINT) FROM credit_holds \
                     WHERE account = ANY($2) AND status = 'held' AND expires_at > $1 GROUP BY account",
                )
                .bind(now)
                .bind(accounts)
                .fetch_all(&mut **t)
                .await?
            }
        };
        Ok(rows)
    }

    /// Moves a hold out of `held`; `false` when it had left already (the caller reads
    /// it again for the first settlement's answer).
    pub async fn settle_hold(
        &mut self,
        id: &str,
        how: Settlement,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (captured, balance_after) = match how {
            Settlement::Captured {
                captured,
                balance_after,
            } => (Some(captured), Some(balance_after)),
            _ => (None, None),
        };
        let account: Option<String> = on_tx!(self, t => sqlx::query_scalar(
            "UPDATE credit_holds SET status = $2, captured = $3, balance_after = $4, settled_at = $5 \
             WHERE id = $1 AND status = 'held' RETURNING account"
        )
        .bind(id)
        .bind(how.status())
        .bind(captured)
        .bind(balance_after)
        .bind(now)
        .fetch_optional(&mut **t)
        .await?);
        match account {
            Some(account) => {
                self.count_open_holds(&account, -1).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Up to `limit` holds still `held` past their `expires_at`, earliest first. Not
    /// locked: one releaser runs at a time ([`Tx::releaser_turn`]), and it locks the
    /// holds' accounts before settling them (a capture holding an account's lock may be
    /// settling one of them; locking the hold's row first would deadlock with it).
    pub async fn due_holds(&mut self, now: i64, limit: u32) -> Result<Vec<HoldRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM credit_holds WHERE status = 'held' AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2"
        );
        let rows = on_tx!(self, t => sqlx::query_as(&sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut **t)
            .await?);
        Ok(rows)
    }

    /// Takes the releaser's turn for this transaction: `false` when another instance's
    /// releaser has it (PostgreSQL: a transaction-level advisory lock, per schema, so
    /// deployments sharing a database do not wait for each other). SQLite serializes
    /// writers: always `true`.
    pub async fn releaser_turn(&mut self) -> Result<bool, StoreError> {
        match &mut self.conn {
            TxConn::Sqlite(..) => Ok(true),
            TxConn::Postgres(t) => Ok(sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.stripe_manager.hold_releaser'))",
            )
            .fetch_one(&mut **t)
            .await?),
        }
    }
}

impl Store {
    /// The hold `id` of `account`.
    pub async fn hold(&self, account: &str, id: &str) -> Result<Option<HoldRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM credit_holds WHERE id = $1 AND account = $2");
        let row = on_pool!(self, pool => sqlx::query_as(&sql).bind(id).bind(account).fetch_optional(pool).await?);
        Ok(row)
    }

    /// The account's holds, newest first; only open ones (`held`, not yet expired at
    /// `now`) when `open_only`.
    pub async fn holds_of(
        &self,
        account: &str,
        open_only: bool,
        now: i64,
        limit: u32,
    ) -> Result<Vec<HoldRow>, StoreError> {
        let filter = if open_only {
            " AND status = 'held' AND expires_at > $2"
        } else {
            " AND $2 = $2"
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM credit_holds WHERE account = $1{filter} \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(account)
            .bind(now)
            .bind(i64::from(limit.max(1)))
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    /// Whether any hold is past due and not yet marked (a read, for the releaser).
    pub async fn has_due_holds(&self, now: i64) -> Result<bool, StoreError> {
        let found: bool = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM credit_holds WHERE status = 'held' AND expires_at <= $1)"
        )
        .bind(now)
        .fetch_one(pool)
        .await?);
        Ok(found)
    }

    /// What `account`'s open holds reserve at `now` (for the balance).
    pub async fn held(&self, account: &str, now: i64) -> Result<i64, StoreError> {
        let held: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT CAST(SUM(amount) AS BIGINT) FROM credit_holds \
             WHERE account = $1 AND status = 'held' AND expires_at > $2"
        )
        .bind(account)
        .bind(now)
        .fetch_one(pool)
        .await?);
        Ok(held.unwrap_or(0))
    }
}
