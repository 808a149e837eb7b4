//! Accounts for the app (scope `accounts:read`), local data only:
//!
//! - `GET /api/v1/accounts/{account}`: customer, subscriptions, entitlement, credits
//! - `GET /api/v1/accounts/{account}/payments?limit=N&cursor=C`: invoices and one-time
//!   checkouts, newest first
//!
//! Billing actions (scope `billing:write`; optional `Idempotency-Key` header; audited):
//!
//! - `POST …/portal` `{"return_url"}` → `{"url"}` of a Stripe Billing Portal session
//! - `POST …/subscription/cancel` `{"immediately":false}` (at period end by default)
//! - `POST …/subscription/resume` `{}`: takes back a scheduled cancellation
//! - `POST …/subscription/change` `{"price","when","proration_behavior","quantity"}`;
//!   `DELETE …/subscription/change` cancels a change left for the period's end

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ApiCaller;
use super::{ApiError, ledger_error};
use crate::accounts::{AccountError, AccountView, Accounts, PaymentsPage};
use crate::billing::{Actor, Billing, BillingError, ChangeRequest, SubscriptionChanged};
use crate::clock::unix_now;
use crate::manager::Unavailable;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}", get(show))
        .route("/api/v1/accounts/{account}/payments", get(payments))
        .route("/api/v1/accounts/{account}/portal", post(portal))
        .route(
            "/api/v1/accounts/{account}/subscription/cancel",
            post(cancel),
        )
        .route(
            "/api/v1/accounts/{account}/subscription/resume",
            post(resume),
        )
        .route(
            "/api/v1/accounts/{account}/subscription/change",
            post(change).delete(cancel_change),
        )
}

fn billing(state: &AppState) -> Billing {
    Billing::new(state.store.clone(), state.stripe.clone())
}

/// Maps a billing refusal to its HTTP answer.
pub fn billing_error(e: BillingError) -> ApiError {
    match e {
        BillingError::Invalid(m) => ApiError::bad_request("invalid_request", m),
        e @ BillingError::NoCustomer(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "no_customer", e.to_string())
        }
        e @ BillingError::NoSubscription(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "no_subscription", e.to_string())
        }
        BillingError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        BillingError::Unavailable(u @ Unavailable::Disabled { .. }) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stripe_disabled",
            u.to_string(),
        ),
        BillingError::Unavailable(u) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stripe_unavailable",
            u.to_string(),
        ),
        BillingError::Stripe(s) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "stripe_error", s.to_string())
        }
        BillingError::Store(s) => ApiError::internal("the billing action failed", &s),
    }
}

fn body_of<T: serde::de::DeserializeOwned>(body: &Bytes, shape: &str) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body must be {shape}: {e}"))
    })
}

fn key(headers: &HeaderMap) -> Option<&str> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok())
}

/// The audit actor of an API request: the token's name.
fn actor(c: &Option<Extension<ApiCaller>>) -> Actor<'_> {
    Actor {
        name: c
            .as_ref()
            .map_or("api", |Extension(ApiCaller(name))| name.as_str()),
        origin: "api",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortalRequest {
    return_url: String,
}

async fn portal(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: PortalRequest = body_of(&body, r#"{"return_url":"https://…"}"#)?;
    let url = billing(&state)
        .portal(&account, &req.return_url, key(&headers), actor(&who))
        .await
        .map_err(billing_error)?;
    Ok(Json(json!({"account": account, "url": url})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    #[serde(default)]
    immediately: bool,
}

async fn cancel(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    let req: CancelRequest = body_of(&body, r#"{"immediately":false}"#)?;
    billing(&state)
        .cancel(&account, req.immediately, key(&headers), actor(&who))
        .await
        .map(Json)
        .map_err(billing_error)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn resume(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    let _: Empty = body_of(&body, "{}")?;
    billing(&state)
        .resume(&account, key(&headers), actor(&who))
        .await
        .map(Json)
        .map_err(billing_error)
}

async fn change(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    let req: ChangeRequest = body_of(
        &body,
        r#"{"price":"price_…","when":"now","proration_behavior":"always_invoice","quantity":1}"#,
    )?;
    billing(&state)
        .change(&account, &req, key(&headers), actor(&who))
        .await
        .map(Json)
        .map_err(billing_error)
}

/// `DELETE …/subscription/change`: cancels a change left for the end of the period.
async fn cancel_change(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    billing(&state)
        .cancel_change(&account, key(&headers), actor(&who))
        .await
        .map(Json)
        .map_err(billing_error)
}

fn accounts(state: &AppState) -> Accounts {
    Accounts::new(state.store.clone(), state.config.past_due_grace)
}

fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(e) => ledger_error(e),
        e @ AccountError::Cursor(_) => ApiError::bad_request("invalid_cursor", e.to_string()),
        AccountError::Store(e) => ApiError::internal("reading the account failed", &e),
    }
}

async fn show(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    accounts(&state)
        .show(&account, unix_now())
        .await
        .map(Json)
        .map_err(account_error)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn payments(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<PaymentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentsPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    accounts(&state)
        .payments(&account, q.cursor.as_deref(), q.limit.unwrap_or(20))
        .await
        .map(Json)
        .map_err(account_error)
}
