//! One error type at the HTTP edge: `{"error":{"code":"snake_case","message":"…"}}`.
//! Server errors are logged with their detail and answered without it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refusal or failure as the API answers it: `status` with
/// `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable `snake_case` code a client branches on (`insufficient_credits`).
    pub code: &'static str,
    /// For people: what was wrong and what to send instead.
    pub message: String,
    /// Extra top-level fields next to `error` (e.g. the report of a failed sync).
    pub extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    /// An error answer with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    /// Adds one top-level field beside `error` (a 402's `shortfall`, a failed sync's `report`).
    pub fn with(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    /// A 400 with `code` (a malformed request).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A list's `limit` (`default` when absent): one outside `1..=max` is refused with
    /// `400 invalid_query`, not clamped, so a client asking for 0 or 101 hears that it
    /// did not get what it asked for.
    pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, Self> {
        match limit {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(Self::bad_request(
                "invalid_query",
                format!("limit must be 1 to {max}, not {n}"),
            )),
        }
    }

    /// A database failure: `503 storage_unavailable` when the database cannot take the
    /// work now but may later (a full disk, no connection; see
    /// [`sm_store::StoreError::is_unavailable`]), so the caller retries; else a 500.
    /// The detail goes to the log only. (A connection lost during a commit may have
    /// committed: the answer says to retry with the same idempotency key, which is
    /// safe either way.)
    pub fn store(context: &str, error: &sm_store::StoreError) -> Self {
        if error.is_unavailable() {
            tracing::error!(error = %error, "{context}: the database is unavailable; answered 503");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the database cannot take this now (full or unreachable); it may not have been applied: retry with the same idempotency key",
            )
        } else {
            Self::internal(context, error)
        }
    }

    /// A 500 whose detail goes to the log, not to the caller.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; the details are in the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        (self.status, Json(body)).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

impl From<sm_store::StoreError> for ApiError {
    fn from(e: sm_store::StoreError) -> Self {
        ApiError::store("database error", &e)
    }
}
