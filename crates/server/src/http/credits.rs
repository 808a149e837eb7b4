//! Credits and checkout for the app:
//!
//! - `GET  /api/v1/accounts/{account}/credits`: balance (subscription vs pay-as-you-go,
//!   expired, debt) and lots
//! - `POST /api/v1/accounts/{account}/credits/consume`: `{"amount","idempotency_key",
//!   "description"}` → 200, `402 insufficient_credits` (with `shortfall`), `409
//!   idempotency_key_reused`
//! - `POST /api/v1/accounts/{account}/credits/grants` (scope `credits:grant`):
//!   `{"amount","idempotency_key","reason","expires_at"}` → 201 (200 `replayed` for a
//!   repeat), `409 idempotency_key_reused`: promotional credits
//! - `POST /api/v1/accounts/{account}/credits/holds`: `{"amount","idempotency_key",
//!   "ttl_seconds","description"}` → 201 (200 `replayed`), `402 insufficient_credits`;
//!   `GET …/holds?status=held|all&limit=N`, `GET …/holds/{hold}`;
//!   `POST …/holds/{hold}/capture` `{"amount"}` and `POST …/holds/{hold}/release` → 200,
//!   `404 hold_not_found`, `409 hold_released|hold_expired|hold_captured`, `402` (capture)
//! - `GET|PUT /api/v1/accounts/{account}/credits/low-threshold` `{"below"}`: the level
//!   under which the app gets `credits.low` (null: the service's default)
//! - `GET  /api/v1/accounts/{account}/credits/history?limit=N`: the journal, newest first
//! - `POST /api/v1/checkout`: a Checkout Session for a sellable credit product

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::ApiCaller;
use crate::checkout::{CheckoutCreated, CheckoutError, CheckoutRequest};
use crate::clock::unix_now;
use crate::credits::holds::{CaptureRequest, Hold, HoldRequest};
use crate::credits::{
    Balance, ConsumeRequest, Consumption, EntryView, LedgerError, PromotionalGrant,
    PromotionalRequest,
};
use crate::manager::Unavailable;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}/credits", get(balance))
        .route("/api/v1/accounts/{account}/credits/consume", post(consume))
        .route("/api/v1/accounts/{account}/credits/grants", post(grant))
        .route(
            "/api/v1/accounts/{account}/credits/holds",
            post(hold).get(list_holds),
        )
        .route(
            "/api/v1/accounts/{account}/credits/holds/{hold}",
            get(get_hold),
        )
        .route(
            "/api/v1/accounts/{account}/credits/holds/{hold}/capture",
            post(capture),
        )
        .route(
            "/api/v1/accounts/{account}/credits/holds/{hold}/release",
            post(release),
        )
        .route(
            "/api/v1/accounts/{account}/credits/low-threshold",
            get(low_threshold).put(set_low_threshold),
        )
        .route("/api/v1/accounts/{account}/credits/history", get(history))
        .route("/api/v1/checkout", post(checkout))
}

/// Maps a ledger refusal to its HTTP answer.
pub fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::InvalidAccount(_) => ApiError::bad_request("invalid_account", e.to_string()),
        LedgerError::Invalid(m) => ApiError::bad_request("invalid_body", m),
        LedgerError::Insufficient { shortfall, .. } => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits",
            e.to_string(),
        )
        .with("shortfall", json!(shortfall)),
        LedgerError::KeyReused(_) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            e.to_string(),
        ),
        LedgerError::TooManyHolds(_) => {
            ApiError::new(StatusCode::CONFLICT, "too_many_holds", e.to_string())
        }
        LedgerError::HoldNotFound(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "hold_not_found", e.to_string())
        }
        LedgerError::HoldSettled { status, .. } => ApiError::new(
            StatusCode::CONFLICT,
            match status {
                "captured" => "hold_captured",
                "released" => "hold_released",
                _ => "hold_expired",
            },
            e.to_string(),
        ),
        LedgerError::Store(s) => ApiError::internal("the ledger failed", &s),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body must be {shape}: {e}"))
    })
}

async fn balance(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<Balance>, ApiError> {
    state
        .ledger
        .balance(&account, unix_now())
        .await
        .map(Json)
        .map_err(ledger_error)
}

async fn consume(
    State(state): State<AppState>,
    Path(account): Path<String>,
    body: Bytes,
) -> Result<Json<Consumption>, ApiError> {
    let req: ConsumeRequest = parse_body(
        &body,
        r#"{"amount":"1.50","idempotency_key":"…","description":"…"}"#,
    )?;
    state
        .ledger
        .consume(&account, &req, unix_now())
        .await
        .map(Json)
        .map_err(ledger_error)
}

/// A promotional grant; the token's name is the journal's actor.
async fn grant(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    body: Bytes,
) -> Result<(StatusCode, Json<PromotionalGrant>), ApiError> {
    let req: PromotionalRequest = parse_body(
        &body,
        r#"{"amount":"50","idempotency_key":"signup-user_42","reason":"sign-up bonus","expires_at":1767225600}"#,
    )?;
    let actor = who
        .as_ref()
        .map_or("api".to_owned(), |Extension(ApiCaller(name))| {
            format!("api:{name}")
        });
    let done = state
        .ledger
        .grant_promotional(&account, &req, &actor, unix_now())
        .await
        .map_err(ledger_error)?;
    let status = if done.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(done)))
}

async fn hold(
    State(state): State<AppState>,
    Path(account): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    let req: HoldRequest = parse_body(
        &body,
        r#"{"amount":"40","idempotency_key":"job-7","ttl_seconds":900,"description":"…"}"#,
    )?;
    let hold = state
        .ledger
        .hold(&account, &req, unix_now())
        .await
        .map_err(ledger_error)?;
    let status = if hold.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(hold)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldsQuery {
    /// `held` (the default: open holds) or `all`.
    status: Option<String>,
    limit: Option<u32>,
}

async fn list_holds(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<HoldsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let open_only = match q.status.as_deref() {
        None | Some("held") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("status must be held or all, not {other:?}"),
            ));
        }
    };
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=100) => n,
        Some(n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be 1 to 100, not {n}"),
            ));
        }
    };
    let holds = state
        .ledger
        .holds(&account, open_only, unix_now(), limit)
        .await
        .map_err(ledger_error)?;
    Ok(Json(json!({"account": account, "data": holds})))
}

async fn get_hold(
    State(state): State<AppState>,
    Path((account, id)): Path<(String, String)>,
) -> Result<Json<Hold>, ApiError> {
    state
        .ledger
        .get_hold(&account, &id, unix_now())
        .await
        .map(Json)
        .map_err(ledger_error)
}

async fn capture(
    State(state): State<AppState>,
    Path((account, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Hold>, ApiError> {
    // An empty body captures all of it.
    let req: CaptureRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CaptureRequest::default()
    } else {
        parse_body(&body, r#"{"amount":"12.50"} (or no body: all of it)"#)?
    };
    state
        .ledger
        .capture(&account, &id, &req, unix_now())
        .await
        .map(Json)
        .map_err(ledger_error)
}

async fn release(
    State(state): State<AppState>,
    Path((account, id)): Path<(String, String)>,
) -> Result<Json<Hold>, ApiError> {
    state
        .ledger
        .release(&account, &id, unix_now())
        .await
        .map(Json)
        .map_err(ledger_error)
}

/// `{"below": "25.00"}`: an account's own low threshold; `null` goes back to the
/// service's (`CREDITS_LOW_THRESHOLD`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LowThreshold {
    below: Option<sm_domain::credits::Credits>,
}

async fn threshold_answer(state: &AppState, account: &str) -> Result<Json<Value>, ApiError> {
    let own = state
        .store
        .low_threshold(account)
        .await
        .map_err(|e| ApiError::internal("the threshold could not be read", &e))?
        .map(sm_domain::credits::Credits);
    let default = state.config.low_threshold;
    Ok(Json(json!({
        "account": account,
        "below": own.or(default),
        "own": own,
        "default": default,
    })))
}

async fn low_threshold(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    threshold_answer(&state, &account).await
}

async fn set_low_threshold(
    State(state): State<AppState>,
    Path(account): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    let req: LowThreshold = parse_body(&body, r#"{"below":"25.00"} (or null: the default)"#)?;
    state
        .ledger
        .set_low_threshold(&account, req.below, unix_now())
        .await
        .map_err(ledger_error)?;
    threshold_answer(&state, &account).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<u32>,
}

async fn history(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let entries: Vec<EntryView> = state
        .ledger
        .history(&account, q.limit.unwrap_or(100).min(1000))
        .await
        .map_err(ledger_error)?;
    Ok(Json(json!({"account": account, "data": entries})))
}

async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CheckoutCreated>, ApiError> {
    let req: CheckoutRequest = parse_body(
        &body,
        r#"{"account":"…","price":"price_…","quantity":1,"success_url":"…","cancel_url":"…"}"#,
    )?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    crate::checkout::create(&state.store, &state.stripe, &req, key, unix_now())
        .await
        .map(Json)
        .map_err(|e| match e {
            CheckoutError::Invalid(m) => ApiError::bad_request("invalid_body", m),
            CheckoutError::NotSellable(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "product_not_sellable", m)
            }
            CheckoutError::PlanActive(m) => {
                ApiError::new(StatusCode::CONFLICT, "plan_already_active", m)
            }
            CheckoutError::TrialUsed(m) => {
                ApiError::new(StatusCode::CONFLICT, "trial_already_used", m)
            }
            CheckoutError::Unavailable(u @ Unavailable::Disabled { .. }) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stripe_disabled",
                u.to_string(),
            ),
            CheckoutError::Unavailable(u) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stripe_unavailable",
                u.to_string(),
            ),
            CheckoutError::Stripe(s) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "stripe_error", s.to_string())
            }
            CheckoutError::Store(s) => ApiError::internal("checkout failed in the database", &s),
        })
}
