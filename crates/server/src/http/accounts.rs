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

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ApiCaller;
use super::openapi::{AccountParam, ErrorBody, IdempotencyHeader};
use super::{ApiError, ledger_error};
use crate::accounts::{AccountError, AccountView, Accounts, PaymentsPage};
use crate::billing::{Actor, Billing, BillingError, ChangeRequest, SubscriptionChanged};
use crate::clock::unix_now;
use crate::manager::Unavailable;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(payments))
        .routes(routes!(portal))
        .routes(routes!(cancel))
        .routes(routes!(resume))
        .routes(routes!(change, cancel_change))
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

/// The audit actor of an API request: the token's name.
fn actor(c: &Option<Extension<ApiCaller>>) -> Actor<'_> {
    Actor {
        name: c
            .as_ref()
            .map_or("api", |Extension(ApiCaller(name))| name.as_str()),
        origin: "api",
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PortalRequest {
    /// Where the portal's "return" link leads (your app).
    #[schema(examples("https://app.example.com/billing"))]
    return_url: String,
}

/// A Billing Portal session.
#[derive(Debug, Serialize, ToSchema)]
struct PortalSession {
    account: String,
    /// Send the customer here; it is valid for a short while (Stripe's rule).
    url: String,
}

/// A Stripe Billing Portal session for the account's customer.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/portal",
    operation_id = "createPortalSession",
    tag = "billing",
    params(AccountParam, IdempotencyHeader),
    request_body = PortalRequest,
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "the session", body = PortalSession),
        (status = 400, description = "`invalid_body`, `invalid_request` (a malformed account id, a bad `return_url`)", body = ErrorBody),
        (status = 404, description = "`no_customer`: the account has never checked out", body = ErrorBody),
        (status = 502, description = "`stripe_error`: Stripe refused", body = ErrorBody),
        (status = 503, description = "`stripe_disabled`, `stripe_unavailable`", body = ErrorBody),
    )
)]
async fn portal(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PortalSession>, ApiError> {
    let req: PortalRequest = body_of(&body, r#"{"return_url":"https://…"}"#)?;
    state
        .config
        .return_hosts
        .check("return_url", &req.return_url)
        .map_err(|m| ApiError::bad_request("invalid_request", m))?;
    let url = billing(&state)
        .portal(
            &account,
            &req.return_url,
            super::credits::idempotency_header(&headers)?,
            actor(&who),
        )
        .await
        .map_err(billing_error)?;
    Ok(Json(PortalSession { account, url }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    /// `true` ends it now (no refund here; a staff refund is separate); default: at the
    /// end of the paid period.
    #[serde(default)]
    immediately: bool,
}

/// Cancels the running subscription at the end of its period, or now with `immediately`.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/subscription/cancel",
    operation_id = "cancelSubscription",
    tag = "billing",
    params(AccountParam, IdempotencyHeader),
    request_body(content = Option<CancelRequest>, description = "optional: at the period's end by default"),
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "done", body = SubscriptionChanged),
        (status = 400, description = "`invalid_request` (a malformed account id), `invalid_body`", body = ErrorBody),
        (status = 404, description = "`no_customer`, `no_subscription`: nothing running", body = ErrorBody),
        (status = 502, description = "`stripe_error`: Stripe refused", body = ErrorBody),
        (status = 503, description = "`stripe_disabled`, `stripe_unavailable`", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    let req: CancelRequest = body_of(&body, r#"{"immediately":false}"#)?;
    billing(&state)
        .cancel(
            &account,
            req.immediately,
            super::credits::idempotency_header(&headers)?,
            actor(&who),
        )
        .await
        .map(Json)
        .map_err(billing_error)
}

/// An empty object: the action takes nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// Takes back a scheduled cancellation.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/subscription/resume",
    operation_id = "resumeSubscription",
    tag = "billing",
    params(AccountParam, IdempotencyHeader),
    request_body(content = Option<Empty>, description = "optional: `{}`"),
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "done", body = SubscriptionChanged),
        (status = 400, description = "`invalid_request` (a malformed account id), `invalid_body`", body = ErrorBody),
        (status = 404, description = "`no_customer`, `no_subscription`", body = ErrorBody),
        (status = 409, description = "`conflict`: not scheduled to cancel", body = ErrorBody),
        (status = 502, description = "`stripe_error`: Stripe refused", body = ErrorBody),
        (status = 503, description = "`stripe_disabled`, `stripe_unavailable`", body = ErrorBody),
    )
)]
async fn resume(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    let _: Empty = body_of(&body, "{}")?;
    billing(&state)
        .resume(
            &account,
            super::credits::idempotency_header(&headers)?,
            actor(&who),
        )
        .await
        .map(Json)
        .map_err(billing_error)
}

/// Moves the running subscription to another plan price (the same subscription, never a
/// second one). Credits follow the money: an upgrade paid now grants at once; a
/// downgrade waits for the period's end unless asked otherwise.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/subscription/change",
    operation_id = "changeSubscription",
    tag = "billing",
    params(AccountParam, IdempotencyHeader),
    request_body = ChangeRequest,
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "done (or scheduled: see `scheduled_change`)", body = SubscriptionChanged),
        (status = 400, description = "`invalid_body`, `invalid_request` (a malformed account id, not a sellable plan price, a bad `when` or `proration_behavior`)", body = ErrorBody),
        (status = 404, description = "`no_customer`, `no_subscription`", body = ErrorBody),
        (status = 409, description = "`conflict`: already on that price and quantity, or a change is scheduled (cancel it first)", body = ErrorBody),
        (status = 502, description = "`stripe_error`: Stripe refused", body = ErrorBody),
        (status = 503, description = "`stripe_disabled`, `stripe_unavailable`", body = ErrorBody),
    )
)]
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
        .change(
            &account,
            &req,
            super::credits::idempotency_header(&headers)?,
            actor(&who),
        )
        .await
        .map(Json)
        .map_err(billing_error)
}

/// Cancels a plan change left for the end of the period (releases its subscription
/// schedule; the subscription carries on unchanged).
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}/subscription/change",
    operation_id = "cancelScheduledChange",
    tag = "billing",
    params(AccountParam, IdempotencyHeader),
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "done", body = SubscriptionChanged),
        (status = 400, description = "`invalid_request` (a malformed account id)", body = ErrorBody),
        (status = 404, description = "`no_customer`, `no_subscription`", body = ErrorBody),
        (status = 409, description = "`conflict`: no change is scheduled", body = ErrorBody),
        (status = 502, description = "`stripe_error`: Stripe refused", body = ErrorBody),
        (status = 503, description = "`stripe_disabled`, `stripe_unavailable`", body = ErrorBody),
    )
)]
async fn cancel_change(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
) -> Result<Json<SubscriptionChanged>, ApiError> {
    billing(&state)
        .cancel_change(
            &account,
            super::credits::idempotency_header(&headers)?,
            actor(&who),
        )
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

/// The account's customer, subscriptions, entitlement, features and credits, from local
/// mirrors (no Stripe call). An account never seen answers with empty fields and
/// entitlement status `none`.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}",
    operation_id = "getAccount",
    tag = "accounts",
    params(AccountParam),
    security(("token" = ["accounts:read"])),
    responses(
        (status = 200, description = "the account", body = AccountView),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PaymentsQuery {
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Invoices of the account's customers and its one-time checkouts, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/payments",
    operation_id = "listPayments",
    tag = "accounts",
    params(AccountParam, PaymentsQuery),
    security(("token" = ["accounts:read"])),
    responses(
        (status = 200, description = "one page of payments", body = PaymentsPage),
        (status = 400, description = "`invalid_account`, `invalid_query`, `invalid_cursor`", body = ErrorBody),
    )
)]
async fn payments(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<PaymentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentsPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = ApiError::page_limit(q.limit, 20, 100)?;
    accounts(&state)
        .payments(&account, q.cursor.as_deref(), limit)
        .await
        .map(Json)
        .map_err(account_error)
}
