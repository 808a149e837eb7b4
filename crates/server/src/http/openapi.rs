//! `GET /api/v1/openapi.json`: the API's description (OpenAPI 3.1), written by hand in
//! `crates/server/openapi/v1.json` and kept equal to the routes by a test
//! (`tests/openapi.rs`). Public: it describes, it does not grant.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

/// The document, embedded at build time.
pub const DOCUMENT: &str = include_str!("../../openapi/v1.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
