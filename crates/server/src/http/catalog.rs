//! `GET /api/v1/products` and `GET /api/v1/products/{id}`: the local catalog, from the
//! cache (see `crate::catalog`); Stripe is never called here.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sm_store::catalog::ProductFilter;

use super::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", get(list))
        .route("/api/v1/products/{id}", get(show))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    active: Option<String>,
    all: Option<String>,
}

fn flag(name: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "{name} must be true or false, not {:?}",
                other.chars().take(20).collect::<String>()
            ),
        )),
    }
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let filter = match (
        flag("all", q.all.as_deref())?,
        flag("active", q.active.as_deref())?,
    ) {
        (Some(true), _) => ProductFilter::All,
        (_, Some(false)) => ProductFilter::Inactive,
        _ => ProductFilter::Active,
    };
    let body = state.catalog.list_json(filter).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.catalog.get(&id).await? {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "product_not_found",
            format!(
                "no product {:?} in the local catalog",
                id.chars().take(80).collect::<String>()
            ),
        )),
    }
}
