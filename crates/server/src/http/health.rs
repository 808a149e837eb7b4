//! `/healthz` (the process is up), `/readyz` (the database answers; Stripe's state is
//! reported but not required, because the service serves local data without it) and
//! `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "commit": crate::COMMIT}))
}

/// Ready when the database can be written (a service that can read but not write, a
/// full disk, acknowledges nothing). The error itself goes to the log: this route needs
/// no credentials, so it answers with a code only.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.write_probe(crate::clock::unix_now()).await;
    let stripe = state.stripe.status();
    let (status, word) = match &database {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
    };
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: the database cannot be written");
    }
    (
        status,
        Json(json!({
            "status": word,
            "database": {
                "backend": state.store.backend(),
                "ok": database.is_ok(),
                "error": database.err().map(|_| "database_unwritable"),
            },
            "stripe": stripe,
        })),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Gauges that describe state rather than events are set at scrape time.
    metrics::gauge!("stripe_manager_build_info", "version" => env!("CARGO_PKG_VERSION"), "commit" => crate::COMMIT)
        .set(1.0);
    if let Ok(client) = state.stripe.client() {
        let open = match client.circuit_state() {
            sm_stripe::CircuitState::Closed => 0.0,
            sm_stripe::CircuitState::HalfOpen => 0.5,
            sm_stripe::CircuitState::Open => 1.0,
        };
        metrics::gauge!("stripe_manager_stripe_circuit_open").set(open);
    }
    metrics::gauge!("stripe_manager_stripe_enabled").set(if state.stripe.config().enabled() {
        1.0
    } else {
        0.0
    });
    match state.store.inbox_counts(crate::webhooks::now_ms()).await {
        Ok(c) => {
            metrics::gauge!("stripe_manager_webhook_queue_depth", "status" => "pending")
                .set(c.pending as f64);
            metrics::gauge!("stripe_manager_webhook_queue_depth", "status" => "waiting")
                .set(c.waiting as f64);
            metrics::gauge!("stripe_manager_webhook_queue_depth", "status" => "processing")
                .set(c.processing as f64);
            metrics::gauge!("stripe_manager_webhook_queue_depth", "status" => "failed")
                .set(c.failed as f64);
            metrics::gauge!("stripe_manager_webhook_oldest_pending_seconds")
                .set(c.oldest_pending_ms.unwrap_or(0) as f64 / 1000.0);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the webhook inbox"),
    }
    match state.store.outbox_counts().await {
        Ok(c) => {
            for (status, n) in [
                ("queued", c.queued),
                ("pending", c.pending),
                ("processing", c.processing),
                ("failed", c.failed),
            ] {
                metrics::gauge!("stripe_manager_app_events_queue_depth", "status" => status)
                    .set(n as f64);
            }
            let age = c.oldest_undelivered.map_or(0.0, |at| {
                (crate::webhooks::now_ms() - at).max(0) as f64 / 1000.0
            });
            metrics::gauge!("stripe_manager_app_events_oldest_undelivered_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the events to the app"),
    }
    // From the database, not from this process's memory: with several instances, or a
    // full sync run by the CLI (a timer), whichever process ran it, every instance
    // reports the same last run.
    match state.store.full_sync_health().await {
        Ok(h) => {
            metrics::gauge!("stripe_manager_sync_last_success_timestamp_seconds")
                .set(h.last_success_at.unwrap_or(0) as f64);
            metrics::gauge!("stripe_manager_sync_last_run_failed").set(if h.last_failed {
                1.0
            } else {
                0.0
            });
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the last full sync"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
