//! `GET /api/v1/products` and `GET /api/v1/products/{id}`: the local catalog, from the
//! cache (see `crate::catalog`); Stripe is never called here.
//!
//! Answers carry an `ETag` made of the catalog version (bumped by every catalog write,
//! in any process) and the filter, and `Cache-Control: private, no-cache`: a client that
//! sends it back in `If-None-Match` gets `304 Not Modified` without a body until the
//! catalog changes. The token is checked first, as for any request.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sm_store::catalog::ProductFilter;

use super::ApiError;
use crate::catalog::Encoding;
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
    headers: HeaderMap,
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
    let encoding = Encoding::negotiate(
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let (version, body) = state.catalog.list_json(filter, encoding).await?;
    let tag = match filter {
        ProductFilter::Active => format!("W/\"catalog-{version}-active\""),
        ProductFilter::Inactive => format!("W/\"catalog-{version}-inactive\""),
        ProductFilter::All => format!("W/\"catalog-{version}-all\""),
    };
    if not_modified(&headers, &tag) {
        return Ok(unchanged(&tag));
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, CACHE.to_owned()),
            (header::VARY, "accept-encoding".to_owned()),
        ],
        body,
    )
        .into_response();
    if let Some(coding) = encoding.header() {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    Ok(response)
}

/// Clients keep answers (never a shared cache: they depend on the token) and revalidate
/// each time.
const CACHE: &str = "private, no-cache";

/// Whether `If-None-Match` names `tag` (or is `*`); weak tags compare by their value, as
/// RFC 9110 says for this header.
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| {
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag.strip_prefix("W/").unwrap_or(tag)
        })
}

fn unchanged(tag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    response
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (version, product) = state.catalog.get_versioned(&id).await?;
    let tag = format!("\"catalog-{version}\"");
    match product {
        Some(_) if not_modified(&headers, &tag) => Ok(unchanged(&tag)),
        Some(p) => Ok((
            [
                (header::ETAG, tag),
                (header::CACHE_CONTROL, CACHE.to_owned()),
            ],
            Json(p),
        )
            .into_response()),
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
