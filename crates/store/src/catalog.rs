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
use std::sync::LazyLock;

use serde::Serialize;
use sm_domain::catalog::{AmountKind, CatalogPrice, CatalogProduct, CreditAmount, CreditType};

use crate::{Pool, Store, StoreError, Tx, on_pool, on_tx};

/// What one page write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Skipped because the local row holds newer Stripe data.
    pub stale: u64,
    /// Skipped under [`Ties::Reject`]: same version as the local row, other content.
    pub ties: u64,
}

/// What a write does when the stored row has the same version but other content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ties {
    /// Overwrite: the writer read Stripe after the stored state (a sync listing).
    Refresh,
    /// Skip and count it in `ties`: the writer (an event payload) cannot tell which is
    /// newer, so the caller refetches the object instead.
    Reject,
}

impl std::ops::AddAssign for WriteCounts {
    fn add_assign(&mut self, o: Self) {
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.stale += o.stale;
        self.ties += o.ties;
    }
}

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

#[derive(sqlx::FromRow)]
struct Existing {
    id: String,
    raw: String,
    deleted: bool,
    version: i64,
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

/// PostgreSQL's page insert: one array per column through `UNNEST`.
static PG_PRODUCT_INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO products ({PRODUCT_COLUMNS}) \
                         SELECT u.id, u.name, u.description, u.active, FALSE, u.credit_amount, u.credit_type, u.display_order, \
                                u.valid, u.validation_error, u.default_price_id, u.metadata, u.raw, u.livemode, \
                                u.stripe_created, u.stripe_updated, $16, $17, $18 \
                         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::int8[], $6::text[], $7::int8[], \
                                     $8::bool[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::int8[], $15::int8[]) \
                              AS u(id, name, description, active, credit_amount, credit_type, display_order, valid, \
                                   validation_error, default_price_id, metadata, raw, livemode, stripe_created, stripe_updated) \
                         {PRODUCT_UPSERT}"
    )
});

static PG_PRICE_INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO prices ({PRICE_COLUMNS}) \
                         SELECT u.id, u.product_id, u.active, FALSE, u.currency, u.unit_amount, u.unit_amount_decimal, \
                                u.amount_kind, u.kind, u.recurring_interval, u.interval_count, u.nickname, u.lookup_key, \
                                u.metadata, u.raw, u.livemode, u.stripe_created, u.observed_at, $18, $19, $20 \
                         FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::text[], $5::int8[], $6::text[], $7::text[], \
                                     $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::text[], \
                                     $15::bool[], $16::int8[], $17::int8[]) \
                              AS u(id, product_id, active, currency, unit_amount, unit_amount_decimal, amount_kind, kind, \
                                   recurring_interval, interval_count, nickname, lookup_key, metadata, raw, livemode, \
                                   stripe_created, observed_at) \
                         {PRICE_UPSERT}"
    )
});

const PRODUCT_COLUMNS: &str = "id, name, description, active, deleted, credit_amount, credit_type, display_order, \
     valid, validation_error, default_price_id, metadata, raw, livemode, stripe_created, stripe_updated, synced_at, \
     seen_in_run, write_seq";

/// The conflict clause with the ordering guard: newer wins; on a tie a live row is
/// refreshed, a tombstone stays.
const PRODUCT_UPSERT: &str = " ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, \
     active = excluded.active, deleted = excluded.deleted, credit_amount = excluded.credit_amount, \
     credit_type = excluded.credit_type, display_order = excluded.display_order, valid = excluded.valid, \
     validation_error = excluded.validation_error, default_price_id = excluded.default_price_id, \
     metadata = excluded.metadata, raw = excluded.raw, livemode = excluded.livemode, \
     stripe_created = excluded.stripe_created, stripe_updated = excluded.stripe_updated, \
     synced_at = excluded.synced_at, seen_in_run = excluded.seen_in_run, write_seq = excluded.write_seq \
     WHERE products.stripe_updated < excluded.stripe_updated \
     OR (products.stripe_updated = excluded.stripe_updated AND NOT products.deleted)";

const PRICE_COLUMNS: &str = "id, product_id, active, deleted, currency, unit_amount, unit_amount_decimal, amount_kind, \
     kind, recurring_interval, interval_count, nickname, lookup_key, metadata, raw, livemode, stripe_created, \
     observed_at, synced_at, seen_in_run, write_seq";

const PRICE_UPSERT: &str = " ON CONFLICT (id) DO UPDATE SET product_id = excluded.product_id, active = excluded.active, \
     deleted = excluded.deleted, currency = excluded.currency, unit_amount = excluded.unit_amount, \
     unit_amount_decimal = excluded.unit_amount_decimal, amount_kind = excluded.amount_kind, \
     kind = excluded.kind, recurring_interval = excluded.recurring_interval, \
     interval_count = excluded.interval_count, nickname = excluded.nickname, \
     lookup_key = excluded.lookup_key, metadata = excluded.metadata, raw = excluded.raw, \
     livemode = excluded.livemode, stripe_created = excluded.stripe_created, \
     observed_at = excluded.observed_at, synced_at = excluded.synced_at, seen_in_run = excluded.seen_in_run, \
     write_seq = excluded.write_seq \
     WHERE prices.observed_at < excluded.observed_at \
     OR (prices.observed_at = excluded.observed_at AND NOT prices.deleted)";

/// The two catalog tables, and the column that orders writes to each.
#[derive(Debug, Clone, Copy)]
enum Table {
    Products,
    Prices,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Products => "products",
            Table::Prices => "prices",
        }
    }

    fn version_column(self) -> &'static str {
        match self {
            Table::Products => "stripe_updated",
            Table::Prices => "observed_at",
        }
    }
}

/// The stored `(id, raw, deleted, version)` of the page's rows.
async fn existing_sqlite(
    conn: &mut sqlx::SqliteConnection,
    table: Table,
    ids: &[String],
) -> Result<Vec<Existing>, sqlx::Error> {
    let mut qb = sqlx::QueryBuilder::new(format!(
        "SELECT id, raw, deleted, {} AS version FROM {} WHERE id IN (",
        table.version_column(),
        table.name()
    ));
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_str());
    }
    qb.push(")");
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// The `= ANY($1)` lookups below are sent unprepared (`persistent(false)`), so PostgreSQL
/// plans each with its actual array. A prepared statement first used while the table
/// was empty kept a generic plan with a sequential scan: once the table held 50,000
/// rows, each lookup of 256 ids compared every row against every id (75 ms on average,
/// up to 320 ms), and the webhook worker fell to ~400 events/s.
///
/// Before reading, it locks the `catalog_meta` row that every catalog write updates
/// anyway (`next_seq`), so catalog writers on PostgreSQL take turns from the read on:
/// two instances applying two same-version events of one object at the same instant
/// cannot both decide from a read that predates the other's commit (the later one now
/// sees the first's row and reports the tie). SQLite's writers are serialized already.
async fn existing_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: Table,
    ids: &[String],
) -> Result<Vec<Existing>, sqlx::Error> {
    sqlx::query("SELECT version FROM catalog_meta WHERE id = 1 FOR UPDATE")
        .execute(&mut **tx)
        .await?;
    let sql = format!(
        "SELECT id, raw, deleted, {} AS version FROM {} WHERE id = ANY($1)",
        table.version_column(),
        table.name()
    );
    sqlx::query_as(&sql)
        .bind(ids)
        .persistent(false)
        .fetch_all(&mut **tx)
        .await
}

/// Marks the page's rows as seen by full sync `run` (whether or not they changed).
async fn mark_seen_sqlite(
    tx: &mut crate::SqliteTx,
    table: Table,
    ids: &[String],
    run: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut qb = sqlx::QueryBuilder::new(format!("UPDATE {} SET seen_in_run = ", table.name()));
    qb.push_bind(run)
        .push(", synced_at = ")
        .push_bind(now)
        .push(" WHERE id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_str());
    }
    qb.push(")");
    qb.build().execute(&mut **tx).await.map(|_| ())
}

async fn mark_seen_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: Table,
    ids: &[String],
    run: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE {} SET seen_in_run = $1, synced_at = $2 WHERE id = ANY($3)",
        table.name()
    );
    sqlx::query(&sql)
        .bind(run)
        .bind(now)
        .bind(ids)
        .persistent(false)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Takes the next catalog version for the writes of this transaction. The row lock it
/// takes on `catalog_meta` orders catalog writers, so versions follow commit order.
macro_rules! next_seq_fn {
    ($name:ident, $db:ty) => {
        async fn $name(tx: &mut sqlx::Transaction<'_, $db>) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(
                "UPDATE catalog_meta SET version = version + 1 WHERE id = 1 RETURNING version",
            )
            .fetch_one(&mut **tx)
            .await
        }
    };
}
next_seq_fn!(next_seq_pg, sqlx::Postgres);

async fn next_seq_sqlite(tx: &mut crate::SqliteTx) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE catalog_meta SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut **tx)
    .await
}

/// Dispatches to the backend's `next_seq` by transaction type.
trait NextSeq {
    async fn next(&mut self) -> Result<i64, sqlx::Error>;
}
impl NextSeq for crate::SqliteTx {
    async fn next(&mut self) -> Result<i64, sqlx::Error> {
        next_seq_sqlite(self).await
    }
}
impl NextSeq for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn next(&mut self) -> Result<i64, sqlx::Error> {
        next_seq_pg(self).await
    }
}
async fn next_seq<T: NextSeq>(tx: &mut T) -> Result<i64, sqlx::Error> {
    tx.next().await
}

fn classify(existing: Option<&Existing>, raw: &str, version: i64, ties: Ties) -> Outcome {
    match existing {
        None => Outcome::Created,
        Some(e) if e.version > version || (e.version == version && e.deleted) => Outcome::Stale,
        Some(e) if !e.deleted && e.raw == raw => Outcome::Unchanged,
        Some(e) if e.version == version && ties == Ties::Reject => Outcome::Tie,
        Some(_) => Outcome::Updated,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Stale,
    Tie,
}

impl Outcome {
    fn writes(self) -> bool {
        matches!(self, Outcome::Created | Outcome::Updated)
    }
}

/// Decides what to do with each incoming `(id, raw, version)` given the stored rows.
fn plan<'a>(
    ties: Ties,
    incoming: impl Iterator<Item = (&'a str, &'a str, i64)>,
    existing: &[Existing],
) -> Vec<Outcome> {
    let existing: HashMap<&str, &Existing> = existing.iter().map(|e| (e.id.as_str(), e)).collect();
    incoming
        .map(|(id, raw, version)| classify(existing.get(id).copied(), raw, version, ties))
        .collect()
}

fn count(outcomes: &[Outcome]) -> WriteCounts {
    let mut c = WriteCounts::default();
    for o in outcomes {
        match o {
            Outcome::Created => c.created += 1,
            Outcome::Updated => c.updated += 1,
            Outcome::Unchanged => c.unchanged += 1,
            Outcome::Stale => c.stale += 1,
            Outcome::Tie => c.ties += 1,
        }
    }
    c
}

impl Tx {
    /// Writes one page of products in one transaction. `run` marks them as seen by a
    /// full sync run (for tombstoning what Stripe no longer returns).
    ///
    /// The SQL differs by backend only in how a page travels: SQLite takes a multi-row
    /// `VALUES` list; PostgreSQL takes one array per column through `UNNEST`, because
    /// planning a 100-row `VALUES` with 1,900 parameters costs it ~50 ms per page while
    /// the array form is one cached statement.
    pub async fn upsert_products(
        &mut self,
        page: &[ProductWrite],
        run: Option<i64>,
        now: i64,
        ties: Ties,
    ) -> Result<WriteCounts, StoreError> {
        if page.is_empty() {
            return Ok(WriteCounts::default());
        }
        let ids: Vec<String> = page.iter().map(|w| w.product.id.clone()).collect();
        let outcomes = match self {
            Tx::Sqlite(tx, _) => {
                let existing = existing_sqlite(&mut *tx, Table::Products, &ids).await?;
                let outcomes = plan(
                    ties,
                    page.iter()
                        .map(|w| (w.product.id.as_str(), w.raw.as_str(), w.product.updated)),
                    &existing,
                );
                let writes: Vec<&ProductWrite> = page
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.writes())
                    .map(|(w, _)| w)
                    .collect();
                if !writes.is_empty() {
                    let seq = next_seq(tx).await?;
                    let mut qb = sqlx::QueryBuilder::new(format!(
                        "INSERT INTO products ({PRODUCT_COLUMNS}) "
                    ));
                    qb.push_values(writes, |mut b, w| {
                        let p = &w.product;
                        b.push_bind(p.id.clone())
                            .push_bind(p.name.clone())
                            .push_bind(p.description.clone())
                            .push_bind(p.active)
                            .push_bind(false)
                            .push_bind(p.credit_amount.map(|a| i64::from(CreditAmount::get(a))))
                            .push_bind(p.credit_type.map(|t| t.as_str().to_owned()))
                            .push_bind(p.display_order)
                            .push_bind(p.valid)
                            .push_bind(p.validation_error.clone())
                            .push_bind(p.default_price.clone())
                            .push_bind(metadata_json(&p.metadata))
                            .push_bind(w.raw.clone())
                            .push_bind(p.livemode)
                            .push_bind(p.created)
                            .push_bind(p.updated)
                            .push_bind(now)
                            .push_bind(run)
                            .push_bind(seq);
                    });
                    qb.push(PRODUCT_UPSERT);
                    qb.build().execute(&mut **tx).await?;
                }
                if let Some(run) = run {
                    mark_seen_sqlite(tx, Table::Products, &ids, run, now).await?;
                }
                outcomes
            }
            Tx::Postgres(tx) => {
                let existing = existing_pg(tx, Table::Products, &ids).await?;
                let outcomes = plan(
                    ties,
                    page.iter()
                        .map(|w| (w.product.id.as_str(), w.raw.as_str(), w.product.updated)),
                    &existing,
                );
                let writes: Vec<&CatalogProduct> = page
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.writes())
                    .map(|(w, _)| &w.product)
                    .collect();
                if !writes.is_empty() {
                    let seq = next_seq(tx).await?;
                    let raws: Vec<&str> = page
                        .iter()
                        .zip(&outcomes)
                        .filter(|(_, o)| o.writes())
                        .map(|(w, _)| w.raw.as_str())
                        .collect();
                    let col = |f: &dyn Fn(&CatalogProduct) -> Option<String>| {
                        writes.iter().map(|p| f(p)).collect::<Vec<_>>()
                    };
                    sqlx::query(&PG_PRODUCT_INSERT)
                        .bind(writes.iter().map(|p| p.id.clone()).collect::<Vec<_>>())
                        .bind(writes.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
                        .bind(col(&|p| p.description.clone()))
                        .bind(writes.iter().map(|p| p.active).collect::<Vec<_>>())
                        .bind(
                            writes
                                .iter()
                                .map(|p| p.credit_amount.map(|a| i64::from(a.get())))
                                .collect::<Vec<_>>(),
                        )
                        .bind(col(&|p| p.credit_type.map(|t| t.as_str().to_owned())))
                        .bind(writes.iter().map(|p| p.display_order).collect::<Vec<_>>())
                        .bind(writes.iter().map(|p| p.valid).collect::<Vec<_>>())
                        .bind(col(&|p| p.validation_error.clone()))
                        .bind(col(&|p| p.default_price.clone()))
                        .bind(
                            writes
                                .iter()
                                .map(|p| metadata_json(&p.metadata))
                                .collect::<Vec<_>>(),
                        )
                        .bind(raws)
                        .bind(writes.iter().map(|p| p.livemode).collect::<Vec<_>>())
                        .bind(writes.iter().map(|p| p.created).collect::<Vec<_>>())
                        .bind(writes.iter().map(|p| p.updated).collect::<Vec<_>>())
                        .bind(now)
                        .bind(run)
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                }
                if let Some(run) = run {
                    mark_seen_pg(tx, Table::Products, &ids, run, now).await?;
                }
                outcomes
            }
        };
        Ok(count(&outcomes))
    }

    /// Writes one page of prices in one transaction (see [`Tx::upsert_products`]).
    pub async fn upsert_prices(
        &mut self,
        page: &[PriceWrite],
        run: Option<i64>,
        now: i64,
        ties: Ties,
    ) -> Result<WriteCounts, StoreError> {
        if page.is_empty() {
            return Ok(WriteCounts::default());
        }
        let ids: Vec<String> = page.iter().map(|w| w.price.id.clone()).collect();
        let outcomes = match self {
            Tx::Sqlite(tx, _) => {
                let existing = existing_sqlite(&mut *tx, Table::Prices, &ids).await?;
                let outcomes = plan(
                    ties,
                    page.iter()
                        .map(|w| (w.price.id.as_str(), w.raw.as_str(), w.observed_at)),
                    &existing,
                );
                let writes: Vec<&PriceWrite> = page
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.writes())
                    .map(|(w, _)| w)
                    .collect();
                if !writes.is_empty() {
                    let seq = next_seq(tx).await?;
                    let mut qb =
                        sqlx::QueryBuilder::new(format!("INSERT INTO prices ({PRICE_COLUMNS}) "));
                    qb.push_values(writes, |mut b, w| {
                        let p = &w.price;
                        b.push_bind(p.id.clone())
                            .push_bind(p.product.clone())
                            .push_bind(p.active)
                            .push_bind(false)
                            .push_bind(p.currency.clone())
                            .push_bind(p.unit_amount)
                            .push_bind(p.unit_amount_decimal.clone())
                            .push_bind(p.amount_kind.as_str())
                            .push_bind(p.type_str())
                            .push_bind(p.interval.clone())
                            .push_bind(p.interval_count.map(i64::from))
                            .push_bind(p.nickname.clone())
                            .push_bind(p.lookup_key.clone())
                            .push_bind(metadata_json(&p.metadata))
                            .push_bind(w.raw.clone())
                            .push_bind(p.livemode)
                            .push_bind(p.created)
                            .push_bind(w.observed_at)
                            .push_bind(now)
                            .push_bind(run)
                            .push_bind(seq);
                    });
                    qb.push(PRICE_UPSERT);
                    qb.build().execute(&mut **tx).await?;
                }
                if let Some(run) = run {
                    mark_seen_sqlite(tx, Table::Prices, &ids, run, now).await?;
                }
                outcomes
            }
            Tx::Postgres(tx) => {
                let existing = existing_pg(tx, Table::Prices, &ids).await?;
                let outcomes = plan(
                    ties,
                    page.iter()
                        .map(|w| (w.price.id.as_str(), w.raw.as_str(), w.observed_at)),
                    &existing,
                );
                let writes: Vec<&PriceWrite> = page
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.writes())
                    .map(|(w, _)| w)
                    .collect();
                if !writes.is_empty() {
                    let seq = next_seq(tx).await?;
                    let text = |f: &dyn Fn(&PriceWrite) -> Option<String>| {
                        writes.iter().map(|w| f(w)).collect::<Vec<_>>()
                    };
                    sqlx::query(&PG_PRICE_INSERT)
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.id.clone())
                                .collect::<Vec<_>>(),
                        )
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.product.clone())
                                .collect::<Vec<_>>(),
                        )
                        .bind(writes.iter().map(|w| w.price.active).collect::<Vec<_>>())
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.currency.clone())
                                .collect::<Vec<_>>(),
                        )
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.unit_amount)
                                .collect::<Vec<_>>(),
                        )
                        .bind(text(&|w| w.price.unit_amount_decimal.clone()))
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.amount_kind.as_str())
                                .collect::<Vec<_>>(),
                        )
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.type_str())
                                .collect::<Vec<_>>(),
                        )
                        .bind(text(&|w| w.price.interval.clone()))
                        .bind(
                            writes
                                .iter()
                                .map(|w| w.price.interval_count.map(i64::from))
                                .collect::<Vec<_>>(),
                        )
                        .bind(text(&|w| w.price.nickname.clone()))
                        .bind(text(&|w| w.price.lookup_key.clone()))
                        .bind(
                            writes
                                .iter()
                                .map(|w| metadata_json(&w.price.metadata))
                                .collect::<Vec<_>>(),
                        )
                        .bind(writes.iter().map(|w| w.raw.as_str()).collect::<Vec<_>>())
                        .bind(writes.iter().map(|w| w.price.livemode).collect::<Vec<_>>())
                        .bind(writes.iter().map(|w| w.price.created).collect::<Vec<_>>())
                        .bind(writes.iter().map(|w| w.observed_at).collect::<Vec<_>>())
                        .bind(now)
                        .bind(run)
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                }
                if let Some(run) = run {
                    mark_seen_pg(tx, Table::Prices, &ids, run, now).await?;
                }
                outcomes
            }
        };
        Ok(count(&outcomes))
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
        let changed = on_tx!(self, tx => {
            let current: Option<(bool, i64)> = sqlx::query_as("SELECT deleted, stripe_updated FROM products WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
            if current.is_some_and(|(deleted, version)| deleted || version > at) {
                false
            } else {
                let seq = next_seq(tx).await?;
                sqlx::query(
                    "INSERT INTO products (id, name, description, active, deleted, valid, validation_error, metadata, raw, \
                     livemode, stripe_created, stripe_updated, synced_at, write_seq) \
                     VALUES ($1, $2, NULL, FALSE, TRUE, FALSE, 'deleted in Stripe', '{}', '{}', FALSE, $3, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET deleted = TRUE, active = FALSE, stripe_updated = excluded.stripe_updated, \
                     synced_at = excluded.synced_at, write_seq = excluded.write_seq \
                     WHERE NOT products.deleted AND products.stripe_updated <= excluded.stripe_updated",
                )
                .bind(id)
                .bind(name.unwrap_or(id))
                .bind(at)
                .bind(now)
                .bind(seq)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    > 0
            }
        });
        Ok(changed)
    }

    /// Marks a price deleted in Stripe as of `at` (see [`Tx::tombstone_product`]).
    pub async fn tombstone_price(
        &mut self,
        id: &str,
        product: &str,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = on_tx!(self, tx => {
            let current: Option<(bool, i64)> = sqlx::query_as("SELECT deleted, observed_at FROM prices WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
            if current.is_some_and(|(deleted, version)| deleted || version > at) {
                false
            } else {
                let seq = next_seq(tx).await?;
                sqlx::query(
                    "INSERT INTO prices (id, product_id, active, deleted, currency, amount_kind, kind, metadata, raw, \
                     livemode, stripe_created, observed_at, synced_at, write_seq) \
                     VALUES ($1, $2, FALSE, TRUE, '', 'custom', 'one_time', '{}', '{}', FALSE, $3, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET deleted = TRUE, active = FALSE, observed_at = excluded.observed_at, \
                     synced_at = excluded.synced_at, write_seq = excluded.write_seq \
                     WHERE NOT prices.deleted AND prices.observed_at <= excluded.observed_at",
                )
                .bind(id)
                .bind(product)
                .bind(at)
                .bind(now)
                .bind(seq)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    > 0
            }
        });
        Ok(changed)
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
        let counts = on_tx!(self, tx => {
            let candidates: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM products WHERE {UNSEEN}"
            ))
            .bind(run)
            .bind(start_version)
            .fetch_one(&mut **tx)
            .await?;
            if candidates == 0 {
                (0, 0)
            } else {
                let seq = next_seq(tx).await?;
                let products = sqlx::query(&format!(
                    "UPDATE products SET deleted = TRUE, active = FALSE, synced_at = $3, write_seq = $4 WHERE {UNSEEN}"
                ))
                .bind(run)
                .bind(start_version)
                .bind(now)
                .bind(seq)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                (products, 0)
            }
        });
        Ok(counts)
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
        let row = on_pool!(self, pool => sqlx::query_as("SELECT stripe_updated, raw, deleted FROM products WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// [`Store::product_version`] for many products in one query; absent ids are absent.
    pub async fn product_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String, bool)>, StoreError> {
        self.versions(Table::Products, ids).await
    }

    /// [`Store::price_version`] for many prices in one query; absent ids are absent.
    pub async fn price_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String, bool)>, StoreError> {
        self.versions(Table::Prices, ids).await
    }

    async fn versions(
        &self,
        table: Table,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String, bool)>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<Existing> = match self.pool() {
                Pool::Sqlite(pool) => {
                    let mut tx = pool.begin().await?;
                    let rows = existing_sqlite(&mut tx, table, chunk).await?;
                    tx.commit().await?;
                    rows
                }
                Pool::Postgres(pool) => {
                    let sql = format!(
                        "SELECT id, raw, deleted, {} AS version FROM {} WHERE id = ANY($1)",
                        table.version_column(),
                        table.name()
                    );
                    sqlx::query_as(&sql)
                        .bind(chunk)
                        .persistent(false)
                        .fetch_all(pool)
                        .await?
                }
            };
            out.extend(
                rows.into_iter()
                    .map(|e| (e.id, (e.version, e.raw, e.deleted))),
            );
        }
        Ok(out)
    }

    /// The stored `(observed_at, raw, deleted)` of a price, for ordering events.
    pub async fn price_version(&self, id: &str) -> Result<Option<(i64, String, bool)>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as("SELECT observed_at, raw, deleted FROM prices WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
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
