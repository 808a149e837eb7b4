//! Series the admin's charts draw, counted from the tables themselves so they survive
//! restarts and agree across instances (no in-process counters): events by minute and
//! outcome, events finished by minute (for the queue depth), credits by day and kind.

use crate::{Store, StoreError, on_pool};

/// Events received in one bucket with one status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventBucket {
    /// `received_at / bucket_ms`.
    pub bucket: i64,
    pub status: String,
    pub count: i64,
}

/// The credits one kind of ledger entry moved in one day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CreditDay {
    /// `created_at / 86400` (days since the epoch, UTC).
    pub day: i64,
    /// `grant`, `consume`, `refund`, `adjust`, `debt`…
    pub kind: String,
    /// Hundredths of a credit added to lots by entries of this kind (positive amounts).
    pub added: i64,
    /// Hundredths of a credit taken from lots (the negative amounts, as a positive sum).
    pub removed: i64,
}

impl Store {
    /// Events received since `since_ms`, counted per `bucket_ms` and status. Reads the
    /// `(received_at, id)` index range, not the table.
    pub async fn event_buckets(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<EventBucket>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT CAST(received_at / $2 AS BIGINT) AS bucket, status, COUNT(*) AS count \
             FROM webhook_events WHERE received_at >= $1 GROUP BY 1, 2 ORDER BY 1"
        )
        .bind(since_ms)
        .bind(bucket_ms.max(1))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// Events that left the queue (processed, ignored or dead-lettered) since `since_ms`,
    /// per `bucket_ms`, among those received since `received_since_ms` (the bound that
    /// lets the index narrow the read; an event that waited longer than the gap between
    /// the two is not counted).
    pub async fn event_departures(
        &self,
        since_ms: i64,
        received_since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT CAST(processed_at / $3 AS BIGINT), COUNT(*) FROM webhook_events \
             WHERE received_at >= $2 AND processed_at >= $1 GROUP BY 1 ORDER BY 1"
        )
        .bind(since_ms)
        .bind(received_since_ms)
        .bind(bucket_ms.max(1))
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// What the ledger moved per day and entry kind since `since` (unix seconds). The
    /// journal is append-only with ids in time order, so the read starts at the newest
    /// entry older than `since` (a backwards walk of the primary key) instead of
    /// scanning the whole journal; an entry written out of order by a few seconds at
    /// that edge may be left out of the first day.
    pub async fn credit_days(&self, since: i64) -> Result<Vec<CreditDay>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT CAST(created_at / 86400 AS BIGINT) AS day, kind, \
                    CAST(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END) AS BIGINT) AS added, \
                    CAST(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END) AS BIGINT) AS removed \
             FROM credit_entries \
             WHERE id > COALESCE((SELECT id FROM credit_entries WHERE created_at < $1 ORDER BY id DESC LIMIT 1), 0) \
               AND created_at >= $1 \
             GROUP BY 1, 2 ORDER BY 1"
        )
        .bind(since)
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }
}
