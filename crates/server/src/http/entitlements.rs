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

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use super::auth::ApiCaller;
use super::credits::ledger_error;
use crate::clock::unix_now;
use crate::state::AppState;
use crate::topup::{TopUpError, TopUpRequest, TopUpView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}/entitlements", get(list))
        .route(
            "/api/v1/accounts/{account}/entitlements/{lookup_key}",
            get(check),
        )
        .route(
            "/api/v1/accounts/{account}/top-up",
            get(top_up).put(set_top_up).delete(delete_top_up),
        )
}

async fn list(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::credits::validate_account(&account).map_err(ledger_error)?;
    let rows = state
        .entitlements
        .of(&account)
        .await
        .map_err(|e| ApiError::internal("the entitlements could not be read", &e))?;
    let data: &[sm_store::entitlements::EntitlementRow] = rows.as_deref().map_or(&[], |r| r);
    Ok(Json(json!({"account": account, "data": data})))
}

async fn check(
    State(state): State<AppState>,
    Path((account, lookup_key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"account": account, "lookup_key": lookup_key, "entitled": entitled}),
    ))
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
