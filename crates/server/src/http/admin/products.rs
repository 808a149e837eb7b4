//! `/admin/products`: the catalog as synced (paged, filtered, searchable), one product
//! with its prices and Stripe's JSON, and the sync actions (one, a selection, all).
//! Nothing here writes to Stripe: the catalog is edited in Stripe's dashboard.

use std::sync::atomic::Ordering;

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sm_domain::ProductId;

use super::view::{Badge, PAGE, Pager, money, when};
use super::{AdminCtx, Nav, failed, render};
use crate::catalog::{ApiPrice, ApiProduct};
use crate::state::AppState;
use crate::sync::{Origin, SyncError, SyncReport};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/products", get(products))
        .route("/admin/products/sync", post(sync_selected))
        .route("/admin/products/{id}", get(product))
        .route("/admin/products/{id}/sync", post(sync_one))
        .route("/admin/sync-all", post(sync_all))
}

/// The most products "Sync selected" takes at once.
const MAX_SELECTED: usize = 100;

/// A product as a table row shows it.
struct ProductRow {
    id: String,
    name: String,
    status: Badge,
    valid: Badge,
    why_invalid: String,
    credits: String,
    price: String,
    per_credit: String,
    order: String,
    synced: String,
}

fn status(p: &ApiProduct) -> Badge {
    if p.deleted {
        Badge::new("bad", "deleted")
    } else if p.active {
        Badge::new("good", "active")
    } else {
        Badge::new("muted", "archived")
    }
}

fn validity(p: &ApiProduct) -> Badge {
    if p.valid {
        Badge::new("good", "valid")
    } else {
        Badge::new("bad", "invalid")
    }
}

/// `10.00 USD`, or what kind of amount it is when there is no single one.
fn price_text(p: &ApiPrice) -> String {
    match p.unit_amount {
        Some(a) => money(a, &p.currency),
        None => format!("{} ({})", p.amount_kind, p.currency.to_ascii_uppercase()),
    }
}

impl From<&ApiProduct> for ProductRow {
    fn from(p: &ApiProduct) -> Self {
        ProductRow {
            id: p.id.clone(),
            name: p.name.clone(),
            status: status(p),
            valid: validity(p),
            why_invalid: p.validation_error.clone().unwrap_or_default(),
            credits: p
                .credit_amount
                .map_or("—".into(), |n| super::charts::number(f64::from(n))),
            price: p.default_price.as_ref().map_or("—".into(), price_text),
            per_credit: p.price_per_credit.as_ref().map_or("—".into(), |pc| {
                format!("{} {}", pc.amount, pc.currency.to_ascii_uppercase())
            }),
            order: p.display_order.map_or("—".into(), |o| o.to_string()),
            synced: when(p.synced_at),
        }
    }
}

#[derive(Template)]
#[template(path = "products.html")]
struct ProductsPage {
    nav: Nav,
    products: Vec<ProductRow>,
    matching: usize,
    pager: Pager,
    q: String,
    status: String,
    valid: String,
    kind: String,
    status_options: Vec<(&'static str, &'static str)>,
    valid_options: Vec<(&'static str, &'static str)>,
    type_options: Vec<(&'static str, &'static str)>,
}

#[derive(Debug, Default, Deserialize)]
struct ProductQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    valid: String,
    #[serde(default, rename = "type")]
    kind: String,
    /// The id of the last product on the previous page.
    #[serde(default)]
    cursor: String,
}

async fn products(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(query): Query<ProductQuery>,
) -> Response {
    let status_filter = match query.status.as_str() {
        "archived" | "all" => query.status.as_str(),
        _ => "active",
    };
    let needle = query.q.trim().to_lowercase();
    let keep = |p: &ApiProduct| {
        (match status_filter {
            "archived" => !p.active && !p.deleted,
            "all" => true,
            _ => p.active && !p.deleted,
        }) && match query.valid.as_str() {
            "valid" => p.valid,
            "invalid" => !p.valid,
            _ => true,
        } && (query.kind.is_empty() || p.credit_type == query.kind)
            && (needle.is_empty()
                || p.name.to_lowercase().contains(&needle)
                || p.id.to_lowercase().contains(&needle))
    };
    let after = (!query.cursor.is_empty()).then_some(query.cursor.as_str());
    let page = match state.catalog.page(keep, after, PAGE + 1).await {
        Ok(Some(p)) => p,
        Ok(None) => return super::view::bad_cursor(&ctx.mount.at("/admin/products")),
        Err(e) => return failed("the catalog could not be read", &e),
    };
    let mut rows: Vec<ProductRow> = page.products.iter().map(ProductRow::from).collect();
    let filters = [
        ("q", query.q.as_str()),
        ("status", query.status.as_str()),
        ("valid", query.valid.as_str()),
        ("type", query.kind.as_str()),
    ];
    let pager = Pager::cut(
        &mut rows,
        "/admin/products",
        &filters,
        after.is_some(),
        |r| r.id.clone(),
    );
    let page = ProductsPage {
        nav: ctx.nav(&state, "products").await,
        products: rows,
        matching: page.matching,
        pager,
        status: status_filter.to_owned(),
        q: query.q,
        valid: query.valid,
        kind: query.kind,
        status_options: vec![
            ("active", "active"),
            ("archived", "archived"),
            ("all", "all, deleted included"),
        ],
        valid_options: vec![("", "any"), ("valid", "valid"), ("invalid", "invalid")],
        type_options: vec![
            ("", "any"),
            ("payg", "pay-as-you-go"),
            ("subscription", "subscription"),
        ],
    };
    render(&page).into_response()
}

/// A price on the product page.
struct PriceRow {
    id: String,
    status: Badge,
    amount: String,
    kind: String,
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    nav: Nav,
    row: ProductRow,
    description: String,
    credit_type: String,
    stripe_updated: String,
    prices: Vec<PriceRow>,
    /// The entitlement features the product gives.
    features: Vec<sm_store::entitlements::FeatureRow>,
    raw: String,
    stripe_url: String,
}

async fn product(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> Response {
    let (found, record) = match (
        state.catalog.get(&id).await,
        state.store.get_product(&id).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return failed("the product could not be read", &e),
    };
    let (Some(p), Some(record)) = (found, record) else {
        return super::page_not_found(&ctx.mount);
    };
    let features = match state.store.features_of_product(&id).await {
        Ok(f) => f,
        Err(e) => return failed("the product's features could not be read", &e),
    };
    let raw = serde_json::from_str::<serde_json::Value>(&record.raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(record.raw);
    let test = if record.livemode { "" } else { "test/" };
    let prices = p
        .prices
        .iter()
        .map(|price| PriceRow {
            id: price.id.clone(),
            status: if price.deleted {
                Badge::new("bad", "deleted")
            } else if price.active {
                Badge::new("good", "active")
            } else {
                Badge::new("muted", "archived")
            },
            amount: price_text(price),
            kind: match (&price.interval, price.interval_count) {
                (Some(i), Some(n)) if n > 1 => format!("recurring, every {n} {i}s"),
                (Some(i), _) => format!("recurring, every {i}"),
                _ => "one-time".to_owned(),
            },
        })
        .collect();
    let page = ProductPage {
        nav: ctx.nav(&state, "products").await,
        stripe_url: format!("https://dashboard.stripe.com/{test}products/{}", p.id),
        row: ProductRow::from(&p),
        features,
        description: p.description.clone().unwrap_or_default(),
        credit_type: match p.credit_type {
            "payg" => "pay-as-you-go".to_owned(),
            other => other.to_owned(),
        },
        stripe_updated: when(p.stripe_updated),
        prices,
        raw,
    };
    render(&page).into_response()
}

/// "Synced 3 products: 2 updated, 1 invalid — prod_x: credit_amount missing".
fn summary(report: &SyncReport, asked: usize) -> Result<String, String> {
    let c = &report.products;
    let mut parts = Vec::new();
    for (n, what) in [
        (c.created, "created"),
        (c.updated, "updated"),
        (c.unchanged, "unchanged"),
        (c.stale, "skipped as older than ours"),
        (c.tombstoned, "deleted in Stripe"),
        (c.invalid, "invalid"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let mut text = format!(
        "Synced {asked} product{}: {}",
        if asked == 1 { "" } else { "s" },
        if parts.is_empty() {
            "nothing changed".to_owned()
        } else {
            parts.join(", ")
        }
    );
    if !report.invalid.is_empty() {
        let why: Vec<String> = report
            .invalid
            .iter()
            .map(|i| format!("{}: {}", i.id, i.error))
            .collect();
        text.push_str(&format!(" — {}", why.join("; ")));
    }
    if report.succeeded() {
        Ok(text)
    } else {
        Err(format!("Sync failed: {}", report.errors.join("; ")))
    }
}

fn sync_error(e: &SyncError) -> String {
    format!("Sync failed: {}", crate::error_chain(e))
}

async fn run_selected(state: &AppState, ctx: &AdminCtx, ids: Vec<String>) {
    let parsed: Result<Vec<ProductId>, _> =
        ids.iter().map(|i| ProductId::parse(i.clone())).collect();
    let outcome = match parsed {
        Err(e) => Err(format!("Nothing synced: {e}")),
        Ok(ids) if ids.is_empty() => Err("Nothing synced: select at least one product.".to_owned()),
        // One request to Stripe per product, inside this request's time limit.
        Ok(ids) if ids.len() > MAX_SELECTED => Err(format!(
            "Nothing synced: select at most {MAX_SELECTED} products (or use \"Sync all from Stripe\")."
        )),
        Ok(ids) => match state
            .syncer
            .sync_products(&ids, Origin::Admin, &crate::sync::NoProgress)
            .await
        {
            Ok(report) => summary(&report, ids.len()),
            Err(e) => Err(sync_error(&e)),
        },
    };
    ctx.done(state, "sync.selected", Some(&ids.join(" ")), outcome)
        .await;
}

async fn sync_one(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> Response {
    run_selected(&state, &ctx, vec![id.clone()]).await;
    Redirect::to(&format!("/admin/products/{}", super::view::segment(&id))).into_response()
}

async fn sync_selected(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    body: axum::body::Bytes,
) -> Response {
    let ids: Vec<String> = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.into_owned())
        .collect();
    run_selected(&state, &ctx, ids).await;
    Redirect::to("/admin/products").into_response()
}

async fn sync_all(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    let live = state.live_sync.clone();
    if live.running.swap(true, Ordering::SeqCst) {
        ctx.done(
            &state,
            "sync.full",
            None,
            Err("A full sync is already running.".into()),
        )
        .await;
        return Redirect::to("/admin/sync-runs").into_response();
    }
    for c in [&live.products, &live.prices, &live.requests] {
        c.store(0, Ordering::Relaxed);
    }
    // The sync outlives this request; its outcome is audited when it ends.
    tokio::spawn(async move {
        let result = state.syncer.sync_all(Origin::Admin, live.as_ref()).await;
        live.running.store(false, Ordering::SeqCst);
        let outcome = match result {
            Ok(report) => {
                // Invalid products are among the created/updated/unchanged ones.
                let c = &report.products;
                let n = c.created + c.updated + c.unchanged + c.stale;
                summary(&report, n as usize).map(|m| m.replacen("Synced", "Full sync: synced", 1))
            }
            Err(e) => Err(sync_error(&e)),
        };
        ctx.done(&state, "sync.full", None, outcome).await;
    });
    Redirect::to("/admin/sync-runs").into_response()
}
