//! `POST /api/v1/sync`: body `{}` (whole catalog) or `{"products":["prod_…"]}`; answers
//! with the sync report.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sm_domain::ProductId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use super::openapi::ErrorBody;
use crate::manager::Unavailable;
use crate::state::AppState;
use crate::sync::{NoProgress, Origin, SyncError, SyncReport};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync))
}

/// `{}` (or no body) syncs the whole catalog; `products` only those.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    /// 1 to 100 product ids (`prod_…`).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
    products: Option<Vec<String>>,
}

/// Products one selected sync may name: each costs Stripe calls of its own (a retrieve
/// and two price lists), so a long list is a full sync's job, which pages 100 at a time.
pub const MAX_SELECTED: usize = 100;

/// Reads the catalog from Stripe into the local one (never writes to Stripe): every
/// page, with tombstones for what Stripe no longer lists, or only the products named.
#[utoipa::path(
    post,
    path = "/api/v1/sync",
    operation_id = "sync",
    tag = "sync",
    request_body(content = Option<SyncBody>, description = "optional: `{}` for the whole catalog"),
    security(("token" = ["sync:write"])),
    responses(
        (status = 200, description = "the run's report", body = SyncReport),
        (status = 400, description = "`invalid_body`, `invalid_product_id`, or `too_many_products` (more than 100)", body = ErrorBody),
        (status = 409, description = "`sync_already_running`: a full sync holds the lock (in any process)", body = ErrorBody),
        (status = 502, description = "`sync_failed`: Stripe answered with errors; the run's `report` is beside the error", body = ErrorBody),
        (status = 503, description = "`stripe_disabled` (no key configured) or `stripe_unavailable` (with the run's `report` when a run started)", body = ErrorBody),
    )
)]
async fn sync(State(state): State<AppState>, body: Bytes) -> Result<Json<SyncReport>, ApiError> {
    let body: SyncBody = if body.iter().all(u8::is_ascii_whitespace) {
        SyncBody { products: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("the body must be {{}} or {{\"products\":[\"prod_…\"]}}: {e}"),
            )
        })?
    };
    let result = match body.products {
        None => state.syncer.sync_all(Origin::Api, &NoProgress).await,
        Some(ids) if ids.is_empty() => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "products is empty; send {} to sync the whole catalog",
            ));
        }
        Some(ids) if ids.len() > MAX_SELECTED => {
            return Err(ApiError::bad_request(
                "too_many_products",
                format!(
                    "at most {MAX_SELECTED} products per selected sync ({} given); send {{}} to sync the whole catalog in ⌈n/100⌉ requests",
                    ids.len()
                ),
            ));
        }
        Some(ids) => {
            let ids = ids
                .into_iter()
                .map(ProductId::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::bad_request("invalid_product_id", e.to_string()))?;
            state
                .syncer
                .sync_products(&ids, Origin::Api, &NoProgress)
                .await
        }
    };
    let report = result.map_err(|e| match e {
        SyncError::Unavailable(u @ Unavailable::Disabled { .. }) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stripe_disabled",
            u.to_string(),
        ),
        SyncError::Unavailable(u) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stripe_unavailable",
            u.to_string(),
        ),
        SyncError::AlreadyRunning { .. } => {
            ApiError::new(StatusCode::CONFLICT, "sync_already_running", e.to_string())
        }
        SyncError::Store(e) => ApiError::internal("sync failed in the database", &e),
    })?;
    if report.succeeded() {
        return Ok(Json(report));
    }
    let value = serde_json::to_value(&report).expect("reports serialize");
    let message = report.errors.join("; ");
    Err(match report.unavailable {
        Some(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stripe_unavailable",
            message,
        ),
        None => ApiError::new(StatusCode::BAD_GATEWAY, "sync_failed", message),
    }
    .with("report", value))
}
