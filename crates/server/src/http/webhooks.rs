//! `POST /webhooks/stripe`: verify the signature over the raw bytes, store the event
//! durably, answer. 200 accepted or duplicate; 400 with the rejection's code; 413 above
//! 1 MiB; 503 when the event could not be stored (Stripe retries).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use crate::app::AppState;

/// Stripe's events are far smaller; anything bigger is not from Stripe.
pub const MAX_BODY: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| {
        metrics::counter!("webhook_events_rejected_total", "reason" => "body_too_large")
            .increment(1);
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body could not be read: {}", e.body_text()),
        )
    })?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let verified = sm_stripe::webhook::verify(
        state.config.webhook_secrets.as_ref(),
        header,
        &body,
        crate::sync::unix_now(),
        state.config.webhook_tolerance,
    )
    .map_err(|r| {
        metrics::counter!("webhook_events_rejected_total", "reason" => r.code()).increment(1);
        tracing::warn!(reason = r.code(), "webhook rejected: {r}");
        ApiError::bad_request(r.code(), r.to_string())
    })?;
    let new = state
        .intake
        .submit(&verified, "webhook")
        .await
        .map_err(|e| {
            metrics::counter!("webhook_events_rejected_total", "reason" => "not_stored")
                .increment(1);
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_stored", e.to_string())
        })?;
    let outcome = if new { "received" } else { "duplicate" };
    metrics::counter!("webhook_events_received_total", "type" => verified.kind().to_owned(), "outcome" => outcome).increment(1);
    tracing::debug!(
        id = verified.id(),
        kind = verified.kind(),
        outcome,
        "webhook stored"
    );
    Ok(Json(
        json!({"received": true, "duplicate": !new, "id": verified.id()}),
    ))
}
