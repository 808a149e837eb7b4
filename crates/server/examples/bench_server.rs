//! The service's own router, configured from the environment like `serve`, with two
//! benchmark-only additions that the service never has, so a benchmark can measure a
//! route against the same route without its work in the same run and process:
//!
//! - `GET /bench/products`: the exact bytes `GET /api/v1/products` answers (taken once
//!   at start), behind the same middleware, with no token check and no catalog version
//!   check — the ceiling of a catalog read (scripts/bench-catalog-read).
//! - `BENCH_DISCARD=1`: the webhook intake verifies and parses every delivery as the
//!   service does, then discards it instead of storing it — the ceiling of webhook
//!   intake (scripts/bench-webhooks). No worker runs.
//!
//! Otherwise no worker runs either: this serves reads and intake only.
//!
//! ```text
//! DATABASE_URL=… BIND=127.0.0.1:8080 STRIPE_WEBHOOK_SECRET=… bench_server
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use sm_store::ConnectOptions;
use stripe_manager::config::{Config, Sources};
use stripe_manager::state::AppState;

#[tokio::main]
async fn main() {
    let sources = Sources::from_process(std::path::Path::new(".env"), false)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let config = Config::load(&sources).unwrap_or_else(|e| fail(&e.to_string()));
    stripe_manager::telemetry::init_logging(config.log_format);
    let mut state = AppState::build(config, &ConnectOptions::default())
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    state
        .store
        .migrate()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    if std::env::var("BENCH_DISCARD").is_ok_and(|v| v == "1") {
        state = state.with_intake(stripe_manager::webhooks::Intake::discarding());
    }
    let _listener = stripe_manager::changes::listen(
        state.store.clone(),
        state.changes.clone(),
        state.intake.stored.clone(),
    );
    let (_, body): (i64, Bytes) = state
        .catalog
        .list_json(
            sm_store::catalog::ProductFilter::Active,
            stripe_manager::catalog::Encoding::Identity,
        )
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let extra = Router::new().route(
        "/bench/products",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let bind = state.config.bind;
    let admission = stripe_manager::listener::Admission::main(&state.config);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {bind}: {e}")));
    let router = stripe_manager::http::router_with(state, extra);
    stripe_manager::listener::serve(
        listener,
        router,
        admission,
        stripe_manager::app::shutdown_signal(),
    )
    .await;
}

fn fail(message: &str) -> ! {
    eprintln!("bench_server: {message}");
    std::process::exit(2);
}
