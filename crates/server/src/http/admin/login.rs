//! `/admin/login` and `/admin/logout`: forms and cookies around the sign-in service
//! ([`crate::admin::sign_in`]), which owns throttling, passwords and sessions.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{AdminCtx, Mount, client, cookie, current_session, forbidden, over_https, render};
use crate::admin::{SESSION_ABSOLUTE, SignInError, random_token, sign_in, sign_out};
use crate::clock::unix_now;
use crate::state::AppState;

pub(super) const SESSION_COOKIE: &str = "sm_session";
const LOGIN_CSRF_COOKIE: &str = "sm_login_csrf";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are ASCII")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    /// Where the admin is mounted ([`Mount::base`]).
    base: &'a str,
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

/// The sign-in page with a fresh CSRF cookie, scoped to the sign-in path under the mount.
fn login_form(
    mount: &Mount,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    secure: bool,
) -> Response {
    let csrf = random_token();
    let mut response = (
        status,
        render(&LoginPage {
            base: mount.base(),
            csrf: &csrf,
            email,
            error,
        }),
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_CSRF_COOKIE,
            &csrf,
            &mount.at("/admin/login"),
            3600,
            secure,
        ),
    );
    response
}

async fn login_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(mount): Extension<Mount>,
    headers: HeaderMap,
) -> Response {
    if current_session(&state, &headers).await.is_some() {
        return Redirect::to("/admin").into_response();
    }
    login_form(
        &mount,
        StatusCode::OK,
        "",
        None,
        over_https(&state, peer, &headers),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(mount): Extension<Mount>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let secure = over_https(&state, peer, &headers);
    let Ok(Form(form)) = form else {
        return login_form(
            &mount,
            StatusCode::BAD_REQUEST,
            "",
            Some("Send the sign-in form."),
            secure,
        );
    };
    if form.csrf.is_empty() || cookie(&headers, LOGIN_CSRF_COOKIE) != Some(form.csrf.as_str()) {
        return forbidden(
            &mount,
            "This sign-in form has expired. Reload the page and try again.",
        );
    }
    let origin = client(&state, peer, &headers);
    let email = form.email.trim().to_ascii_lowercase();
    match sign_in(&state.store, &email, form.password, &origin, unix_now()).await {
        Ok(session) => {
            let mut response = Redirect::to("/admin").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &session.cookie,
                    &mount.at("/admin"),
                    SESSION_ABSOLUTE,
                    secure,
                ),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_CSRF_COOKIE, "", &mount.at("/admin/login"), 0, secure),
            );
            response
        }
        Err(e @ SignInError::Locked { .. }) => login_form(
            &mount,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            Some(&e.to_string()),
            secure,
        ),
        Err(e @ SignInError::Invalid) => login_form(
            &mount,
            StatusCode::UNAUTHORIZED,
            &email,
            Some(&e.to_string()),
            secure,
        ),
        Err(SignInError::Store(e)) => {
            super::super::ApiError::internal("sign-in failed", &e).into_response()
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Extension(ctx): Extension<AdminCtx>,
) -> Response {
    let now = unix_now();
    if let Err(e) = sign_out(
        &state.store,
        &ctx.session.id,
        &ctx.session.email,
        &ctx.origin,
        now,
    )
    .await
    {
        return super::super::ApiError::internal("sign-out failed", &e).into_response();
    }
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            &ctx.mount.at("/admin"),
            0,
            over_https(&state, peer, &headers),
        ),
    );
    response
}
