//! The admin pages behind the guard in [`super::admin`]: products (with sync actions),
//! sync runs (live progress of a full sync), webhook events (replay, reconcile), credits
//! (balances, history, adjustments) and the audit log. Every action is a POST (the
//! guard has checked its CSRF token), is audited, and leaves a message for the next page
//! that says what happened, including what failed.

use std::sync::atomic::Ordering;

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sm_domain::ProductId;
use sm_domain::credits::Credits;
use sm_store::admin::AdminSession;
use sm_store::catalog::ProductFilter;
use sm_store::credits::{AuditRow, NewAudit};
use sm_store::inbox::{EventFilter, InboxEvent, STATUSES};
use sm_store::runs::SyncRun;

use super::admin::render;
use crate::catalog::ApiProduct;
use crate::clock::unix_now;
use crate::credits::{AdjustRequest, Adjustment, Balance, EntryView};
use crate::state::AppState;
use crate::sync::{Origin, SyncError, SyncReport};

/// Who is acting, from where (set by the guard).
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub session: AdminSession,
    pub origin: String,
}

/// What every page's header needs.
#[derive(Debug)]
pub struct Nav {
    pub email: String,
    pub csrf: String,
    pub flash_ok: Option<String>,
    pub flash_err: Option<String>,
}

impl AdminCtx {
    /// The header, with the message left by the last action (shown once).
    pub async fn nav(&self, state: &AppState) -> Nav {
        let flash = state
            .store
            .take_flash(&self.session.id)
            .await
            .unwrap_or_default();
        let (ok, err) = match flash.as_deref().and_then(|f| f.split_once(':')) {
            Some(("ok", text)) => (Some(text.to_owned()), None),
            Some((_, text)) => (None, Some(text.to_owned())),
            None => (None, None),
        };
        Nav {
            email: self.session.email.clone(),
            csrf: self.session.csrf_token.clone(),
            flash_ok: ok,
            flash_err: err,
        }
    }

    /// Audits an action and leaves its outcome for the next page.
    async fn done(
        &self,
        state: &AppState,
        action: &str,
        target: Option<&str>,
        outcome: Result<String, String>,
    ) {
        let (result, message, flash) = match &outcome {
            Ok(m) => ("ok", m.as_str(), format!("ok:{m}")),
            Err(m) => ("error", m.as_str(), format!("err:{m}")),
        };
        let entry = NewAudit {
            actor: &self.session.email,
            action,
            target,
            detail: Some(message),
            origin: Some(&self.origin),
            result,
        };
        if let Err(e) = state.store.audit(&entry, unix_now()).await {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
        if let Err(e) = state.store.set_flash(&self.session.id, &flash).await {
            tracing::error!(error = %e, "could not keep the message for the next page");
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/products", get(products))
        .route("/admin/products/sync", post(sync_selected))
        .route("/admin/products/{id}", get(product))
        .route("/admin/products/{id}/sync", post(sync_one))
        .route("/admin/sync-all", post(sync_all))
        .route("/admin/sync-runs", get(sync_runs))
        .route("/admin/events", get(events))
        .route("/admin/events/replay-failed", post(replay_failed))
        .route("/admin/events/reconcile", post(reconcile))
        .route("/admin/events/{id}", get(event))
        .route("/admin/events/{id}/replay", post(replay_one))
        .route("/admin/credits", get(credits))
        .route("/admin/credits/account", get(account))
        .route("/admin/credits/adjust", post(adjust))
        .route("/admin/credits/refund", post(refund))
        .route("/admin/audit", get(audit))
}

fn failed(what: &str, e: &dyn std::error::Error) -> Response {
    super::ApiError::internal(what, e).into_response()
}

// ----- products -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "products.html")]
struct ProductsPage {
    nav: Nav,
    products: Vec<ApiProduct>,
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
}

async fn products(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(query): Query<ProductQuery>,
) -> Response {
    let status = if query.status.is_empty() {
        "active".to_owned()
    } else {
        query.status.clone()
    };
    let filter = match status.as_str() {
        "archived" => ProductFilter::Inactive,
        "all" => ProductFilter::All,
        _ => ProductFilter::Active,
    };
    let list = match state.catalog.list(filter).await {
        Ok(l) => l,
        Err(e) => return failed("the catalog could not be read", &e),
    };
    let needle = query.q.trim().to_lowercase();
    let products = list
        .into_iter()
        .filter(|p| match query.valid.as_str() {
            "valid" => p.valid,
            "invalid" => !p.valid,
            _ => true,
        })
        .filter(|p| query.kind.is_empty() || p.credit_type == query.kind)
        .filter(|p| {
            needle.is_empty()
                || p.name.to_lowercase().contains(&needle)
                || p.id.to_lowercase().contains(&needle)
        })
        .collect();
    let page = ProductsPage {
        nav: ctx.nav(&state).await,
        products,
        q: query.q,
        status,
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

/// `1.00 USD` from minor units, for tables.
fn money(minor: i64, currency: &str) -> String {
    sm_domain::Money::new(minor, currency).to_string()
}

impl ProductsPage {
    fn money(&self, minor: &i64, currency: &str) -> String {
        money(*minor, currency)
    }
}

impl ProductPage {
    fn money(&self, minor: &i64, currency: &str) -> String {
        money(*minor, currency)
    }
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    nav: Nav,
    p: ApiProduct,
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
        return super::admin::not_found().await;
    };
    let raw = serde_json::from_str::<serde_json::Value>(&record.raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(record.raw);
    let test = if record.livemode { "" } else { "test/" };
    let page = ProductPage {
        nav: ctx.nav(&state).await,
        stripe_url: format!("https://dashboard.stripe.com/{test}products/{}", p.id),
        p,
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
    Redirect::to(&format!("/admin/products/{id}")).into_response()
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

#[derive(Template)]
#[template(path = "sync_runs.html")]
struct SyncRunsPage {
    nav: Nav,
    /// Each run with its counts and errors as text.
    runs: Vec<(SyncRun, String, String)>,
    running: bool,
    live: String,
}

async fn sync_runs(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    let runs = match state.store.list_sync_runs(50).await {
        Ok(r) => r,
        Err(e) => return failed("the sync runs could not be read", &e),
    };
    let live = &state.live_sync;
    let page = SyncRunsPage {
        nav: ctx.nav(&state).await,
        running: live.running.load(Ordering::SeqCst),
        live: format!(
            "{} products and {} prices written, {} requests to Stripe",
            live.products.load(Ordering::Relaxed),
            live.prices.load(Ordering::Relaxed),
            live.requests.load(Ordering::Relaxed)
        ),
        runs: runs
            .into_iter()
            .map(|r| {
                let counts = serde_json::to_string(&r.counts).unwrap_or_default();
                let errors = r.report["errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                (r, counts, errors)
            })
            .collect(),
    };
    render(&page).into_response()
}

// ----- webhook events -------------------------------------------------------------

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    nav: Nav,
    events: Vec<InboxEvent>,
    kind: String,
    status: String,
    statuses: Vec<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
struct EventQuery {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
}

async fn events(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<EventQuery>,
) -> Response {
    let filter = EventFilter {
        status: (!q.status.is_empty()).then(|| q.status.clone()),
        kind: (!q.kind.trim().is_empty()).then(|| q.kind.trim().to_owned()),
        limit: 200,
    };
    let events = match state.store.list_events(&filter).await {
        Ok(e) => e,
        Err(e) => return failed("the events could not be read", &e),
    };
    let page = EventsPage {
        nav: ctx.nav(&state).await,
        events,
        kind: q.kind,
        status: q.status,
        statuses: STATUSES.to_vec(),
    };
    render(&page).into_response()
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    nav: Nav,
    e: InboxEvent,
    payload: String,
}

async fn event(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> Response {
    let e = match state.store.get_event(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return super::admin::not_found().await,
        Err(e) => return failed("the event could not be read", &e),
    };
    let payload = serde_json::from_str::<serde_json::Value>(&e.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| e.payload.clone());
    let page = EventPage {
        nav: ctx.nav(&state).await,
        e,
        payload,
    };
    render(&page).into_response()
}

async fn replay_one(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> Response {
    let outcome = match state
        .store
        .replay_events(std::slice::from_ref(&id), crate::webhooks::now_ms())
        .await
    {
        Ok(1) => Ok(format!(
            "Event {id} queued again; it is applied through the same path as the first time."
        )),
        Ok(_) => Err(format!(
            "Event {id} was not replayed: it is unknown or being processed right now."
        )),
        Err(e) => Err(format!(
            "Event {id} was not replayed: {}",
            crate::error_chain(&e)
        )),
    };
    ctx.done(&state, "events.replay", Some(&id), outcome).await;
    state.intake.stored.notify_one();
    Redirect::to(&format!("/admin/events/{id}")).into_response()
}

async fn replay_failed(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
) -> Response {
    let outcome = match state.store.replay_failed(crate::webhooks::now_ms()).await {
        Ok(0) => Ok("No failed events to replay.".to_owned()),
        Ok(n) => Ok(format!(
            "{n} failed event{} queued again.",
            if n == 1 { "" } else { "s" }
        )),
        Err(e) => Err(format!("Nothing replayed: {}", crate::error_chain(&e))),
    };
    ctx.done(&state, "events.replay_failed", None, outcome)
        .await;
    state.intake.stored.notify_one();
    Redirect::to("/admin/events").into_response()
}

#[derive(Debug, Deserialize)]
struct ReconcileForm {
    #[serde(default)]
    hours: String,
}

async fn reconcile(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<ReconcileForm>,
) -> Response {
    let outcome = match crate::webhooks::reconcile::parse_since(&format!("{}h", form.hours.trim()))
    {
        Err(e) => Err(format!("Nothing reconciled: {e}")),
        Ok(window) => match state.stripe.client() {
            Err(e) => Err(format!("Nothing reconciled: {e}")),
            Ok(client) => {
                match crate::webhooks::reconcile::reconcile(&state.store, client, window).await {
                    Ok(r) => Ok(format!(
                        "Reconciled the last {} hours: Stripe has {} events, {} were missing and are now queued.",
                        form.hours.trim(),
                        r.seen,
                        r.stored
                    )),
                    Err(e) => Err(format!("Reconcile failed: {}", crate::error_chain(&e))),
                }
            }
        },
    };
    ctx.done(
        &state,
        "events.reconcile",
        Some(&format!("{}h", form.hours.trim())),
        outcome,
    )
    .await;
    state.intake.stored.notify_one();
    Redirect::to("/admin/events").into_response()
}

// ----- credits --------------------------------------------------------------------

struct AccountRow {
    account: String,
    /// `account=…`, encoded for a link.
    query: String,
    available: Credits,
    debt: Credits,
    stripe_customer: Option<String>,
}

#[derive(Template)]
#[template(path = "credits.html")]
struct CreditsPage {
    nav: Nav,
    accounts: Vec<AccountRow>,
}

async fn credits(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    credits_page(&state, &ctx, None).await
}

/// The accounts page; with `error`, that message shown and status 400 (a GET never
/// writes: the error is not audited nor kept for another page).
async fn credits_page(state: &AppState, ctx: &AdminCtx, error: Option<String>) -> Response {
    let accounts = match state.store.list_accounts(200).await {
        Ok(a) => a,
        Err(e) => return failed("the accounts could not be read", &e),
    };
    let now = unix_now();
    let mut rows = Vec::with_capacity(accounts.len());
    for a in accounts {
        match state.ledger.balance(&a.id, now).await {
            Ok(b) => rows.push(AccountRow {
                query: form_urlencoded::Serializer::new(String::new())
                    .append_pair("account", &a.id)
                    .finish(),
                account: a.id,
                available: b.available,
                debt: b.debt,
                stripe_customer: a.stripe_customer,
            }),
            Err(e) => return failed("a balance could not be read", &e),
        }
    }
    let mut nav = ctx.nav(state).await;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    if error.is_some() {
        nav.flash_err = error;
    }
    let page = CreditsPage {
        nav,
        accounts: rows,
    };
    (status, render(&page)).into_response()
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    account: String,
    b: Balance,
    history: Vec<EntryView>,
    subscriptions: Vec<crate::accounts::SubscriptionView>,
    entitled: bool,
    entitlement_status: String,
    payments: Vec<PaymentLine>,
}

/// A payment on the account page, with its refund form.
struct PaymentLine {
    id: String,
    kind: String,
    status: Option<String>,
    paid: String,
    refunded: String,
    url: Option<String>,
    refundable: bool,
    /// The form's idempotency key: a double submit is one refund.
    key: String,
}

#[derive(Debug, Deserialize)]
struct AccountQuery {
    account: String,
}

async fn account(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<AccountQuery>,
) -> Response {
    let now = unix_now();
    let (b, history) = match (
        state.ledger.balance(&q.account, now).await,
        state.ledger.history(&q.account, 100).await,
    ) {
        (Ok(b), Ok(h)) => (b, h),
        (Err(e), _) | (_, Err(e)) => {
            return credits_page(&state, &ctx, Some(e.to_string())).await;
        }
    };
    let accounts = crate::accounts::Accounts::new(state.store.clone(), state.config.past_due_grace);
    let (view, payments) = match (
        accounts.show(&q.account, now).await,
        accounts.payments(&q.account, None, 100).await,
    ) {
        (Ok(v), Ok(p)) => (v, p),
        (Err(e), _) | (_, Err(e)) => return failed("the account could not be read", &e),
    };
    let payments = payments
        .data
        .into_iter()
        .map(|p| {
            let currency = p.currency.clone().unwrap_or_default();
            let paid = p.amount_paid.unwrap_or(0);
            PaymentLine {
                paid: money(paid, &currency),
                refunded: money(p.refunded, &currency),
                refundable: paid > p.refunded,
                key: uuid::Uuid::new_v4().simple().to_string(),
                id: p.id,
                kind: p.kind,
                status: p.status,
                url: p.url,
            }
        })
        .collect();
    let page = AccountPage {
        nav: ctx.nav(&state).await,
        account: q.account.clone(),
        b,
        history,
        entitled: view.entitlement.active,
        entitlement_status: view.entitlement.status,
        subscriptions: view.subscriptions,
        payments,
    };
    render(&page).into_response()
}

#[derive(Debug, Deserialize)]
struct RefundForm {
    account: String,
    payment: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    key: String,
}

/// Refunds a payment in Stripe; the ledger follows through the refund's webhook. The
/// amount is in the payment's currency (`5.00`); empty refunds what is left.
async fn refund(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<RefundForm>,
) -> Response {
    let currency = match state
        .store
        .account_payment(&form.account, &form.payment)
        .await
    {
        Ok(p) => p.and_then(|p| p.currency).unwrap_or_default(),
        Err(e) => return failed("the payment could not be read", &e),
    };
    let amount = match form.amount.trim() {
        "" => Ok(None),
        text => sm_domain::money::parse_major(text, &currency)
            .map(Some)
            .map_err(|e| format!("Nothing refunded: {e}")),
    };
    let actor_name = format!("admin:{}", ctx.session.email);
    let message = match amount {
        Err(m) => format!("err:{m}"),
        Ok(amount) => {
            let request = crate::billing::RefundRequest {
                payment: form.payment.clone(),
                amount,
                reason: form.reason.clone(),
            };
            let actor = crate::billing::Actor {
                name: &actor_name,
                origin: &ctx.origin,
            };
            let key = (!form.key.is_empty()).then_some(form.key.as_str());
            match crate::billing::Billing::new(state.store.clone(), state.stripe.clone())
                .refund(&form.account, &request, key, actor)
                .await
            {
                Ok(r) => format!(
                    "ok:Refund {} of {} requested in Stripe ({}); the credits follow when Stripe reports it.",
                    r.refund,
                    money(r.amount, r.currency.as_deref().unwrap_or("")),
                    r.status.as_deref().unwrap_or("pending")
                ),
                Err(e) => format!("err:Nothing refunded: {e}"),
            }
        }
    };
    if let Err(e) = state.store.set_flash(&ctx.session.id, &message).await {
        tracing::error!(error = %e, "could not keep the message for the next page");
    }
    let target = form_urlencoded::Serializer::new(String::new())
        .append_pair("account", &form.account)
        .finish();
    Redirect::to(&format!("/admin/credits/account?{target}")).into_response()
}

#[derive(Debug, Deserialize)]
struct AdjustForm {
    account: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    action: String,
}

async fn adjust(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<AdjustForm>,
) -> Response {
    let kind = if form.action == "deduct" {
        Adjustment::Deduct
    } else {
        Adjustment::Grant
    };
    let action = if kind == Adjustment::Deduct {
        "credits.deduct"
    } else {
        "credits.grant"
    };
    let outcome = match Credits::parse(form.amount.trim()) {
        Err(e) => Err(format!("Nothing changed: {e}")),
        Ok(amount) => {
            let actor = format!("admin:{}", ctx.session.email);
            let request = AdjustRequest {
                kind,
                amount,
                reason: &form.reason,
                actor: &actor,
                origin: &ctx.origin,
            };
            match state
                .ledger
                .adjust(&form.account, &request, unix_now())
                .await
            {
                Ok(done) => Ok(format!(
                    "{} {} credits {} {}; balance {}.",
                    if kind == Adjustment::Grant {
                        "Granted"
                    } else {
                        "Deducted"
                    },
                    done.amount,
                    if kind == Adjustment::Grant {
                        "to"
                    } else {
                        "from"
                    },
                    done.account,
                    done.balance
                )),
                Err(e) => Err(format!("Nothing changed: {e}")),
            }
        }
    };
    // The ledger audits a successful adjustment itself; a refused one is audited here.
    if let Err(message) = &outcome {
        ctx.done(&state, action, Some(&form.account), Err(message.clone()))
            .await;
    } else if let Err(e) = state
        .store
        .set_flash(
            &ctx.session.id,
            &format!("ok:{}", outcome.as_ref().unwrap_or(&String::new())),
        )
        .await
    {
        tracing::error!(error = %e, "could not keep the message for the next page");
    }
    let target = form_urlencoded::Serializer::new(String::new())
        .append_pair("account", &form.account)
        .finish();
    Redirect::to(&format!("/admin/credits/account?{target}")).into_response()
}

// ----- audit log ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    entries: Vec<AuditRow>,
    action: String,
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    action: String,
}

async fn audit(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let action = q.action.trim();
    let entries = match state
        .store
        .audit_log((!action.is_empty()).then_some(action), 500)
        .await
    {
        Ok(e) => e,
        Err(e) => return failed("the audit log could not be read", &e),
    };
    let page = AuditPage {
        nav: ctx.nav(&state).await,
        entries,
        action: q.action,
    };
    render(&page).into_response()
}
