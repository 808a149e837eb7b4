//! Bearer tokens on `/api/v1/*`: `401 unauthorized` without a valid token (missing,
//! malformed, unknown or revoked, all answered alike), `403 forbidden` when the token
//! lacks the route's scope. Routes outside `/api/v1` are not touched here.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::auth::{hash, required_scope};
use crate::clock::unix_now;
use crate::state::AppState;

/// The name of the API token a request was authorized with (for audit records).
#[derive(Debug, Clone)]
pub struct ApiCaller(pub String);

pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return next.run(request).await;
    };
    let Some(required) = required_scope(request.method().as_str(), route.as_str()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let token = match presented {
        Some(t) if t.starts_with("smt_") => state.tokens.find(&hash(t)).await,
        _ => Ok(None),
    };
    let token = match token {
        Ok(Some(t)) => t,
        Ok(None) => {
            metrics::counter!("stripe_manager_api_auth_failures_total", "reason" => "unauthorized")
                .increment(1);
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a valid API token: Authorization: Bearer smt_… (create one with `stripe-manager token create`)",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        Err(e) => return ApiError::internal("could not check the API token", &e).into_response(),
    };
    let allowed = required.is_ok_and(|scope| token.scopes().any(|s| s == scope.as_str()));
    if !allowed {
        metrics::counter!("stripe_manager_api_auth_failures_total", "reason" => "forbidden")
            .increment(1);
        let message = match required {
            Ok(scope) => format!("token {:?} lacks the scope {scope}", token.name),
            Err(()) => "no token may use this route".to_owned(),
        };
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
    }
    let now = unix_now();
    if should_touch(&token.hash, now)
        && let Err(e) = state.store.touch_token(token.id, now).await
    {
        tracing::warn!(error = %e, "could not record the token's last use");
    }
    request
        .extensions_mut()
        .insert(ApiCaller(format!("token:{}", token.name)));
    next.run(request).await
}

/// Whether to write the token's last use now: at most once a minute per token and
/// process, so a busy client does not turn every read into a write (on SQLite that
/// write would queue behind every other writer).
fn should_touch(hash: &str, now: i64) -> bool {
    static TOUCHED: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Default::default);
    let mut touched = TOUCHED.lock().unwrap_or_else(|e| e.into_inner());
    match touched.get(hash) {
        Some(at) if now - at < 60 => false,
        _ => {
            touched.insert(hash.to_owned(), now);
            true
        }
    }
}
