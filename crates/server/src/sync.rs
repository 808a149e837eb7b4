//! Catalog sync from Stripe, one direction only: Stripe → local.
//!
//! - **Full** (`sync` with no ids): every product and every price, each list paged 100 at a
//!   time and written page by page in one transaction (memory stays flat), then a product
//!   the run did not see is tombstoned. Stripe lists only active prices unless
//!   `active=false` is asked, so prices are two lists (active, then archived), and a price
//!   is never tombstoned because a list left it out: only `price.deleted` or a 404 on
//!   retrieve does that. Requests: `⌈products/100⌉ + ⌈active prices/100⌉ +
//!   ⌈archived prices/100⌉` plus retries, never one call per product. One full sync at a
//!   time, across processes.
//! - **Selected** (`sync prod_A prod_B`): the products 100 per `ids[]` request, their
//!   prices by two lists per product or the whole list, whichever is fewer pages; a
//!   product Stripe no longer has becomes a tombstone, a price only on a 404.
//!
//! Every run is recorded in `sync_runs`. Nothing here writes to Stripe: the client has no
//! method that could.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use sm_domain::ProductId;
use sm_domain::catalog::{map_price, map_product};
use sm_store::catalog::{PriceWrite, ProductWrite, WriteCounts};
use sm_store::runs::RunCounts;
use sm_store::{Store, StoreError};
use sm_stripe::types::{List, Price, Product, Raw};
use sm_stripe::{Client, StripeError};
use tokio::sync::mpsc;

use crate::clock::{compact_json, unix_now};
use crate::manager::{StripeManager, Unavailable};

/// Seconds a SQLite full-sync lease lasts without renewal.
const LEASE_SECS: i64 = 300;
/// How often a running sync renews its lease (each renewal is a durable write).
const RENEW_EVERY: Duration = Duration::from_secs(30);
/// Invalid products listed in a report; the rest are counted.
const MAX_LISTED_INVALID: usize = 1000;

/// Who asked for the sync (recorded with the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `stripe-manager sync`.
    Cli,
    /// `POST /api/v1/sync`.
    Api,
    /// The admin UI's sync button.
    Admin,
}

impl Origin {
    /// `cli`, `api` or `admin`, as `sync_runs` records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Api => "api",
            Origin::Admin => "admin",
        }
    }
}

/// Progress of a running sync, for the CLI's progress bar.
pub trait Progress: Send + Sync {
    /// A page of `kind` (`products` or `prices`) with `items` objects was written.
    fn page(&self, _kind: &'static str, _items: usize, _requests: u64) {}
}

/// Reports nothing.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a sync did to products.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProductCounts {
    /// New here.
    pub created: u64,
    /// Changed since the stored copy.
    pub updated: u64,
    /// Identical to the stored copy.
    pub unchanged: u64,
    /// Skipped: the local row holds newer data (a webhook got there first).
    pub stale: u64,
    /// Stored, but with invalid metadata: listed in `invalid`, not sellable.
    pub invalid: u64,
    /// Marked deleted: gone from Stripe (left out of a complete full sync, or a 404).
    pub tombstoned: u64,
}

/// What a sync did to prices.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PriceCounts {
    /// New here.
    pub created: u64,
    /// Changed since the stored copy.
    pub updated: u64,
    /// Identical to the stored copy.
    pub unchanged: u64,
    /// Skipped: the local row holds newer data (a webhook got there first).
    pub stale: u64,
    /// Marked deleted: Stripe answered 404 for them (a list leaving a price out does not count).
    pub tombstoned: u64,
}

/// A product stored but not sellable, and why.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidProduct {
    /// Stripe's product id.
    pub id: String,
    /// The product's name.
    pub name: String,
    /// What is wrong with its metadata.
    pub error: String,
}

/// What a sync did. Also what `POST /api/v1/sync` and `sync --json` return.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The run's id in `sync_runs` (the admin's sync runs page).
    pub run_id: i64,
    /// `full` or `selected`.
    pub scope: &'static str,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    /// When the run started (unix seconds).
    pub started_at: i64,
    /// When it finished (unix seconds).
    pub finished_at: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// HTTP requests sent to Stripe, retries included.
    pub requests: u64,
    /// List pages read from Stripe.
    pub pages: u64,
    /// What it did to products.
    pub products: ProductCounts,
    /// What it did to prices.
    pub prices: PriceCounts,
    /// Entitlement features and the products whose features were read.
    pub features: crate::entitlements::FeatureCounts,
    /// Products stored but not sellable, with the reason.
    pub invalid: Vec<InvalidProduct>,
    /// What went wrong, one line each; empty when the run succeeded.
    pub errors: Vec<String>,
    /// When the run failed because Stripe could not be used: why (`network`,
    /// `auth`, `circuit_open`).
    pub unavailable: Option<&'static str>,
}

impl SyncReport {
    /// Whether the run succeeded (no errors).
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }
}

/// Why a sync did not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Stripe is disabled or unreachable: nothing was read (HTTP 503).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// Another full sync holds the lease, in this process or another (HTTP 409
    /// `sync_already_running`).
    #[error("a full sync is already running{}; try again when it has finished",
        holder.as_deref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    AlreadyRunning {
        /// The process holding the lease (`host:pid`), when known.
        holder: Option<String>,
    },
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}

/// The state of one run while it goes.
struct Run {
    id: i64,
    scope: &'static str,
    started_at: i64,
    clock: Instant,
    requests: Arc<AtomicU64>,
    pages: u64,
    products: ProductCounts,
    prices: PriceCounts,
    features: crate::entitlements::FeatureCounts,
    invalid: Vec<InvalidProduct>,
    errors: Vec<String>,
    unavailable: Option<&'static str>,
}

impl Run {
    /// Reads features (all of them when `all`, tombstoning those Stripe no longer
    /// lists) and the features of `products`, recording a failure like the rest.
    async fn features(
        &mut self,
        store: &Store,
        client: &Client,
        products: &[String],
        all: bool,
    ) -> Result<(), StoreError> {
        match crate::entitlements::sync_features(store, client, products, all, &mut self.features)
            .await
        {
            Ok(()) => Ok(()),
            Err(crate::entitlements::SyncFeaturesError::Store(e)) => Err(e),
            Err(crate::entitlements::SyncFeaturesError::Stripe(e)) => {
                self.stripe_failed("reading entitlement features", &e);
                Ok(())
            }
        }
    }

    fn add_products(&mut self, c: WriteCounts) {
        self.products.created += c.created;
        self.products.updated += c.updated;
        self.products.unchanged += c.unchanged;
        self.products.stale += c.stale;
    }

    fn add_prices(&mut self, c: WriteCounts) {
        self.prices.created += c.created;
        self.prices.updated += c.updated;
        self.prices.unchanged += c.unchanged;
        self.prices.stale += c.stale;
    }

    fn note_invalid(&mut self, writes: &[ProductWrite]) {
        for w in writes.iter().filter(|w| !w.product.valid) {
            self.products.invalid += 1;
            if self.invalid.len() < MAX_LISTED_INVALID {
                self.invalid.push(InvalidProduct {
                    id: w.product.id.clone(),
                    name: w.product.name.clone(),
                    error: w.product.validation_error.clone().unwrap_or_default(),
                });
            }
        }
    }

    fn stripe_failed(&mut self, context: &str, e: &StripeError) {
        if let Some(u) = Unavailable::from_error(e) {
            self.unavailable = Some(u.code());
        }
        self.errors
            .push(format!("{context}: {}", crate::error_chain(e)));
    }

    async fn finish(self, store: &Store) -> Result<SyncReport, StoreError> {
        let status = if self.errors.is_empty() {
            "succeeded"
        } else {
            "failed"
        };
        let finished_at = unix_now();
        let requests = self.requests.load(Ordering::Relaxed);
        let counts = RunCounts {
            products_created: self.products.created,
            products_updated: self.products.updated,
            products_unchanged: self.products.unchanged,
            products_stale: self.products.stale,
            products_invalid: self.products.invalid,
            products_tombstoned: self.products.tombstoned,
            prices_created: self.prices.created,
            prices_updated: self.prices.updated,
            prices_unchanged: self.prices.unchanged,
            prices_stale: self.prices.stale,
            prices_tombstoned: self.prices.tombstoned,
        };
        let report = json!({"errors": self.errors, "invalid": self.invalid, "pages": self.pages,
                            "features": self.features});
        store
            .finish_sync_run(self.id, status, finished_at, requests, &counts, &report)
            .await?;
        metrics::counter!("stripe_manager_sync_runs_total", "scope" => self.scope, "status" => status)
            .increment(1);
        metrics::counter!("stripe_manager_sync_products_total", "outcome" => "invalid")
            .increment(self.products.invalid);
        metrics::counter!("stripe_manager_sync_products_total", "outcome" => "tombstoned")
            .increment(self.products.tombstoned);
        let report = SyncReport {
            run_id: self.id,
            scope: self.scope,
            status,
            started_at: self.started_at,
            finished_at,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            requests,
            pages: self.pages,
            products: self.products,
            prices: self.prices,
            features: self.features,
            invalid: self.invalid,
            errors: self.errors,
            unavailable: self.unavailable,
        };
        tracing::info!(
            run = report.run_id,
            scope = report.scope,
            status = report.status,
            requests = report.requests,
            products_created = report.products.created,
            products_updated = report.products.updated,
            products_invalid = report.products.invalid,
            products_tombstoned = report.products.tombstoned,
            prices_created = report.prices.created,
            duration_ms = report.duration_ms,
            "sync finished"
        );
        Ok(report)
    }
}

fn product_writes(products: &[Raw<Product>]) -> Vec<ProductWrite> {
    products
        .iter()
        .map(|p| ProductWrite {
            product: map_product(&p.value.to_domain()),
            raw: compact_json(p.json.get()),
        })
        .collect()
}

fn price_writes(prices: &[Raw<Price>], observed_at: i64) -> Vec<PriceWrite> {
    prices
        .iter()
        .map(|p| PriceWrite {
            price: map_price(&p.value.to_domain()),
            raw: compact_json(p.json.get()),
            observed_at,
        })
        .collect()
}

/// A page fetched ahead by [`prefetch`], with the time it was asked for.
type Fetched<T> = (i64, Result<List<Raw<T>>, StripeError>);

/// Fetches the pages of `stream` one ahead of the caller, so Stripe and the database
/// work at the same time. The channel holds one page: memory stays flat.
fn prefetch<T, S>(stream: S) -> mpsc::Receiver<Fetched<T>>
where
    T: Send + 'static,
    S: futures_util::Stream<Item = Result<List<Raw<T>>, StripeError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        loop {
            let observed_at = unix_now();
            let Some(page) = stream.next().await else {
                break;
            };
            let failed = page.is_err();
            if tx.send((observed_at, page)).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Progress of the full sync started from the admin UI, shown on the sync runs page.
#[derive(Debug, Default)]
pub struct LiveSync {
    /// Whether the sync is still going.
    pub running: std::sync::atomic::AtomicBool,
    /// Products written so far.
    pub products: AtomicU64,
    /// Prices written so far.
    pub prices: AtomicU64,
    /// Stripe requests made so far.
    pub requests: AtomicU64,
}

impl Progress for LiveSync {
    fn page(&self, kind: &'static str, items: usize, requests: u64) {
        let counter = if kind == "products" {
            &self.products
        } else {
            &self.prices
        };
        counter.fetch_add(items as u64, Ordering::Relaxed);
        self.requests.store(requests, Ordering::Relaxed);
    }
}

/// Runs catalog syncs for one process.
#[derive(Debug, Clone)]
pub struct Syncer {
    store: Store,
    stripe: StripeManager,
    /// Names this process in SQLite leases.
    holder: String,
}

impl Syncer {
    /// A syncer over `store` and `stripe`; it names itself `host:pid` in leases.
    pub fn new(store: Store, stripe: StripeManager) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Self {
            store,
            stripe,
            holder: format!("{host}:{}", std::process::id()),
        }
    }

    async fn begin(&self, scope: &'static str, origin: Origin) -> Result<(Run, Client), SyncError> {
        let client = self.stripe.client()?.clone();
        let started_at = unix_now();
        let id = self
            .store
            .start_sync_run(scope, origin.as_str(), started_at)
            .await?;
        let requests = Arc::new(AtomicU64::new(0));
        let client = client.counted(requests.clone());
        Ok((
            Run {
                id,
                scope,
                started_at,
                clock: Instant::now(),
                requests,
                pages: 0,
                products: ProductCounts::default(),
                prices: PriceCounts::default(),
                features: Default::default(),
                invalid: Vec::new(),
                errors: Vec::new(),
                unavailable: None,
            },
            client,
        ))
    }

    /// Syncs the whole catalog. A failure of Stripe part-way leaves every committed page
    /// in place, skips tombstoning (an incomplete listing proves nothing) and records the
    /// run as failed.
    pub async fn sync_all(
        &self,
        origin: Origin,
        progress: &dyn Progress,
    ) -> Result<SyncReport, SyncError> {
        self.stripe.client()?;
        let lock = match self
            .store
            .try_lock_full_sync(&self.holder, unix_now(), LEASE_SECS)
            .await?
        {
            Ok(lock) => lock,
            Err(busy) => {
                return Err(SyncError::AlreadyRunning {
                    holder: busy.holder,
                });
            }
        };
        let result = self.sync_all_locked(origin, progress, &lock).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the full-sync lock; it expires by itself");
        }
        result
    }

    async fn sync_all_locked(
        &self,
        origin: Origin,
        progress: &dyn Progress,
        lock: &sm_store::runs::FullSyncLock,
    ) -> Result<SyncReport, SyncError> {
        // Rows written after this point (by this run, or by a webhook while the listing
        // runs) are never tombstoned by it.
        let start_version = self.store.catalog_version().await?;
        let (mut run, client) = self.begin("full", origin).await?;

        let mut renewed = Instant::now();
        let mut complete = true;
        let mut products = prefetch(client.product_pages());
        while let Some((_, page)) = products.recv().await {
            match page {
                Ok(page) => {
                    let writes = product_writes(&page.data);
                    run.note_invalid(&writes);
                    let counts = self
                        .store
                        .upsert_products(&writes, Some(run.id), unix_now())
                        .await?;
                    run.add_products(counts);
                    run.pages += 1;
                    renew(lock, &mut renewed).await?;
                    progress.page(
                        "products",
                        page.data.len(),
                        run.requests.load(Ordering::Relaxed),
                    );
                }
                Err(e) => {
                    run.stripe_failed("listing products", &e);
                    complete = false;
                }
            }
        }

        if complete {
            let mut prices = prefetch(client.price_pages());
            while let Some((observed_at, page)) = prices.recv().await {
                match page {
                    Ok(page) => {
                        let writes = price_writes(&page.data, observed_at);
                        let counts = self
                            .store
                            .upsert_prices(&writes, Some(run.id), unix_now())
                            .await?;
                        run.add_prices(counts);
                        run.pages += 1;
                        renew(lock, &mut renewed).await?;
                        progress.page(
                            "prices",
                            page.data.len(),
                            run.requests.load(Ordering::Relaxed),
                        );
                    }
                    Err(e) => {
                        run.stripe_failed("listing prices", &e);
                        complete = false;
                    }
                }
            }
        }

        if complete {
            let (products, prices) = self
                .store
                .tombstone_unseen(run.id, start_version, unix_now())
                .await?;
            run.products.tombstoned = products;
            run.prices.tombstoned = prices;
            // Features last: one request per product (Stripe has no list of every
            // product's features), after the catalog they belong to is in place.
            let products = self.store.live_product_ids().await?;
            run.features(&self.store, &client, &products, true).await?;
        }
        Ok(run.finish(&self.store).await?)
    }

    /// Syncs the given products and their prices. A product Stripe answers 404 for (or
    /// `deleted: true`) becomes a tombstone if we had it, and an error if we never did.
    /// Stripe becoming unavailable stops the run; other errors are recorded and the rest
    /// continue.
    ///
    /// Batched as Stripe allows: the products come 100 at a time from one `ids[]` list
    /// request, and their prices from whichever is cheaper — two lists (active,
    /// archived) per product, or the whole price list filtered here when the catalog we
    /// hold says that takes fewer pages. Only a product the `ids[]` list left out is
    /// asked for by id (to tell "deleted" from a list's silence).
    pub async fn sync_products(
        &self,
        ids: &[ProductId],
        origin: Origin,
        progress: &dyn Progress,
    ) -> Result<SyncReport, SyncError> {
        let (mut run, client) = self.begin("selected", origin).await?;
        let mut seen = HashSet::new();
        let unique: Vec<&str> = ids
            .iter()
            .map(ProductId::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        for chunk in unique.chunks(sm_stripe::list::PAGE_SIZE as usize) {
            match self.sync_chunk(&client, chunk, &mut run).await {
                Ok(()) => progress.page(
                    "products",
                    chunk.len(),
                    run.requests.load(Ordering::Relaxed),
                ),
                Err(OneError::Store(e)) => return Err(e.into()),
                Err(OneError::Stripe(e)) => {
                    let context = match chunk {
                        [one] => format!("syncing {one}"),
                        [first, .., last] => {
                            format!("syncing {} products ({first} … {last})", chunk.len())
                        }
                        [] => continue,
                    };
                    run.stripe_failed(&context, &e);
                    if e.is_unavailable() {
                        break;
                    }
                }
            }
        }
        Ok(run.finish(&self.store).await?)
    }

    /// Up to 100 products: one `ids[]` list, their prices, tombstones for the absent.
    async fn sync_chunk(
        &self,
        client: &Client,
        chunk: &[&str],
        run: &mut Run,
    ) -> Result<(), OneError> {
        let now = unix_now();
        let listed = client
            .products_by_ids(chunk)
            .await
            .map_err(OneError::Stripe)?;
        run.pages += 1;
        let found: HashSet<String> = listed.data.iter().map(|p| p.value.id.clone()).collect();
        if !listed.data.is_empty() {
            let writes = product_writes(&listed.data);
            run.note_invalid(&writes);
            let counts = self
                .store
                .upsert_products(&writes, None, unix_now())
                .await?;
            run.add_products(counts);
        }
        // Absent from the list: deleted in Stripe, or never existed. A retrieve tells
        // (and catches a product the list missed for any other reason).
        let mut present: Vec<String> = Vec::with_capacity(chunk.len());
        for id in chunk {
            if found.contains(*id) {
                present.push((*id).to_owned());
                continue;
            }
            match client.retrieve_product_raw(id).await {
                Ok(p) if !p.value.deleted => {
                    let writes = product_writes(std::slice::from_ref(&p));
                    run.note_invalid(&writes);
                    let counts = self
                        .store
                        .upsert_products(&writes, None, unix_now())
                        .await?;
                    run.add_products(counts);
                    present.push((*id).to_owned());
                }
                Ok(_) => self.tombstone(id, run, now).await?,
                Err(e) if e.is_not_found() => self.tombstone(id, run, now).await?,
                Err(e) => return Err(OneError::Stripe(e)),
            }
        }
        if present.is_empty() {
            return Ok(());
        }

        let wanted: HashSet<&str> = present.iter().map(String::as_str).collect();
        let mut returned = HashSet::new();
        let counts = self.store.catalog_counts().await?;
        // Pages of the whole price list: active and archived, at least one each.
        let whole_list_pages = (counts.prices.div_ceil(100)).max(1) + 1;
        let lists: Vec<_> = if 2 * present.len() as u64 > whole_list_pages {
            vec![client.price_pages().boxed()]
        } else {
            present
                .iter()
                .map(|id| client.product_price_pages(id).boxed())
                .collect()
        };
        for mut pages in lists {
            loop {
                let observed_at = unix_now();
                let Some(page) = pages.next().await else {
                    break;
                };
                let mut page = page.map_err(OneError::Stripe)?;
                run.pages += 1;
                page.data.retain(|p| wanted.contains(p.value.product.id()));
                returned.extend(page.data.iter().map(|p| p.value.id.clone()));
                if page.data.is_empty() {
                    continue;
                }
                let counts = self
                    .store
                    .upsert_prices(&price_writes(&page.data, observed_at), None, unix_now())
                    .await?;
                run.add_prices(counts);
            }
        }
        // A price we hold that neither list returned is asked for by id: only Stripe's
        // 404 makes it a tombstone, never a list's silence.
        for product in &present {
            for price in self.store.live_price_ids(product).await? {
                if returned.contains(&price) {
                    continue;
                }
                match client.retrieve_price_raw(&price).await {
                    Ok(fresh) => {
                        let counts = self
                            .store
                            .upsert_prices(
                                &price_writes(std::slice::from_ref(&fresh), unix_now()),
                                None,
                                unix_now(),
                            )
                            .await?;
                        run.add_prices(counts);
                    }
                    Err(e) if e.is_not_found() => {
                        if self
                            .store
                            .tombstone_price(&price, product, now, unix_now())
                            .await?
                        {
                            run.prices.tombstoned += 1;
                        }
                    }
                    Err(e) => return Err(OneError::Stripe(e)),
                }
            }
        }
        run.features(&self.store, client, &present, false).await?;
        Ok(())
    }

    async fn tombstone(&self, id: &str, run: &mut Run, at: i64) -> Result<(), OneError> {
        if self.store.get_product(id).await?.is_none() {
            run.errors.push(format!("{id} does not exist in Stripe"));
            return Ok(());
        }
        if self
            .store
            .tombstone_product(id, None, at, unix_now())
            .await?
        {
            run.products.tombstoned += 1;
        } else {
            run.products.unchanged += 1;
        }
        Ok(())
    }
}

async fn renew(lock: &sm_store::runs::FullSyncLock, last: &mut Instant) -> Result<(), StoreError> {
    if last.elapsed() >= RENEW_EVERY {
        lock.renew(unix_now(), LEASE_SECS).await?;
        *last = Instant::now();
    }
    Ok(())
}

enum OneError {
    Stripe(StripeError),
    Store(StoreError),
}

impl From<StoreError> for OneError {
    fn from(e: StoreError) -> Self {
        OneError::Store(e)
    }
}
