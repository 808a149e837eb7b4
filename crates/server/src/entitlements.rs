//! Feature gating from Stripe Entitlements.
//!
//! - **Features** (`GET /v1/entitlements/features`, archived ones too) and **which
//!   product gives which** (`GET /v1/products/{id}/features`) are mirrored by the catalog
//!   sync ([`sync_features`]). Stripe sends no event for either (stripe@18.0.0
//!   `EventTypes.d.ts` has none), so the sync is how they arrive.
//! - **An account's active entitlements** are Stripe's own answer
//!   (`GET /v1/entitlements/active_entitlements?customer=`), never computed here:
//!   Stripe decides which subscription states entitle (docs.stripe.com/billing/entitlements
//!   does not list them). They are read again ([`read`]) on
//!   `entitlements.active_entitlement_summary.updated` (whose payload carries at most 10
//!   entitlements, so it is a trigger, not the data), on every
//!   `customer.subscription.*` event of the customer, and by `reconcile`; stored with the
//!   time the read started, so a slower read never overwrites a newer one
//!   ([`sm_store::entitlements`]); and a changed set sends `entitlements.updated` to
//!   the app.
//! - **The gate** ([`EntitlementCache`]) answers from memory on every instance, with the
//!   same invalidation as API tokens (see [`crate::changes`]): on PostgreSQL a changed set
//!   or a re-linked account announces itself by `NOTIFY`; on SQLite (one process) each
//!   request reads the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::json;
use sm_store::entitlements::{EntitlementRow, EntitlementsWritten, FeatureWrite};
use sm_store::{Store, StoreError, Tx};
use sm_stripe::types::{Feature, List, Raw};
use sm_stripe::{Client, StripeError};

use crate::changes::{Changes, Stamp, Topic};
use crate::clock::{compact_json, now_ms, unix_now};

/// Accounts kept at most; beyond, the cache starts over.
const CACHED_ACCOUNTS: usize = 100_000;

type Kept = HashMap<String, (Stamp, Arc<Vec<EntitlementRow>>)>;

/// Each account's active entitlements as this instance last read them, each with the
/// [`Stamp`] it was read under: a copy is used only while no entitlement change was
/// announced or made here since.
#[derive(Debug, Clone)]
pub struct EntitlementCache {
    store: Store,
    changes: Arc<Changes>,
    kept: Arc<Mutex<Kept>>,
}

impl EntitlementCache {
    /// An empty cache over `store`; `changes` tells it when entitlements changed elsewhere.
    pub fn new(store: Store, changes: Arc<Changes>) -> Self {
        Self {
            store,
            changes,
            kept: Arc::default(),
        }
    }

    /// The account's active entitlements, by lookup key; `None` when the account does
    /// not exist.
    pub async fn of(&self, account: &str) -> Result<Option<Arc<Vec<EntitlementRow>>>, StoreError> {
        let stamp = self.changes.current(Topic::Entitlements);
        if let Some(stamp) = stamp
            && let Some((kept, rows)) = self.lock().get(account)
            && *kept == stamp
        {
            return Ok(Some(rows.clone()));
        }
        let Some(rows) = self.store.account_entitlements(account).await? else {
            return Ok(None);
        };
        let rows = Arc::new(rows);
        // Kept only if nothing changed while it was read (see `crate::changes`).
        if let Some(stamp) = stamp
            && self.changes.still(Topic::Entitlements, Some(stamp))
        {
            let mut kept = self.lock();
            if kept.len() >= CACHED_ACCOUNTS {
                kept.clear();
            }
            kept.insert(account.to_owned(), (stamp, rows.clone()));
        }
        Ok(Some(rows))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A customer's active entitlements as Stripe answered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementsRead {
    /// The Stripe customer (`cus_…`) they are of.
    pub customer: String,
    /// `(lookup_key, feature)`.
    pub set: Vec<(String, String)>,
    /// Unix ms, taken before the request was sent.
    pub read_at: i64,
}

/// Reads `customer`'s active entitlements from Stripe, every page.
pub async fn read(client: &Client, customer: &str) -> Result<EntitlementsRead, StripeError> {
    let read_at = now_ms();
    let all = Client::collect_all(client.active_entitlement_pages(customer)).await?;
    let set = all
        .into_iter()
        .map(|e| (e.lookup_key, e.feature.id().to_owned()))
        .collect();
    Ok(EntitlementsRead {
        customer: customer.to_owned(),
        set,
        read_at,
    })
}

/// Stores a read in `tx`; when the set changed and the customer is linked to an
/// account, sends `entitlements.updated` (the account locked, so its events stay in
/// order). Returns whether the set changed.
pub async fn write_in(tx: &mut Tx, read: &EntitlementsRead, now: i64) -> Result<bool, StoreError> {
    let written = tx
        .write_entitlements(&read.customer, &read.set, read.read_at)
        .await?;
    let EntitlementsWritten::Changed { before, after } = written else {
        return Ok(false);
    };
    metrics::counter!("stripe_manager_entitlement_changes_total").increment(1);
    if let Some(account) = tx.account_linked_to(&read.customer).await? {
        tx.lock_account(&account, now).await?;
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        let data = json!({
            "account": account,
            "customer": read.customer,
            "entitlements": after,
            "added": added,
            "removed": removed,
        });
        crate::outbox::emit(tx, &account, "entitlements.updated", data, now * 1000).await?;
    }
    Ok(true)
}

/// Reads and stores `customer`'s active entitlements in a transaction of its own.
pub async fn refresh(store: &Store, client: &Client, customer: &str) -> Result<bool, RefreshError> {
    let read = read(client, customer).await?;
    let mut tx = store.begin().await?;
    let changed = write_in(&mut tx, &read, unix_now()).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Why [`refresh`] failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Stripe did not answer the entitlements list.
    #[error("reading the entitlements from Stripe failed: {0}")]
    Stripe(#[from] StripeError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}

/// What a sync did to features.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeatureCounts {
    /// Features written (new or changed).
    pub written: u64,
    /// Features Stripe no longer lists, marked deleted here (a full sync only).
    pub tombstoned: u64,
    /// Products whose features were read.
    pub products: u64,
}

fn feature_write(f: &Raw<Feature>) -> FeatureWrite {
    FeatureWrite {
        id: f.value.id.clone(),
        lookup_key: f.value.lookup_key.clone(),
        name: f.value.name.clone(),
        active: f.value.active,
        livemode: f.value.livemode,
        raw: compact_json(f.json.get()),
    }
}

/// Mirrors features and products' features. `products`: the products whose features
/// are read (a full sync passes every live one); `all_features`: whether the features
/// list is read too, and features it no longer returns tombstoned (a full sync). A
/// failure of Stripe stops the run where it is; what was written stays.
pub async fn sync_features(
    store: &Store,
    client: &Client,
    products: &[String],
    all_features: bool,
    counts: &mut FeatureCounts,
) -> Result<(), SyncFeaturesError> {
    let mut listed = 0;
    if all_features {
        let started = unix_now();
        let mut pages = std::pin::pin!(client.feature_pages());
        while let Some(page) = pages.next().await {
            let page: List<Raw<Feature>> = page?;
            listed += page.data.len();
            let writes: Vec<FeatureWrite> = page.data.iter().map(feature_write).collect();
            counts.written += store.upsert_features(&writes, started, unix_now()).await?;
        }
        counts.tombstoned += store.tombstone_unseen_features(started).await?;
    } else {
        listed = store.features().await?.len();
    }
    // Stripe has no list of every product's features: one request per product. A
    // Stripe account without features (none listed by Stripe, or none mirrored yet for a
    // selected sync) skips them, so a catalog that does not use Entitlements costs two
    // requests more per full sync, not one per product. Products that lost their last
    // feature keep no stale link: a product's links are replaced only when read, so
    // with no feature anywhere they are cleared here.
    if listed == 0 {
        store.clear_product_features().await?;
        return Ok(());
    }
    for product in products {
        let observed = unix_now();
        let attached = Client::collect_all(client.product_feature_pages(product)).await?;
        let writes: Vec<FeatureWrite> = attached
            .iter()
            .map(|pf| feature_write(&pf.entitlement_feature))
            .collect();
        counts.written += store.upsert_features(&writes, observed, unix_now()).await?;
        let links: Vec<(String, String)> = attached
            .iter()
            .map(|pf| (pf.entitlement_feature.value.id.clone(), pf.id.clone()))
            .collect();
        store
            .replace_product_features(product, &links, unix_now())
            .await?;
        counts.products += 1;
    }
    Ok(())
}

/// Why [`sync_features`] stopped; what was written before stays.
#[derive(Debug, thiserror::Error)]
pub enum SyncFeaturesError {
    /// Stripe did not answer a features or product-features list.
    #[error(transparent)]
    Stripe(#[from] StripeError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
}
