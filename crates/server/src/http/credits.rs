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

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sm_domain::credits::Credits;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use super::auth::ApiCaller;
use super::openapi::{AccountParam, ErrorBody, IdempotencyHeader};
use crate::checkout::{CheckoutCreated, CheckoutError, CheckoutRequest};
use crate::clock::unix_now;
use crate::credits::holds::{CaptureRequest, Hold, HoldRequest};
use crate::credits::{
    Balance, ConsumeRequest, Consumption, EntryView, LedgerError, PromotionalGrant,
    PromotionalRequest,
};
use crate::manager::Unavailable;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(consume))
        .routes(routes!(grant))
        .routes(routes!(hold, list_holds))
        .routes(routes!(get_hold))
        .routes(routes!(capture))
        .routes(routes!(release))
        .routes(routes!(low_threshold, set_low_threshold))
        .routes(routes!(history))
        .routes(routes!(checkout))
}

/// The hold in `…/credits/holds/{hold}` paths.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by axum's `Path`; this describes it
struct HoldParam {
    /// Your app's account id.
    account: String,
    /// The hold's id (`hold_…`), as its creation answered.
    hold: String,
}

/// The `Idempotency-Key` header, if sent: one, visible ASCII (else `400
/// invalid_idempotency_key`). Every route that takes it reads it here.
pub(super) fn idempotency_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut sent = headers.get_all("idempotency-key").iter();
    let Some(header) = sent.next() else {
        return Ok(None);
    };
    if sent.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "send one Idempotency-Key header, not several",
        ));
    }
    header.to_str().map(Some).map_err(|_| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "the Idempotency-Key header must be visible ASCII",
        )
    })
}

/// The key of a debit or grant: the body's `idempotency_key` or the `Idempotency-Key`
/// header (Stripe's convention), either; both must then agree.
fn idempotency_key(headers: &HeaderMap, in_body: &mut String) -> Result<(), ApiError> {
    let Some(header) = idempotency_header(headers)? else {
        return Ok(());
    };
    if in_body.is_empty() {
        header.clone_into(in_body);
        Ok(())
    } else if in_body == header {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "idempotency_key_mismatch",
            "the Idempotency-Key header and the body's idempotency_key differ; send one, or the same in both",
        ))
    }
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
        LedgerError::Store(s) => ApiError::store("the ledger failed", &s),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body must be {shape}: {e}"))
    })
}

/// The account's balance and lots. An account never seen has none.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/credits",
    operation_id = "getBalance",
    tag = "credits",
    params(AccountParam),
    security(("token" = ["credits:read"])),
    responses(
        (status = 200, description = "the balance and its lots", body = Balance),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
    )
)]
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

/// Spends credits now, from the lots in spending order, exactly once per key.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/credits/consume",
    operation_id = "consume",
    tag = "credits",
    params(AccountParam, IdempotencyHeader),
    request_body = ConsumeRequest,
    security(("token" = ["credits:write"])),
    responses(
        (status = 200, description = "consumed (or the stored answer of an identical earlier request: `replayed: true`)", body = Consumption),
        (status = 400, description = "`invalid_account`, `invalid_body`, `idempotency_key_mismatch`", body = ErrorBody),
        (status = 402, description = "`insufficient_credits`: what the account may spend (available − held) is short; `shortfall` says by how much; nothing is stored", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key was used with another amount or description", body = ErrorBody),
    )
)]
async fn consume(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Consumption>, ApiError> {
    let mut req: ConsumeRequest = parse_body(
        &body,
        r#"{"amount":"1.50","idempotency_key":"…","description":"…"}"#,
    )?;
    idempotency_key(&headers, &mut req.idempotency_key)?;
    state
        .ledger
        .consume(&account, &req, unix_now())
        .await
        .map(Json)
        .map_err(ledger_error)
}

/// Promotional credits from the app (sign-up, a campaign): spent before paid credits of
/// the same or a later expiry, never taken back by a refund. The token's name is the
/// journal's actor.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/credits/grants",
    operation_id = "grantPromotional",
    tag = "credits",
    params(AccountParam, IdempotencyHeader),
    request_body = PromotionalRequest,
    security(("token" = ["credits:grant"])),
    responses(
        (status = 201, description = "granted", body = PromotionalGrant),
        (status = 200, description = "the answer of an identical earlier request (`replayed: true`)", body = PromotionalGrant),
        (status = 400, description = "`invalid_account`, `invalid_body`, `idempotency_key_mismatch`", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key was used with another amount or expiry", body = ErrorBody),
    )
)]
async fn grant(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<PromotionalGrant>), ApiError> {
    let mut req: PromotionalRequest = parse_body(
        &body,
        r#"{"amount":"50","idempotency_key":"signup-user_42","reason":"sign-up bonus","expires_at":1767225600}"#,
    )?;
    idempotency_key(&headers, &mut req.idempotency_key)?;
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

/// Reserves credits before long work: consumptions and other holds may no longer spend
/// them until the hold is captured, released or expires.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/credits/holds",
    operation_id = "createHold",
    tag = "holds",
    params(AccountParam, IdempotencyHeader),
    request_body = HoldRequest,
    security(("token" = ["credits:write"])),
    responses(
        (status = 201, description = "held", body = Hold),
        (status = 200, description = "the answer of an identical earlier request (`replayed: true`), as the hold stands now", body = Hold),
        (status = 400, description = "`invalid_account`, `invalid_body`, `idempotency_key_mismatch`", body = ErrorBody),
        (status = 402, description = "`insufficient_credits`: available − held is short, with `shortfall`; nothing is stored", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused` (another amount, ttl or description), `too_many_holds` (1,000 open)", body = ErrorBody),
    )
)]
async fn hold(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    let mut req: HoldRequest = parse_body(
        &body,
        r#"{"amount":"40","idempotency_key":"job-7","ttl_seconds":900,"description":"…"}"#,
    )?;
    idempotency_key(&headers, &mut req.idempotency_key)?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HoldsQuery {
    /// `held` (the default: open holds) or `all`.
    #[param(pattern = "^(held|all)$")]
    status: Option<String>,
    /// 1 to 100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// An account's holds, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct HoldsPage {
    account: String,
    data: Vec<Hold>,
}

/// The account's open holds (or all of them), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/credits/holds",
    operation_id = "listHolds",
    tag = "holds",
    params(AccountParam, HoldsQuery),
    security(("token" = ["credits:read"])),
    responses(
        (status = 200, description = "the holds", body = HoldsPage),
        (status = 400, description = "`invalid_account`, `invalid_query`", body = ErrorBody),
    )
)]
async fn list_holds(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<HoldsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HoldsPage>, ApiError> {
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
    let limit = ApiError::page_limit(q.limit, 100, 100)?;
    let holds = state
        .ledger
        .holds(&account, open_only, unix_now(), limit)
        .await
        .map_err(ledger_error)?;
    Ok(Json(HoldsPage {
        account,
        data: holds,
    }))
}

/// One hold, as it stands now.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/credits/holds/{hold}",
    operation_id = "getHold",
    tag = "holds",
    params(HoldParam),
    security(("token" = ["credits:read"])),
    responses(
        (status = 200, description = "the hold", body = Hold),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
        (status = 404, description = "`hold_not_found`", body = ErrorBody),
    )
)]
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

/// Spends up to the held amount (default all) as one consumption, from the lots in
/// spending order at this moment, and releases the rest.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/credits/holds/{hold}/capture",
    operation_id = "captureHold",
    tag = "holds",
    params(HoldParam),
    request_body(content = Option<CaptureRequest>, description = "optional: no body captures all of it"),
    security(("token" = ["credits:write"])),
    responses(
        (status = 200, description = "captured (`replayed: true` for a second capture, which answers the first's result)", body = Hold),
        (status = 400, description = "`invalid_account`, `invalid_body` (more than held, or not above zero)", body = ErrorBody),
        (status = 402, description = "`insufficient_credits`: a lot expired while held and the others cannot give the rest; the hold stays open", body = ErrorBody),
        (status = 404, description = "`hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_released`, `hold_expired`", body = ErrorBody),
    )
)]
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

/// Releases all of a hold.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account}/credits/holds/{hold}/release",
    operation_id = "releaseHold",
    tag = "holds",
    params(HoldParam),
    security(("token" = ["credits:write"])),
    responses(
        (status = 200, description = "released (or released or expired already: `replayed: true`)", body = Hold),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
        (status = 404, description = "`hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_captured`", body = ErrorBody),
    )
)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LowThresholdRequest {
    /// The account's own level; `null` goes back to the service's default.
    below: Option<Credits>,
}

/// The level under which the app gets `credits.low`.
#[derive(Debug, Serialize, ToSchema)]
struct LowThreshold {
    account: String,
    /// What applies: the account's own, else the default; `null`: no `credits.low`.
    below: Option<Credits>,
    /// The account's own, if set.
    own: Option<Credits>,
    /// The service's (`CREDITS_LOW_THRESHOLD`).
    default: Option<Credits>,
}

async fn threshold_answer(state: &AppState, account: &str) -> Result<Json<LowThreshold>, ApiError> {
    let own = state
        .store
        .low_threshold(account)
        .await
        .map_err(|e| ApiError::internal("the threshold could not be read", &e))?
        .map(Credits);
    let default = state.config.low_threshold;
    Ok(Json(LowThreshold {
        account: account.to_owned(),
        below: own.or(default),
        own,
        default,
    }))
}

/// The account's low-credits threshold.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/credits/low-threshold",
    operation_id = "getLowThreshold",
    tag = "credits",
    params(AccountParam),
    security(("token" = ["credits:read"])),
    responses(
        (status = 200, description = "the threshold", body = LowThreshold),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
    )
)]
async fn low_threshold(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<LowThreshold>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    threshold_answer(&state, &account).await
}

/// Sets the account's own level for `credits.low` (what it may spend, available − held,
/// crossing below it), or goes back to the default.
#[utoipa::path(
    put,
    path = "/api/v1/accounts/{account}/credits/low-threshold",
    operation_id = "setLowThreshold",
    tag = "credits",
    params(AccountParam),
    request_body = LowThresholdRequest,
    security(("token" = ["credits:write"])),
    responses(
        (status = 200, description = "stored", body = LowThreshold),
        (status = 400, description = "`invalid_account`, `invalid_body`", body = ErrorBody),
    )
)]
async fn set_low_threshold(
    State(state): State<AppState>,
    Path(account): Path<String>,
    body: Bytes,
) -> Result<Json<LowThreshold>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    let req: LowThresholdRequest =
        parse_body(&body, r#"{"below":"25.00"} (or null: the default)"#)?;
    state
        .ledger
        .set_low_threshold(&account, req.below, unix_now())
        .await
        .map_err(ledger_error)?;
    threshold_answer(&state, &account).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Entries at most (default 100, at most 1,000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// An account's journal, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct History {
    account: String,
    data: Vec<EntryView>,
}

/// The account's journal: every grant, debit, take-back and expiry, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/credits/history",
    operation_id = "getHistory",
    tag = "credits",
    params(AccountParam, HistoryQuery),
    security(("token" = ["credits:read"])),
    responses(
        (status = 200, description = "the journal", body = History),
        (status = 400, description = "`invalid_account`, `invalid_query`", body = ErrorBody),
    )
)]
async fn history(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = ApiError::page_limit(q.limit, 100, 1000)?;
    let entries: Vec<EntryView> = state
        .ledger
        .history(&account, limit)
        .await
        .map_err(ledger_error)?;
    Ok(Json(History {
        account,
        data: entries,
    }))
}

/// A Stripe Checkout Session for a sellable credit pack (one-time price) or plan
/// (recurring price): the customer pays on Stripe's page; the credits come with the
/// webhook that says it was paid.
#[utoipa::path(
    post,
    path = "/api/v1/checkout",
    operation_id = "createCheckout",
    tag = "checkout",
    params(IdempotencyHeader),
    request_body = CheckoutRequest,
    security(("token" = ["checkout:write"])),
    responses(
        (status = 200, description = "the Checkout Session: send the customer to its `url`", body = CheckoutCreated),
        (status = 400, description = "`invalid_body`", body = ErrorBody),
        (status = 409, description = "`plan_already_active` (change the plan with `…/subscription/change`), `trial_already_used`", body = ErrorBody),
        (status = 422, description = "`product_not_sellable`, with the reason", body = ErrorBody),
        (status = 502, description = "`stripe_error`: Stripe refused the session", body = ErrorBody),
        (status = 503, description = "`stripe_disabled`, `stripe_unavailable`", body = ErrorBody),
    )
)]
async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CheckoutCreated>, ApiError> {
    let req: CheckoutRequest = parse_body(
        &body,
        r#"{"account":"…","price":"price_…","quantity":1,"success_url":"…","cancel_url":"…"}"#,
    )?;
    let key = idempotency_header(&headers)?;
    for (field, url) in [
        ("success_url", &req.success_url),
        ("cancel_url", &req.cancel_url),
    ] {
        state
            .config
            .return_hosts
            .check(field, url)
            .map_err(|m| ApiError::bad_request("invalid_body", m))?;
    }
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
