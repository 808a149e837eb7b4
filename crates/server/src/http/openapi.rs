//! `GET /api/v1/openapi.json`: the API's description (OpenAPI 3.1), made from the code.
//!
//! Each `/api/v1` handler carries a `#[utoipa::path]` annotation and is routed through
//! [`OpenApiRouter`], so a route cannot exist without its entry in the document; request
//! and answer bodies are the handlers' own types (`#[derive(utoipa::ToSchema)]`). What
//! every operation shares is added here once (`Shared`): the bearer token scheme, the
//! `401`/`403`/`500` answers, the error shape. The document is public (it describes, it
//! does not grant) and checked in as `openapi/v1.json`: `tests/openapi.rs` fails when the
//! two differ, and checks real answers against its schemas.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use sm_domain::credits::Credits;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::sync::SyncReport;

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stripe-manager API",
        version = "1",
        description = "The local catalog (synced from Stripe, read-only here), catalog sync, \
            the credit ledger (consumptions, holds, promotional grants), checkout, accounts \
            and their billing actions, entitlements and automatic top-ups.\n\n\
            Every operation but this document needs an API token (`stripe-manager token \
            create --scopes …`) with the scope its `security` names. Credit quantities are \
            decimal strings (\"12.50\"), never JSON numbers. Times are Unix seconds. \
            Errors are `{\"error\":{\"code\",\"message\"}}`; each operation lists its codes \
            beside their status.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    servers((url = "/", description = "the service itself")),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "catalog", description = "Products and prices as last synced from Stripe."),
        (name = "sync", description = "Reads the catalog from Stripe (never writes it)."),
        (name = "credits", description = "The ledger: balance, consumptions, promotional grants, history, low-credit threshold."),
        (name = "holds", description = "Reserve credits before long work, then capture or release."),
        (name = "checkout", description = "Stripe Checkout for credit packs and plans."),
        (name = "accounts", description = "What an account has and paid, from local mirrors."),
        (name = "billing", description = "Billing actions on an account's subscription and its portal."),
        (name = "entitlements", description = "The feature gate and automatic top-ups."),
        (name = "meta", description = "This document.")
    )
)]
struct ApiDoc;

/// The security scheme's name, as every operation's `security` names it.
pub const TOKEN: &str = "token";

/// What every operation shares: the token scheme and the answers any route may give.
/// Applied to the whole document, once the routers have added their paths (the derive's
/// own `modifiers` would run before).
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token `smt_…` (`stripe-manager token create`). Scopes: \
                         catalog:read, sync:write, credits:read, credits:write, \
                         credits:grant, checkout:write, accounts:read, billing:write, \
                         entitlements:read.",
                    ))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            let with_body = [item.put.as_mut(), item.post.as_mut()];
            for op in with_body.into_iter().flatten() {
                add(op, "413", "`body_too_large`: bodies are limited to 1 MiB.");
            }
            let every = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for op in every.into_iter().flatten() {
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(
                        op,
                        "401",
                        "`unauthorized`: no valid API token (missing, malformed, unknown or revoked).",
                    );
                    add(
                        op,
                        "403",
                        "`forbidden`: the token lacks the scope this operation names.",
                    );
                }
                add(
                    op,
                    "400",
                    "`nul_character`: a NUL character (`%00`, `\\u0000`) in the URL or the body.",
                );
                // A path parameter is read as UTF-8 once percent-decoded, by every route.
                let in_path = op.parameters.iter().flatten().any(
                    |p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Path),
                );
                if in_path {
                    add(
                        op,
                        "400",
                        "`invalid_path`: the path is not UTF-8 once percent-decoded.",
                    );
                }
                // Every route that takes the header reads it the same way (one, ASCII).
                let keyed = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"));
                if keyed {
                    add(
                        op,
                        "400",
                        "`invalid_idempotency_key`: more than one `Idempotency-Key` header, or one that is not visible ASCII.",
                    );
                }
                add(
                    op,
                    "503",
                    "`storage_unavailable`: the database cannot take this now (a full disk, no connection free); retry with the same idempotency key.",
                );
                add(
                    op,
                    "500",
                    "`internal_error`: something failed on the service's side (the detail is in its log).",
                );
                op.responses.responses.entry("408".to_owned()).or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("the request, body included, took longer than `HTTP_REQUEST_TIMEOUT`; no body")
                            .build(),
                    )
                });
            }
        }
    }
}

/// Adds an error answer, or its codes to the one the operation documents for that status.
fn add(op: &mut Operation, status: &str, description: &str) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            let before = response.description.trim_end_matches('.');
            response.description = format!("{before}; {description}");
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            op.responses
                .responses
                .insert(status.to_owned(), RefOr::T(error_response(description)));
        }
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

/// Every refusal: `{"error":{"code","message"}}`, with `shortfall` beside it on a `402`
/// and the run's `report` on a failed sync.
// (The shape `ApiError` answers with; `tests/openapi.rs` keeps the two equal. A plain
// comment: a doc comment here is the schema's description in the API document.)
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The code and message.
    pub error: ErrorDetail,
    /// `insufficient_credits`: how many credits are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<Credits>,
    /// A failed `POST /api/v1/sync`: the run's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<SyncReport>,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, `snake_case`: what a program branches on (each operation lists its own).
    #[schema(examples("insufficient_credits"))]
    pub code: String,
    /// For people: what was wrong and, where it helps, what to send instead.
    pub message: String,
}

/// The account in every `/api/v1/accounts/{account}/…` path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by axum's `Path` in each handler; this describes it
pub struct AccountParam {
    /// Your app's id for the account: 1 to 128 characters, no whitespace, control
    /// characters or `/`.
    #[param(example = "user_42")]
    account: String,
}

/// The optional `Idempotency-Key` header of checkout and billing actions.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyHeader {
    /// Makes a retried request one operation, as Stripe's own header does: a repeat
    /// with the same key answers the first's result. Billing actions keep it 24 hours
    /// (scoped to the account and the action); credit operations take it in place of
    /// the body's `idempotency_key` (both sent must agree).
    #[param(rename = "Idempotency-Key", value_type = String, required = false)]
    idempotency_key: Option<String>,
}

/// The routes the document describes: every `/api/v1` route.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(document))
        .merge(super::catalog::router())
        .merge(super::sync::router())
        .merge(super::credits::router())
        .merge(super::accounts::router())
        .merge(super::entitlements::router())
}

/// The document as JSON, made once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let (_, mut doc) = api().split_for_parts();
    Shared.modify(&mut doc);
    let mut json = doc.to_pretty_json().expect("the document serializes");
    json.push('\n');
    json
});

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
