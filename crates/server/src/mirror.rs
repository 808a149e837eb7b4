//! Mirrors of Stripe's customers, invoices, charges and subscriptions: what an account's
//! plan and payment history are answered from, without a Stripe call per request.
//!
//! Customers and invoices go through the generic object pipeline
//! ([`sm_store::objects`]): a [`Mirror`] names the stored [`ObjectKind`], where Stripe
//! lists and retrieves the object, and how its columns are read from the JSON. The same
//! write (with the ordering guard) serves full syncs ([`sync_objects`]) and events
//! ([`event_write`]); `events reconcile` feeds the events path. Subscriptions keep their
//! own row ([`subscription_row`]), which the credit rules read too.
//!
//! Adding an object: a table in a migration, an `ObjectKind` in `sm_store::objects`, a
//! `Mirror` here with its `cells` extractor. Nothing else changes: `sync --objects NAME`,
//! its events and `events reconcile` pick it up.

use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sm_store::catalog::{Ties, WriteCounts};
use sm_store::credits::SubscriptionRow;
use sm_store::objects::{CHARGES, CUSTOMERS, Cell, INVOICES, ObjectKind, ObjectWrite};
use sm_store::{Store, StoreError};
use sm_stripe::types::{ObjectId, Raw, Subscription};
use sm_stripe::{Client, StripeError};

use crate::clock::{compact_json, unix_now};

/// One mirrored object type.
#[derive(Debug)]
pub struct Mirror {
    /// The name `sync --objects` takes (`customers`).
    pub name: &'static str,
    /// The table and columns it is stored in.
    pub kind: &'static ObjectKind,
    list_op: &'static str,
    list_path: &'static str,
    /// Filters that make the list complete (Stripe lists some objects only partly by
    /// default).
    list_params: &'static [(&'static str, &'static str)],
    retrieve_op: &'static str,
    cells: fn(&Value) -> Vec<Cell>,
}

/// Customers: each one's account (`metadata.account`), email and name.
pub static CUSTOMER: Mirror = Mirror {
    name: "customers",
    kind: &CUSTOMERS,
    list_op: "customers.list",
    list_path: "/v1/customers",
    list_params: &[],
    retrieve_op: "customers.retrieve",
    cells: |v| {
        vec![
            text(&v["metadata"]["account"]),
            text(&v["email"]),
            text(&v["name"]),
            Cell::Bool(v["livemode"].as_bool().unwrap_or(false)),
            Cell::Int(Some(v["created"].as_i64().unwrap_or(0))),
        ]
    },
};

/// Invoices: the payment history's subscription payments (amounts in minor units, links
/// to the hosted invoice and PDF).
pub static INVOICE: Mirror = Mirror {
    name: "invoices",
    kind: &INVOICES,
    list_op: "invoices.list",
    list_path: "/v1/invoices",
    list_params: &[],
    retrieve_op: "invoices.retrieve",
    cells: |v| {
        vec![
            id_of(&v["customer"]),
            // Basil moved it under `parent.subscription_details`.
            id_of(&v["parent"]["subscription_details"]["subscription"]),
            text(&v["status"]),
            text(&v["currency"]),
            Cell::Int(v["total"].as_i64()),
            Cell::Int(v["amount_due"].as_i64()),
            Cell::Int(v["amount_paid"].as_i64()),
            Cell::Int(v["amount_remaining"].as_i64()),
            text(&v["number"]),
            text(&v["hosted_invoice_url"]),
            text(&v["invoice_pdf"]),
            text(&v["billing_reason"]),
            Cell::Bool(v["livemode"].as_bool().unwrap_or(false)),
            Cell::Int(Some(v["created"].as_i64().unwrap_or(0))),
        ]
    },
};

/// A charge: what a one-time payment's history needs (the receipt, the refunded
/// amount), found from its payment intent.
pub static CHARGE: Mirror = Mirror {
    name: "charges",
    kind: &CHARGES,
    list_op: "charges.list",
    list_path: "/v1/charges",
    list_params: &[],
    retrieve_op: "charges.retrieve",
    cells: |v| {
        vec![
            id_of(&v["payment_intent"]),
            id_of(&v["customer"]),
            Cell::Int(v["amount"].as_i64()),
            Cell::Int(v["amount_refunded"].as_i64()),
            text(&v["currency"]),
            text(&v["status"]),
            text(&v["receipt_url"]),
            Cell::Bool(v["livemode"].as_bool().unwrap_or(false)),
            Cell::Int(Some(v["created"].as_i64().unwrap_or(0))),
        ]
    },
};

/// Every object `sync --objects` knows, besides the catalog (`subscriptions` is
/// handled by [`sync_subscriptions`]).
pub static MIRRORS: [&Mirror; 3] = [&CUSTOMER, &INVOICE, &CHARGE];

fn text(v: &Value) -> Cell {
    Cell::Text(v.as_str().map(str::to_owned))
}

/// An expandable field: the id, or the expanded object's id.
fn id_of(v: &Value) -> Cell {
    Cell::Text(v.as_str().or_else(|| v["id"].as_str()).map(str::to_owned))
}

/// The mirror for a Stripe `object` value.
pub fn for_object(object: &str) -> Option<&'static Mirror> {
    MIRRORS.iter().copied().find(|m| m.kind.object == object)
}

/// Why an object could not be mirrored.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Stripe's object (in an event or a listing) is not JSON.
    #[error("the object is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The object has no `id`, so it cannot be stored.
    #[error("the object has no id")]
    NoId,
    /// Stripe failed while the object was refetched or listed.
    #[error(transparent)]
    Stripe(#[from] StripeError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The write for one object's JSON (compact, as stored).
pub fn object_write(
    mirror: &Mirror,
    raw: &str,
    version: i64,
    deleted: bool,
) -> Result<ObjectWrite, MirrorError> {
    let v: Value = serde_json::from_str(raw)?;
    let id = v["id"].as_str().ok_or(MirrorError::NoId)?.to_owned();
    Ok(ObjectWrite {
        id,
        version,
        deleted: deleted || v["deleted"].as_bool() == Some(true),
        cells: (mirror.cells)(&v),
        raw: raw.to_owned(),
    })
}

/// A mirror write an event makes.
#[derive(Debug, Clone)]
pub struct MirrorWrite {
    /// The mirror's table.
    pub kind: &'static ObjectKind,
    /// The row to write.
    pub write: ObjectWrite,
    /// What to do when the stored row has the same version but other content.
    pub ties: Ties,
}

/// What an event of type `event_type` does to the mirrors: for an event whose object
/// is mirrored, the object at the event's time (`*.deleted`: a tombstone). A same-time
/// state with other content already stored is a tie: the object is refetched (and a
/// 404 makes a tombstone). `Ok(None)`: not a mirrored object, or one without an id
/// (`invoice.upcoming`).
pub async fn event_write(
    store: &Store,
    client: Option<&Client>,
    event_type: &str,
    created: i64,
    object: &str,
) -> Result<Option<MirrorWrite>, MirrorError> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(default)]
        id: Option<&'a str>,
        #[serde(default, borrow)]
        object: Option<&'a str>,
    }
    let head: Head<'_> = serde_json::from_str(object)?;
    let (Some(mirror), Some(id)) = (head.object.and_then(for_object), head.id) else {
        return Ok(None);
    };
    let deleted = event_type.ends_with(".deleted");
    let write = object_write(mirror, object, created, deleted)?;
    let stored = store.get_object(mirror.kind, id).await?;
    let tie = stored.is_some_and(|s| {
        s.version == created && !s.deleted && !write.deleted && s.raw != write.raw
    });
    if tie && client.is_none() {
        // Without Stripe the two states cannot be ordered: keep the stored one.
        tracing::warn!(
            id,
            "a same-second {} state differs from the stored one and Stripe is not configured to refetch it; kept the stored one",
            mirror.kind.object
        );
        return Ok(None);
    }
    if tie && let Some(client) = client {
        // The fresh copy is at least as new as the event: written at the event's time
        // (winning the tie), not the local clock's, which may be behind Stripe's (test
        // clocks run ahead) or ahead of it.
        let observed = created;
        let path = format!("{}/{id}", mirror.list_path);
        return match client
            .get::<Box<RawValue>>(mirror.retrieve_op, &path, &[])
            .await
        {
            Ok(fresh) => Ok(Some(MirrorWrite {
                kind: mirror.kind,
                write: object_write(mirror, &compact_json(fresh.get()), observed, false)?,
                ties: Ties::Refresh,
            })),
            Err(e) if e.is_not_found() => Ok(Some(MirrorWrite {
                kind: mirror.kind,
                write: ObjectWrite {
                    version: observed,
                    deleted: true,
                    ..write
                },
                ties: Ties::Refresh,
            })),
            Err(e) => Err(e.into()),
        };
    }
    Ok(Some(MirrorWrite {
        kind: mirror.kind,
        write,
        ties: Ties::Reject,
    }))
}

/// A subscription as its row: the account from its `metadata.account` or its customer,
/// the first item's price and product, the current period (on the item since basil).
pub async fn subscription_row(
    store: &Store,
    sub: &Subscription,
    event_created: i64,
    raw: &str,
) -> Result<SubscriptionRow, StoreError> {
    let account = match sub.metadata.get("account") {
        Some(a) => Some(a.clone()),
        None => store.account_for_customer(sub.customer.id()).await?,
    };
    Ok(subscription_row_for(sub, account, event_created, raw))
}

/// [`subscription_row`] with the account already looked up (a sync page looks up all
/// its customers' accounts in one query).
fn subscription_row_for(
    sub: &Subscription,
    account: Option<String>,
    event_created: i64,
    raw: &str,
) -> SubscriptionRow {
    let customer = sub.customer.id().to_owned();
    let item = sub.items.data.first();
    let price = item.map(|i| i.price.id.clone());
    let product = item.map(|i| i.price.product.id().to_owned());
    let period = sub.current_period();
    SubscriptionRow {
        id: sub.id.clone(),
        account,
        customer,
        status: sub.status.clone(),
        price,
        product,
        quantity: item
            .and_then(|i| i.quantity)
            .map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
        current_period_start: period.map(|p| p.0),
        current_period_end: period.map(|p| p.1),
        cancel_at_period_end: sub.cancel_at_period_end,
        canceled_at: sub.canceled_at,
        event_created,
        raw: raw.to_owned(),
        updated_at: unix_now(),
    }
}

/// What a sync of one object type did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectsReport {
    /// The mirror's name (`customers`, `invoices`, `charges`, `subscriptions`).
    pub object: &'static str,
    /// Stripe requests the listing made.
    pub requests: u64,
    /// List pages read.
    pub pages: u64,
    /// Rows created, updated, unchanged and tied.
    #[serde(flatten)]
    pub counts: WriteCounts,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Why the listing stopped early (Stripe failed); pages written stay.
    pub error: Option<String>,
}

/// Reads `pages` to the end (or the first error), writing each page with `write` and
/// the time it was asked for; fills `report`'s counts.
async fn drain_pages<T, S, F, Fut>(pages: S, report: &mut ObjectsReport, mut write: F)
where
    S: futures_util::Stream<Item = Result<sm_stripe::types::List<T>, StripeError>>,
    F: FnMut(sm_stripe::types::List<T>, i64) -> Fut,
    Fut: std::future::Future<Output = Result<WriteCounts, MirrorError>>,
{
    let mut pages = Box::pin(pages);
    loop {
        let observed = unix_now();
        let Some(page) = pages.next().await else {
            break;
        };
        let result = match page {
            Ok(page) => write(page, observed).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(counts) => {
                report.pages += 1;
                report.counts += counts;
            }
            Err(e) => {
                report.error = Some(crate::error_chain(&e));
                break;
            }
        }
    }
}

/// Runs one listing with a request counter and a timer.
async fn timed<F, Fut>(client: &Client, object: &'static str, run: F) -> ObjectsReport
where
    F: FnOnce(Client, ObjectsReport) -> Fut,
    Fut: std::future::Future<Output = ObjectsReport>,
{
    let started = Instant::now();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let client = client.counted(requests.clone());
    let mut report = run(
        client,
        ObjectsReport {
            object,
            ..Default::default()
        },
    )
    .await;
    report.requests = requests.load(std::sync::atomic::Ordering::Relaxed);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// What follows a mirror write in its transaction: customers carry the account link
/// (`metadata.account`) that their subscriptions written earlier lacked. Only customers
/// that name an account can give one: the others cost no statement.
pub async fn after_write(
    tx: &mut sm_store::Tx,
    kind: &ObjectKind,
    writes: &[ObjectWrite],
) -> Result<(), StoreError> {
    if kind == &CUSTOMERS {
        // `account` is the customers kind's first column.
        let linked: Vec<&str> = writes
            .iter()
            .filter(|w| !w.deleted && matches!(w.cells.first(), Some(Cell::Text(Some(_)))))
            .map(|w| w.id.as_str())
            .collect();
        tx.adopt_subscriptions(&linked).await?;
    }
    Ok(())
}

/// Lists every object of `mirror` from Stripe, page by page (100 per request), writing
/// each page in one transaction: memory stays flat. A page's objects are versioned by
/// the time the page was asked for, so an event written meanwhile is not undone. Nothing
/// is tombstoned for being absent: Stripe lists no deleted customers, and deletions come
/// by event or by a retrieve's 404.
pub async fn sync_objects(
    store: &Store,
    client: &Client,
    mirror: &'static Mirror,
) -> ObjectsReport {
    timed(client, mirror.name, |client, mut report| async move {
        let params: Vec<(String, String)> = mirror
            .list_params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let pages = client.pages::<Raw<ObjectId>>(mirror.list_op, mirror.list_path, params);
        drain_pages(pages, &mut report, |page, observed| async move {
            let writes = page
                .data
                .iter()
                .map(|o| object_write(mirror, &compact_json(o.json.get()), observed, false))
                .collect::<Result<Vec<_>, _>>()?;
            let mut tx = store.begin().await?;
            let counts = tx
                .upsert_objects(mirror.kind, &writes, Ties::Refresh, unix_now())
                .await?;
            after_write(&mut tx, mirror.kind, &writes).await?;
            tx.commit().await?;
            Ok(counts)
        })
        .await;
        report
    })
    .await
}

/// Every subscription (`status=all`: Stripe leaves canceled ones out otherwise), written
/// as [`subscription_row`]s versioned by the time each page was asked for.
pub async fn sync_subscriptions(store: &Store, client: &Client) -> ObjectsReport {
    timed(client, "subscriptions", |client, mut report| async move {
        let pages = client.pages::<Raw<Subscription>>(
            "subscriptions.list",
            "/v1/subscriptions",
            vec![("status".into(), "all".into())],
        );
        drain_pages(pages, &mut report, |page, observed| async move {
            let customers: Vec<&str> = page
                .data
                .iter()
                .filter(|s| !s.value.metadata.contains_key("account"))
                .map(|s| s.value.customer.id())
                .collect();
            let accounts = store.accounts_for_customers(&customers).await?;
            let rows: Vec<SubscriptionRow> = page
                .data
                .iter()
                .map(|s| {
                    let account = s
                        .value
                        .metadata
                        .get("account")
                        .or_else(|| accounts.get(s.value.customer.id()))
                        .cloned();
                    let raw = compact_json(s.json.get());
                    subscription_row_for(&s.value, account, observed, &raw)
                })
                .collect();
            let mut tx = store.begin().await?;
            let counts = tx.upsert_subscriptions(&rows, Ties::Refresh).await?;
            tx.commit().await?;
            Ok(counts)
        })
        .await;
        report
    })
    .await
}

/// The object names `sync --objects` accepts, `all` for every one.
pub const OBJECT_NAMES: [&str; 4] = ["customers", "subscriptions", "invoices", "charges"];

/// Parses `--objects`: a comma-separated list of [`OBJECT_NAMES`], `all`, or `catalog`.
pub fn parse_objects(list: &str) -> Result<(bool, Vec<&'static str>), String> {
    let mut catalog = false;
    let mut names = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => {
                catalog = true;
                names = OBJECT_NAMES.to_vec();
            }
            "catalog" | "products" | "prices" => catalog = true,
            name => match OBJECT_NAMES.iter().find(|n| **n == name) {
                Some(n) if !names.contains(n) => names.push(*n),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "unknown object {name:?} in --objects: use catalog, {}, or all",
                        OBJECT_NAMES.join(", ")
                    ));
                }
            },
        }
    }
    if !catalog && names.is_empty() {
        return Err(format!(
            "--objects names nothing: use catalog, {}, or all",
            OBJECT_NAMES.join(", ")
        ));
    }
    Ok((catalog, names))
}

/// Syncs the named objects (see [`parse_objects`]) one after another.
pub async fn sync_named(store: &Store, client: &Client, names: &[&str]) -> Vec<ObjectsReport> {
    let mut reports = Vec::new();
    for name in names {
        let report = match *name {
            "subscriptions" => sync_subscriptions(store, client).await,
            name => match MIRRORS.iter().find(|m| m.name == name) {
                Some(m) => sync_objects(store, client, m).await,
                None => continue,
            },
        };
        reports.push(report);
    }
    reports
}

/// A subscription schedule as its row: the change it will make next. For a schedule
/// still to run (`not_started`, `active`), the first phase that starts at or after the
/// current phase's end (Stripe's `current_phase`; the first phase of one not started):
/// its first item's price and quantity, and its `start_date`. Finished schedules
/// (`completed`, `released`, `canceled`) have none.
pub fn schedule_row(
    schedule: &Value,
    event_created: i64,
    now: i64,
) -> Option<sm_store::schedules::ScheduleRow> {
    let id = schedule["id"].as_str()?.to_owned();
    let status = schedule["status"].as_str().unwrap_or("active").to_owned();
    let running = matches!(status.as_str(), "not_started" | "active");
    let phases = schedule["phases"].as_array().cloned().unwrap_or_default();
    let after = schedule["current_phase"]["end_date"]
        .as_i64()
        .or_else(|| (status == "not_started").then_some(i64::MIN));
    let next = if running {
        after.and_then(|after| {
            phases
                .iter()
                .find(|p| p["start_date"].as_i64().is_some_and(|s| s >= after))
        })
    } else {
        None
    };
    let item = next.map(|p| &p["items"][0]);
    let price = item.and_then(|i| {
        i["price"]
            .as_str()
            .or_else(|| i["price"]["id"].as_str())
            .map(str::to_owned)
    });
    Some(sm_store::schedules::ScheduleRow {
        id,
        subscription: schedule["subscription"]
            .as_str()
            .or_else(|| schedule["subscription"]["id"].as_str())
            .map(str::to_owned),
        status,
        next_quantity: item.and_then(|i| i["quantity"].as_i64()),
        next_at: price
            .as_ref()
            .and(next)
            .and_then(|p| p["start_date"].as_i64()),
        next_price: price,
        event_created,
        raw: compact_json(&schedule.to_string()),
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_with_all_and_catalog() {
        assert_eq!(parse_objects("all").unwrap(), (true, OBJECT_NAMES.to_vec()));
        assert_eq!(
            parse_objects("invoices,customers,invoices").unwrap(),
            (false, vec!["invoices", "customers"])
        );
        assert_eq!(parse_objects("catalog").unwrap(), (true, vec![]));
        assert!(
            parse_objects("disputes")
                .unwrap_err()
                .contains("\"disputes\"")
        );
        assert!(parse_objects(",").is_err());
    }

    #[test]
    fn an_invoice_reads_its_subscription_from_basils_parent() {
        let raw = r#"{"id":"in_1","object":"invoice","customer":"cus_1","status":"paid","currency":"usd","total":500,"amount_due":500,"amount_paid":500,"amount_remaining":0,"livemode":false,"created":7,"parent":{"subscription_details":{"subscription":"sub_1"}}}"#;
        let w = object_write(&INVOICE, raw, 9, false).unwrap();
        assert_eq!(
            (&w.id, &w.cells[0], &w.cells[1], w.version, w.deleted),
            (
                &"in_1".to_owned(),
                &Cell::Text(Some("cus_1".into())),
                &Cell::Text(Some("sub_1".into())),
                9,
                false
            )
        );
        let gone = r#"{"id":"cus_9","object":"customer","deleted":true}"#;
        assert!(object_write(&CUSTOMER, gone, 1, false).unwrap().deleted);
    }
}
