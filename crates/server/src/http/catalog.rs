//! `GET /api/v1/products` and `GET /api/v1/products/{id}`: the local catalog, from the
//! cache (see `crate::catalog`); Stripe is never called here.
//!
//! Answers carry an `ETag` made of the catalog version (bumped by every catalog write,
//! in any process) and the filter, and `Cache-Control: private, no-cache`: a client that
//! sends it back in `If-None-Match` gets `304 Not Modified` without a body until the
//! catalog changes. The token is checked first, as for any request.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sm_store::catalog::ProductFilter;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use super::openapi::ErrorBody;
use crate::catalog::{ApiProduct, Encoding};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `false`: only inactive products. Default: active ones.
    #[param(value_type = Option<bool>)]
    active: Option<String>,
    /// `true`: every product, active, inactive and deleted (tombstones).
    #[param(value_type = Option<bool>)]
    all: Option<String>,
}

/// `If-None-Match`, to revalidate a kept answer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the headers; this describes it
struct Revalidate {
    /// An `ETag` from an earlier answer: `304` without a body while the catalog has not
    /// changed.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// The answer of `GET /api/v1/products` (made by the catalog cache, described here).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct ProductList {
    data: Vec<ApiProduct>,
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

/// The local catalog: Stripe is never called. Sellable products are valid, active and
/// not deleted; the others are listed with the reason.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    operation_id = "listProducts",
    tag = "catalog",
    params(ListQuery, Revalidate),
    security(("token" = ["catalog:read"])),
    responses(
        (status = 200, description = "the products, by display order", body = ProductList,
            headers(("ETag" = String, description = "the catalog version and filter"))),
        (status = 304, description = "not modified since the `ETag` sent in `If-None-Match`"),
        (status = 400, description = "`invalid_query`: `active` or `all` is not `true` or `false`", body = ErrorBody),
    )
)]
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

/// One product of the local catalog, whatever its state.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    operation_id = "getProduct",
    tag = "catalog",
    params(("id" = String, Path, description = "Stripe's product id (`prod_…`)"), Revalidate),
    security(("token" = ["catalog:read"])),
    responses(
        (status = 200, description = "the product", body = ApiProduct,
            headers(("ETag" = String, description = "the catalog version"))),
        (status = 304, description = "not modified since the `ETag` sent in `If-None-Match`"),
        (status = 404, description = "`product_not_found`: no such product in the local catalog", body = ErrorBody),
    )
)]
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
