//! `POST /webhooks/stripe`: check the signature header (present, well formed, fresh)
//! before reading the body, verify the signature over the raw bytes, store the event
//! durably, answer. 200 accepted or duplicate; 400 with the rejection's code; 413 above
//! 1 MiB; 403 from a source outside `WEBHOOK_ALLOWED_IPS` (when set); 503 when the
//! event could not be stored (Stripe retries).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use crate::state::AppState;

/// Stripe's events are far smaller; anything bigger is not from Stripe.
pub const MAX_BODY: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

fn rejected(r: sm_stripe::Rejection) -> ApiError {
    metrics::counter!("stripe_manager_webhook_events_rejected_total", "reason" => r.code())
        .increment(1);
    tracing::warn!(reason = r.code(), "webhook rejected: {r}");
    ApiError::bad_request(r.code(), r.to_string())
}

async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let sources = &state.config.webhook_sources;
    if sources.allowed.is_some() {
        let client = sources.client_from_headers(peer.ip(), headers);
        if !client.is_some_and(|ip| sources.allows(ip)) {
            metrics::counter!("stripe_manager_webhook_events_rejected_total", "reason" => "source_not_allowed")
                .increment(1);
            let shown = client.map_or_else(
                || "an unreadable X-Forwarded-For".to_owned(),
                |ip| ip.to_string(),
            );
            tracing::warn!(peer = %peer.ip(), client = %shown, "webhook rejected: source not in WEBHOOK_ALLOWED_IPS");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "source_not_allowed",
                format!("{shown} is not in WEBHOOK_ALLOWED_IPS"),
            ));
        }
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now = crate::clock::unix_now();
    // The header first: a delivery that cannot verify is refused before its body is read.
    sm_stripe::webhook::check_header(
        state.config.webhook_secrets.as_ref(),
        header,
        now,
        state.config.webhook_tolerance,
    )
    .map_err(rejected)?;
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        metrics::counter!("stripe_manager_webhook_events_rejected_total", "reason" => "body_too_large")
            .increment(1);
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body could not be read within {MAX_BODY} bytes: {e}"),
        )
    })?;
    let verified = sm_stripe::webhook::verify(
        state.config.webhook_secrets.as_ref(),
        header,
        body,
        now,
        state.config.webhook_tolerance,
    )
    .map_err(rejected)?;
    let (id, kind) = (verified.id().to_owned(), verified.kind().to_owned());
    let new = state
        .intake
        .submit(verified, "webhook")
        .await
        .map_err(|e| {
            metrics::counter!("stripe_manager_webhook_events_rejected_total", "reason" => "not_stored")
                .increment(1);
            tracing::error!(error = %e, "a verified webhook could not be stored; answered 503 so Stripe retries");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "the event could not be stored; Stripe will retry the delivery",
            )
        })?;
    let outcome = if new { "received" } else { "duplicate" };
    metrics::counter!("stripe_manager_webhook_events_received_total", "type" => crate::webhooks::type_label(&kind), "outcome" => outcome).increment(1);
    tracing::debug!(
        id = %id,
        kind = %kind,
        outcome,
        "webhook stored"
    );
    Ok(Json(json!({"received": true, "duplicate": !new, "id": id})))
}
