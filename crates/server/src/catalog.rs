//! The catalog as the API and the CLI show it, and the read cache in front of it.
//!
//! Reads are served from an in-memory snapshot of the whole catalog, rebuilt only when
//! the database's catalog version moved (every catalog write bumps it in the same
//! transaction, in whatever process wrote). On PostgreSQL the version itself is read
//! only after a change was announced (see [`crate::changes`]), so a read costs no query
//! at all; on SQLite, or while the announcements are not heard, one tiny query. Either
//! way reads stay consistent with writes made by other processes (a CLI `sync`, another
//! instance), and keep working when Stripe is down: Stripe is never called here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use serde::Serialize;
use sm_domain::Money;
use sm_store::catalog::{PriceRecord, ProductFilter, ProductRecord};
use sm_store::{Store, StoreError};
use tokio::sync::{Mutex, RwLock};

use crate::changes::{Changes, Stamp, Topic};

/// A price as the API shows it (CONTRACT.md).
#[derive(utoipa::ToSchema)]
#[schema(as = Price)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiPrice {
    /// Stripe's price id (`price_…`).
    pub id: String,
    /// The product it belongs to (`prod_…`).
    pub product: String,
    /// Whether Stripe offers it for new purchases.
    pub active: bool,
    /// Deleted in Stripe: kept here so old payments still name it.
    pub deleted: bool,
    /// Lower-case ISO currency code (`usd`).
    pub currency: String,
    /// Minor units; `null` for tiered and customer-chosen prices.
    pub unit_amount: Option<i64>,
    /// `fixed`, `tiered` or `custom`.
    pub amount_kind: &'static str,
    /// `one_time` or `recurring`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// For recurring prices: `day`, `week`, `month` or `year`.
    pub interval: Option<String>,
    /// For recurring prices: how many intervals one billing period spans.
    pub interval_count: Option<u32>,
    /// The price's nickname in Stripe (not shown to customers).
    pub nickname: Option<String>,
    /// The price's lookup key in Stripe, for apps that refer to prices by a stable name.
    pub lookup_key: Option<String>,
}

/// A product as the API shows it (CONTRACT.md).
#[derive(utoipa::ToSchema)]
#[schema(as = Product)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiProduct {
    /// Stripe's product id (`prod_…`).
    pub id: String,
    /// The product's name in Stripe.
    pub name: String,
    /// The product's description in Stripe.
    pub description: Option<String>,
    /// Whether Stripe offers it for new purchases.
    pub active: bool,
    /// Deleted in Stripe: kept here so old payments and lots still name it.
    pub deleted: bool,
    /// Credits one unit grants (metadata `credit_amount`); `null` when missing or invalid.
    pub credit_amount: Option<u32>,
    /// From metadata, else derived from the default price.
    pub credit_type: &'static str,
    /// Where the product sorts in listings (metadata `display_order`, lowest first).
    pub display_order: Option<i64>,
    /// Whether its metadata is valid; an invalid product is listed but not sold.
    pub valid: bool,
    /// Why the metadata is invalid, when it is not valid.
    pub validation_error: Option<String>,
    /// Valid, active and not deleted: the only products offered for checkout.
    pub sellable: bool,
    /// The product's default price, when it has one among `prices`.
    pub default_price: Option<ApiPrice>,
    /// Every price of the product, inactive and deleted ones included.
    pub prices: Vec<ApiPrice>,
    /// The default price divided by the credit amount, in major units
    /// (`{"amount":"0.1000","currency":"usd"}`), when both are known.
    pub price_per_credit: Option<PerCredit>,
    /// The product's metadata in Stripe, as is.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Stripe's last change to the product (its `updated`, unix seconds).
    pub stripe_updated: i64,
    /// When this copy was last written from Stripe (unix seconds).
    pub synced_at: i64,
}

/// The price of one credit: the default price's unit amount divided by the credit amount.
#[derive(utoipa::ToSchema)]
#[schema(as = PricePerCredit)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PerCredit {
    /// A decimal string in major units, two more decimals than the currency has
    /// (`"0.0333"` for $10.00 and 300 credits), rounded half up.
    pub amount: String,
    /// Lower-case ISO currency code (`usd`).
    pub currency: String,
}

impl From<&PriceRecord> for ApiPrice {
    fn from(p: &PriceRecord) -> Self {
        ApiPrice {
            id: p.id.clone(),
            product: p.product_id.clone(),
            active: p.active,
            deleted: p.deleted,
            currency: p.currency.clone(),
            unit_amount: p.unit_amount,
            amount_kind: p.amount_kind.as_str(),
            kind: if p.recurring { "recurring" } else { "one_time" },
            interval: p.interval.clone(),
            interval_count: p.interval_count,
            nickname: p.nickname.clone(),
            lookup_key: p.lookup_key.clone(),
        }
    }
}

impl From<&ProductRecord> for ApiProduct {
    fn from(p: &ProductRecord) -> Self {
        let default = p.default_price();
        let price_per_credit = match (
            default.and_then(|d| d.unit_amount.map(|a| (a, &d.currency))),
            p.credit_amount,
        ) {
            (Some((amount, currency)), Some(credits)) => Money::new(amount, currency)
                .per_unit(u64::from(credits))
                .map(|amount| PerCredit {
                    amount,
                    currency: currency.clone(),
                }),
            _ => None,
        };
        ApiProduct {
            id: p.id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            active: p.active,
            deleted: p.deleted,
            credit_amount: p.credit_amount,
            credit_type: p.effective_credit_type().as_str(),
            display_order: p.display_order,
            valid: p.valid,
            validation_error: p.validation_error.clone(),
            sellable: p.sellable(),
            default_price: default.map(ApiPrice::from),
            prices: p.prices.iter().map(ApiPrice::from).collect(),
            price_per_credit,
            metadata: p.metadata.clone(),
            stripe_updated: p.stripe_updated,
            synced_at: p.synced_at,
        }
    }
}

/// A page of [`Catalog::page`].
#[derive(Debug)]
pub struct CatalogPage {
    /// The page's products, in listing order.
    pub products: Vec<ApiProduct>,
    /// Products matching the filter in the whole catalog.
    pub matching: usize,
    /// Whether more matching products follow this page.
    pub more: bool,
}

/// Everything a read needs, built once per catalog version.
#[derive(Debug)]
struct Snapshot {
    version: i64,
    /// The catalog's stamp (see [`crate::changes`]) taken before `version` was read:
    /// while it is current, `version` is still the database's.
    stamp: std::sync::Mutex<Option<Stamp>>,
    products: Vec<ApiProduct>,
    by_id: HashMap<String, usize>,
    /// Pre-serialized `{"data":[…]}` bodies per filter (cloning `Bytes` shares them).
    active: Encoded,
    inactive: Encoded,
    all: Encoded,
}

/// A list body and its compressed forms, each made at most once per catalog version
/// (on the first request that asks for it), so a read costs a clone whatever the
/// encoding.
#[derive(Debug)]
struct Encoded {
    identity: Bytes,
    gzip: std::sync::OnceLock<Bytes>,
    br: std::sync::OnceLock<Bytes>,
}

impl Encoded {
    fn new(identity: Bytes) -> Self {
        Self {
            identity,
            gzip: Default::default(),
            br: Default::default(),
        }
    }

    /// Whether the body in `encoding` is made already (getting it costs a clone).
    fn ready(&self, encoding: Encoding) -> bool {
        match encoding {
            Encoding::Identity => true,
            Encoding::Gzip => self.gzip.get().is_some(),
            Encoding::Brotli => self.br.get().is_some(),
        }
    }

    /// The body in `encoding`, compressing it the first time. Level 6 gzip and quality
    /// 5 brotli: most of the size gain for a fraction of the top levels' time (a catalog
    /// of 10,000 products is ~9 MB of JSON).
    fn get(&self, encoding: Encoding) -> Bytes {
        use std::io::Write;
        match encoding {
            Encoding::Identity => self.identity.clone(),
            Encoding::Gzip => self
                .gzip
                .get_or_init(|| {
                    let mut e = flate2::write::GzEncoder::new(
                        Vec::with_capacity(self.identity.len() / 4),
                        flate2::Compression::new(6),
                    );
                    e.write_all(&self.identity).expect("writing to memory");
                    e.finish().expect("writing to memory").into()
                })
                .clone(),
            Encoding::Brotli => self
                .br
                .get_or_init(|| {
                    let mut out = Vec::with_capacity(self.identity.len() / 5);
                    {
                        let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
                        w.write_all(&self.identity).expect("writing to memory");
                    }
                    out.into()
                })
                .clone(),
        }
    }
}

/// How a list answer is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Not compressed.
    Identity,
    /// `gzip`.
    Gzip,
    /// `br` (Brotli).
    Brotli,
}

impl Encoding {
    /// The header value; `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }

    /// The best encoding `Accept-Encoding` allows: brotli, then gzip (by the client's
    /// q-values, brotli on a tie), else identity. `q=0` refuses one; `*` stands for
    /// those not named.
    pub fn negotiate(accept: &str) -> Encoding {
        let q_of = |name: &str| -> Option<f32> {
            let mut star = None;
            for item in accept.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|v| v.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if coding == name {
                    return Some(q);
                }
                if coding == "*" {
                    star = Some(q);
                }
            }
            star
        };
        let br = q_of("br").unwrap_or(0.0);
        let gzip = q_of("gzip").unwrap_or(0.0);
        if br > 0.0 && br >= gzip {
            Encoding::Brotli
        } else if gzip > 0.0 {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

impl Snapshot {
    fn stamp(&self) -> Option<Stamp> {
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn build(version: i64, stamp: Option<Stamp>, records: &[ProductRecord]) -> Self {
        let products: Vec<ApiProduct> = records.iter().map(ApiProduct::from).collect();
        let by_id = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let body = |f: &dyn Fn(&ApiProduct) -> bool| -> Encoded {
            let data: Vec<&ApiProduct> = products.iter().filter(|p| f(p)).collect();
            Encoded::new(
                serde_json::to_vec(&serde_json::json!({ "data": data }))
                    .expect("serializable")
                    .into(),
            )
        };
        let active = body(&|p| p.active && !p.deleted);
        let inactive = body(&|p| !p.active && !p.deleted);
        let all = body(&|_| true);
        Snapshot {
            version,
            stamp: std::sync::Mutex::new(stamp),
            products,
            by_id,
            active,
            inactive,
            all,
        }
    }
}

/// The catalog read side: a cache over the store, shared by all handlers.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
    changes: Arc<Changes>,
    snapshot: Arc<RwLock<Option<Arc<Snapshot>>>>,
    /// One rebuild at a time; others wait for it instead of rebuilding too.
    rebuild: Arc<Mutex<()>>,
}

impl Catalog {
    /// An empty cache over `store` (filled on the first read); `changes` tells it when the
    /// catalog changed elsewhere.
    pub fn new(store: Store, changes: Arc<Changes>) -> Self {
        Self {
            store,
            changes,
            snapshot: Arc::default(),
            rebuild: Arc::default(),
        }
    }

    async fn current(&self) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(s) = self.snapshot.read().await.as_ref()
            && self.changes.still(Topic::Catalog, s.stamp())
        {
            return Ok(s.clone());
        }
        // The stamp before the version: a write committed after this read announces
        // itself after its commit, so it changes the stamp the snapshot keeps.
        let stamp = self.changes.current(Topic::Catalog);
        let version = self.store.catalog_version().await?;
        if let Some(s) = self.snapshot.read().await.as_ref()
            && s.version == version
        {
            // Still the database's version (the listener reconnected, or the change
            // was elsewhere): keep the data, under the new stamp.
            if stamp.is_some() {
                *s.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
            }
            return Ok(s.clone());
        }
        let _one = self.rebuild.lock().await;
        if let Some(s) = self.snapshot.read().await.as_ref()
            && s.version >= version
        {
            return Ok(s.clone());
        }
        // Read the version again with the data: a write between the two would be
        // caught by the next read (its announcement changes the stamp).
        let stamp = self.changes.current(Topic::Catalog);
        let version = self.store.catalog_version().await?;
        let records = self.store.list_products(ProductFilter::All).await?;
        let snap = Arc::new(Snapshot::build(version, stamp, &records));
        *self.snapshot.write().await = Some(snap.clone());
        metrics::counter!("stripe_manager_catalog_cache_rebuilds_total").increment(1);
        Ok(snap)
    }

    /// `{"data":[…]}` for a filter, serialized once per catalog version, with that
    /// version (what an `ETag` is made of: the same version and filter are the same
    /// bytes). The version may be older than the data, never newer (it is read first),
    /// so a conditional request can only be answered in full needlessly, never 304'd
    /// wrongly.
    pub async fn list_json(
        &self,
        filter: ProductFilter,
        encoding: Encoding,
    ) -> Result<(i64, Bytes), StoreError> {
        let s = self.current().await?;
        let version = s.version;
        let encoded = move |s: &Snapshot| match filter {
            ProductFilter::Active => s.active.get(encoding),
            ProductFilter::Inactive => s.inactive.get(encoding),
            ProductFilter::All => s.all.get(encoding),
        };
        let ready = match filter {
            ProductFilter::Active => s.active.ready(encoding),
            ProductFilter::Inactive => s.inactive.ready(encoding),
            ProductFilter::All => s.all.ready(encoding),
        };
        if ready {
            return Ok((version, encoded(&s)));
        }
        // Compressing a large catalog takes milliseconds: off the async threads (once
        // per version and encoding; later reads clone the result, above, without the
        // hop to a blocking thread).
        let body = tokio::task::spawn_blocking(move || encoded(&s))
            .await
            .expect("compression does not panic");
        Ok((version, body))
    }

    /// [`Catalog::get`] with the catalog version it was read at (see [`Catalog::list_json`]).
    pub async fn get_versioned(&self, id: &str) -> Result<(i64, Option<ApiProduct>), StoreError> {
        let s = self.current().await?;
        Ok((s.version, s.by_id.get(id).map(|&i| s.products[i].clone())))
    }

    /// The products `filter` keeps, in listing order (display order, name, id), from the
    /// snapshot: Stripe is never called.
    pub async fn list(&self, filter: ProductFilter) -> Result<Vec<ApiProduct>, StoreError> {
        let s = self.current().await?;
        Ok(s.products
            .iter()
            .filter(|p| match filter {
                ProductFilter::Active => p.active && !p.deleted,
                ProductFilter::Inactive => !p.active && !p.deleted,
                ProductFilter::All => true,
            })
            .cloned()
            .collect())
    }

    /// One page of the catalog in its listing order (display order, name, id): the
    /// products `keep` accepts that come after the product `after`, at most `limit`,
    /// with how many match in all. Served from the snapshot: only the page is cloned.
    /// `None` when `after` names no product (a cursor from elsewhere, or one deleted).
    pub async fn page(
        &self,
        keep: impl Fn(&ApiProduct) -> bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<CatalogPage>, StoreError> {
        let s = self.current().await?;
        // Past the product the last page ended on, wherever it is now in the order.
        let start = match after {
            None => 0,
            Some(id) => match s.by_id.get(id) {
                Some(i) => i + 1,
                None => return Ok(None),
            },
        };
        let mut matching = 0;
        let mut products = Vec::with_capacity(limit);
        let mut more = false;
        for (i, p) in s.products.iter().enumerate() {
            if !keep(p) {
                continue;
            }
            matching += 1;
            if i < start {
                continue;
            }
            if products.len() < limit {
                products.push(p.clone());
            } else {
                more = true;
            }
        }
        Ok(Some(CatalogPage {
            products,
            matching,
            more,
        }))
    }

    /// One product by id (deleted ones too), from the snapshot; `None` if unknown.
    pub async fn get(&self, id: &str) -> Result<Option<ApiProduct>, StoreError> {
        Ok(self.get_versioned(id).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding;

    #[test]
    fn encodings_are_negotiated_by_q_value_brotli_first() {
        assert_eq!(Encoding::negotiate(""), Encoding::Identity);
        assert_eq!(Encoding::negotiate("gzip, deflate, br"), Encoding::Brotli);
        assert_eq!(Encoding::negotiate("gzip"), Encoding::Gzip);
        assert_eq!(Encoding::negotiate("br;q=0.5, gzip;q=0.9"), Encoding::Gzip);
        assert_eq!(Encoding::negotiate("br;q=0, gzip;q=0"), Encoding::Identity);
        assert_eq!(Encoding::negotiate("*"), Encoding::Brotli);
        assert_eq!(Encoding::negotiate("*;q=0, gzip"), Encoding::Gzip);
        assert_eq!(Encoding::negotiate("identity"), Encoding::Identity);
        assert_eq!(Encoding::negotiate("BR"), Encoding::Brotli);
    }
}
