//! Per-request span with a request id, and request metrics by matched route (never by
//! raw path, which would let callers create unbounded label values).

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tracing::Instrument;

/// A method as a label: the standard ones by name, anything else (HTTP allows any
/// token, of any length) as `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

pub async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", id = %request_id, %method, %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    span.in_scope(
        || tracing::debug!(status = %status, elapsed_ms = elapsed * 1000.0, "request finished"),
    );
    metrics::counter!("stripe_manager_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("stripe_manager_http_request_duration_seconds", "route" => route)
        .record(elapsed);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Bodies the NUL check reads at most (API and admin bodies are small; the webhook route
/// reads its own body and stores it as sent).
const NUL_CHECK_LIMIT: usize = 1 << 20;

/// Refuses a path that is not UTF-8 once percent-decoded (`400 invalid_path`), and a
/// NUL character anywhere in the URL or in an API or admin body (`%00` in a
/// query or form, `\u0000` in JSON): PostgreSQL cannot store it in text, so it would
/// otherwise reach the database as a 500. Answered `400 nul_character`.
pub async fn reject_nul(request: Request, next: Next) -> Response {
    // A path that is not UTF-8 once decoded would reach axum's `Path` extractor, whose
    // refusal is a `text/plain` 400: refuse it here in the error shape every route uses.
    let path = request.uri().path();
    if path.contains('%')
        && percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .is_err()
    {
        return super::ApiError::bad_request(
            "invalid_path",
            "the path is not UTF-8 once percent-decoded",
        )
        .into_response();
    }
    let refuse = || {
        super::ApiError::bad_request(
            "nul_character",
            "NUL characters (%00, \\u0000) are not accepted",
        )
        .into_response()
    };
    let uri = request.uri().to_string();
    if uri.contains("%00") {
        return refuse();
    }
    if request.uri().path().starts_with("/webhooks/")
        || !matches!(
            *request.method(),
            axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
        )
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, NUL_CHECK_LIMIT).await else {
        return super::ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("bodies are limited to {NUL_CHECK_LIMIT} bytes"),
        )
        .into_response();
    };
    let has = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    if bytes.contains(&0) || has(b"\\u0000") || has(b"%00") {
        return refuse();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}
