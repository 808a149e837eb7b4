//! Subscription schedules: the plan change a schedule will make next (a downgrade left
//! for the end of the period), mirrored from Stripe's answers and its
//! `subscription_schedule.*` events, newest event first.

use serde::Serialize;

use crate::{Store, StoreError, Tx, on_pool, on_tx};

/// One schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRow {
    pub id: String,
    pub subscription: Option<String>,
    pub status: String,
    pub next_price: Option<String>,
    pub next_quantity: Option<i64>,
    pub next_at: Option<i64>,
    /// The event's `created` (or the time Stripe's answer was read).
    pub event_created: i64,
    pub raw: String,
    pub updated_at: i64,
}

/// A change a schedule will make to a running subscription.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledChange {
    pub schedule: String,
    pub price: String,
    pub quantity: Option<i64>,
    /// When it takes effect (the end of the current phase).
    pub at: i64,
}

/// The change scheduled for a subscription (`$1`) after a time (`$2`).
pub(crate) const SCHEDULED_CHANGE: &str = "SELECT id, next_price, next_quantity, next_at FROM subscription_schedules \
     WHERE subscription = $1 AND status IN ('not_started', 'active') AND next_price IS NOT NULL \
     AND next_at > $2 ORDER BY event_created DESC, id LIMIT 1";

/// A row of [`SCHEDULED_CHANGE`].
pub(crate) type ChangeRow = (String, String, Option<i64>, i64);

impl From<ChangeRow> for ScheduledChange {
    fn from((schedule, price, quantity, at): ChangeRow) -> Self {
        ScheduledChange {
            schedule,
            price,
            quantity,
            at,
        }
    }
}

impl Tx {
    /// Writes a schedule unless the stored one comes from a later event. A finished
    /// schedule (`completed`, `released`, `canceled`) never runs again, so its row is
    /// final, and a write that finishes one wins whatever its time.
    pub async fn upsert_schedule(&mut self, r: &ScheduleRow) -> Result<(), StoreError> {
        on_tx!(self, t => sqlx::query(
            "INSERT INTO subscription_schedules (id, subscription, status, next_price, next_quantity, next_at, \
             event_created, raw, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET subscription = COALESCE(excluded.subscription, subscription_schedules.subscription), \
             status = excluded.status, next_price = excluded.next_price, next_quantity = excluded.next_quantity, \
             next_at = excluded.next_at, event_created = excluded.event_created, raw = excluded.raw, \
             updated_at = excluded.updated_at \
             WHERE subscription_schedules.status NOT IN ('completed', 'released', 'canceled') \
             AND (subscription_schedules.event_created <= excluded.event_created \
             OR excluded.status IN ('completed', 'released', 'canceled'))"
        )
        .bind(&r.id)
        .bind(&r.subscription)
        .bind(&r.status)
        .bind(&r.next_price)
        .bind(r.next_quantity)
        .bind(r.next_at)
        .bind(r.event_created)
        .bind(&r.raw)
        .bind(r.updated_at)
        .execute(&mut **t)
        .await
        .map(|_| ())?);
        Ok(())
    }
}

impl Store {
    /// Writes one schedule in a transaction of its own (see [`Tx::upsert_schedule`]).
    pub async fn upsert_schedule(&self, r: &ScheduleRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.upsert_schedule(r).await?;
        tx.commit().await
    }

    /// The change scheduled for `subscription`, if one is still to come after `now`.
    pub async fn scheduled_change(
        &self,
        subscription: &str,
        now: i64,
    ) -> Result<Option<ScheduledChange>, StoreError> {
        let row: Option<ChangeRow> = on_pool!(self, pool => sqlx::query_as(SCHEDULED_CHANGE)
            .bind(subscription)
            .bind(now)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(ScheduledChange::from))
    }
}
