//! The local catalog: products and prices as Stripe has them, written page by page with
//! an ordering guard, read for the API with their prices.
//!
//! # Ordering
//! Every row carries the time of the Stripe state it holds: a product its `updated`, a
//! price (which has no `updated`) the time it was read from Stripe or the event's
//! `created`. A write only lands when it is at least as new as the row; on a tie a live
//! row may be refreshed but a tombstone never comes back. So a sync page fetched before
//! a webhook wrote newer data cannot overwrite it, and a late `updated` cannot resurrect
//! a deleted product.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sm_domain::catalog::{AmountKind, CatalogPrice, CatalogProduct, CreditAmount, CreditType};

use crate::objects::{Cell, ObjectKind, ObjectWrite, PRICES, PRODUCTS, StoredObject};
use crate::{Store, StoreError, Tx, on_pool, on_tx};

pub use crate::objects::{Ties, WriteCounts};

/// A product to write: the mapped row and Stripe's JSON for it.
#[derive(Debug, Clone)]
pub struct ProductWrite {
    pub product: CatalogProduct,
    pub raw: String,
}

/// A price to write: the mapped row, Stripe's JSON, and the time of that state.
#[derive(Debug, Clone)]
pub struct PriceWrite {
    pub price: CatalogPrice,
    pub raw: String,
    pub observed_at: i64,
}

/// A product as stored, with its prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductRecord {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub credit_amount: Option<u32>,
    /// The metadata's `credit_type`, if it had a valid one.
    pub credit_type: Option<CreditType>,
    pub display_order: Option<i64>,
    pub valid: bool,
    pub validation_error: Option<String>,
    pub default_price_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub raw: String,
    pub livemode: bool,
    pub stripe_created: i64,
    pub stripe_updated: i64,
    pub synced_at: i64,
    pub prices: Vec<PriceRecord>,
}

impl ProductRecord {
    pub fn default_price(&self) -> Option<&PriceRecord> {
        let id = self.default_price_id.as_deref()?;
        self.prices.iter().find(|p| p.id == id)
    }

    /// The metadata's type, else derived from the default price.
    pub fn effective_credit_type(&self) -> CreditType {
        self.credit_type
            .unwrap_or_else(|| CreditType::derive(self.default_price().map(|p| p.recurring)))
    }

    /// Offered for checkout: valid metadata, active, not deleted.
    pub fn sellable(&self) -> bool {
        self.valid && self.active && !self.deleted
    }
}

/// A price as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceRecord {
    pub id: String,
    pub product_id: String,
    pub active: bool,
    pub deleted: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    pub unit_amount_decimal: Option<String>,
    pub amount_kind: AmountKind,
    pub recurring: bool,
    pub interval: Option<String>,
    pub interval_count: Option<u32>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub raw: String,
    pub livemode: bool,
    pub stripe_created: i64,
    pub observed_at: i64,
    pub synced_at: i64,
}

/// Which products to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductFilter {
    /// Active and not deleted (what the catalog offers).
    #[default]
    Active,
    /// Archived in Stripe (inactive) but not deleted.
    Inactive,
    /// Everything, tombstones included.
    All,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: String,
    name: String,
    description: Option<String>,
    active: bool,
    deleted: bool,
    credit_amount: Option<i64>,
    credit_type: Option<String>,
    display_order: Option<i64>,
    valid: bool,
    validation_error: Option<String>,
    default_price_id: Option<String>,
    metadata: String,
    raw: String,
    livemode: bool,
    stripe_created: i64,
    stripe_updated: i64,
    synced_at: i64,
}

#[derive(sqlx::FromRow)]
struct PriceRow {
    id: String,
    product_id: String,
    active: bool,
    deleted: bool,
    currency: String,
    unit_amount: Option<i64>,
    unit_amount_decimal: Option<String>,
    amount_kind: String,
    kind: String,
    recurring_interval: Option<String>,
    interval_count: Option<i64>,
    nickname: Option<String>,
    lookup_key: Option<String>,
    metadata: String,
    raw: String,
    livemode: bool,
    stripe_created: i64,
    observed_at: i64,
    synced_at: i64,
}

fn version_of(o: StoredObject) -> (i64, String, bool) {
    (o.version, o.raw, o.deleted)
}

fn metadata_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).expect("string maps serialize")
}

fn parse_metadata(s: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("metadata column: {e}")))
}

impl ProductRow {
    fn into_record(self, prices: Vec<PriceRecord>) -> Result<ProductRecord, StoreError> {
        Ok(ProductRecord {
            id: self.id,
            name: self.name,
            description: self.description,
            active: self.active,
            deleted: self.deleted,
            credit_amount: self.credit_amount.and_then(|a| u32::try_from(a).ok()),
            credit_type: self.credit_type.as_deref().and_then(CreditType::parse),
            display_order: self.display_order,
            valid: self.valid,
            validation_error: self.validation_error,
            default_price_id: self.default_price_id,
            metadata: parse_metadata(&self.metadata)?,
            raw: self.raw,
            livemode: self.livemode,
            stripe_created: self.stripe_created,
            stripe_updated: self.stripe_updated,
            synced_at: self.synced_at,
            prices,
        })
    }
}

impl PriceRow {
    fn into_record(self) -> Result<PriceRecord, StoreError> {
        Ok(PriceRecord {
            amount_kind: AmountKind::parse(&self.amount_kind).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "price {} amount_kind {:?}",
                    self.id, self.amount_kind
                ))
            })?,
            recurring: self.kind == "recurring",
            id: self.id,
            product_id: self.product_id,
            active: self.active,
            deleted: self.deleted,
            currency: self.currency,
            unit_amount: self.unit_amount,
            unit_amount_decimal: self.unit_amount_decimal,
            interval: self.recurring_interval,
            interval_count: self.interval_count.and_then(|c| u32::try_from(c).ok()),
            nickname: self.nickname,
            lookup_key: self.lookup_key,
            metadata: parse_metadata(&self.metadata)?,
            raw: self.raw,
            livemode: self.livemode,
            stripe_created: self.stripe_created,
            observed_at: self.observed_at,
            synced_at: self.synced_at,
        })
    }
}

impl ProductWrite {
    /// The product as a write of the generic pipeline ([`PRODUCTS`]).
    fn object(&self) -> ObjectWrite {
        let p = &self.product;
        ObjectWrite {
            id: p.id.clone(),
            version: p.updated,
            deleted: false,
            cells: vec![
                Cell::Text(Some(p.name.clone())),
                Cell::Text(p.description.clone()),
                Cell::Bool(p.active),
                Cell::Int(p.credit_amount.map(|a| i64::from(CreditAmount::get(a)))),
                Cell::Text(p.credit_type.map(|t| t.as_str().to_owned())),
                Cell::Int(p.display_order),
                Cell::Bool(p.valid),
                Cell::Text(p.validation_error.clone()),
                Cell::Text(p.default_price.clone()),
                Cell::Text(Some(metadata_json(&p.metadata))),
                Cell::Bool(p.livemode),
                Cell::Int(Some(p.created)),
            ],
            raw: self.raw.clone(),
        }
    }
}

impl PriceWrite {
    /// The price as a write of the generic pipeline ([`PRICES`]).
    fn object(&self) -> ObjectWrite {
        let p = &self.price;
        ObjectWrite {
            id: p.id.clone(),
            version: self.observed_at,
            deleted: false,
            cells: vec![
                Cell::Text(Some(p.product.clone())),
                Cell::Bool(p.active),
                Cell::Text(Some(p.currency.clone())),
                Cell::Int(p.unit_amount),
                Cell::Text(p.unit_amount_decimal.clone()),
                Cell::Text(Some(p.amount_kind.as_str().to_owned())),
                Cell::Text(Some(p.type_str().to_owned())),
                Cell::Text(p.interval.clone()),
                Cell::Int(p.interval_count.map(i64::from)),
                Cell::Text(p.nickname.clone()),
                Cell::Text(p.lookup_key.clone()),
                Cell::Text(Some(metadata_json(&p.metadata))),
                Cell::Bool(p.livemode),
                Cell::Int(Some(p.created)),
            ],
            raw: self.raw.clone(),
        }
    }
}

/// The row a product tombstone creates when the product was never seen: enough to keep
/// a late update from creating it, and to say why it is not offered.
fn product_tombstone_row(id: &str, name: Option<&str>, at: i64) -> Vec<Cell> {
    vec![
        Cell::Text(Some(name.unwrap_or(id).to_owned())),
        Cell::Text(None),
        Cell::Bool(false),
        Cell::Int(None),
        Cell::Text(None),
        Cell::Int(None),
        Cell::Bool(false),
        Cell::Text(Some("deleted in Stripe".into())),
        Cell::Text(None),
        Cell::Text(Some("{}".into())),
        Cell::Bool(false),
        Cell::Int(Some(at)),
    ]
}

/// [`product_tombstone_row`] for a price.
fn price_tombstone_row(product: &str, at: i64) -> Vec<Cell> {
    vec![
        Cell::Text(Some(product.to_owned())),
        Cell::Bool(false),
        Cell::Text(Some(String::new())),
        Cell::Int(None),
        Cell::Text(None),
        Cell::Text(Some(AmountKind::Custom.as_str().to_owned())),
        Cell::Text(Some("one_time".into())),
        Cell::Text(None),
        Cell::Int(None),
        Cell::Text(None),
        Cell::Text(None),
        Cell::Text(Some("{}".into())),
        Cell::Bool(false),
        Cell::Int(Some(at)),
    ]
}

/// The catalog's writes: its types mapped onto the generic object pipeline
/// ([`crate::objects`]), which holds the guard, the catalog version and the seen marks.
impl Tx {
    /// Writes one page of products. `run` marks them as seen by a full sync run (for
    /// tombstoning what Stripe no longer returns).
    pub async fn upsert_products(
        &mut self,
        page: &[ProductWrite],
        run: Option<i64>,
        now: i64,
        ties: Ties,
    ) -> Result<WriteCounts, StoreError> {
        let writes: Vec<ObjectWrite> = page.iter().map(ProductWrite::object).collect();
        self.write_objects(&PRODUCTS, &writes, ties, run, now).await
    }

    /// Writes one page of prices (see [`Tx::upsert_products`]).
    pub async fn upsert_prices(
        &mut self,
        page: &[PriceWrite],
        run: Option<i64>,
        now: i64,
        ties: Ties,
    ) -> Result<WriteCounts, StoreError> {
        let writes: Vec<ObjectWrite> = page.iter().map(PriceWrite::object).collect();
        self.write_objects(&PRICES, &writes, ties, run, now).await
    }

    /// Marks a product deleted in Stripe as of `at` (a tombstone: `deleted`, inactive).
    /// Returns false when the row was already a tombstone or holds newer data. A product
    /// we never saw gets a tombstone row too, so a late `updated` cannot create it.
    pub async fn tombstone_product(
        &mut self,
        id: &str,
        name: Option<&str>,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let row = product_tombstone_row(id, name, at);
        self.tombstone_object(&PRODUCTS, id, row, at, now).await
    }

    /// Marks a price deleted in Stripe as of `at` (see [`Tx::tombstone_product`]).
    pub async fn tombstone_price(
        &mut self,
        id: &str,
        product: &str,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let row = price_tombstone_row(product, at);
        self.tombstone_object(&PRICES, id, row, at, now).await
    }

    /// After a complete full sync: tombstones products that the run did not see and that
    /// nothing wrote after the run started (`start_version`, the
    /// [`Store::catalog_version`] read when it started: a webhook may have created one
    /// after the listing passed it). Returns `(products, prices)` tombstoned; prices are
    /// never tombstoned for being absent from a list (Stripe's price list leaves archived
    /// prices out unless asked), so the second is always 0.
    pub async fn tombstone_unseen(
        &mut self,
        run: i64,
        start_version: i64,
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        const UNSEEN: &str =
            "NOT deleted AND (seen_in_run IS NULL OR seen_in_run <> $1) AND write_seq <= $2";
        let candidates: i64 = on_tx!(self, tx => sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM products WHERE {UNSEEN}"
            ))
            .bind(run)
            .bind(start_version)
            .fetch_one(&mut **tx)
            .await?);
        if candidates == 0 {
            return Ok((0, 0));
        }
        let seq = self.next_catalog_seq().await?;
        let products = on_tx!(self, tx => sqlx::query(&format!(
                "UPDATE products SET deleted = TRUE, active = FALSE, synced_at = $3, write_seq = $4 WHERE {UNSEEN}"
            ))
            .bind(run)
            .bind(start_version)
            .bind(now)
            .bind(seq)
            .execute(&mut **tx)
            .await?
            .rows_affected());
        Ok((products, 0))
    }
}

/// One-transaction shorthands for the writes above.
impl Store {
    pub async fn upsert_products(
        &self,
        page: &[ProductWrite],
        run: Option<i64>,
        now: i64,
    ) -> Result<WriteCounts, StoreError> {
        let mut tx = self.begin().await?;
        let counts = tx.upsert_products(page, run, now, Ties::Refresh).await?;
        tx.commit().await?;
        Ok(counts)
    }

    pub async fn upsert_prices(
        &self,
        page: &[PriceWrite],
        run: Option<i64>,
        now: i64,
    ) -> Result<WriteCounts, StoreError> {
        let mut tx = self.begin().await?;
        let counts = tx.upsert_prices(page, run, now, Ties::Refresh).await?;
        tx.commit().await?;
        Ok(counts)
    }

    pub async fn tombstone_product(
        &self,
        id: &str,
        name: Option<&str>,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx.tombstone_product(id, name, at, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn tombstone_price(
        &self,
        id: &str,
        product: &str,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx.tombstone_price(id, product, at, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn tombstone_unseen(
        &self,
        run: i64,
        start_version: i64,
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin().await?;
        let counts = tx.tombstone_unseen(run, start_version, now).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// The stored `(stripe_updated, raw, deleted)` of a product, for ordering events.
    pub async fn product_version(
        &self,
        id: &str,
    ) -> Result<Option<(i64, String, bool)>, StoreError> {
        Ok(self.get_object(&PRODUCTS, id).await?.map(version_of))
    }

    /// [`Store::product_version`] for many products in one query; absent ids are absent.
    pub async fn product_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String, bool)>, StoreError> {
        self.versions(&PRODUCTS, ids).await
    }

    /// [`Store::price_version`] for many prices in one query; absent ids are absent.
    pub async fn price_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String, bool)>, StoreError> {
        self.versions(&PRICES, ids).await
    }

    async fn versions(
        &self,
        kind: &ObjectKind,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String, bool)>, StoreError> {
        let found = self.get_objects(kind, ids).await?;
        Ok(found
            .into_iter()
            .map(|(id, o)| (id, version_of(o)))
            .collect())
    }

    /// The stored `(observed_at, raw, deleted)` of a price, for ordering events.
    pub async fn price_version(&self, id: &str) -> Result<Option<(i64, String, bool)>, StoreError> {
        Ok(self.get_object(&PRICES, id).await?.map(version_of))
    }

    /// The product a price belongs to, if the price is known locally.
    pub async fn price_product(&self, price: &str) -> Result<Option<String>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_scalar("SELECT product_id FROM prices WHERE id = $1")
            .bind(price)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Increases with every catalog write, in any process sharing this database.
    pub async fn catalog_version(&self) -> Result<i64, StoreError> {
        let v = on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT version FROM catalog_meta WHERE id = 1")
            .fetch_one(pool)
            .await?);
        Ok(v)
    }

    /// Products (with all their prices), ordered by display order, then name, then id.
    pub async fn list_products(
        &self,
        filter: ProductFilter,
    ) -> Result<Vec<ProductRecord>, StoreError> {
        let condition = match filter {
            ProductFilter::Active => "WHERE active AND NOT deleted",
            ProductFilter::Inactive => "WHERE NOT active AND NOT deleted",
            ProductFilter::All => "",
        };
        let order =
            " ORDER BY CASE WHEN display_order IS NULL THEN 1 ELSE 0 END, display_order, name, id";
        let product_sql = format!(
            "SELECT id, name, description, active, deleted, credit_amount, credit_type, display_order, valid, validation_error, default_price_id, metadata, raw, livemode, stripe_created, stripe_updated, synced_at FROM products {condition}{order}"
        );
        let price_sql = format!(
            "SELECT id, product_id, active, deleted, currency, unit_amount, unit_amount_decimal, amount_kind, kind, recurring_interval, interval_count, nickname, lookup_key, metadata, raw, livemode, stripe_created, observed_at, synced_at FROM prices WHERE product_id IN (SELECT id FROM products {condition}) ORDER BY product_id, stripe_created, id"
        );
        let (products, prices): (Vec<ProductRow>, Vec<PriceRow>) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let products = sqlx::query_as(&product_sql).fetch_all(&mut *tx).await?;
            let prices = sqlx::query_as(&price_sql).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (products, prices)
        });
        let mut by_product: HashMap<String, Vec<PriceRecord>> = HashMap::new();
        for p in prices {
            let rec = p.into_record()?;
            by_product
                .entry(rec.product_id.clone())
                .or_default()
                .push(rec);
        }
        products
            .into_iter()
            .map(|p| {
                let prices = by_product.remove(&p.id).unwrap_or_default();
                p.into_record(prices)
            })
            .collect()
    }

    /// One product with all its prices.
    pub async fn get_product(&self, id: &str) -> Result<Option<ProductRecord>, StoreError> {
        let (product, prices): (Option<ProductRow>, Vec<PriceRow>) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let product = sqlx::query_as("SELECT id, name, description, active, deleted, credit_amount, credit_type, display_order, valid, validation_error, default_price_id, metadata, raw, livemode, stripe_created, stripe_updated, synced_at FROM products WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let prices = sqlx::query_as("SELECT id, product_id, active, deleted, currency, unit_amount, unit_amount_decimal, amount_kind, kind, recurring_interval, interval_count, nickname, lookup_key, metadata, raw, livemode, stripe_created, observed_at, synced_at FROM prices WHERE product_id = $1 ORDER BY stripe_created, id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            (product, prices)
        });
        let prices = prices
            .into_iter()
            .map(PriceRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        product.map(|p| p.into_record(prices)).transpose()
    }

    /// Ids of the prices stored for a product that are not tombstones.
    pub async fn live_price_ids(&self, product: &str) -> Result<Vec<String>, StoreError> {
        let ids = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM prices WHERE product_id = $1 AND NOT deleted ORDER BY id"
        )
        .bind(product)
        .fetch_all(pool)
        .await?);
        Ok(ids)
    }

    /// Counts of products by state, for status pages and tests.
    pub async fn catalog_counts(&self) -> Result<CatalogCounts, StoreError> {
        let row: (i64, i64, i64, i64, i64, i64) = on_pool!(self, pool => sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM products WHERE active AND NOT deleted), \
               (SELECT COUNT(*) FROM products WHERE NOT active AND NOT deleted), \
               (SELECT COUNT(*) FROM products WHERE deleted), \
               (SELECT COUNT(*) FROM products WHERE NOT valid AND NOT deleted), \
               (SELECT COUNT(*) FROM prices WHERE NOT deleted), \
               (SELECT COUNT(*) FROM prices WHERE deleted)"
        )
        .fetch_one(pool)
        .await?);
        Ok(CatalogCounts {
            active: row.0 as u64,
            archived: row.1 as u64,
            deleted: row.2 as u64,
            invalid: row.3 as u64,
            prices: row.4 as u64,
            prices_deleted: row.5 as u64,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogCounts {
    pub active: u64,
    pub archived: u64,
    pub deleted: u64,
    pub invalid: u64,
    pub prices: u64,
    pub prices_deleted: u64,
}
