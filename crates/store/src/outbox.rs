//! The outbox: events to the app, stored in the transaction of the change they announce
//! and delivered later by a worker (`stripe_manager::outbox`).
//!
//! One row per event and endpoint. Each account's events reach each endpoint in order,
//! one at a time: an event is stored `pending` (due now) when its account has no open
//! event for that endpoint, `queued` otherwise, and finishing an event (delivered or
//! failed for good) makes the next queued one of its account `pending`. Both happen
//! under the account's lock ([`Tx::lock_account`]), so a finish never misses an event
//! being stored: the worker claims only `pending` heads and expired leases, a few rows
//! however long the queue behind them.

use serde::Serialize;

use crate::{Pool, Store, StoreError, Tx, TxConn, on_pool, on_tx, on_write};

/// Where events go and when an account is low; the service sets it at start
/// ([`Store::with_outbox`]). No endpoint: no event is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxSettings {
    /// The endpoints' URLs (`APP_WEBHOOK_URL`), each event stored once for each.
    pub endpoints: Vec<String>,
    /// `CREDITS_LOW_THRESHOLD` in hundredths; an account's own threshold wins.
    pub low_threshold: Option<i64>,
}

impl OutboxSettings {
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }
}

/// A journal entry a transaction wrote, as its events to the app need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalNote {
    pub account: String,
    pub kind: String,
    pub amount: i64,
    pub shortfall: i64,
    pub reference: String,
    pub lot: Option<i64>,
}

/// An event as stored for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AppEventRow {
    pub seq: i64,
    pub id: String,
    pub endpoint: String,
    pub account: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
    /// When its retries started: `created_at`, or its latest replay.
    pub retry_from: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered_at: Option<i64>,
}

const COLUMNS: &str = "seq, id, endpoint, account, type, payload, created_at, retry_from, status, \
     attempts, next_attempt_at, last_error, last_status, delivered_at";

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Due again at `next_attempt_at` (ms).
    Retry {
        status: Option<u16>,
        error: String,
        next_attempt_at: i64,
    },
    /// Given up: retried for three days, or its endpoint is no longer configured.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

impl Attempt {
    /// `(status, next_attempt_at, last_error, last_status, delivered_at)` as stored.
    #[allow(clippy::type_complexity)]
    fn columns(
        &self,
        now_ms: i64,
    ) -> (
        &'static str,
        Option<i64>,
        Option<&str>,
        Option<u16>,
        Option<i64>,
    ) {
        match self {
            Attempt::Delivered { status } => ("delivered", None, None, Some(*status), Some(now_ms)),
            Attempt::Retry {
                status,
                error,
                next_attempt_at,
            } => (
                "pending",
                Some(*next_attempt_at),
                Some(error),
                *status,
                None,
            ),
            Attempt::Failed { status, error } => ("failed", None, Some(error), *status, None),
        }
    }
}

/// Events by status, and the creation time of the oldest one not delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub queued: i64,
    pub pending: i64,
    pub processing: i64,
    pub failed: i64,
    /// Unix milliseconds.
    pub oldest_undelivered: Option<i64>,
}

impl Tx {
    /// Whether this transaction records events to the app.
    pub fn outbox_enabled(&self) -> bool {
        self.outbox.enabled()
    }

    pub fn outbox_settings(&self) -> &OutboxSettings {
        &self.outbox
    }

    /// Notes a journal entry for this transaction's events (only while the outbox is on).
    pub(crate) fn note_entry(&mut self, note: impl FnOnce() -> JournalNote) {
        if self.outbox.enabled() {
            self.journal.push(note());
        }
    }

    /// The journal entries written since the last call.
    pub fn take_journal(&mut self) -> Vec<JournalNote> {
        std::mem::take(&mut self.journal)
    }

    /// Stores event `id` of `account` for every endpoint, `pending` where the account
    /// has no open event for that endpoint and `queued` behind it otherwise. The caller
    /// holds the account's lock. Nothing when the outbox is off.
    pub async fn emit_app_event(
        &mut self,
        id: &str,
        account: &str,
        kind: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let endpoints = self.outbox.endpoints.clone();
        for endpoint in &endpoints {
            on_tx!(self, t => sqlx::query(
                "INSERT INTO app_events (id, endpoint, account, type, payload, created_at, retry_from, status, next_attempt_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $6, \
                   CASE WHEN EXISTS (SELECT 1 FROM app_events WHERE endpoint = $2 AND account = $3 \
                                     AND status IN ('queued', 'pending', 'processing')) \
                   THEN 'queued' ELSE 'pending' END, $6"
            )
            .bind(id)
            .bind(endpoint)
            .bind(account)
            .bind(kind)
            .bind(payload)
            .bind(now_ms)
            .execute(&mut **t)
            .await?
            .rows_affected());
        }
        Ok(())
    }

    /// Records how the attempt on event row `seq` ended, if `owner` still holds its
    /// lease; a finished event lets the next queued one of its account and endpoint go.
    /// The caller holds the account's lock. `false` when the lease was lost.
    pub async fn finish_app_event(
        &mut self,
        seq: i64,
        owner: &str,
        attempt: &Attempt,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (status, next, error, code, delivered) = attempt.columns(now_ms);
        let row: Option<(String, String)> = on_tx!(self, t => sqlx::query_as(
            "UPDATE app_events SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
             last_error = $5, last_status = $6, delivered_at = COALESCE($7, delivered_at), \
             lease_owner = NULL, lease_until = NULL \
             WHERE seq = $1 AND status = 'processing' AND lease_owner = $2 \
             RETURNING endpoint, account"
        )
        .bind(seq)
        .bind(owner)
        .bind(status)
        .bind(next)
        .bind(error)
        .bind(code.map(i64::from))
        .bind(delivered)
        .fetch_optional(&mut **t)
        .await?);
        let Some((endpoint, account)) = row else {
            return Ok(false);
        };
        if status != "pending" {
            self.promote_next(&endpoint, &account, now_ms).await?;
        }
        Ok(true)
    }

    /// [`Tx::finish_app_event`] for a batch: on PostgreSQL two statements whatever its
    /// size (the outcomes, then the next event of each account whose event finished);
    /// on SQLite one event at a time. Returns, in order, whether each was still ours.
    pub async fn finish_app_events(
        &mut self,
        outcomes: &[(i64, &Attempt)],
        owner: &str,
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        if matches!(self.conn, TxConn::Sqlite(..)) {
            let mut out = Vec::with_capacity(outcomes.len());
            for (seq, attempt) in outcomes {
                out.push(self.finish_app_event(*seq, owner, attempt, now_ms).await?);
            }
            return Ok(out);
        }
        let TxConn::Postgres(t) = &mut self.conn else {
            unreachable!("SQLite returned above")
        };
        let mut seqs = Vec::new();
        let (mut statuses, mut nexts, mut errors, mut codes, mut delivered) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (seq, attempt) in outcomes {
            let (status, next, error, code, at) = attempt.columns(now_ms);
            seqs.push(*seq);
            statuses.push(status);
            nexts.push(next);
            errors.push(error.map(str::to_owned));
            codes.push(code.map(i64::from));
            delivered.push(at);
        }
        let done: Vec<(i64, String, String, String)> = sqlx::query_as(
            "UPDATE app_events e SET status = u.status, next_attempt_at = COALESCE(u.next, e.next_attempt_at), \
             last_error = u.error, last_status = u.code, delivered_at = COALESCE(u.delivered, e.delivered_at), \
             lease_owner = NULL, lease_until = NULL \
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) \
               AS u (seq, status, next, error, code, delivered) \
             WHERE e.seq = u.seq AND e.status = 'processing' AND e.lease_owner = $7 \
             RETURNING e.seq, e.endpoint, e.account, e.status",
        )
        .bind(&seqs)
        .bind(&statuses)
        .bind(&nexts)
        .bind(&errors)
        .bind(&codes)
        .bind(&delivered)
        .bind(owner)
        .fetch_all(&mut **t)
        .await?;
        let mut streams: Vec<(String, String)> = done
            .iter()
            .filter(|(_, _, _, status)| status != "pending")
            .map(|(_, e, a, _)| (e.clone(), a.clone()))
            .collect();
        streams.sort_unstable();
        streams.dedup();
        if !streams.is_empty() {
            let (endpoints, accounts): (Vec<String>, Vec<String>) = streams.into_iter().unzip();
            sqlx::query(
                "UPDATE app_events SET status = 'pending', next_attempt_at = $3 WHERE seq IN ( \
                   SELECT MIN(q.seq) FROM app_events q \
                   JOIN UNNEST($1::text[], $2::text[]) AS s (endpoint, account) \
                     ON q.endpoint = s.endpoint AND q.account = s.account \
                   WHERE q.status = 'queued' AND NOT EXISTS (SELECT 1 FROM app_events o \
                     WHERE o.endpoint = s.endpoint AND o.account = s.account \
                     AND o.status IN ('pending', 'processing')) \
                   GROUP BY q.endpoint, q.account)",
            )
            .bind(&endpoints)
            .bind(&accounts)
            .bind(now_ms)
            .execute(&mut **t)
            .await?;
        }
        let ours: std::collections::HashSet<i64> = done.iter().map(|d| d.0).collect();
        Ok(seqs.iter().map(|s| ours.contains(s)).collect())
    }

    /// Makes the oldest queued event of `account` for `endpoint` due now, unless one is
    /// open already.
    async fn promote_next(
        &mut self,
        endpoint: &str,
        account: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "UPDATE app_events SET status = 'pending', next_attempt_at = $3 \
             WHERE seq = (SELECT MIN(seq) FROM app_events WHERE endpoint = $1 AND account = $2 AND status = 'queued') \
             AND NOT EXISTS (SELECT 1 FROM app_events WHERE endpoint = $1 AND account = $2 \
                             AND status IN ('pending', 'processing'))"
        )
        .bind(endpoint)
        .bind(account)
        .bind(now_ms)
        .execute(&mut **t)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The level (`ok`, `low`, `depleted`) each of `accounts` was last seen at, and its
    /// own low threshold.
    pub async fn balance_levels(
        &mut self,
        accounts: &[&str],
    ) -> Result<Vec<(String, String, Option<i64>)>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match &mut self.conn {
            TxConn::Sqlite(t, _) => {
                let list = (1..=accounts.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT id, balance_level, low_threshold FROM credit_accounts WHERE id IN ({list})"
                );
                let mut q = sqlx::query_as(&sql);
                for a in accounts {
                    q = q.bind(*a);
                }
                q.fetch_all(&mut **t).await?
            }
            TxConn::Postgres(t) => sqlx::query_as(
                "SELECT id, balance_level, low_threshold FROM credit_accounts WHERE id = ANY($1)",
            )
            .bind(accounts)
            .fetch_all(&mut **t)
            .await?,
        };
        Ok(rows)
    }

    /// Sets an account's own low threshold (hundredths; `None`: the service's default).
    /// The caller holds the account's lock.
    pub async fn set_low_threshold(
        &mut self,
        account: &str,
        threshold: Option<i64>,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("UPDATE credit_accounts SET low_threshold = $2 WHERE id = $1")
            .bind(account)
            .bind(threshold)
            .execute(&mut **t)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn set_balance_level(
        &mut self,
        account: &str,
        level: &str,
    ) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("UPDATE credit_accounts SET balance_level = $2 WHERE id = $1")
            .bind(account)
            .bind(level)
            .execute(&mut **t)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Lots that expired by `now` and whose expiry was not announced yet, oldest first:
    /// `(lot, account, remaining, expires_at)`.
    pub async fn unannounced_expiries(
        &mut self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String, i64, i64)>, StoreError> {
        let rows = on_tx!(self, t => sqlx::query_as(
            "SELECT id, account, remaining, expires_at FROM credit_lots \
             WHERE expiry_announced = FALSE AND expires_at IS NOT NULL AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2"
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut **t)
        .await?);
        Ok(rows)
    }

    /// Marks a lot's expiry announced and returns what it held then (read under the
    /// account's lock, so no take-back moves it meanwhile); `None` when it was announced
    /// already (another sweeper).
    pub async fn announce_expiry(&mut self, lot: i64) -> Result<Option<i64>, StoreError> {
        let remaining = on_tx!(self, t => sqlx::query_scalar(
            "UPDATE credit_lots SET expiry_announced = TRUE WHERE id = $1 AND expiry_announced = FALSE \
             RETURNING remaining"
        )
        .bind(lot)
        .fetch_optional(&mut **t)
        .await?);
        Ok(remaining)
    }

    /// A subscription as this transaction sees it (for `subscription.updated`).
    pub async fn subscription_in(
        &mut self,
        id: &str,
    ) -> Result<Option<crate::credits::SubscriptionRow>, StoreError> {
        let row = on_tx!(self, t => sqlx::query_as(crate::credits::SUBSCRIPTION_BY_ID)
            .bind(id)
            .fetch_optional(&mut **t)
            .await?);
        Ok(row)
    }

    /// The change scheduled for `subscription` after `now`, as this transaction sees it.
    pub async fn scheduled_change_in(
        &mut self,
        subscription: &str,
        now: i64,
    ) -> Result<Option<crate::schedules::ScheduledChange>, StoreError> {
        let row: Option<crate::schedules::ChangeRow> = on_tx!(self, t => sqlx::query_as(crate::schedules::SCHEDULED_CHANGE)
            .bind(subscription)
            .bind(now)
            .fetch_optional(&mut **t)
            .await?);
        Ok(row.map(crate::schedules::ScheduledChange::from))
    }

    /// Takes the expiry sweeper's turn for this transaction (PostgreSQL: an advisory
    /// lock per schema; SQLite serializes writers).
    pub async fn sweeper_turn(&mut self) -> Result<bool, StoreError> {
        match &mut self.conn {
            TxConn::Sqlite(..) => Ok(true),
            TxConn::Postgres(t) => Ok(sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.stripe_manager.expiry_sweeper'))",
            )
            .fetch_one(&mut **t)
            .await?),
        }
    }
}

impl Store {
    /// Leases up to `limit` due events for `endpoints` to `owner` until `now_ms +
    /// lease_ms`, oldest first, counting an attempt for each: heads that are due, and
    /// events whose lease ran out (their instance died delivering them). On PostgreSQL
    /// concurrent claimers skip each other's rows.
    pub async fn claim_app_events(
        &self,
        owner: &str,
        endpoints: &[String],
        limit: u32,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<AppEventRow>, StoreError> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let lock = match self.pool() {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        // Endpoints as a list of literals bound after the fixed parameters.
        let list = (0..endpoints.len())
            .map(|i| format!("${}", i + 5))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE app_events SET status = 'processing', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE seq IN ( \
               SELECT seq FROM (SELECT seq FROM app_events WHERE status = 'processing' AND lease_until < $3 \
                                AND endpoint IN ({list}) ORDER BY lease_until LIMIT $4{lock}) AS expired \
               UNION ALL \
               SELECT seq FROM (SELECT seq FROM app_events WHERE status = 'pending' AND next_attempt_at <= $3 \
                                AND endpoint IN ({list}) ORDER BY next_attempt_at, seq LIMIT $4{lock}) AS due \
               LIMIT $4) \
             RETURNING {COLUMNS}"
        );
        let mut rows: Vec<AppEventRow> = on_write!(self, pool => {
            let mut q = sqlx::query_as(&sql)
                .bind(owner)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(i64::from(limit));
            for e in endpoints {
                q = q.bind(e);
            }
            q.fetch_all(pool).await?
        });
        rows.sort_by_key(|r| r.seq);
        Ok(rows)
    }

    /// Events newest first (`status` one of the stored ones, or all), before row `before`.
    pub async fn list_app_events(
        &self,
        status: Option<&str>,
        account: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AppEventRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM app_events WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR account = $2) \
             AND seq < $3 ORDER BY seq DESC LIMIT $4"
        );
        let rows = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(status)
            .bind(account)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit.max(1)))
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    /// The rows (one per endpoint) of event `id`.
    pub async fn app_event(&self, id: &str) -> Result<Vec<AppEventRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM app_events WHERE id = $1 ORDER BY seq");
        let rows = on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_all(pool).await?);
        Ok(rows)
    }

    /// Sends event `id` again to every endpoint where it was delivered or failed, with
    /// three more days of retries: behind its account's open events there (`queued`),
    /// or due now. Under the account's lock, like every change to its queue. Returns how
    /// many rows were made to go again (0: unknown, or still on its way).
    pub async fn replay_app_event(&self, id: &str, now_ms: i64) -> Result<u64, StoreError> {
        let Some(account) = self.app_event(id).await?.first().map(|r| r.account.clone()) else {
            return Ok(0);
        };
        let mut tx = self.begin().await?;
        tx.lock_account(&account, now_ms / 1000).await?;
        let n = on_tx!(tx, t => sqlx::query(
            "UPDATE app_events SET \
               status = CASE WHEN EXISTS (SELECT 1 FROM app_events o WHERE o.endpoint = app_events.endpoint \
                 AND o.account = app_events.account AND o.status IN ('queued', 'pending', 'processing')) \
               THEN 'queued' ELSE 'pending' END, \
               next_attempt_at = $2, retry_from = $2, attempts = 0, last_error = NULL, last_status = NULL \
             WHERE id = $1 AND status IN ('delivered', 'failed')"
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut **t)
        .await?
        .rows_affected());
        tx.commit().await?;
        Ok(n)
    }

    /// Whether anything is due for `endpoints` (a read: an idle dispatcher must not take
    /// SQLite's write lock ten times a second).
    pub async fn has_due_app_events(
        &self,
        endpoints: &[String],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if endpoints.is_empty() {
            return Ok(false);
        }
        let list = (0..endpoints.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM app_events WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND endpoint IN ({list})) \
             OR EXISTS (SELECT 1 FROM app_events WHERE status = 'processing' AND lease_until < $1 \
             AND endpoint IN ({list}))"
        );
        let found: bool = on_pool!(self, pool => {
            let mut q = sqlx::query_scalar(&sql).bind(now_ms);
            for e in endpoints {
                q = q.bind(e);
            }
            q.fetch_one(pool).await?
        });
        Ok(found)
    }

    /// Gives up the open events of endpoints no longer configured (`failed`, saying so;
    /// `app-events replay` sends them to their endpoint if it comes back): otherwise they
    /// would wait for ever and hold up nothing but the metrics. Returns how many.
    pub async fn fail_unconfigured_app_events(
        &self,
        endpoints: &[String],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let list = (0..endpoints.len())
            .map(|i| format!("${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let not_configured = if endpoints.is_empty() {
            "TRUE".to_owned()
        } else {
            format!("endpoint NOT IN ({list})")
        };
        let sql = format!(
            "SELECT DISTINCT account FROM app_events WHERE status IN ('queued', 'pending', 'processing') \
             AND {not_configured}"
        );
        let accounts: Vec<String> = on_pool!(self, pool => {
            let mut q = sqlx::query_scalar(&sql);
            for e in endpoints {
                q = q.bind(e);
            }
            q.fetch_all(pool).await?
        });
        if accounts.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let refs: Vec<&str> = accounts.iter().map(String::as_str).collect();
        tx.lock_accounts(&refs, now_ms / 1000).await?;
        let sql = format!(
            "UPDATE app_events SET status = 'failed', lease_owner = NULL, lease_until = NULL, \
             last_error = 'its endpoint is no longer in APP_WEBHOOK_URL' \
             WHERE status IN ('queued', 'pending', 'processing') AND {not_configured}"
        );
        let n = on_tx!(tx, t => {
            let mut q = sqlx::query(&sql);
            for e in endpoints {
                q = q.bind(e);
            }
            q.execute(&mut **t).await?.rows_affected()
        });
        tx.commit().await?;
        Ok(n)
    }

    /// Open events by status, failed ones, and the oldest undelivered one (for the
    /// metrics and the admin; delivered ones are not counted: there are many).
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows: Vec<(String, i64, Option<i64>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT status, COUNT(*), MIN(created_at) FROM app_events \
             WHERE status IN ('queued', 'pending', 'processing') GROUP BY status"
        )
        .fetch_all(pool)
        .await?);
        let failed: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM app_events WHERE status = 'failed'"
        )
        .fetch_one(pool)
        .await?);
        let mut c = OutboxCounts {
            failed,
            ..Default::default()
        };
        for (status, n, oldest) in rows {
            match status.as_str() {
                "queued" => c.queued = n,
                "pending" => c.pending = n,
                _ => c.processing = n,
            }
            c.oldest_undelivered = match (c.oldest_undelivered, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(c)
    }

    /// Whether any lot's expiry is due to be announced (a read, for the sweeper).
    pub async fn has_unannounced_expiries(&self, now: i64) -> Result<bool, StoreError> {
        let found: bool = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM credit_lots WHERE expiry_announced = FALSE \
             AND expires_at IS NOT NULL AND expires_at <= $1)"
        )
        .bind(now)
        .fetch_one(pool)
        .await?);
        Ok(found)
    }

    pub async fn low_threshold(&self, account: &str) -> Result<Option<i64>, StoreError> {
        let v: Option<Option<i64>> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT low_threshold FROM credit_accounts WHERE id = $1"
        )
        .bind(account)
        .fetch_optional(pool)
        .await?);
        Ok(v.flatten())
    }
}
