//! What an event does to local state.
//!
//! Catalog events (`product.*`, `price.*`) write the catalog with the same ordering guard
//! as sync: a product's own `updated` (a price's event `created`) orders writes; a tie
//! with different content, or `STRIPE_WEBHOOK_REFETCH=true` (Stripe's "thin event" style),
//! refetches the object from the API first; deletions leave tombstones. Any Stripe call
//! happens before the transaction opens; the effects and the event's status then commit
//! together, so an event is applied exactly once or not at all.
//!
//! Checkout, subscription, invoice, refund and dispute events are planned and written by
//! [`super::credit`] through the same two steps. Every other type is stored and
//! marked `ignored` (and answered 200, not 4xx/5xx). So is an event whose `livemode`
//! differs from the mode of the configured key (a test event reaching a live service, or
//! the reverse): it is never applied, and the reason is kept with it.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use sm_domain::catalog::{map_price, map_product};
use sm_store::catalog::{PriceWrite, ProductWrite, Ties};
use sm_store::inbox::InboxEvent;
use sm_store::{Store, Tx};
use sm_stripe::Client;
use sm_stripe::types::{Price, Product, Raw};

use crate::clock::{compact_json, unix_now};

/// The result of applying one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its effects are committed.
    Processed,
    /// Nothing to do for this type; stored for the record.
    Ignored,
    /// Another worker holds the event now (our lease expired); nothing was written.
    LeaseLost,
}

impl Applied {
    /// `processed`, `ignored` or `lease_lost`: the outcome label of the processed-events metric.
    pub fn status(self) -> &'static str {
        match self {
            Applied::Processed => "processed",
            Applied::Ignored => "ignored",
            Applied::LeaseLost => "lease_lost",
        }
    }
}

pub use super::error::ApplyError;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    /// Set on events of a Connect account (`acct_…`) sent to a Connect endpoint.
    #[serde(default)]
    account: Option<String>,
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    object: &'a RawValue,
}

/// What to write, decided before any transaction opens.
#[derive(Debug)]
enum Effect {
    /// The write, and how to treat a same-version row: `Refresh` when the data was just
    /// read from Stripe, `Reject` when it came in the payload.
    Product(ProductWrite, Ties),
    Price(PriceWrite, Ties),
    TombstoneProduct {
        id: String,
        name: Option<String>,
        at: i64,
    },
    TombstonePrice {
        id: String,
        product: String,
        at: i64,
    },
    /// A ledger, subscription or checkout change (see [`super::credit`]).
    Credit(Box<super::credit::CreditEffect>),
    /// A customer's active entitlements, read from Stripe.
    Entitlements(crate::entitlements::EntitlementsRead),
    None,
    /// Stored, never applied, for the reason given (kept in the event's `last_error`).
    Refused(String),
}

pub use crate::config::ApplyOptions;

/// The stored versions of the catalog objects a batch of events touches, read in one
/// query per table instead of one per event. An id missing here is looked up on its own.
#[derive(Debug, Default)]
pub struct Versions {
    products: HashMap<String, Option<(i64, String, bool)>>,
    prices: HashMap<String, Option<(i64, String, bool)>>,
}

#[derive(Deserialize)]
struct Touches<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: TouchedData<'a>,
}

#[derive(Deserialize)]
struct TouchedData<'a> {
    #[serde(borrow)]
    object: TouchedObject<'a>,
}

#[derive(Deserialize)]
struct TouchedObject<'a> {
    id: &'a str,
}

impl Versions {
    /// Reads the versions for every product and price that `events` create or update.
    pub async fn prefetch(store: &Store, events: &[InboxEvent]) -> Result<Self, ApplyError> {
        let (mut products, mut prices) = (Vec::new(), Vec::new());
        for event in events {
            let Ok(t) = serde_json::from_str::<Touches<'_>>(&event.payload) else {
                continue;
            };
            match t.kind {
                "product.created" | "product.updated" => products.push(t.data.object.id.to_owned()),
                "price.created" | "price.updated" => prices.push(t.data.object.id.to_owned()),
                _ => {}
            }
        }
        let mut found = store.product_versions(&products).await?;
        let mut versions = Versions::default();
        for id in products {
            let v = found.remove(&id);
            versions.products.insert(id, v);
        }
        let mut found = store.price_versions(&prices).await?;
        for id in prices {
            let v = found.remove(&id);
            versions.prices.insert(id, v);
        }
        Ok(versions)
    }
}

/// Decides what an event does, calling Stripe if a refetch is needed. Opens no
/// transaction. `versions` may hold the stored versions already.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    event: &InboxEvent,
    options: ApplyOptions,
    versions: &Versions,
) -> Result<Planned, ApplyError> {
    let envelope: Envelope<'_> =
        serde_json::from_str(&event.payload).map_err(|e| ApplyError::Payload(e.to_string()))?;
    if let Some(live) = client.map(|c| c.key().mode() == sm_domain::Mode::Live)
        && live != envelope.livemode
    {
        let (event_mode, key_mode) = if envelope.livemode {
            ("live", "test")
        } else {
            ("test", "live")
        };
        tracing::warn!(id = %event.id, "a {event_mode}-mode event reached a service with a {key_mode}-mode key; stored, not applied");
        return Ok(Planned {
            mirror: None,
            entitlements: None,
            effect: Effect::Refused(format!(
                "livemode mismatch: a {event_mode}-mode event, and the configured key is {key_mode}-mode; not applied"
            )),
        });
    }
    if let Some(account) = &envelope.account {
        // Its objects live in another Stripe account: mirroring them (or granting
        // credits for them) would mix that account's customers and catalog into ours.
        return Ok(Planned {
            mirror: None,
            entitlements: None,
            effect: Effect::Refused(format!(
                "an event of the connected account {account} (a Connect endpoint): this service keeps the \
                 platform account's data only; not applied"
            )),
        });
    }
    let object = compact_json(envelope.data.object.get());
    let effect = match envelope.kind.as_str() {
        "product.created" | "product.updated" => {
            product_effect(store, client, &object, options, versions).await?
        }
        "product.deleted" => {
            let p: Product =
                serde_json::from_str(&object).map_err(|e| ApplyError::Payload(e.to_string()))?;
            let at = envelope.created.max(p.updated.unwrap_or(p.created));
            Effect::TombstoneProduct {
                id: p.id,
                name: Some(p.name),
                at,
            }
        }
        "price.created" | "price.updated" => {
            price_effect(store, client, &object, envelope.created, options, versions).await?
        }
        "price.deleted" => {
            let p: Price =
                serde_json::from_str(&object).map_err(|e| ApplyError::Payload(e.to_string()))?;
            Effect::TombstonePrice {
                id: p.id,
                product: p.product.id().to_owned(),
                at: envelope.created,
            }
        }
        "entitlements.active_entitlement_summary.updated" => {
            // The payload lists at most 10 entitlements (docs.stripe.com/billing/entitlements):
            // a trigger to read the whole set, not the set.
            let summary: serde_json::Value =
                serde_json::from_str(&object).map_err(|e| ApplyError::Payload(e.to_string()))?;
            let customer = summary["customer"].as_str().ok_or_else(|| {
                ApplyError::Payload("an entitlement summary without a customer".into())
            })?;
            let client = need_client(client, &format!("the entitlements of {customer}"))?;
            Effect::Entitlements(crate::entitlements::read(client, customer).await?)
        }
        kind => {
            let info = super::credit::EventInfo {
                kind,
                created: envelope.created,
                object: &object,
            };
            match super::credit::plan(store, client, info).await? {
                Some(effect) => Effect::Credit(Box::new(effect)),
                None => Effect::None,
            }
        }
    };
    // The mirror is a read model: when it cannot be written now (a refetch failing),
    // an event with another effect (a credit grant) is still applied, without it; an
    // event that only mirrors fails and is retried.
    let mirror = match crate::mirror::event_write(
        store,
        client,
        &envelope.kind,
        envelope.created,
        &object,
    )
    .await
    {
        Ok(m) => m,
        Err(e) if !matches!(effect, Effect::None) => {
            tracing::warn!(id = %event.id, error = %crate::error_chain(&e), "the event's mirror write is skipped; its other effects are applied");
            None
        }
        Err(e) => return Err(e.into()),
    };
    // A subscription change may change what the customer is entitled to: read Stripe's
    // answer again. Not needed for the event's other effects, so a failure only logs
    // (the summary event Stripe sends for a changed set, or a reconcile, reads it).
    let mut entitlements = None;
    if envelope.kind.starts_with("customer.subscription.")
        && !matches!(effect, Effect::Refused(_))
        && let Some(client) = client
        && let Some(customer) = serde_json::from_str::<serde_json::Value>(&object)
            .ok()
            .and_then(|o| o["customer"].as_str().map(str::to_owned))
    {
        match crate::entitlements::read(client, &customer).await {
            Ok(read) => entitlements = Some(read),
            Err(e) => {
                tracing::warn!(id = %event.id, %customer, error = %crate::error_chain(&e), "could not read the customer's entitlements; the event is applied without them")
            }
        }
    }
    Ok(Planned {
        effect,
        mirror,
        entitlements,
    })
}

/// An event's effect, decided and ready to write.
#[derive(Debug)]
pub struct Planned {
    effect: Effect,
    /// The mirrored object it carries (a customer, an invoice), written first.
    mirror: Option<crate::mirror::MirrorWrite>,
    /// The customer's entitlements read again for a subscription event.
    entitlements: Option<crate::entitlements::EntitlementsRead>,
}

impl Planned {
    /// Whether it writes the credit ledger (or an account's entitlements). Ledger
    /// effects take row locks (links, reversals, accounts) in an order that holds within
    /// one event; several of them in one transaction could wait on each other, so they
    /// are committed one by one.
    pub fn writes_ledger(&self) -> bool {
        // Entitlement writes lock the customer's read row, then its account (to send
        // `entitlements.updated` in order): committed one by one like ledger effects.
        matches!(self.effect, Effect::Credit(_) | Effect::Entitlements(_))
            || self.entitlements.is_some()
    }

    fn status(&self) -> Applied {
        if matches!(self.effect, Effect::Refused(_))
            || (matches!(self.effect, Effect::None)
                && self.mirror.is_none()
                && self.entitlements.is_none())
        {
            Applied::Ignored
        } else {
            Applied::Processed
        }
    }
}

/// Writes a planned effect and marks the event done in `tx`. `Ok(None)` when `owner` no
/// longer holds the lease: the caller must roll back.
async fn write(
    tx: &mut Tx,
    event: &InboxEvent,
    owner: &str,
    planned: &Planned,
) -> Result<Option<Applied>, ApplyError> {
    let now = unix_now();
    write_mirror(tx, planned, now).await?;
    let counts = match &planned.effect {
        Effect::Product(w, ties) => {
            tx.upsert_products(std::slice::from_ref(w), None, now, *ties)
                .await?
        }
        Effect::Price(w, ties) => {
            tx.upsert_prices(std::slice::from_ref(w), None, now, *ties)
                .await?
        }
        effect => {
            write_effect(tx, effect, now).await?;
            Default::default()
        }
    };
    if counts.ties > 0 {
        // A write of the same version with other content landed after we planned: fail
        // this attempt; the next one sees the tie and refetches the object.
        return Err(ApplyError::Tie(event.id.clone()));
    }
    let status = planned.status();
    let finished = tx
        .finish_event(&event.id, owner, status.status(), super::now_ms())
        .await?;
    if finished {
        // An erased customer's later event: applied (ids and amounts), then kept
        // without its personal data.
        tx.redact_event_if_erased(&event.id, &event.payload).await?;
    }
    if finished && let Effect::Refused(reason) = &planned.effect {
        tx.note_event(&event.id, reason).await?;
    }
    Ok(finished.then_some(status))
}

/// Writes the event's mirrored object; a tie (a same-time state with other content
/// landed after planning) fails the attempt so that the next one refetches.
async fn write_mirror(tx: &mut Tx, planned: &Planned, now: i64) -> Result<(), ApplyError> {
    if let Some(m) = &planned.mirror {
        if m.kind == &sm_store::objects::CUSTOMERS && m.write.deleted {
            // `customer.deleted`: redacted and remembered first, so the tombstone below is
            // written in its redacted form too. `account` is the customers kind's first
            // column.
            let account = match m.write.cells.first() {
                Some(sm_store::objects::Cell::Text(Some(a))) => Some(a.as_str()),
                _ => None,
            };
            crate::privacy::customer_deleted(tx, &m.write.id, account, m.write.version, now)
                .await?;
        }
        let counts = tx
            .upsert_objects(m.kind, std::slice::from_ref(&m.write), m.ties, now)
            .await?;
        if counts.ties > 0 {
            return Err(ApplyError::Tie(format!("{} {}", m.kind.object, m.write.id)));
        }
        crate::mirror::after_write(tx, m.kind, std::slice::from_ref(&m.write)).await?;
    }
    if let Some(read) = &planned.entitlements {
        crate::entitlements::write_in(tx, read, now).await?;
    }
    Ok(())
}

/// Writes an effect that is not an upsert (a tombstone, or nothing).
async fn write_effect(tx: &mut Tx, effect: &Effect, now: i64) -> Result<(), ApplyError> {
    match effect {
        Effect::TombstoneProduct { id, name, at } => {
            tx.tombstone_product(id, name.as_deref(), *at, now).await?;
        }
        Effect::TombstonePrice { id, product, at } => {
            tx.tombstone_price(id, product, *at, now).await?;
        }
        Effect::Product(w, ties) => {
            tx.upsert_products(std::slice::from_ref(w), None, now, *ties)
                .await?;
        }
        Effect::Price(w, ties) => {
            tx.upsert_prices(std::slice::from_ref(w), None, now, *ties)
                .await?;
        }
        Effect::Credit(effect) => super::credit::write(tx, effect, now).await?,
        Effect::Entitlements(read) => {
            crate::entitlements::write_in(tx, read, now).await?;
        }
        Effect::None | Effect::Refused(_) => {}
    }
    Ok(())
}

/// Applies one event in its own transaction.
pub async fn apply(
    store: &Store,
    client: Option<&Client>,
    event: &InboxEvent,
    owner: &str,
    options: ApplyOptions,
) -> Result<Applied, ApplyError> {
    let planned = plan(store, client, event, options, &Versions::default()).await?;
    commit_planned(store, event, owner, &planned).await
}

/// Writes one planned event in its own transaction.
pub async fn commit_planned(
    store: &Store,
    event: &InboxEvent,
    owner: &str,
    planned: &Planned,
) -> Result<Applied, ApplyError> {
    let mut tx = store.begin().await?;
    let written = match write(&mut tx, event, owner, planned).await {
        Ok(w) => w,
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
    };
    match written {
        Some(applied) => {
            tx.commit().await?;
            Ok(applied)
        }
        None => {
            tx.rollback().await?;
            Ok(Applied::LeaseLost)
        }
    }
}

/// Applies planned events in one transaction: one commit (one fsync) for the batch.
/// Each event's effects and status still commit together. Runs of product (or price)
/// upserts with distinct ids go to the database as one multi-row write, and the statuses
/// as one update per status, so a batch costs a handful of statements, not five per
/// event. If the batch cannot commit whole (a database error, a tie, a lost lease) it is
/// rolled back and the caller applies the events one by one, where each such case is
/// handled on its own.
pub async fn write_batch(
    store: &Store,
    batch: &[(InboxEvent, Planned)],
    owner: &str,
) -> Result<Vec<Applied>, ApplyError> {
    let mut tx = store.begin().await?;
    match write_grouped(&mut tx, batch, owner).await {
        Ok(outcomes) => {
            tx.commit().await?;
            Ok(outcomes)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

async fn write_grouped(
    tx: &mut Tx,
    batch: &[(InboxEvent, Planned)],
    owner: &str,
) -> Result<Vec<Applied>, ApplyError> {
    let now = unix_now();
    for (_, planned) in batch {
        write_mirror(tx, planned, now).await?;
    }
    let mut i = 0;
    while i < batch.len() {
        let mut seen = HashSet::new();
        let counts = match &batch[i].1.effect {
            Effect::Product(_, ties) => {
                let mut writes = Vec::new();
                while let Some((
                    _,
                    Planned {
                        effect: Effect::Product(w, t),
                        ..
                    },
                )) = batch.get(i)
                    && t == ties
                    && seen.insert(w.product.id.as_str())
                {
                    writes.push(w.clone());
                    i += 1;
                }
                tx.upsert_products(&writes, None, now, *ties).await?
            }
            Effect::Price(_, ties) => {
                let mut writes = Vec::new();
                while let Some((
                    _,
                    Planned {
                        effect: Effect::Price(w, t),
                        ..
                    },
                )) = batch.get(i)
                    && t == ties
                    && seen.insert(w.price.id.as_str())
                {
                    writes.push(w.clone());
                    i += 1;
                }
                tx.upsert_prices(&writes, None, now, *ties).await?
            }
            effect => {
                write_effect(tx, effect, now).await?;
                i += 1;
                Default::default()
            }
        };
        if counts.ties > 0 {
            return Err(ApplyError::Tie(format!(
                "a batch of {} events",
                batch.len()
            )));
        }
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    let (mut processed, mut ignored) = (Vec::new(), Vec::new());
    for (event, planned) in batch {
        let status = planned.status();
        outcomes.push(status);
        match status {
            Applied::Ignored => ignored.push(event.id.as_str()),
            _ => processed.push(event.id.as_str()),
        }
    }
    let now_ms = super::now_ms();
    let mut finished = 0;
    for (ids, status) in [(processed, Applied::Processed), (ignored, Applied::Ignored)] {
        if !ids.is_empty() {
            finished += tx
                .finish_events(&ids, owner, status.status(), now_ms)
                .await?;
        }
    }
    for (event, planned) in batch {
        if let Effect::Refused(reason) = &planned.effect {
            tx.note_event(&event.id, reason).await?;
        }
        tx.redact_event_if_erased(&event.id, &event.payload).await?;
    }
    if finished != batch.len() as u64 {
        return Err(ApplyError::Store(sm_store::StoreError::Corrupt(format!(
            "{} of {} leases lost during a batch",
            batch.len() as u64 - finished,
            batch.len()
        ))));
    }
    Ok(outcomes)
}

fn need_client<'a>(client: Option<&'a Client>, what: &str) -> Result<&'a Client, ApplyError> {
    client.ok_or_else(|| ApplyError::Disabled(what.to_owned()))
}

async fn product_effect(
    store: &Store,
    client: Option<&Client>,
    object: &str,
    options: ApplyOptions,
    versions: &Versions,
) -> Result<Effect, ApplyError> {
    let product: Product =
        serde_json::from_str(object).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let updated = product.updated.unwrap_or(product.created);
    let stored = match versions.products.get(&product.id) {
        Some(v) => v.clone(),
        None => store.product_version(&product.id).await?,
    };
    let tie = match stored {
        Some((version, raw, _)) => version == updated && raw != object,
        None => false,
    };
    if options.refetch_always || tie {
        let client = need_client(client, &format!("product {}", product.id))?;
        return match client.retrieve_product_raw(&product.id).await {
            Ok(fresh) if !fresh.value.deleted => {
                Ok(Effect::Product(product_write(&fresh), Ties::Refresh))
            }
            Ok(_) => Ok(Effect::TombstoneProduct {
                id: product.id,
                name: Some(product.name),
                at: unix_now(),
            }),
            Err(e) if e.is_not_found() => Ok(Effect::TombstoneProduct {
                id: product.id,
                name: Some(product.name),
                at: unix_now(),
            }),
            Err(e) => Err(e.into()),
        };
    }
    Ok(Effect::Product(
        ProductWrite {
            product: map_product(&product.to_domain()),
            raw: object.to_owned(),
        },
        Ties::Reject,
    ))
}

fn product_write(p: &Raw<Product>) -> ProductWrite {
    ProductWrite {
        product: map_product(&p.value.to_domain()),
        raw: compact_json(p.json.get()),
    }
}

async fn price_effect(
    store: &Store,
    client: Option<&Client>,
    object: &str,
    event_created: i64,
    options: ApplyOptions,
    versions: &Versions,
) -> Result<Effect, ApplyError> {
    let price: Price =
        serde_json::from_str(object).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let stored = match versions.prices.get(&price.id) {
        Some(v) => v.clone(),
        None => store.price_version(&price.id).await?,
    };
    let tie = match stored {
        Some((version, raw, _)) => version == event_created && raw != object,
        None => false,
    };
    if options.refetch_always || tie {
        let client = need_client(client, &format!("price {}", price.id))?;
        let observed_at = unix_now();
        return match client.retrieve_price_raw(&price.id).await {
            Ok(fresh) => Ok(Effect::Price(
                PriceWrite {
                    price: map_price(&fresh.value.to_domain()),
                    raw: compact_json(fresh.json.get()),
                    observed_at,
                },
                Ties::Refresh,
            )),
            Err(e) if e.is_not_found() => Ok(Effect::TombstonePrice {
                id: price.id,
                product: price.product.id().to_owned(),
                at: observed_at,
            }),
            Err(e) => Err(e.into()),
        };
    }
    Ok(Effect::Price(
        PriceWrite {
            price: map_price(&price.to_domain()),
            raw: object.to_owned(),
            observed_at: event_created,
        },
        Ties::Reject,
    ))
}
