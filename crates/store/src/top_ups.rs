//! Automatic top-ups: an account's setting, and the purchases it makes — one per
//! crossing of its threshold, decided inside the ledger transaction that crossed it
//! (under the account's lock, so on any number of instances), paid later by the
//! service's charger.

use serde::Serialize;

use crate::{Store, StoreError, Tx, on_pool, on_tx, on_write};

/// An account's top-up setting. Amounts are hundredths of a credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TopUpSetting {
    pub account: String,
    pub below: i64,
    pub price: String,
    pub quantity: i64,
    pub max_per_day: i64,
    pub enabled: bool,
    pub armed: bool,
    pub disabled_reason: Option<String>,
    pub updated_at: i64,
}

/// One purchase.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TopUpPurchase))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TopUpRow {
    pub id: String,
    pub account: String,
    pub day: String,
    /// `queued`, `paid`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    pub price: String,
    pub quantity: i64,
    pub spendable: i64,
    pub invoice: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const TOP_UP_COLUMNS: &str = "id, account, day, status, price, quantity, spendable, invoice, error, attempts, \
     next_attempt_at, created_at, updated_at";

/// The UTC day of a unix time, `YYYY-MM-DD`: what `max_per_day` counts against.
pub fn utc_day(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "1970-01-01".into())
}

impl Store {
    /// Saves an account's setting (creating the account), enabled and armed: the next
    /// change that leaves the account below `below` buys, even if it is below already —
    /// unless a purchase is still being paid (saving again must not buy twice).
    pub async fn put_top_up(&self, s: &TopUpSetting, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.lock_account(&s.account, now).await?;
        on_tx!(tx, t => sqlx::query(
            "INSERT INTO top_up_settings (account, below, price, quantity, max_per_day, enabled, armed, disabled_reason, updated_at) \
             VALUES ($1, $2, $3, $4, $5, TRUE, NOT EXISTS (SELECT 1 FROM top_ups WHERE account = $1 AND status IN ('queued', 'paid')), NULL, $6) \
             ON CONFLICT (account) DO UPDATE SET below = excluded.below, price = excluded.price, \
             quantity = excluded.quantity, max_per_day = excluded.max_per_day, enabled = TRUE, armed = excluded.armed, \
             disabled_reason = NULL, updated_at = excluded.updated_at"
        )
        .bind(&s.account)
        .bind(s.below)
        .bind(&s.price)
        .bind(s.quantity)
        .bind(s.max_per_day)
        .bind(now)
        .execute(&mut **t)
        .await.map(|_| ())?);
        on_tx!(tx, t => sqlx::query("UPDATE credit_accounts SET top_up_below = $2 WHERE id = $1")
            .bind(&s.account)
            .bind(s.below)
            .execute(&mut **t)
            .await.map(|_| ())?);
        tx.commit().await
    }

    /// Turns an account's top-ups off; false when it had no setting.
    pub async fn delete_top_up(&self, account: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        // The account's lock first, as every debit takes it before the setting's row.
        tx.lock_account(account, now).await?;
        let found = tx.disable_top_up(account, None, now).await?;
        tx.commit().await?;
        Ok(found)
    }

    pub async fn top_up_setting(&self, account: &str) -> Result<Option<TopUpSetting>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as(
            "SELECT account, below, price, quantity, max_per_day, enabled, armed, disabled_reason, updated_at \
             FROM top_up_settings WHERE account = $1"
        )
        .bind(account)
        .fetch_optional(pool)
        .await?);
        Ok(row)
    }

    /// An account's latest purchases, newest first.
    pub async fn top_ups(&self, account: &str, limit: i64) -> Result<Vec<TopUpRow>, StoreError> {
        let sql = format!(
            "SELECT {TOP_UP_COLUMNS} FROM top_ups WHERE account = $1 ORDER BY seq DESC LIMIT $2"
        );
        let rows = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(account)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    pub async fn top_up(&self, id: &str) -> Result<Option<TopUpRow>, StoreError> {
        let sql = format!("SELECT {TOP_UP_COLUMNS} FROM top_ups WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Whether any purchase waits for the charger.
    pub async fn has_due_top_ups(&self, now: i64) -> Result<bool, StoreError> {
        let due: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM top_ups WHERE status = 'queued' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $1) LIMIT 1"
        )
        .bind(now)
        .fetch_optional(pool)
        .await?);
        Ok(due.is_some())
    }

    /// Leases up to `limit` due purchases to `owner` until `now + lease_secs` (one
    /// instance pays each; a lease that runs out, an instance killed while paying, lets
    /// another take it — Stripe's idempotency keys make the second attempt the same
    /// purchase). Counts an attempt on each.
    pub async fn claim_top_ups(
        &self,
        owner: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<TopUpRow>, StoreError> {
        let pick = match self.pool() {
            crate::Pool::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            crate::Pool::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE top_ups SET lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM top_ups WHERE status = 'queued' AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_attempt_at, id LIMIT $4 {pick}) \
             RETURNING {TOP_UP_COLUMNS}"
        );
        let rows = on_write!(self, pool => sqlx::query_as(&sql)
            .bind(owner)
            .bind(now + lease_secs)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    /// Records the invoice a purchase made (so later attempts and `invoice.paid` find it).
    pub async fn set_top_up_invoice(&self, id: &str, invoice: &str) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query("UPDATE top_ups SET invoice = $2 WHERE id = $1")
            .bind(id)
            .bind(invoice)
            .execute(pool)
            .await.map(|_| ())?);
        Ok(())
    }

    /// A purchase Stripe could not be asked to pay now: tried again at `next_at`.
    pub async fn retry_top_up(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        next_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query(
            "UPDATE top_ups SET error = $3, next_attempt_at = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'queued'"
        )
        .bind(id)
        .bind(owner)
        .bind(error)
        .bind(next_at)
        .bind(now)
        .execute(pool)
        .await.map(|_| ())?);
        Ok(())
    }
}

impl Tx {
    /// The top-up thresholds of `accounts` that have one, by account: from the rows
    /// `lock_accounts` read on PostgreSQL, else one query.
    pub async fn top_up_thresholds(
        &mut self,
        accounts: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if let Some(hint) = &self.top_up_hint
            && accounts.iter().all(|a| hint.contains_key(*a))
        {
            return Ok(accounts
                .iter()
                .filter_map(|a| {
                    hint.get(*a)
                        .copied()
                        .flatten()
                        .map(|b| ((*a).to_owned(), b))
                })
                .collect());
        }
        let mut out = Vec::new();
        for chunk in accounts.chunks(500) {
            let list = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT id, top_up_below FROM credit_accounts WHERE id IN ({list}) AND top_up_below IS NOT NULL"
            );
            let rows: Vec<(String, i64)> = on_tx!(self, t => {
                let mut q = sqlx::query_as(&sql);
                for a in chunk {
                    q = q.bind(*a);
                }
                q.fetch_all(&mut **t).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// Called with the account locked, when a change left what it may spend (`after`)
    /// below its threshold: a purchase is queued when the setting is armed or the
    /// account was at or above the threshold before the change (`before`): once per
    /// crossing. The setting is disarmed; the purchase is `skipped` when the day's
    /// maximum is reached. Returns the purchase's id and status.
    pub async fn cross_top_up(
        &mut self,
        account: &str,
        before: i64,
        after: i64,
        now: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let setting: Option<(i64, String, i64, i64, bool, bool)> = on_tx!(self, t => sqlx::query_as(
            "SELECT below, price, quantity, max_per_day, enabled, armed FROM top_up_settings WHERE account = $1"
        )
        .bind(account)
        .fetch_optional(&mut **t)
        .await?);
        let Some((below, price, quantity, max_per_day, enabled, armed)) = setting else {
            return Ok(None);
        };
        if !enabled || after >= below || !(armed || before >= below) {
            return Ok(None);
        }
        on_tx!(self, t => sqlx::query("UPDATE top_up_settings SET armed = FALSE WHERE account = $1")
            .bind(account)
            .execute(&mut **t)
            .await.map(|_| ())?);
        let day = utc_day(now);
        let today: i64 = on_tx!(self, t => sqlx::query_scalar(
            "SELECT COUNT(*) FROM top_ups WHERE account = $1 AND day = $2 AND status <> 'skipped'"
        )
        .bind(account)
        .bind(&day)
        .fetch_one(&mut **t)
        .await?);
        let status = if today >= max_per_day {
            "skipped"
        } else {
            "queued"
        };
        let id = format!("tu_{}", uuid::Uuid::new_v4().simple());
        on_tx!(self, t => sqlx::query(
            "INSERT INTO top_ups (id, account, seq, day, status, price, quantity, spendable, error, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM top_ups WHERE account = $2), \
             $3, $4, $5, $6, $7, $8, $9, $9, $9)"
        )
        .bind(&id)
        .bind(account)
        .bind(&day)
        .bind(status)
        .bind(&price)
        .bind(quantity)
        .bind(after)
        .bind((status == "skipped").then(|| format!("the maximum of {max_per_day} top-ups on {day} (UTC) was reached")))
        .bind(now)
        .execute(&mut **t)
        .await.map(|_| ())?);
        Ok(Some((id, status.to_owned())))
    }

    /// Turns an account's top-ups off (`reason`: why the service did it; `None`: the
    /// account asked). False when it had no setting.
    pub async fn disable_top_up(
        &mut self,
        account: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_tx!(self, t => sqlx::query(
            "UPDATE top_up_settings SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE account = $1"
        )
        .bind(account)
        .bind(reason)
        .bind(now)
        .execute(&mut **t)
        .await?
        .rows_affected());
        on_tx!(self, t => sqlx::query("UPDATE credit_accounts SET top_up_below = NULL WHERE id = $1")
            .bind(account)
            .execute(&mut **t)
            .await.map(|_| ())?);
        Ok(n > 0)
    }

    /// Arms the account's setting again (a purchase succeeded: if the account is still,
    /// or again, below its threshold, the next debit buys).
    pub async fn arm_top_up(&mut self, account: &str) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("UPDATE top_up_settings SET armed = TRUE WHERE account = $1 AND enabled")
            .bind(account)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Moves a purchase from one of `from` to `to` (with its error, if any); returns
    /// the purchase as it was when it moved, `None` if it was in no such status.
    pub async fn move_top_up(
        &mut self,
        id: &str,
        from: &[&str],
        to: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<Option<TopUpRow>, StoreError> {
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE top_ups SET status = $2, error = COALESCE($3, error), lease_owner = NULL, lease_until = NULL, \
             updated_at = $4 WHERE id = $1 AND status IN ({list}) RETURNING {TOP_UP_COLUMNS}"
        );
        let row = on_tx!(self, t => sqlx::query_as(&sql)
            .bind(id)
            .bind(to)
            .bind(error)
            .bind(now)
            .fetch_optional(&mut **t)
            .await?);
        Ok(row)
    }

    /// The purchase with this id, read in the transaction.
    pub async fn top_up_in(&mut self, id: &str) -> Result<Option<TopUpRow>, StoreError> {
        let sql = format!("SELECT {TOP_UP_COLUMNS} FROM top_ups WHERE id = $1");
        let row = on_tx!(self, t => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut **t)
            .await?);
        Ok(row)
    }
}
