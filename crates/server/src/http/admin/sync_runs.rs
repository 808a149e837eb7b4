//! `/admin/sync-runs`: every catalog sync with its outcome in words, paged newest first,
//! and the live progress of a full sync started here.

use std::sync::atomic::Ordering;

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sm_store::runs::SyncRun;

use super::view::{Badge, PAGE, Pager, when};
use super::{AdminCtx, Nav, failed, render};
use crate::clock::{span, unix_now};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/sync-runs", get(sync_runs))
}

/// A run as its row reads.
struct RunRow {
    id: i64,
    scope: String,
    origin: String,
    status: Badge,
    started: String,
    duration: String,
    requests: u64,
    /// "3 created, 1 updated, 2 invalid" for products, then prices.
    products: String,
    prices: String,
    errors: String,
}

/// "3 created, 1 updated" from (count, word) pairs, skipping zeros; "no change" if all are.
fn counts(pairs: &[(u64, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    if parts.is_empty() {
        "no change".to_owned()
    } else {
        parts.join(", ")
    }
}

impl From<SyncRun> for RunRow {
    fn from(r: SyncRun) -> Self {
        let c = &r.counts;
        let errors = r.report["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        RunRow {
            id: r.id,
            scope: r.scope.clone(),
            origin: r.origin.clone(),
            status: Badge::status(&r.status),
            started: when(r.started_at),
            duration: match r.finished_at {
                Some(f) if f - r.started_at < 1 => "under 1 s".to_owned(),
                Some(f) => span(f - r.started_at),
                None => format!("running for {}", span(unix_now() - r.started_at)),
            },
            requests: r.requests,
            products: counts(&[
                (c.products_created, "created"),
                (c.products_updated, "updated"),
                (c.products_unchanged, "unchanged"),
                (c.products_stale, "older than ours"),
                (c.products_invalid, "invalid"),
                (c.products_tombstoned, "deleted"),
            ]),
            prices: counts(&[
                (c.prices_created, "created"),
                (c.prices_updated, "updated"),
                (c.prices_unchanged, "unchanged"),
                (c.prices_stale, "older than ours"),
                (c.prices_tombstoned, "deleted"),
            ]),
            errors,
        }
    }
}

#[derive(Template)]
#[template(path = "sync_runs.html")]
struct SyncRunsPage {
    nav: Nav,
    runs: Vec<RunRow>,
    pager: Pager,
    running: bool,
    live: String,
}

#[derive(Debug, Default, Deserialize)]
struct RunQuery {
    /// The id of the last run on the previous page.
    #[serde(default)]
    cursor: String,
}

async fn sync_runs(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<RunQuery>,
) -> Response {
    let cursor = match super::view::id_cursor(&q.cursor) {
        Some(Err(())) => return super::view::bad_cursor(&ctx.mount.at("/admin/sync-runs")),
        other => other.map(|c| c.unwrap_or_default()),
    };
    let runs = match state
        .store
        .list_sync_runs_page(cursor, PAGE as u32 + 1)
        .await
    {
        Ok(r) => r,
        Err(e) => return failed("the sync runs could not be read", &e),
    };
    let mut rows: Vec<RunRow> = runs.into_iter().map(RunRow::from).collect();
    let pager = Pager::cut(&mut rows, "/admin/sync-runs", &[], cursor.is_some(), |r| {
        r.id.to_string()
    });
    let live = &state.live_sync;
    let page = SyncRunsPage {
        nav: ctx.nav(&state, "sync-runs").await,
        running: live.running.load(Ordering::SeqCst),
        live: format!(
            "{} products and {} prices written, {} requests to Stripe",
            live.products.load(Ordering::Relaxed),
            live.prices.load(Ordering::Relaxed),
            live.requests.load(Ordering::Relaxed)
        ),
        runs: rows,
        pager,
    };
    render(&page).into_response()
}
