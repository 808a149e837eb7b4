//! Entitlements: Stripe's features (mirrored by the catalog sync), which products give
//! them, and each customer's active entitlements as Stripe last answered them. The gate
//! (`GET …/entitlements/{lookup_key}`) reads the last; it keeps answering while Stripe is
//! down, and every instance keeps it in memory until PostgreSQL announces a change
//! (migration 18's triggers, see [`crate::changes`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{Store, StoreError, Tx, on_pool, on_tx, on_write};

/// A feature as the sync writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureWrite {
    pub id: String,
    pub lookup_key: String,
    pub name: String,
    pub active: bool,
    pub livemode: bool,
    /// The JSON Stripe sent, compact.
    pub raw: String,
}

/// A feature as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FeatureRow {
    pub id: String,
    pub lookup_key: String,
    pub name: String,
    pub active: bool,
}

/// One active entitlement of an account: the feature's lookup key, its name (the
/// lookup key when the feature is not mirrored yet) and its id.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EntitledFeature))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EntitlementRow {
    pub lookup_key: String,
    pub name: String,
    pub feature: String,
}

/// What [`Tx::write_entitlements`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntitlementsWritten {
    /// A read taken after this one was stored already: nothing written.
    Stale,
    /// The same set as stored (its read time is recorded).
    Unchanged,
    /// The set changed: the lookup keys before and after.
    Changed {
        before: BTreeSet<String>,
        after: BTreeSet<String>,
    },
}

impl Store {
    /// Writes features read at `version` (unix seconds) unless a later read is stored;
    /// a feature written here is live again if it was a tombstone. Returns how many rows
    /// were written.
    pub async fn upsert_features(
        &self,
        features: &[FeatureWrite],
        version: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        if features.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut written = 0;
        for f in features {
            written += on_tx!(tx, t => sqlx::query(
                "INSERT INTO features (id, lookup_key, name, active, livemode, version, deleted, raw, synced_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET lookup_key = excluded.lookup_key, name = excluded.name, \
                 active = excluded.active, livemode = excluded.livemode, version = excluded.version, \
                 deleted = FALSE, raw = excluded.raw, synced_at = excluded.synced_at \
                 WHERE features.version <= excluded.version"
            )
            .bind(&f.id)
            .bind(&f.lookup_key)
            .bind(&f.name)
            .bind(f.active)
            .bind(f.livemode)
            .bind(version)
            .bind(&f.raw)
            .bind(now)
            .execute(&mut **t)
            .await?
            .rows_affected());
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Tombstones every live feature a complete listing started at `started` (unix
    /// seconds) did not return; returns how many.
    pub async fn tombstone_unseen_features(&self, started: i64) -> Result<u64, StoreError> {
        let n = on_write!(self, pool => sqlx::query(
            "UPDATE features SET deleted = TRUE WHERE NOT deleted AND version < $1"
        )
        .bind(started)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n)
    }

    /// Replaces the features `product` gives with `features` (`(feature, attachment id)`).
    pub async fn replace_product_features(
        &self,
        product: &str,
        features: &[(String, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        on_tx!(tx, t => sqlx::query("DELETE FROM product_features WHERE product = $1")
            .bind(product)
            .execute(&mut **t)
            .await.map(|_| ())?);
        for (feature, id) in features {
            on_tx!(tx, t => sqlx::query(
                "INSERT INTO product_features (product, feature, id, synced_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (product, feature) DO UPDATE SET id = excluded.id, synced_at = excluded.synced_at"
            )
            .bind(product)
            .bind(feature)
            .bind(id)
            .bind(now)
            .execute(&mut **t)
            .await.map(|_| ())?);
        }
        tx.commit().await
    }

    /// Removes every product's features (no feature exists any more).
    pub async fn clear_product_features(&self) -> Result<(), StoreError> {
        on_write!(self, pool => sqlx::query("DELETE FROM product_features")
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Every live feature, by lookup key.
    pub async fn features(&self) -> Result<Vec<FeatureRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, lookup_key, name, active FROM features WHERE NOT deleted ORDER BY lookup_key, id"
        )
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// The features one product gives, by lookup key.
    pub async fn features_of_product(&self, product: &str) -> Result<Vec<FeatureRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as(
            "SELECT f.id, f.lookup_key, f.name, f.active FROM product_features pf \
             JOIN features f ON f.id = pf.feature AND NOT f.deleted WHERE pf.product = $1 ORDER BY f.lookup_key"
        )
        .bind(product)
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }

    /// The features each product gives, by product (products without any are absent).
    pub async fn product_features(&self) -> Result<BTreeMap<String, Vec<FeatureRow>>, StoreError> {
        let rows: Vec<(String, String, String, String, bool)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT pf.product, f.id, f.lookup_key, f.name, f.active FROM product_features pf \
             JOIN features f ON f.id = pf.feature AND NOT f.deleted ORDER BY pf.product, f.lookup_key"
        )
        .fetch_all(pool)
        .await?);
        let mut out: BTreeMap<String, Vec<FeatureRow>> = BTreeMap::new();
        for (product, id, lookup_key, name, active) in rows {
            out.entry(product).or_default().push(FeatureRow {
                id,
                lookup_key,
                name,
                active,
            });
        }
        Ok(out)
    }

    /// The account's active entitlements: those of the Stripe customer linked to it,
    /// by lookup key. `None` when the account does not exist.
    pub async fn account_entitlements(
        &self,
        account: &str,
    ) -> Result<Option<Vec<EntitlementRow>>, StoreError> {
        // One query (this is the gate's, on every request where nothing is cached): the
        // account's row, joined to its customer's entitlements; no row: no account.
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT ce.lookup_key, COALESCE(f.name, ce.lookup_key), ce.feature FROM credit_accounts a \
             LEFT JOIN customer_entitlements ce ON ce.customer = a.stripe_customer \
             LEFT JOIN features f ON f.id = ce.feature WHERE a.id = $1 ORDER BY ce.lookup_key"
        )
        .bind(account)
        .fetch_all(pool)
        .await?);
        if rows.is_empty() {
            return Ok(None);
        }
        let rows = rows
            .into_iter()
            .filter_map(|(lookup_key, name, feature)| {
                Some(EntitlementRow {
                    lookup_key: lookup_key?,
                    name: name?,
                    feature: feature?,
                })
            })
            .collect();
        Ok(Some(rows))
    }

    /// Customers linked to an account: whose entitlements a reconcile refreshes.
    pub async fn linked_customers(&self) -> Result<Vec<String>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT stripe_customer FROM credit_accounts WHERE stripe_customer IS NOT NULL ORDER BY stripe_customer"
        )
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }
}

impl Tx {
    /// Stores `customer`'s active entitlements (`(lookup_key, feature)`) as read from
    /// Stripe at `read_at` (unix ms, taken *before* the read), unless a read taken later
    /// is stored already: two refreshes racing cannot leave the older answer. The set
    /// rows are rewritten only when they change, so an unchanged refresh announces
    /// nothing to the other instances.
    pub async fn write_entitlements(
        &mut self,
        customer: &str,
        set: &[(String, String)],
        read_at: i64,
    ) -> Result<EntitlementsWritten, StoreError> {
        on_tx!(self, t => sqlx::query(
            "INSERT INTO entitlement_reads (customer, read_at) VALUES ($1, 0) ON CONFLICT (customer) DO NOTHING"
        )
        .bind(customer)
        .execute(&mut **t)
        .await.map(|_| ())?);
        // Locks the customer's row on PostgreSQL (SQLite's transaction holds the write
        // lock already): refreshes of one customer are serialized.
        let stored: i64 = match &mut self.conn {
            crate::TxConn::Sqlite(t, _) => {
                sqlx::query_scalar("SELECT read_at FROM entitlement_reads WHERE customer = $1")
                    .bind(customer)
                    .fetch_one(&mut **t)
                    .await?
            }
            crate::TxConn::Postgres(t) => {
                sqlx::query_scalar(
                    "SELECT read_at FROM entitlement_reads WHERE customer = $1 FOR UPDATE",
                )
                .bind(customer)
                .fetch_one(&mut **t)
                .await?
            }
        };
        if stored > read_at {
            return Ok(EntitlementsWritten::Stale);
        }
        let rows: Vec<(String, String)> = on_tx!(self, t => sqlx::query_as(
            "SELECT lookup_key, feature FROM customer_entitlements WHERE customer = $1"
        )
        .bind(customer)
        .fetch_all(&mut **t)
        .await?);
        let before: BTreeMap<String, String> = rows.into_iter().collect();
        let after: BTreeMap<String, String> = set.iter().cloned().collect();
        let changed = before != after;
        if changed {
            on_tx!(self, t => sqlx::query("DELETE FROM customer_entitlements WHERE customer = $1")
                .bind(customer)
                .execute(&mut **t)
                .await.map(|_| ())?);
            for (lookup_key, feature) in &after {
                on_tx!(self, t => sqlx::query(
                    "INSERT INTO customer_entitlements (customer, lookup_key, feature) VALUES ($1, $2, $3)"
                )
                .bind(customer)
                .bind(lookup_key)
                .bind(feature)
                .execute(&mut **t)
                .await.map(|_| ())?);
            }
            self.entitlements_written = true;
        }
        on_tx!(self, t => sqlx::query(
            "UPDATE entitlement_reads SET read_at = $2, changed_at = CASE WHEN $3 THEN $2 ELSE changed_at END \
             WHERE customer = $1"
        )
        .bind(customer)
        .bind(read_at)
        .bind(changed)
        .execute(&mut **t)
        .await.map(|_| ())?);
        Ok(if changed {
            EntitlementsWritten::Changed {
                before: before.into_keys().collect(),
                after: after.into_keys().collect(),
            }
        } else {
            EntitlementsWritten::Unchanged
        })
    }

    /// The account linked to `customer`, if any.
    pub async fn account_linked_to(
        &mut self,
        customer: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = on_tx!(self, t => sqlx::query_scalar(
            "SELECT id FROM credit_accounts WHERE stripe_customer = $1"
        )
        .bind(customer)
        .fetch_optional(&mut **t)
        .await?);
        Ok(row)
    }
}

impl Store {
    /// Every product that is not a tombstone: whose features a full sync reads.
    pub async fn live_product_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM products WHERE NOT deleted ORDER BY id"
        )
        .fetch_all(pool)
        .await?);
        Ok(rows)
    }
}
