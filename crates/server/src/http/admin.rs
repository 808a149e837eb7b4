//! The admin UI: `/admin/login`, `/admin/logout`, `/admin` (dashboard). Server-rendered
//! with askama (auto-escaping).
//!
//! One guard runs in front of every `/admin` route but the sign-in page: without a live
//! session it redirects to `/admin/login` (for GET and POST alike, so nothing is done for
//! a stranger), and on a POST it checks the form's `csrf` against the session's token
//! before any handler runs (403 otherwise). GET handlers never change anything.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use sm_store::admin::AdminSession;
use sm_store::credits::NewAudit;
use sm_store::inbox::InboxCounts;
use sm_store::runs::SyncRun;
use tower_http::set_header::SetResponseHeaderLayer;

use super::admin_pages::{AdminCtx, Nav};
use crate::admin::{
    Gate, LOCK_AFTER, LOCK_FOR, SESSION_ABSOLUTE, SESSION_IDLE, WINDOW, gate, random_token,
    verify_password,
};
use crate::auth::hash;
use crate::clock::unix_now;
use crate::manager::StripeStatus;
use crate::state::AppState;

const SESSION_COOKIE: &str = "sm_session";
const LOGIN_CSRF_COOKIE: &str = "sm_login_csrf";

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(super::admin_pages::router())
        .route("/admin", get(dashboard))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/{*rest}", any(not_found))
        .layer(axum::middleware::from_fn_with_state(state, guard))
        .layer(header_layer(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::REFERRER_POLICY, "same-origin"))
        .layer(header_layer(header::CACHE_CONTROL, "no-store"))
}

/// Headers on every admin answer: no scripts at all and styles only from the page
/// itself (the pages have no JavaScript; inline styles are the one allowance), never in
/// a frame (clickjacking), no MIME sniffing, no referrer leaving the admin, and nothing
/// cached (pages show balances and events).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header_layer(
    name: axum::http::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over HTTPS (through one of our trusted proxies).
fn over_https(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    state.config.webhook_sources.over_https(peer.ip(), headers)
}

/// The client's address (through trusted proxies), for throttling and the audit log.
fn client(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> String {
    state
        .config
        .webhook_sources
        .client_from_headers(peer.ip(), headers)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are ASCII")
}

async fn current_session(state: &AppState, headers: &HeaderMap) -> Option<AdminSession> {
    let token = cookie(headers, SESSION_COOKIE)?;
    state
        .store
        .live_session(&hash(token), unix_now(), SESSION_IDLE, SESSION_ABSOLUTE)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not read the admin session");
            None
        })
}

fn forbidden(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(format!(
            "<!doctype html><title>Forbidden</title><p>{message} <a href=\"/admin\">Back</a></p>"
        )),
    )
        .into_response()
}

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/admin/login" {
        return next.run(request).await;
    }
    let Some(session) = current_session(&state, request.headers()).await else {
        return Redirect::to("/admin/login").into_response();
    };
    let mut request = if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        let sent = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if sent.as_deref() != Some(session.csrf_token.as_str()) {
            tracing::warn!(path = %parts.uri.path(), "admin POST without a valid CSRF token refused");
            return forbidden(
                "This form has expired or was not sent from this site. Reload the page and try again.",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let origin = client(&state, peer, request.headers());
    request
        .extensions_mut()
        .insert(AdminCtx { session, origin });
    next.run(request).await
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

pub(super) fn render(t: &impl Template) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template failed");
        "<p>The page could not be rendered; the details are in the server log.</p>".into()
    }))
}

fn login_form(status: StatusCode, email: &str, error: Option<&str>, secure: bool) -> Response {
    let csrf = random_token();
    let mut response = (
        status,
        render(&LoginPage {
            csrf: &csrf,
            email,
            error,
        }),
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &csrf, "/admin/login", 3600, secure),
    );
    response
}

async fn login_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if current_session(&state, &headers).await.is_some() {
        return Redirect::to("/admin").into_response();
    }
    login_form(StatusCode::OK, "", None, over_https(&state, peer, &headers))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let secure = over_https(&state, peer, &headers);
    let Ok(Form(form)) = form else {
        return login_form(
            StatusCode::BAD_REQUEST,
            "",
            Some("Send the sign-in form."),
            secure,
        );
    };
    if form.csrf.is_empty() || cookie(&headers, LOGIN_CSRF_COOKIE) != Some(form.csrf.as_str()) {
        return forbidden("This sign-in form has expired. Reload the page and try again.");
    }
    let now = unix_now();
    let email = form.email.trim().to_ascii_lowercase();
    let origin = client(&state, peer, &headers);
    let keys = [format!("email:{email}"), format!("ip:{origin}")];
    let store = &state.store;
    // Every attempt is counted before its password is checked, by one atomic statement
    // per key: of a burst of parallel guesses, only those counted below the lock are
    // checked at all. A success clears the count.
    let mut wait = std::time::Duration::ZERO;
    for key in &keys {
        let t = match store
            .record_login_attempt(key, now, WINDOW, LOCK_AFTER, LOCK_FOR)
            .await
        {
            Ok(t) => t,
            Err(e) => return super::ApiError::internal("sign-in failed", &e).into_response(),
        };
        let before = sm_store::admin::Throttle {
            failures: t.failures - 1,
            ..t
        };
        match (t.locked_until.filter(|u| *u > now), gate(&before, now)) {
            (Some(until), _) | (None, Gate::Locked(until)) => {
                audit(&state, &email, "login", "locked", &origin, now).await;
                let minutes = ((until - now) + 59) / 60;
                return login_form(
                    StatusCode::TOO_MANY_REQUESTS,
                    &email,
                    Some(&format!(
                        "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                        if minutes == 1 { "" } else { "s" }
                    )),
                    secure,
                );
            }
            (None, Gate::Slow(d)) => wait = wait.max(d),
            (None, Gate::Open) => {}
        }
    }
    tokio::time::sleep(wait).await;
    let user = match store.admin_by_email(&email).await {
        Ok(u) => u,
        Err(e) => return super::ApiError::internal("sign-in failed", &e).into_response(),
    };
    let ok = verify_password(
        form.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let Some(user) = user.filter(|_| ok) else {
        audit(&state, &email, "login", "invalid_credentials", &origin, now).await;
        return login_form(
            StatusCode::UNAUTHORIZED,
            &email,
            Some("Invalid email or password."),
            secure,
        );
    };
    for key in &keys {
        let _ = store.clear_throttle(key).await;
    }
    let token = random_token();
    if let Err(e) = store
        .create_session(&hash(&token), user.id, &random_token(), &origin, now)
        .await
    {
        return super::ApiError::internal("sign-in failed", &e).into_response();
    }
    audit(&state, &email, "login", "ok", &origin, now).await;
    let mut response = Redirect::to("/admin").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, "/admin", SESSION_ABSOLUTE, secure),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, "", "/admin/login", 0, secure),
    );
    response
}

async fn audit(state: &AppState, actor: &str, action: &str, result: &str, origin: &str, now: i64) {
    let actor: String = actor.chars().take(200).collect();
    let entry = NewAudit {
        actor: if actor.is_empty() { "unknown" } else { &actor },
        action,
        target: None,
        detail: None,
        origin: Some(origin),
        result,
    };
    if let Err(e) = state.store.audit(&entry, now).await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}

async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Extension(ctx): Extension<AdminCtx>,
) -> Response {
    if let Err(e) = state.store.delete_session(&ctx.session.id).await {
        return super::ApiError::internal("sign-out failed", &e).into_response();
    }
    audit(
        &state,
        &ctx.session.email,
        "logout",
        "ok",
        &ctx.origin,
        unix_now(),
    )
    .await;
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            "/admin",
            0,
            over_https(&state, peer, &headers),
        ),
    );
    response
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    stripe: StripeStatus,
    mode: String,
    circuit: String,
    last_success: String,
    last_run: Option<SyncRun>,
    queue: InboxCounts,
    oldest_pending: String,
    /// Received, applied (processed or ignored) and failed in the last hour.
    last_hour: (i64, i64, i64),
}

fn ago(seconds: Option<i64>) -> String {
    match seconds {
        None => "never".into(),
        Some(s) if s < 120 => format!("{s} s ago"),
        Some(s) if s < 7200 => format!("{} min ago", s / 60),
        Some(s) => format!("{} h ago", s / 3600),
    }
}

async fn dashboard(State(state): State<AppState>, Extension(ctx): Extension<AdminCtx>) -> Response {
    let now = unix_now();
    let stripe = state.stripe.status();
    let last_hour = match state
        .store
        .event_rates(crate::webhooks::now_ms() - 3_600_000)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return super::ApiError::internal("the dashboard could not be read", &e)
                .into_response();
        }
    };
    let runs = state.store.list_sync_runs(1).await;
    let queue = state.store.inbox_counts(crate::webhooks::now_ms()).await;
    let (runs, queue) = match (runs, queue) {
        (Ok(r), Ok(q)) => (r, q),
        (Err(e), _) | (_, Err(e)) => {
            return super::ApiError::internal("the dashboard could not be read", &e)
                .into_response();
        }
    };
    let page = DashboardPage {
        nav: ctx.nav(&state).await,
        mode: stripe.mode.map_or("—".into(), |m| m.to_string()),
        circuit: stripe.circuit.unwrap_or("—").to_owned(),
        last_success: ago(stripe.last_success_at.map(|t| now - t)),
        stripe,
        last_run: runs.into_iter().next(),
        oldest_pending: queue
            .oldest_pending_ms
            .map_or("—".into(), |ms| ago(Some(ms / 1000))),
        queue,
        last_hour,
    };
    render(&page).into_response()
}

pub(super) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html("<!doctype html><title>Not found</title><p>No such page. <a href=\"/admin\">Dashboard</a></p>")).into_response()
}
