//! `/admin/app-events`: the events sent to the app (the outbox), paged newest first and
//! filtered by status and account, with the counts the metrics report and a replay
//! button (delivered and failed events are sent again, with their id).

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sm_store::outbox::{AppEventRow, OutboxCounts};

use super::view::{Badge, PAGE, Pager, when_ms};
use super::{AdminCtx, Nav, failed, render};
use crate::net::redact_url as redact;
use crate::state::AppState;

const STATUSES: [&str; 5] = ["queued", "pending", "processing", "delivered", "failed"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/app-events", get(list))
        .route("/admin/app-events/{id}/replay", post(replay))
}

/// An event as its row reads.
struct Row {
    seq: i64,
    id: String,
    kind: String,
    account: String,
    /// The account's page.
    href: String,
    status: Badge,
    attempts: i64,
    created: String,
    endpoint: String,
    last_error: String,
    payload: String,
    /// Delivered or failed: it can be sent again.
    replayable: bool,
}

impl From<AppEventRow> for Row {
    fn from(r: AppEventRow) -> Self {
        Row {
            replayable: matches!(r.status.as_str(), "delivered" | "failed"),
            status: Badge::status(match r.status.as_str() {
                "delivered" => "succeeded",
                "pending" if r.attempts > 0 => "retrying",
                s => s,
            }),
            created: when_ms(r.created_at),
            endpoint: redact(&r.endpoint),
            last_error: match (r.last_status, r.last_error) {
                (_, Some(e)) => e,
                (Some(s), None) => format!("HTTP {s}"),
                _ => String::new(),
            },
            seq: r.seq,
            attempts: r.attempts,
            payload: r.payload,
            href: super::view::link("/admin/credits/account", &[("account", &r.account)]),
            account: r.account,
            kind: r.kind,
            id: r.id,
        }
    }
}

#[derive(Template)]
#[template(path = "app_events.html")]
struct Page {
    nav: Nav,
    enabled: bool,
    counts: OutboxCounts,
    oldest: String,
    rows: Vec<Row>,
    pager: Pager,
    status: String,
    account: String,
    statuses: [&'static str; 5],
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    account: String,
    /// The `seq` of the last row on the previous page.
    #[serde(default)]
    cursor: String,
}

async fn list(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<ListQuery>,
) -> Response {
    let cursor = match super::view::id_cursor(&q.cursor) {
        Some(Err(())) => return super::view::bad_cursor(&ctx.mount.at("/admin/app-events")),
        other => other.map(|c| c.unwrap_or_default()),
    };
    let status = STATUSES.iter().find(|s| **s == q.status).copied();
    let account = q.account.trim();
    let rows = match state
        .store
        .list_app_events(
            status,
            (!account.is_empty()).then_some(account),
            cursor,
            PAGE as u32 + 1,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return failed("the events to the app could not be read", &e),
    };
    let counts = match state.store.outbox_counts().await {
        Ok(c) => c,
        Err(e) => return failed("the events to the app could not be counted", &e),
    };
    let mut rows: Vec<Row> = rows.into_iter().map(Row::from).collect();
    let filters = [("status", q.status.as_str()), ("account", account)];
    let pager = Pager::cut(
        &mut rows,
        "/admin/app-events",
        &filters,
        cursor.is_some(),
        |r| r.seq.to_string(),
    );
    let page = Page {
        nav: ctx.nav(&state, "app-events").await,
        enabled: state.config.app_webhooks.is_some(),
        oldest: counts
            .oldest_undelivered
            .map_or_else(|| "none".to_owned(), when_ms),
        counts,
        rows,
        pager,
        status: q.status,
        account: account.to_owned(),
        statuses: STATUSES,
    };
    render(&page).into_response()
}

async fn replay(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Path(id): Path<String>,
) -> Response {
    let outcome = match state
        .store
        .replay_app_event(&id, crate::webhooks::now_ms())
        .await
    {
        Ok(0) => Err(format!(
            "Event {id} was not sent again: it is unknown or still on its way."
        )),
        Ok(n) => Ok(format!(
            "Event {id} will be sent again to {n} endpoint{} within a second, with the same id.",
            if n == 1 { "" } else { "s" }
        )),
        Err(e) => Err(format!(
            "Event {id} was not sent again: {}",
            crate::error_chain(&e)
        )),
    };
    ctx.done(&state, "app_events.replay", Some(&id), outcome)
        .await;
    Redirect::to("/admin/app-events").into_response()
}
