//! The webhook inbox: verified events stored before they are acknowledged, claimed by
//! workers with a lease, and finished in the same transaction as their effects.
//!
//! Statuses: `pending` (due at `next_attempt_at`), `processing` (leased until
//! `lease_until`; an expired lease is claimable again), `processed`, `ignored` (a type we
//! do not act on, stored and answered 200 all the same) and `failed` (the dead letter,
//! after the last attempt). Times are unix milliseconds.

use serde::Serialize;

use crate::{Pool, Store, StoreError, Tx, TxConn, on_pool, on_tx, on_write};

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub kind: String,
    /// The event's `created`, unix seconds.
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    /// The body as Stripe sent it.
    pub payload: String,
    /// `webhook` or `reconcile`.
    pub source: &'static str,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct InboxEvent {
    pub id: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    #[serde(skip)]
    pub payload: String,
    pub source: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

const COLUMNS: &str = "id, type, created, livemode, api_version, payload, source, status, attempts, \
    next_attempt_at, last_error, received_at, processed_at";

/// How many events are in each state, and how long the oldest due one has waited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InboxCounts {
    /// Due or retrying; not counting the waiting ones.
    pub pending: u64,
    /// Pending events parked until what they need arrives (`waiting_for`): an invoice
    /// waiting for the session that names its account. Not a backlog.
    pub waiting: u64,
    pub processing: u64,
    pub processed: u64,
    pub ignored: u64,
    pub failed: u64,
    /// Milliseconds since the oldest pending event was received.
    pub oldest_pending_ms: Option<i64>,
}

/// Events per insert statement (11 parameters each, far below either backend's limit).
pub const INSERT_CHUNK: usize = 200;

/// The PostgreSQL `NOTIFY` channel on which new and replayed events are announced; the
/// payload is the schema, so instances on other schemas of the same database (tests,
/// several deployments) ignore each other.
pub const INBOX_CHANNEL: &str = "stripe_manager_inbox";

/// `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id` for `events`; the first column of
/// each row is a new id. On PostgreSQL wrapped so the statement also notifies (once per
/// transaction: PostgreSQL folds identical notifications).
fn insert_query<DB: NotifyDialect>(events: &[NewEvent], now_ms: i64) -> sqlx::QueryBuilder<'_, DB>
where
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::new(DB::PREFIX);
    qb.push(
        "INSERT INTO webhook_events (id, type, created, livemode, api_version, payload, source, status, \
         attempts, next_attempt_at, received_at) ",
    );
    qb.push_values(events, |mut b, e| {
        // Borrowed, not cloned: the payloads are the bulk of the bytes.
        b.push_bind(e.id.as_str())
            .push_bind(e.kind.as_str())
            .push_bind(e.created)
            .push_bind(e.livemode)
            .push_bind(e.api_version.as_deref())
            .push_bind(e.payload.as_str())
            .push_bind(e.source)
            .push_bind("pending")
            .push_bind(0i64)
            .push_bind(now_ms)
            .push_bind(now_ms);
    });
    qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
    qb.push(DB::SUFFIX);
    qb
}

/// What wraps the insert on each backend.
trait NotifyDialect: sqlx::Database {
    const PREFIX: &'static str;
    const SUFFIX: &'static str;
}

impl NotifyDialect for sqlx::Sqlite {
    const PREFIX: &'static str = "";
    const SUFFIX: &'static str = "";
}

impl NotifyDialect for sqlx::Postgres {
    const PREFIX: &'static str = "WITH ins AS (";
    const SUFFIX: &'static str =
        ") SELECT id, pg_notify('stripe_manager_inbox', current_schema())::text FROM ins";
}

impl Store {
    /// Stores a batch of events atomically (one fsync for all of them) with multi-row
    /// inserts; returns for each whether it was new (`false`: a redelivery, including a
    /// second copy in the same batch, left as it was). Up to [`INSERT_CHUNK`] events take
    /// a single statement, which commits on its own: one round trip instead of three.
    /// On PostgreSQL the same statement announces the new events on [`INBOX_CHANNEL`], so
    /// the workers of every instance wake (the notification is sent at commit).
    pub async fn insert_events(
        &self,
        events: &[NewEvent],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        // An empty page (a reconcile window with no events) has nothing to insert, and
        // a multi-row INSERT with no rows is not SQL.
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut new_ids: std::collections::HashSet<String> = std::collections::HashSet::new();
        if events.len() <= INSERT_CHUNK {
            let ids = on_write!(self, pool => insert_query(events, now_ms).build().fetch_all(pool).await?
                .iter()
                .map(|row| sqlx::Row::try_get::<String, _>(row, 0))
                .collect::<Result<Vec<_>, _>>()?);
            new_ids.extend(ids);
        } else {
            let mut tx = self.begin().await?;
            for chunk in events.chunks(INSERT_CHUNK) {
                let ids = on_tx!(&mut tx, t => insert_query(chunk, now_ms).build().fetch_all(&mut **t).await?
                    .iter()
                    .map(|row| sqlx::Row::try_get::<String, _>(row, 0))
                    .collect::<Result<Vec<_>, _>>()?);
                new_ids.extend(ids);
            }
            tx.commit().await?;
        }
        // The first copy of a new id is the one that was stored.
        Ok(events.iter().map(|e| new_ids.remove(&e.id)).collect())
    }

    /// Leases up to `limit` due events (oldest first) to `owner` until `now + lease_ms`,
    /// counting an attempt for each. On PostgreSQL concurrent claimers skip each other's
    /// rows (`FOR UPDATE SKIP LOCKED`); SQLite serializes writers anyway.
    pub async fn claim_events(
        &self,
        owner: &str,
        limit: u32,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        // Two index-ordered reads (pending by arrival; expired leases), each limited, so
        // a claim costs the same with 10 or 1,000,000 events waiting.
        let lock = match self.pool() {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE webhook_events SET status = 'processing', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN ( \
               SELECT id FROM (SELECT id FROM webhook_events WHERE status = 'processing' AND lease_until < $3 \
                               ORDER BY lease_until LIMIT $4{lock}) AS expired \
               UNION ALL \
               SELECT id FROM (SELECT id FROM webhook_events WHERE status = 'pending' AND next_attempt_at <= $3 \
                               ORDER BY received_at, id LIMIT $4{lock}) AS due \
               LIMIT $4) \
             RETURNING {COLUMNS}"
        );
        let mut rows: Vec<InboxEvent> = on_write!(self, pool => sqlx::query_as(&sql)
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        rows.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(rows)
    }

    /// Gives a failed attempt back: due again at `next_attempt_ms`, or `failed` (the dead
    /// letter) when `dead`, and then `next_attempt_ms` is when it died: it becomes the
    /// event's `processed_at` (the time it left the queue, which the admin's queue-depth
    /// chart counts). Only while `owner` still holds the lease.
    pub async fn release_event(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        next_attempt_ms: i64,
        dead: bool,
    ) -> Result<(), StoreError> {
        let status = if dead { "failed" } else { "pending" };
        on_write!(self, pool => sqlx::query(
            "UPDATE webhook_events SET status = $3, next_attempt_at = $4, last_error = $5, lease_owner = NULL, lease_until = NULL, \
             processed_at = CASE WHEN $3 = 'failed' THEN $4 ELSE processed_at END \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing'"
        )
        .bind(id)
        .bind(owner)
        .bind(status)
        .bind(next_attempt_ms)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Parks an event that cannot be applied until something else arrives: `pending`
    /// again, its attempts reset (waiting is not failing: it is never dead-lettered for
    /// it), `waiting_for` recorded so [`Tx::wake_events`] can make it due at once, and
    /// due anyway at `next_attempt_ms` as a safety net. Only while `owner` holds it.
    pub async fn park_event(
        &self,
        id: &str,
        owner: &str,
        reason: &str,
        waiting_for: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query(
            "UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = $3, last_error = $4, \
             waiting_for = $5, lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing'"
        )
        .bind(id)
        .bind(owner)
        .bind(next_attempt_ms)
        .bind(reason)
        .bind(waiting_for)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<InboxEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhook_events WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?);
        Ok(row)
    }

    /// Events received since `since_ms`, and of those how many are processed or ignored,
    /// and failed: the dashboard's event rates.
    pub async fn event_rates(&self, since_ms: i64) -> Result<(i64, i64, i64), StoreError> {
        let row: (i64, Option<i64>, Option<i64>) = on_pool!(self, pool => sqlx::query_as(
            "SELECT COUNT(*), \
                    CAST(SUM(CASE WHEN status IN ('processed', 'ignored') THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM webhook_events WHERE received_at >= $1"
        )
        .bind(since_ms)
        .fetch_one(pool)
        .await?);
        Ok((row.0, row.1.unwrap_or(0), row.2.unwrap_or(0)))
    }

    pub async fn inbox_counts(&self, now_ms: i64) -> Result<InboxCounts, StoreError> {
        let rows: Vec<(String, i64, i64, Option<i64>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT status, CAST(CASE WHEN waiting_for IS NULL THEN 0 ELSE 1 END AS BIGINT) AS parked, COUNT(*), MIN(received_at) \
             FROM webhook_events GROUP BY status, parked"
        )
        .fetch_all(pool)
        .await?);
        let mut c = InboxCounts::default();
        for (status, parked, n, oldest) in rows {
            let n = n.max(0) as u64;
            match status.as_str() {
                "pending" if parked == 1 => c.waiting = n,
                "pending" => {
                    c.pending = n;
                    c.oldest_pending_ms = oldest.map(|o| now_ms - o);
                }
                "processing" => c.processing = n,
                "processed" => c.processed = n,
                "ignored" => c.ignored = n,
                "failed" => c.failed = n,
                _ => {}
            }
        }
        Ok(c)
    }
}

impl Tx {
    /// Marks a leased event done (`processed` or `ignored`) in this transaction, the same
    /// one that applies its effects. False when `owner` no longer holds the lease: the
    /// caller must roll back, someone else has the event now.
    pub async fn finish_event(
        &mut self,
        id: &str,
        owner: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = on_tx!(self, t => sqlx::query(
            "UPDATE webhook_events SET status = $3, processed_at = $4, lease_owner = NULL, lease_until = NULL, last_error = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'processing'"
        )
        .bind(id)
        .bind(owner)
        .bind(status)
        .bind(now_ms)
        .execute(&mut **t)
        .await?
        .rows_affected());
        Ok(n == 1)
    }
}

impl Tx {
    /// Keeps why an event was stored but not applied (in `last_error`, which the event
    /// list shows), after [`Tx::finish_event`] cleared it.
    pub async fn note_event(&mut self, id: &str, note: &str) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query("UPDATE webhook_events SET last_error = $2 WHERE id = $1")
            .bind(id)
            .bind(note)
            .execute(&mut **t)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// [`Tx::finish_event`] for many events with one status in one statement. Returns
    /// how many were still leased to `owner`; fewer than `ids.len()` means a lease was
    /// lost and the caller must roll back.
    pub async fn finish_events(
        &mut self,
        ids: &[&str],
        owner: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for chunk in ids.chunks(500) {
            n += match &mut self.conn {
                TxConn::Sqlite(t, _) => {
                    let mut qb = sqlx::QueryBuilder::new("UPDATE webhook_events SET status = ");
                    qb.push_bind(status)
                        .push(", processed_at = ")
                        .push_bind(now_ms)
                        .push(", lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE lease_owner = ")
                        .push_bind(owner)
                        .push(" AND status = 'processing' AND id IN (");
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(*id);
                    }
                    qb.push(")");
                    qb.build().execute(&mut **t).await?.rows_affected()
                }
                TxConn::Postgres(t) => sqlx::query(
                    "UPDATE webhook_events SET status = $3, processed_at = $4, lease_owner = NULL, lease_until = NULL, \
                     last_error = NULL WHERE id = ANY($1) AND lease_owner = $2 AND status = 'processing'",
                )
                .bind(chunk)
                .bind(owner)
                .bind(status)
                .bind(now_ms)
                // Planned per call, not cached: see `existing_pg` in catalog.rs.
                .persistent(false)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            };
        }
        Ok(n)
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// The statuses an event can have.
pub const STATUSES: [&str; 5] = ["pending", "processing", "processed", "ignored", "failed"];

impl Store {
    /// Events newest first, filtered by status and type.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<InboxEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR type = $2) \
             ORDER BY received_at DESC, id DESC LIMIT $3"
        );
        let rows = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(filter.status.as_deref())
            .bind(filter.kind.as_deref())
            .bind(i64::from(filter.limit.max(1)))
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    /// Puts events back in the queue to be applied again through the same idempotent
    /// path (attempts start over). Events being processed right now are left alone.
    /// Returns how many were requeued.
    pub async fn replay_events(&self, ids: &[String], now_ms: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        for id in ids {
            n += on_write!(self, pool => sqlx::query(
                "UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = $2, \
                 lease_owner = NULL, lease_until = NULL, processed_at = NULL WHERE id = $1 AND status <> 'processing'"
            )
            .bind(id)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected());
        }
        if n > 0 {
            self.announce_events().await?;
        }
        Ok(n)
    }

    /// Requeues every dead-lettered event; returns how many.
    pub async fn replay_failed(&self, now_ms: i64) -> Result<u64, StoreError> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = $1, lease_owner = NULL, \
             lease_until = NULL, processed_at = NULL WHERE status = 'failed'"
        )
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        if n > 0 {
            self.announce_events().await?;
        }
        Ok(n)
    }

    /// Wakes the workers of every instance on this schema (PostgreSQL `NOTIFY`); on
    /// SQLite, where the CLI and the server are separate processes with no channel, the
    /// server's one-second poll finds the work.
    pub async fn announce_events(&self) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = self.pool() {
            sqlx::query("SELECT pg_notify($1, current_schema())::text")
                .bind(INBOX_CHANNEL)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// One page of events, newest first by receipt then id, strictly after `before` (the
    /// last row of the previous page): a keyset, so a page costs the same however deep
    /// it is and rows arriving meanwhile never shift it. Only the given filters become
    /// SQL conditions, so a status filter can use its partial index.
    pub async fn list_events_page(
        &self,
        filter: &EventFilter,
        before: Option<(i64, &str)>,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.status.is_some() {
            conditions.push(format!("status = {}", next()));
        }
        if filter.kind.is_some() {
            conditions.push(format!("type = {}", next()));
        }
        if before.is_some() {
            conditions.push(format!("(received_at, id) < ({}, {})", next(), next()));
        }
        let limit = next();
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_events{}{} ORDER BY received_at DESC, id DESC LIMIT {limit}",
            if conditions.is_empty() { "" } else { " WHERE " },
            conditions.join(" AND ")
        );
        let rows = on_pool!(self, pool => {
            let mut q = sqlx::query_as(&sql);
            if let Some(s) = &filter.status {
                q = q.bind(s.as_str());
            }
            if let Some(k) = &filter.kind {
                q = q.bind(k.as_str());
            }
            if let Some((at, id)) = before {
                q = q.bind(at).bind(id);
            }
            q.bind(i64::from(filter.limit.max(1))).fetch_all(pool).await?
        });
        Ok(rows)
    }
}

impl crate::Tx {
    /// Makes the events waiting for `what` (see [`Store::park_event`]) due now; returns
    /// how many. Called in the transaction that brings what they waited for.
    pub async fn wake_events(&mut self, what: &str, now_ms: i64) -> Result<u64, StoreError> {
        let n = crate::on_tx!(self, t => sqlx::query(
            "UPDATE webhook_events SET next_attempt_at = $2, waiting_for = NULL \
             WHERE waiting_for = $1 AND status = 'pending'"
        )
        .bind(what)
        .bind(now_ms)
        .execute(&mut **t)
        .await?
        .rows_affected());
        Ok(n)
    }
}
