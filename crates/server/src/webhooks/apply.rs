//! What an event does to local state.
//!
//! Catalog events (`product.*`, `price.*`) write the catalog with the same ordering guard
//! as sync: a product's own `updated` (a price's event `created`) orders writes; a tie
//! with different content, or `STRIPE_WEBHOOK_REFETCH=true` (Stripe's "thin event" style),
//! refetches the object from the API first; deletions leave tombstones. Any Stripe call
//! happens before the transaction opens; the effects and the event's status then commit
//! together, so an event is applied exactly once or not at all.
//!
//! Every other type is stored and marked `ignored` (and answered 200, not 4xx/5xx).

use serde::Deserialize;
use serde_json::value::RawValue;
use sm_domain::catalog::{map_price, map_product};
use sm_store::catalog::{PriceWrite, ProductWrite, Ties};
use sm_store::inbox::InboxEvent;
use sm_store::{Store, Tx};
use sm_stripe::types::{Price, Product, Raw};
use sm_stripe::{Client, StripeError};

use crate::sync::{compact_json, unix_now};

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
    pub fn status(self) -> &'static str {
        match self {
            Applied::Processed => "processed",
            Applied::Ignored => "ignored",
            Applied::LeaseLost => "lease_lost",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the stored payload is not a Stripe event: {0}")]
    Payload(String),
    #[error("refetching from Stripe failed: {0}")]
    Stripe(#[from] StripeError),
    #[error("Stripe is not configured, and this event needs a refetch: {0}")]
    Disabled(String),
    #[error("the database failed: {0}")]
    Store(#[from] sm_store::StoreError),
    #[error("{0} met a local row of the same version with other content; it will be refetched")]
    Tie(String),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    created: i64,
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
    None,
}

/// Settings of the apply step.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Refetch every catalog object instead of trusting the payload.
    pub refetch_always: bool,
}

/// Decides what an event does, calling Stripe if a refetch is needed. Opens no
/// transaction.
pub async fn plan(
    store: &Store,
    client: Option<&Client>,
    event: &InboxEvent,
    options: ApplyOptions,
) -> Result<Planned, ApplyError> {
    let envelope: Envelope<'_> =
        serde_json::from_str(&event.payload).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let object = compact_json(envelope.data.object.get());
    let effect = match envelope.kind.as_str() {
        "product.created" | "product.updated" => {
            product_effect(store, client, &object, options).await?
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
            price_effect(store, client, &object, envelope.created, options).await?
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
        _ => Effect::None,
    };
    Ok(Planned { effect })
}

/// An event's effect, decided and ready to write.
#[derive(Debug)]
pub struct Planned {
    effect: Effect,
}

impl Planned {
    fn status(&self) -> Applied {
        if matches!(self.effect, Effect::None) {
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
    let counts = match &planned.effect {
        Effect::Product(w, ties) => {
            tx.upsert_products(std::slice::from_ref(w), None, now, *ties)
                .await?
        }
        Effect::Price(w, ties) => {
            tx.upsert_prices(std::slice::from_ref(w), None, now, *ties)
                .await?
        }
        Effect::TombstoneProduct { id, name, at } => {
            tx.tombstone_product(id, name.as_deref(), *at, now).await?;
            Default::default()
        }
        Effect::TombstonePrice { id, product, at } => {
            tx.tombstone_price(id, product, *at, now).await?;
            Default::default()
        }
        Effect::None => Default::default(),
    };
    if counts.ties > 0 {
        // A write of the same version with other content landed after we planned: fail
        // this attempt; the next one sees the tie and refetches the object.
        return Err(ApplyError::Tie(event.id.clone()));
    }
    let status = planned.status();
    Ok(tx
        .finish_event(&event.id, owner, status.status(), super::now_ms())
        .await?
        .then_some(status))
}

/// Applies one event in its own transaction.
pub async fn apply(
    store: &Store,
    client: Option<&Client>,
    event: &InboxEvent,
    owner: &str,
    options: ApplyOptions,
) -> Result<Applied, ApplyError> {
    let planned = plan(store, client, event, options).await?;
    let mut tx = store.begin().await?;
    let written = match write(&mut tx, event, owner, &planned).await {
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
/// Each event's effects and status still commit together. If the batch cannot commit
/// whole (a database error, a lost lease), it is rolled back and the caller applies the
/// events one by one.
pub async fn write_batch(
    store: &Store,
    batch: &[(InboxEvent, Planned)],
    owner: &str,
) -> Result<Vec<Applied>, ApplyError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (event, planned) in batch {
        match write(&mut tx, event, owner, planned).await {
            Ok(Some(applied)) => outcomes.push(applied),
            Ok(None) => {
                tx.rollback().await?;
                return Err(ApplyError::Store(sm_store::StoreError::Corrupt(format!(
                    "lease on {} lost during a batch",
                    event.id
                ))));
            }
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        }
    }
    tx.commit().await?;
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
) -> Result<Effect, ApplyError> {
    let product: Product =
        serde_json::from_str(object).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let updated = product.updated.unwrap_or(product.created);
    let tie = match store.product_version(&product.id).await? {
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
) -> Result<Effect, ApplyError> {
    let price: Price =
        serde_json::from_str(object).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let tie = match store.price_version(&price.id).await? {
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
