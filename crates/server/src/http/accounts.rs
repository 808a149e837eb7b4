//! Accounts for the app (scope `accounts:read`), local data only:
//!
//! - `GET /api/v1/accounts/{account}`: customer, subscriptions, entitlement, credits
//! - `GET /api/v1/accounts/{account}/payments?limit=N&cursor=C`: invoices and one-time
//!   checkouts, newest first

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ledger_error};
use crate::accounts::{AccountError, AccountView, Accounts, PaymentsPage};
use crate::app::AppState;
use crate::sync::unix_now;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{account}", get(show))
        .route("/api/v1/accounts/{account}/payments", get(payments))
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
