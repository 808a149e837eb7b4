//! `/admin/audit`: who did what, from where, with what result — paged newest first,
//! filtered by action.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sm_store::credits::AuditRow;

use super::view::{Badge, PAGE, Pager, when};
use super::{AdminCtx, Nav, failed, render};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit))
}

struct AuditLine {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
    origin: String,
    result: Badge,
}

impl From<AuditRow> for AuditLine {
    fn from(a: AuditRow) -> Self {
        AuditLine {
            id: a.id,
            at: when(a.at),
            result: Badge::status(&a.result),
            actor: a.actor,
            action: a.action,
            target: a.target.unwrap_or_default(),
            detail: a.detail.unwrap_or_default(),
            origin: a.origin.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    entries: Vec<AuditLine>,
    pager: Pager,
    action: String,
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    action: String,
    /// The id of the last entry on the previous page.
    #[serde(default)]
    cursor: String,
}

async fn audit(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let action = q.action.trim();
    let cursor = match super::view::id_cursor(&q.cursor) {
        Some(Err(())) => return super::view::bad_cursor(&ctx.mount.at("/admin/audit")),
        other => other.map(|c| c.unwrap_or_default()),
    };
    let entries = match state
        .store
        .audit_log_page(
            (!action.is_empty()).then_some(action),
            cursor,
            PAGE as u32 + 1,
        )
        .await
    {
        Ok(e) => e,
        Err(e) => return failed("the audit log could not be read", &e),
    };
    let mut entries: Vec<AuditLine> = entries.into_iter().map(AuditLine::from).collect();
    let pager = Pager::cut(
        &mut entries,
        "/admin/audit",
        &[("action", action)],
        cursor.is_some(),
        |e| e.id.to_string(),
    );
    let page = AuditPage {
        nav: ctx.nav(&state, "audit").await,
        entries,
        pager,
        action: q.action.clone(),
    };
    render(&page).into_response()
}
