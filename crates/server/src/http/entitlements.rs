//! The app's gate and its automatic top-ups:
//!
//! - `GET /api/v1/accounts/{account}/entitlements` (scope `entitlements:read`) →
//!   `{"account","data":[{"lookup_key","name","feature"}]}`: the account's active
//!   entitlements, as Stripe last answered them; an unknown account has none.
//! - `GET /api/v1/accounts/{account}/entitlements/{lookup_key}` →
//!   `{"account","lookup_key","entitled":true|false}`: the per-request check, from memory.
//! - `GET|PUT|DELETE /api/v1/accounts/{account}/top-up`: the automatic top-up
//!   (`{"below","price","quantity","max_per_day"}`); `PUT` needs `billing:write` (it
//!   spends the customer's money), `GET` `accounts:read`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use sm_store::entitlements::EntitlementRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use super::auth::ApiCaller;
use super::credits::ledger_error;
use super::openapi::{AccountParam, ErrorBody};
use crate::clock::unix_now;
use crate::state::AppState;
use crate::topup::{TopUpError, TopUpRequest, TopUpView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(check))
        .routes(routes!(top_up, set_top_up, delete_top_up))
}

/// The features an account may use now.
#[derive(Debug, Serialize, ToSchema)]
struct Entitlements {
    account: String,
    data: Vec<EntitlementRow>,
}

/// The answer of the gate.
#[derive(Debug, Serialize, ToSchema)]
struct EntitlementCheck {
    account: String,
    lookup_key: String,
    entitled: bool,
}

/// The account's active entitlements, as Stripe last answered them (answered while
/// Stripe is down). An account never seen has none.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/entitlements",
    operation_id = "listEntitlements",
    tag = "entitlements",
    params(AccountParam),
    security(("token" = ["entitlements:read"])),
    responses(
        (status = 200, description = "the features the account may use", body = Entitlements),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<Entitlements>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    let rows = state
        .entitlements
        .of(&account)
        .await
        .map_err(|e| ApiError::internal("the entitlements could not be read", &e))?;
    let data = rows.as_deref().map_or_else(Vec::new, |r| r.to_vec());
    Ok(Json(Entitlements { account, data }))
}

/// May the account use this feature? Answered from memory on every instance.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/entitlements/{lookup_key}",
    operation_id = "checkEntitlement",
    tag = "entitlements",
    params(
        AccountParam,
        ("lookup_key" = String, Path, description = "the feature's lookup key in Stripe (1 to 200 characters)")
    ),
    security(("token" = ["entitlements:read"])),
    responses(
        (status = 200, description = "whether it is entitled", body = EntitlementCheck),
        (status = 400, description = "`invalid_account`, `invalid_lookup_key`", body = ErrorBody),
    )
)]
async fn check(
    State(state): State<AppState>,
    Path((account, lookup_key)): Path<(String, String)>,
) -> Result<Json<EntitlementCheck>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    if lookup_key.is_empty() || lookup_key.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_lookup_key",
            "a lookup key is 1 to 200 characters",
        ));
    }
    let rows = state
        .entitlements
        .of(&account)
        .await
        .map_err(|e| ApiError::internal("the entitlements could not be read", &e))?;
    let entitled = rows
        .as_deref()
        .is_some_and(|r| r.iter().any(|e| e.lookup_key == lookup_key));
    metrics::counter!("stripe_manager_entitlement_checks_total", "entitled" => if entitled { "true" } else { "false" })
        .increment(1);
    Ok(Json(EntitlementCheck {
        account,
        lookup_key,
        entitled,
    }))
}

async fn view(state: &AppState, account: &str) -> Result<Option<TopUpView>, ApiError> {
    let Some(setting) = state
        .store
        .top_up_setting(account)
        .await
        .map_err(|e| ApiError::internal("the top-up could not be read", &e))?
    else {
        return Ok(None);
    };
    let recent = state
        .store
        .top_ups(account, 10)
        .await
        .map_err(|e| ApiError::internal("the top-ups could not be read", &e))?;
    Ok(Some(TopUpView::new(setting, recent)))
}

fn not_set(account: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "top_up_not_set",
        format!("account {account} has no automatic top-up"),
    )
}

/// The account's automatic top-up and its latest purchases.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account}/top-up",
    operation_id = "getTopUp",
    tag = "entitlements",
    params(AccountParam),
    security(("token" = ["accounts:read"])),
    responses(
        (status = 200, description = "the setting", body = TopUpView),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
        (status = 404, description = "`top_up_not_set`", body = ErrorBody),
    )
)]
async fn top_up(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<TopUpView>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    view(&state, &account)
        .await?
        .map(Json)
        .ok_or_else(|| not_set(&account))
}

/// The audit log's actor for a request: the token's name.
fn actor(who: &Option<Extension<ApiCaller>>) -> String {
    who.as_ref()
        .map_or("api".to_owned(), |Extension(ApiCaller(name))| {
            format!("api:{name}")
        })
}

/// Records a top-up change in the audit log (it spends the customer's money).
async fn audit(state: &AppState, who: &str, action: &str, account: &str, detail: &str) {
    let entry = sm_store::credits::NewAudit {
        actor: who,
        action,
        target: Some(account),
        detail: Some(detail),
        origin: Some("api"),
        result: "ok",
    };
    if let Err(e) = state.store.audit(&entry, unix_now()).await {
        tracing::warn!(error = %e, %account, "could not audit {action}");
    }
}

/// Buys the pack off-session with the customer's saved card each time what the account
/// may spend (available − held) crosses below `below`; at most `max_per_day` a UTC day.
#[utoipa::path(
    put,
    path = "/api/v1/accounts/{account}/top-up",
    operation_id = "setTopUp",
    tag = "entitlements",
    params(AccountParam),
    request_body = TopUpRequest,
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "stored, enabled and armed", body = TopUpView),
        (status = 400, description = "`invalid_account`, `invalid_body`, `invalid_top_up` (not a sellable one-time pack, a quantity or `max_per_day` outside 1–100, no customer)", body = ErrorBody),
    )
)]
async fn set_top_up(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
    body: Bytes,
) -> Result<Json<TopUpView>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    let req: TopUpRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                r#"the body must be {{"below":"100.00","price":"price_…","quantity":1,"max_per_day":3}}: {e}"#
            ),
        )
    })?;
    crate::topup::validate(&state.store, &account, &req)
        .await
        .map_err(|e| match e {
            TopUpError::Invalid(m) => ApiError::bad_request("invalid_top_up", m),
            TopUpError::Store(e) => ApiError::internal("the top-up could not be checked", &e),
        })?;
    let now = unix_now();
    let setting = sm_store::top_ups::TopUpSetting {
        account: account.clone(),
        below: req.below.hundredths(),
        price: req.price,
        quantity: req.quantity,
        max_per_day: req.max_per_day,
        enabled: true,
        armed: true,
        disabled_reason: None,
        updated_at: now,
    };
    state
        .store
        .put_top_up(&setting, now)
        .await
        .map_err(|e| ApiError::internal("the top-up could not be saved", &e))?;
    tracing::info!(%account, below = %req.below, price = %setting.price, "automatic top-up set");
    let detail = format!(
        "below {} credits: {} × {}, at most {} a day",
        req.below, setting.quantity, setting.price, setting.max_per_day
    );
    audit(&state, &actor(&who), "top_up.set", &account, &detail).await;
    view(&state, &account)
        .await?
        .map(Json)
        .ok_or_else(|| not_set(&account))
}

/// Turns the account's automatic top-up off.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}/top-up",
    operation_id = "deleteTopUp",
    tag = "entitlements",
    params(AccountParam),
    security(("token" = ["billing:write"])),
    responses(
        (status = 200, description = "turned off", body = TopUpView),
        (status = 400, description = "`invalid_account`", body = ErrorBody),
        (status = 404, description = "`top_up_not_set`", body = ErrorBody),
    )
)]
async fn delete_top_up(
    State(state): State<AppState>,
    Path(account): Path<String>,
    who: Option<Extension<ApiCaller>>,
) -> Result<Json<TopUpView>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    let found = state
        .store
        .delete_top_up(&account, unix_now())
        .await
        .map_err(|e| ApiError::internal("the top-up could not be turned off", &e))?;
    if !found {
        return Err(not_set(&account));
    }
    audit(
        &state,
        &actor(&who),
        "top_up.deleted",
        &account,
        "turned off",
    )
    .await;
    view(&state, &account)
        .await?
        .map(Json)
        .ok_or_else(|| not_set(&account))
}
