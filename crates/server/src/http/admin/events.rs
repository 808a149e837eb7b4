//! `/admin/events`: the webhook inbox, paged newest first and filtered by status and
//! type; one event with its payload; replay (one, every failed one) and reconcile from
//! Stripe's Events API.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sm_store::inbox::{EventFilter, InboxEvent, STATUSES};

use super::view::{Badge, PAGE, Pager, segment, split_cursor, when, when_ms};
use super::{AdminCtx, Nav, failed, render};
use crate::clock::span;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/events", get(events))
        .route("/admin/events/replay-failed", post(replay_failed))
        .route("/admin/events/reconcile", post(reconcile))
        .route("/admin/events/{id}", get(event))
        .route("/admin/events/{id}/replay", post(replay_one))
}

/// An event as its row reads.
struct EventRow {
    id: String,
    kind: String,
    status: Badge,
    attempts: i64,
    received: String,
    last_error: String,
    /// `<received_at>:<id>`, where the next page starts.
    cursor: String,
}

impl From<InboxEvent> for EventRow {
    fn from(e: InboxEvent) -> Self {
        EventRow {
            cursor: format!("{}:{}", e.received_at, e.id),
            status: Badge::status(&e.status),
            received: when_ms(e.received_at),
            last_error: e.last_error.unwrap_or_default(),
            attempts: e.attempts,
            kind: e.kind,
            id: e.id,
        }
    }
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    nav: Nav,
    events: Vec<EventRow>,
    pager: Pager,
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
    /// `<received_at>:<id>` of the last event on the previous page.
    #[serde(default)]
    cursor: String,
}

async fn events(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<EventQuery>,
) -> Response {
    let status = STATUSES
        .iter()
        .find(|s| **s == q.status)
        .map(|s| (*s).to_owned());
    let filter = EventFilter {
        status,
        kind: (!q.kind.trim().is_empty()).then(|| q.kind.trim().to_owned()),
        limit: PAGE as u32 + 1,
    };
    let before = split_cursor(&q.cursor);
    if before.is_none() && !q.cursor.is_empty() {
        return super::view::bad_cursor(&ctx.mount.at("/admin/events"));
    }
    let events = match state.store.list_events_page(&filter, before).await {
        Ok(e) => e,
        Err(e) => return failed("the events could not be read", &e),
    };
    let mut rows: Vec<EventRow> = events.into_iter().map(EventRow::from).collect();
    let filters = [("type", q.kind.as_str()), ("status", q.status.as_str())];
    let pager = Pager::cut(
        &mut rows,
        "/admin/events",
        &filters,
        before.is_some(),
        |r| r.cursor.clone(),
    );
    let page = EventsPage {
        nav: ctx.nav(&state, "events").await,
        events: rows,
        pager,
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
    id: String,
    kind: String,
    status: Badge,
    attempts: i64,
    last_error: String,
    source: String,
    created: String,
    received: String,
    finished: String,
    next_attempt: String,
    payload: String,
}

async fn event(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> Response {
    let e = match state.store.get_event(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return super::page_not_found(&ctx.mount),
        Err(e) => return failed("the event could not be read", &e),
    };
    let payload = serde_json::from_str::<serde_json::Value>(&e.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| e.payload.clone());
    let finished = match e.processed_at {
        Some(at) => format!(
            "{} (after {})",
            when_ms(at),
            span((at - e.received_at).max(0) / 1000)
        ),
        None => "—".to_owned(),
    };
    let page = EventPage {
        nav: ctx.nav(&state, "events").await,
        status: Badge::status(&e.status),
        created: when(e.created),
        received: when_ms(e.received_at),
        next_attempt: if e.status == "pending" {
            when_ms(e.next_attempt_at)
        } else {
            "—".to_owned()
        },
        finished,
        last_error: e.last_error.unwrap_or_else(|| "—".to_owned()),
        source: if e.source == "reconcile" {
            "recovered from Stripe's Events API (reconcile)".to_owned()
        } else {
            "delivered by Stripe's webhook".to_owned()
        },
        attempts: e.attempts,
        kind: e.kind,
        id: e.id,
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
    Redirect::to(&format!("/admin/events/{}", segment(&id))).into_response()
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
