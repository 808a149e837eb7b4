//! The admin UI, server-rendered with askama (auto-escaping), one module per page.
//!
//! One guard runs in front of every `/admin` route but the sign-in page: without a live
//! session it redirects to `/admin/login` (for GET and POST alike, so nothing is done for
//! a stranger), and on a POST it checks the form's `csrf` against the session's token
//! before any handler runs (403 otherwise). GET handlers never change anything. Every
//! action is a POST, is audited, and leaves a message for the next page that says what
//! happened, including what failed.
//!
//! The admin works under a prefix (an app that nests the router at `/billing` has its
//! admin at `/billing/admin`) without being told the prefix: the guard reads it from the
//! request (the path the client sent less the path the admin saw, see [`Mount`]).
//! Handlers speak in the admin's own paths (`/admin/…`); the guard puts the `Location` of
//! every redirect under the mount, and templates put every link and form under
//! `{{ nav.base }}` (a test keeps them from linking to a bare `/admin`).

mod accounts;
mod activity;
mod app_events;
mod audit;
mod charts;
mod dashboard;
mod events;
mod login;
mod products;
mod sync_runs;
mod tokens;
mod users;
mod view;

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::any;
use sm_store::admin::AdminSession;
use sm_store::credits::NewAudit;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::admin::{SESSION_ABSOLUTE, SESSION_IDLE};
use crate::auth::hash;
use crate::clock::unix_now;
use crate::state::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(login::router())
        .merge(dashboard::router())
        .merge(activity::router())
        .merge(products::router())
        .merge(sync_runs::router())
        .merge(events::router())
        .merge(app_events::router())
        .merge(accounts::router())
        .merge(audit::router())
        .merge(tokens::router())
        .merge(users::router())
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
/// cached (pages show balances, events and, once, a new API token).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header_layer(
    name: axum::http::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// Who is acting, from where (set by the guard).
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub session: AdminSession,
    pub origin: String,
    pub mount: Mount,
}

/// Where the admin is mounted: empty for the standalone service, `/billing` when an app
/// nests the router there. Read from each request — what the client asked for
/// ([`OriginalUri`], set by the outermost router) ends with what the admin saw once
/// `nest` stripped its prefix — so an embedding app need not say it twice. A prefix with
/// anything but plain path characters (a host's `nest("/{tenant}", …)` lets the client
/// choose it) is not used: links then point at `/admin`, never at another host.
#[derive(Debug, Clone, Default)]
pub struct Mount(String);

impl Mount {
    fn of(request: &Request) -> Self {
        let Some(OriginalUri(sent)) = request.extensions().get::<OriginalUri>() else {
            return Self::default();
        };
        let prefix = sent
            .path()
            .strip_suffix(request.uri().path())
            .unwrap_or_default();
        let plain = prefix.starts_with('/')
            && !prefix.contains("//")
            && !prefix.ends_with('/')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
        Self(if plain {
            prefix.to_owned()
        } else {
            String::new()
        })
    }

    /// `path` (an admin path, `/admin/…`) as the browser must ask for it.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The prefix itself, for templates (`{{ nav.base }}/admin/…`).
    pub fn base(&self) -> &str {
        &self.0
    }

    /// Puts an answer's redirect under the mount (handlers redirect to `/admin/…`).
    fn relocate(&self, response: &mut Response) {
        if self.0.is_empty() {
            return;
        }
        let Some(to) = response.headers().get(header::LOCATION) else {
            return;
        };
        let Some(to) = to.to_str().ok().filter(|t| t.starts_with("/admin")) else {
            return;
        };
        if let Ok(value) = HeaderValue::from_str(&self.at(to)) {
            response.headers_mut().insert(header::LOCATION, value);
        }
    }
}

/// What every page's header needs.
#[derive(Debug)]
pub struct Nav {
    /// Where the admin is mounted ([`Mount::base`]): every link starts with it.
    pub base: String,
    pub email: String,
    pub csrf: String,
    pub flash_ok: Option<String>,
    pub flash_err: Option<String>,
    /// The page's place in the menu (`products`, `events`…), marked `aria-current`.
    pub here: &'static str,
}

impl AdminCtx {
    /// The header for the page `here`, with the message left by the last action (shown
    /// once).
    pub async fn nav(&self, state: &AppState, here: &'static str) -> Nav {
        let flash = state
            .store
            .take_flash(&self.session.id)
            .await
            .unwrap_or_default();
        let (ok, err) = match flash.as_deref().and_then(|f| f.split_once(':')) {
            Some(("ok", text)) => (Some(text.to_owned()), None),
            Some((_, text)) => (None, Some(text.to_owned())),
            None => (None, None),
        };
        Nav {
            base: self.mount.base().to_owned(),
            email: self.session.email.clone(),
            csrf: self.session.csrf_token.clone(),
            flash_ok: ok,
            flash_err: err,
            here,
        }
    }

    /// Who the ledger and billing record as acting.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.session.email)
    }

    /// Leaves a message for the next page without auditing (the action audited itself).
    async fn flash(&self, state: &AppState, outcome: Result<String, String>) {
        let flash = match outcome {
            Ok(m) => format!("ok:{m}"),
            Err(m) => format!("err:{m}"),
        };
        if let Err(e) = state.store.set_flash(&self.session.id, &flash).await {
            tracing::error!(error = %e, "could not keep the message for the next page");
        }
    }

    /// Audits an action and leaves its outcome for the next page.
    async fn done(
        &self,
        state: &AppState,
        action: &str,
        target: Option<&str>,
        outcome: Result<String, String>,
    ) {
        let (result, message) = match &outcome {
            Ok(m) => ("ok", m.as_str()),
            Err(m) => ("error", m.as_str()),
        };
        let entry = NewAudit {
            actor: &self.session.email,
            action,
            target,
            detail: Some(message),
            origin: Some(&self.origin),
            result,
        };
        if let Err(e) = state.store.audit(&entry, unix_now()).await {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
        self.flash(state, outcome).await;
    }
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

async fn current_session(state: &AppState, headers: &HeaderMap) -> Option<AdminSession> {
    let token = cookie(headers, login::SESSION_COOKIE)?;
    state
        .store
        .live_session(&hash(token), unix_now(), SESSION_IDLE, SESSION_ABSOLUTE)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not read the admin session");
            None
        })
}

fn forbidden(mount: &Mount, message: &str) -> Response {
    let back = mount.at("/admin");
    (
        StatusCode::FORBIDDEN,
        Html(format!(
            "<!doctype html><html lang=\"en\"><title>Forbidden · stripe-manager</title><main><h1>Forbidden</h1><p>{message} <a href=\"{back}\">Back</a></p></main></html>"
        )),
    )
        .into_response()
}

/// Finds the mount, checks the session (and a POST's CSRF token), runs the page, and
/// puts its redirect under the mount.
async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let mount = Mount::of(&request);
    request.extensions_mut().insert(mount.clone());
    let mut response = checked(state, mount.clone(), request, next).await;
    mount.relocate(&mut response);
    response
}

async fn checked(state: AppState, mount: Mount, request: Request, next: Next) -> Response {
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
                &mount,
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
    request.extensions_mut().insert(AdminCtx {
        session,
        origin,
        mount,
    });
    next.run(request).await
}

fn render(t: &impl Template) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template failed");
        "<p>The page could not be rendered; the details are in the server log.</p>".into()
    }))
}

fn failed(what: &str, e: &dyn std::error::Error) -> Response {
    super::ApiError::internal(what, e).into_response()
}

async fn not_found(Extension(mount): Extension<Mount>) -> Response {
    page_not_found(&mount)
}

fn page_not_found(mount: &Mount) -> Response {
    let home = mount.at("/admin");
    (StatusCode::NOT_FOUND, Html(format!("<!doctype html><html lang=\"en\"><title>Not found · stripe-manager</title><main><h1>Not found</h1><p>No such page. <a href=\"{home}\">Dashboard</a></p></main></html>"))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every link and form of every template starts with `{{ nav.base }}` (or the sign-in
    /// page's `{{ base }}`): a bare `/admin/…` would send a nested admin's users to the
    /// host app's own `/admin`. (tests/embed.rs follows the links of a nested admin.)
    #[test]
    fn no_template_links_to_a_bare_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let html = std::fs::read_to_string(&path).unwrap();
            for bare in ["href=\"/", "action=\"/", "href='/", "action='/"] {
                assert!(!html.contains(bare), "{} has {bare}…", path.display());
            }
        }
    }

    fn mount_of(sent: &str, seen: &str) -> String {
        let mut request = Request::builder().uri(seen).body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(OriginalUri(sent.parse().unwrap()));
        Mount::of(&request).base().to_owned()
    }

    #[test]
    fn the_mount_is_what_the_client_sent_less_what_the_admin_saw() {
        assert_eq!(mount_of("/admin/events", "/admin/events"), "");
        assert_eq!(
            mount_of("/billing/admin/events", "/admin/events"),
            "/billing"
        );
        assert_eq!(mount_of("/a/b-c_d.e~f/admin", "/admin"), "/a/b-c_d.e~f");
        // A prefix the client could have chosen is never a link's start.
        for odd in [
            "//evil.example/admin",
            "/x%22y/admin",
            "/x\"y/admin",
            "/x//admin",
        ] {
            assert_eq!(mount_of(odd, "/admin"), "", "{odd}");
        }
    }

    #[test]
    fn redirects_go_under_the_mount_and_nowhere_else() {
        let mount = Mount("/billing".into());
        let mut to_admin = Redirect::to("/admin/tokens").into_response();
        mount.relocate(&mut to_admin);
        assert_eq!(
            to_admin.headers()[header::LOCATION],
            "/billing/admin/tokens"
        );
        let mut elsewhere = Redirect::to("https://billing.stripe.com/p").into_response();
        mount.relocate(&mut elsewhere);
        assert_eq!(
            elsewhere.headers()[header::LOCATION],
            "https://billing.stripe.com/p"
        );
    }
}
