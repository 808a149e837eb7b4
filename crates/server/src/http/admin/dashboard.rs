//! `/admin`: Stripe's reachability, the last sync and the webhook queue at a glance.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sm_store::inbox::InboxCounts;

use super::view::{Badge, when};
use super::{AdminCtx, Nav, failed, render};
use crate::clock::span;
use crate::manager::StripeStatus;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

/// The last sync run, as read.
struct LastRun {
    id: i64,
    what: String,
    status: Badge,
    started: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    stripe: StripeStatus,
    available: Badge,
    mode: String,
    circuit: String,
    last_success: String,
    last_run: Option<LastRun>,
    queue: InboxCounts,
    oldest_pending: String,
    /// Received, applied (processed or ignored) and failed in the last hour.
    last_hour: (i64, i64, i64),
}

async fn dashboard(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    let now_ms = crate::webhooks::now_ms();
    let stripe = state.stripe.status();
    let (rates, runs, queue) = tokio::join!(
        state.store.event_rates(now_ms - 3_600_000),
        state.store.list_sync_runs(1),
        state.store.inbox_counts(now_ms),
    );
    let (last_hour, runs, queue) = match (rates, runs, queue) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return failed("the dashboard could not be read", &e);
        }
    };
    let page = DashboardPage {
        nav: ctx.nav(&state, "dashboard").await,
        available: if stripe.available {
            Badge::new("good", "available")
        } else {
            Badge::new("bad", "unavailable")
        },
        mode: stripe.mode.map_or("—".into(), |m| m.to_string()),
        circuit: stripe.circuit.unwrap_or("—").replace('_', " "),
        last_success: stripe.last_success_at.map_or("never".into(), when),
        stripe,
        last_run: runs.into_iter().next().map(|r| LastRun {
            id: r.id,
            what: format!("{} sync from the {}", r.scope, r.origin),
            status: Badge::status(&r.status),
            started: when(r.started_at),
        }),
        oldest_pending: queue
            .oldest_pending_ms
            .map_or("—".into(), |ms| format!("waiting {}", span(ms / 1000))),
        queue,
        last_hour,
    };
    render(&page).into_response()
}
