//! `/admin/users`: who can sign in to this admin — add, reset a password (which signs
//! that user out everywhere and lifts a sign-in lock), disable and enable, unlock after
//! too many failed attempts. Every action is audited. Nobody can disable themselves
//! (the last admin would be locked out); the CLI (`admin reset-password`, `admin
//! unlock`) is the way back for an operator locked out of the web.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sm_store::credits::NewAudit;

use super::view::{Badge, when};
use super::{AdminCtx, Nav, failed, render};
use crate::admin::{MIN_PASSWORD, lift_lock, new_password_hash, parse_email};
use crate::clock::{unix_now, utc};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users).post(add))
        .route("/admin/users/password", post(reset_password))
        .route("/admin/users/disable", post(disable))
        .route("/admin/users/enable", post(enable))
        .route("/admin/users/unlock", post(unlock))
}

struct UserLine {
    email: String,
    created: String,
    state: Badge,
    disabled: bool,
    locked: bool,
    me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserLine>,
    min_password: usize,
}

async fn users(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    let list = match state.store.list_admins().await {
        Ok(u) => u,
        Err(e) => return failed("the admin users could not be read", &e),
    };
    let now = unix_now();
    let mut lines = Vec::with_capacity(list.len());
    for u in list {
        let throttle = match state.store.throttle(&format!("email:{}", u.email)).await {
            Ok(t) => t,
            Err(e) => return failed("the sign-in locks could not be read", &e),
        };
        let locked_until = throttle.locked_until.filter(|until| *until > now);
        lines.push(UserLine {
            state: match (u.disabled_at, locked_until) {
                (Some(at), _) => Badge::new("muted", format!("disabled {}", utc(at))),
                (None, Some(until)) => Badge::new("bad", format!("locked until {}", utc(until))),
                (None, None) => Badge::new("good", "active"),
            },
            disabled: u.disabled_at.is_some(),
            locked: locked_until.is_some(),
            me: u.email == ctx.session.email,
            created: when(u.created_at),
            email: u.email,
        });
    }
    let page = UsersPage {
        nav: ctx.nav(&state, "users").await,
        users: lines,
        min_password: MIN_PASSWORD,
    };
    render(&page).into_response()
}

fn audit_entry<'a>(ctx: &'a AdminCtx, action: &'a str, target: &'a str) -> NewAudit<'a> {
    NewAudit {
        actor: &ctx.session.email,
        action,
        target: Some(target),
        detail: None,
        origin: Some(&ctx.origin),
        result: "ok",
    }
}

fn back() -> Response {
    Redirect::to("/admin/users").into_response()
}

#[derive(Deserialize)]
struct UserForm {
    email: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for UserForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserForm")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

async fn add(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<UserForm>,
) -> Response {
    let outcome = async {
        let email = parse_email(&form.email)?;
        let hash = new_password_hash(form.password).await?;
        let audit = audit_entry(&ctx, "admin.create_user", &email);
        match state
            .store
            .create_admin(&email, &hash, Some(&audit), unix_now())
            .await
        {
            Ok(Some(_)) => Ok(format!("Admin {email} added; they can sign in now.")),
            Ok(None) => Err(format!("an admin with the email {email} exists")),
            Err(e) => Err(crate::error_chain(&e)),
        }
    }
    .await;
    finish(
        &state,
        &ctx,
        "admin.create_user",
        &form.email,
        outcome,
        "No admin added",
    )
    .await
}

/// Flashes the outcome; a refusal is audited here (a success was audited with its write).
async fn finish(
    state: &AppState,
    ctx: &AdminCtx,
    action: &str,
    target: &str,
    outcome: Result<String, String>,
    refused: &str,
) -> Response {
    match outcome {
        Ok(m) => ctx.flash(state, Ok(m)).await,
        Err(m) => {
            // What was typed, bounded: an email is at most 254 characters.
            let target: String = target.trim().chars().take(254).collect();
            ctx.done(
                state,
                action,
                Some(&target),
                Err(format!("{refused}: {m}.")),
            )
            .await
        }
    }
    back()
}

async fn reset_password(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<UserForm>,
) -> Response {
    let me = form.email.trim().eq_ignore_ascii_case(&ctx.session.email);
    let outcome = async {
        let hash = new_password_hash(form.password).await?;
        let email = form.email.trim().to_ascii_lowercase();
        let audit = audit_entry(&ctx, "admin.reset_password", &email);
        match state
            .store
            .set_admin_password(&email, &hash, Some(&audit), unix_now())
            .await
        {
            Ok(true) => Ok(format!(
                "Password of {email} reset; their sessions ended and any sign-in lock was lifted."
            )),
            Ok(false) => Err(format!("there is no admin {email}")),
            Err(e) => Err(crate::error_chain(&e)),
        }
    }
    .await;
    if me && outcome.is_ok() {
        // Our own session just ended with the others.
        return Redirect::to("/admin/login").into_response();
    }
    finish(
        &state,
        &ctx,
        "admin.reset_password",
        &form.email,
        outcome,
        "Password not changed",
    )
    .await
}

#[derive(Debug, Deserialize)]
struct EmailForm {
    email: String,
}

async fn set_disabled(state: &AppState, ctx: &AdminCtx, email: &str, disabled: bool) -> Response {
    let email = email.trim().to_ascii_lowercase();
    let action = if disabled {
        "admin.disable"
    } else {
        "admin.enable"
    };
    let outcome = if disabled && email == ctx.session.email {
        Err("you cannot disable yourself (ask another admin, or use the CLI)".to_owned())
    } else {
        let audit = audit_entry(ctx, action, &email);
        match state
            .store
            .set_admin_disabled(&email, disabled, Some(&audit), unix_now())
            .await
        {
            Ok(Some(revoked)) if disabled => Ok(format!(
                "{email} disabled; their sessions ended and the {revoked} API token(s) they \
                 created were revoked."
            )),
            Ok(Some(_)) => Ok(format!(
                "{email} enabled; they can sign in again (tokens revoked when they were \
                 disabled stay revoked)."
            )),
            Ok(None) => Err(format!("there is no admin {email}")),
            Err(e) => Err(crate::error_chain(&e)),
        }
    };
    finish(state, ctx, action, &email, outcome, "Nothing changed").await
}

async fn disable(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<EmailForm>,
) -> Response {
    set_disabled(&state, &ctx, &form.email, true).await
}

async fn enable(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<EmailForm>,
) -> Response {
    set_disabled(&state, &ctx, &form.email, false).await
}

async fn unlock(
    State(state): State<AppState>,
    Extension(ctx): Extension<AdminCtx>,
    Form(form): Form<EmailForm>,
) -> Response {
    let email = form.email.trim().to_ascii_lowercase();
    let outcome = match lift_lock(
        &state.store,
        &email,
        None,
        &ctx.session.email,
        &ctx.origin,
        unix_now(),
    )
    .await
    {
        Ok(Some(addresses)) if addresses.is_empty() => {
            Ok(format!("{email} can try to sign in again."))
        }
        Ok(Some(addresses)) => Ok(format!(
            "{email} can try to sign in again, also from {}.",
            addresses.join(", ")
        )),
        Ok(None) => Err(format!("there is no admin {email}")),
        Err(e) => Err(crate::error_chain(&e)),
    };
    finish(
        &state,
        &ctx,
        "admin.unlock",
        &email,
        outcome,
        "Nothing unlocked",
    )
    .await
}
