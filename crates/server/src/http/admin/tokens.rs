//! `/admin/tokens`: API tokens for `/api/v1` — list, create with scopes (the token is
//! shown once, in the answer to the form, and never stored or kept for another page),
//! revoke (at once, on every instance: each request checks the stored row). Audited.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sm_store::credits::NewAudit;

use super::view::{Badge, when};
use super::{AdminCtx, Nav, failed, render};
use crate::auth::{Scope, issue_token};
use crate::clock::unix_now;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/tokens", get(tokens).post(create))
        .route("/admin/tokens/revoke", post(revoke))
}

struct TokenLine {
    name: String,
    prefix: String,
    scopes: String,
    created: String,
    /// Who created it (an admin's email, `cli:<user>`), or "unknown" for older tokens.
    created_by: String,
    last_used: String,
    state: Badge,
    live: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<TokenLine>,
    scopes: Vec<&'static str>,
    /// The token just created, shown this once.
    created: Option<(String, String)>,
    /// What the create form was refused for, with the name to keep in the field.
    error: Option<String>,
    name: String,
}

async fn page(
    state: &AppState,
    ctx: &AdminCtx,
    created: Option<(String, String)>,
    error: Option<String>,
    name: String,
) -> Response {
    let rows = match state.store.list_tokens().await {
        Ok(t) => t,
        Err(e) => return failed("the tokens could not be read", &e),
    };
    let tokens = rows
        .into_iter()
        .rev()
        .map(|t| TokenLine {
            state: match t.revoked_at {
                Some(r) => Badge::new("muted", format!("revoked {}", crate::clock::utc(r))),
                None => Badge::new("good", "live"),
            },
            live: t.revoked_at.is_none(),
            last_used: t.last_used_at.map_or("never".to_owned(), when),
            created: when(t.created_at),
            created_by: t.created_by.clone().unwrap_or_else(|| "unknown".to_owned()),
            scopes: t.scopes.replace(' ', ", "),
            prefix: t.prefix,
            name: t.name,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = TokensPage {
        nav: ctx.nav(state, "tokens").await,
        tokens,
        scopes: Scope::ALL.iter().map(|s| s.as_str()).collect(),
        created,
        error,
        name,
    };
    (status, render(&page)).into_response()
}

async fn tokens(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    page(&state, &ctx, None, None, String::new()).await
}

/// Creates a token and answers with the page showing it once (no redirect: the token
/// must not travel through the session's stored message).
async fn create(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    body: axum::body::Bytes,
) -> Response {
    let mut name = String::new();
    let mut scopes = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "name" => name = v.into_owned(),
            "scope" => scopes.push(v.into_owned()),
            _ => {}
        }
    }
    let now = unix_now();
    match issue_token(
        &state.store,
        &name,
        scopes.iter().map(String::as_str),
        &ctx.session.email,
        &ctx.origin,
        now,
    )
    .await
    {
        Ok(issued) => {
            let scopes = issued
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let note = format!("Token {:?} created with {scopes}.", name.trim());
            page(
                &state,
                &ctx,
                Some((note, issued.token)),
                None,
                String::new(),
            )
            .await
        }
        Err(crate::auth::IssueError::Store(e)) => failed("the token could not be created", &e),
        Err(e) => {
            let message = format!("No token created: {e}.");
            // What was typed, bounded (a name is at most 100 characters).
            let name: String = name.trim().chars().take(100).collect();
            let audit = NewAudit {
                actor: &ctx.session.email,
                action: "token.create",
                target: Some(&name),
                detail: Some(&message),
                origin: Some(&ctx.origin),
                result: "error",
            };
            if let Err(e) = state.store.audit(&audit, now).await {
                tracing::error!(error = %e, "could not write the audit log");
            }
            page(&state, &ctx, None, Some(message), name).await
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct RevokeForm {
    name: String,
}

async fn revoke(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    axum::Form(form): axum::Form<RevokeForm>,
) -> Response {
    let outcome = match state.store.revoke_token(&form.name, unix_now()).await {
        Ok(true) => Ok(format!(
            "Token {:?} revoked; requests with it are refused from now on.",
            form.name
        )),
        Ok(false) => Err(format!("No live token named {:?}.", form.name)),
        Err(e) => Err(format!("Nothing revoked: {}", crate::error_chain(&e))),
    };
    ctx.done(&state, "token.revoke", Some(&form.name), outcome)
        .await;
    Redirect::to("/admin/tokens").into_response()
}
