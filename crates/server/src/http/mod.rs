//! The HTTP edge: one router per resource, merged here, with the middleware that every
//! route shares (request id, tracing span, metrics).

mod accounts;
mod admin;
mod auth;
mod catalog;
mod credits;
mod entitlements;
mod error;
mod health;
mod middleware;
pub mod openapi;
mod sync;
mod webhooks;

use axum::Router;

pub use credits::ledger_error;
pub use error::ApiError;

use crate::state::AppState;

/// The standalone service's whole router: [`embeddable_router`]'s routes (the admin UI
/// among them) plus `/` redirecting to the admin, and a JSON 404 fallback.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes behind the same layers: for `examples/bench_server`,
/// which adds a route without any check to compare the checked ones with.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    // `/` of the standalone service: the admin (an app that embeds the library owns `/`).
    let home = axum::routing::get(|| async { axum::response::Redirect::to("/admin") });
    let extra = extra.route("/", home).fallback(error::not_found);
    layered(state, extra)
}

/// The API, the webhook endpoint, health, metrics and the admin UI behind the service's
/// layers, without a fallback: what an app that embeds the library mounts (axum refuses
/// to merge two routers that both set one). Under `nest("/billing", …)` the admin is at
/// `/billing/admin`: it finds its prefix in each request, so its links, redirects and
/// cookie path follow.
pub fn embeddable_router(state: AppState) -> Router {
    layered(state, Router::new())
}

/// What the `HEALTH_BIND` listener serves: `/healthz`, `/readyz` and `/metrics`, with
/// the request metrics and timeout of the main router; anything else is `404`.
pub fn health_router(state: AppState) -> Router {
    let request_timeout = state.config.http.request_timeout;
    health::router()
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(middleware::observe))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}

fn layered(state: AppState, extra: Router<AppState>) -> Router {
    let request_timeout = state.config.http.request_timeout;
    let (api, _) = openapi::api().split_for_parts();
    Router::new()
        .merge(extra)
        .merge(admin::router(state.clone()))
        .merge(health::router())
        .merge(api)
        .merge(webhooks::router())
        .layer(axum::middleware::from_fn(middleware::reject_nul))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(axum::middleware::from_fn(middleware::observe))
        // A request, body included, that takes longer is answered 408: a client sending
        // its body slowly cannot hold a handler (and what it buffered) for ever.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}
