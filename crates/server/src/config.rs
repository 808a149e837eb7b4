//! Configuration from flags, the environment and a `.env` file, in that order of
//! precedence, with the names in CONTRACT.md.
//!
//! Loading never touches the process environment (the `.env` file is read into a map),
//! so it is a pure function of its inputs and tests can build any configuration. Every
//! problem is collected, so one start-up error lists everything to fix; messages name
//! the variable and what is wrong, never the secret value.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sm_domain::Mode;
use sm_store::DatabaseUrl;
use sm_stripe::{
    ApiKey, BreakerConfig, DEFAULT_API_BASE, KeyKind, PINNED_API_VERSION, PublishableKey,
    RetryPolicy, WebhookSecrets,
};

/// Where the service runs. Live keys outside production are reported by `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    /// `APP_ENV=development` (the default).
    Development,
    /// `APP_ENV=test`.
    Test,
    /// `APP_ENV=production`: live keys are expected here and only here.
    Production,
}

/// How logs are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Everything about talking to Stripe. `Debug` shows `api_base` without credentials.
#[derive(Clone)]
pub struct StripeConfig {
    /// `STRIPE_SECRET_KEY` (or a restricted key); `None` leaves Stripe disabled.
    pub secret_key: Option<ApiKey>,
    /// `STRIPE_PUBLIC_KEY`, handed to front ends; never used to call Stripe.
    pub public_key: Option<PublishableKey>,
    /// Why Stripe is off, when it is; `None` means enabled with a key.
    pub disabled_reason: Option<String>,
    /// `STRIPE_API_VERSION`, sent with every request (default: the version the code is pinned to).
    pub api_version: String,
    /// `STRIPE_API_BASE`, without a trailing slash (default `https://api.stripe.com`; tests
    /// point it at a fake). May carry credentials: show [`StripeConfig::api_base_shown`].
    pub api_base: String,
    /// `STRIPE_CONNECTIVITY_TEST` (default true): probe Stripe once at start-up, in the
    /// background, and log the outcome.
    pub connectivity_test: bool,
    /// Client-side requests per second; 0 means no client-side limit.
    pub max_rps: u32,
    /// `STRIPE_TIMEOUT`: one request's timeout (default 30 s).
    pub timeout: Duration,
    /// `STRIPE_MAX_RETRIES`: retries of a request that failed in a retryable way (default 3).
    pub max_retries: u32,
    /// The circuit breaker (`STRIPE_BREAKER_THRESHOLD` failures in a row open it for
    /// `STRIPE_BREAKER_OPEN_SECS`).
    pub breaker: BreakerConfig,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &self.secret_key)
            .field("public_key", &self.public_key)
            .field("disabled_reason", &self.disabled_reason)
            .field("api_version", &self.api_version)
            .field("api_base", &self.api_base_shown())
            .field("connectivity_test", &self.connectivity_test)
            .field("max_rps", &self.max_rps)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("breaker", &self.breaker)
            .finish()
    }
}

impl StripeConfig {
    /// Whether Stripe may be called (a key is set and `STRIPE_ENABLED` is not false).
    pub fn enabled(&self) -> bool {
        self.disabled_reason.is_none()
    }

    /// Test or live, from the secret key; `None` without one.
    pub fn mode(&self) -> Option<Mode> {
        self.secret_key.as_ref().map(ApiKey::mode)
    }

    /// `api_base` safe to show: credentials in the URL (`https://user:pass@host`) are
    /// replaced by `***`.
    pub fn api_base_shown(&self) -> String {
        match reqwest::Url::parse(&self.api_base) {
            Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                let _ = u.set_password(None);
                let _ = u.set_username("***");
                u.to_string()
            }
            Ok(_) => self.api_base.clone(),
            Err(_) => "(not a URL)".to_owned(),
        }
    }

    /// The client configuration these settings describe.
    pub fn client_config(&self) -> sm_stripe::ClientConfig {
        sm_stripe::ClientConfig {
            api_base: self.api_base.clone(),
            api_version: self.api_version.clone(),
            timeout: self.timeout,
            connect_timeout: self.timeout.min(Duration::from_secs(5)),
            retry: RetryPolicy {
                max_retries: self.max_retries,
                ..RetryPolicy::default()
            },
            max_rps: self.max_rps,
            breaker: self.breaker.clone(),
        }
    }
}

/// The whole validated configuration (see [`Config::load`] and its sources).
#[derive(Debug, Clone)]
pub struct Config {
    /// Talking to Stripe.
    pub stripe: StripeConfig,
    /// `STRIPE_WEBHOOK_SECRET` (comma-separated, for rotation); `None` refuses every webhook.
    pub webhook_secrets: Option<WebhookSecrets>,
    /// `STRIPE_WEBHOOK_TOLERANCE`: how far a webhook's signed timestamp may be from now
    /// (default 300 s), against replays.
    pub webhook_tolerance: Duration,
    /// Where webhooks may come from (`WEBHOOK_ALLOWED_IPS`), and the proxies whose
    /// forwarded headers are believed (`TRUSTED_PROXIES`; also for the admin UI's client
    /// addresses and its HTTPS detection).
    pub webhook_sources: crate::net::SourcePolicy,
    /// `DATABASE_URL`: SQLite or PostgreSQL.
    pub database_url: DatabaseUrl,
    /// `BIND`: the listener's address (default `127.0.0.1:8080`).
    pub bind: SocketAddr,
    /// A second listener serving only `/healthz`, `/readyz` and `/metrics`
    /// (`HEALTH_BIND`), with its own connection slots: probes and scrapes still get in
    /// when clients hold every slot of `BIND`.
    pub health_bind: Option<SocketAddr>,
    /// `RETURN_URL_ALLOWED_HOSTS`: the hosts a checkout's `success_url`/`cancel_url` and a
    /// portal's `return_url` may name; unset, any host (`check` warns).
    pub return_hosts: ReturnHosts,
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// How webhook events are processed.
    pub worker: WorkerConfig,
    /// Limits of the HTTP listener.
    pub http: HttpLimits,
    /// How long a `past_due` subscription still counts as active
    /// (`PAST_DUE_GRACE_DAYS`, default 7), from the start of the period whose renewal
    /// payment failed: Stripe retries a failed renewal for days before giving up.
    pub past_due_grace: Duration,
    /// What is pruned, and when (`WEBHOOK_RETENTION_DAYS`, `SYNC_RUN_RETENTION_DAYS`,
    /// `AUDIT_RETENTION_DAYS`, `MIRROR_RETENTION_DAYS`, `PRUNE_INTERVAL_SECS`,
    /// `PRUNE_BATCH`).
    pub retention: RetentionConfig,
    /// Events to the app (`APP_WEBHOOK_URL`, `APP_WEBHOOK_SECRET`,
    /// `APP_WEBHOOK_ALLOW_PRIVATE`); `None`: no event is recorded or sent.
    pub app_webhooks: Option<AppWebhooks>,
    /// Below this, an account is low (`CREDITS_LOW_THRESHOLD`, credits); unset: only
    /// `credits.depleted` is sent, unless an account sets its own.
    pub low_threshold: Option<sm_domain::credits::Credits>,
}

/// Where events to the app go and how they are signed.
#[derive(Clone)]
pub struct AppWebhooks {
    /// At most ten, each http(s).
    pub endpoints: Vec<reqwest::Url>,
    /// `whsec_` + base64 of 24 to 64 random bytes (the Standard Webhooks form).
    secret: secrecy::SecretString,
    /// Whether loopback and private addresses may be delivered to.
    pub allow_private: bool,
    /// How long one delivery may take (`APP_WEBHOOK_TIMEOUT_SECS`, default 10); a
    /// claimed event is another instance's to send after twice that and 5 s more.
    pub timeout: Duration,
}

impl AppWebhooks {
    /// The secret, for the signer only.
    pub fn secret_text(&self) -> &str {
        use secrecy::ExposeSecret;
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for AppWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppWebhooks")
            .field(
                "endpoints",
                &self
                    .endpoints
                    .iter()
                    .map(|u| crate::net::redact_url(u.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("secret", &"whsec_[redacted]")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Parses `APP_WEBHOOK_URL` (comma-separated) against the SSRF rules: http(s), a host,
/// no duplicates, at most ten; an address literal that is not public needs
/// `allow_private` (names are checked when they are resolved, on every connection).
fn parse_app_endpoints(raw: &str, allow_private: bool) -> Result<Vec<reqwest::Url>, String> {
    let mut out: Vec<reqwest::Url> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let url = reqwest::Url::parse(part)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "{:?} is not an http(s) URL like https://app.example/hooks/stripe-manager",
                    crate::net::redact_url(part)
                )
            })?;
        let literal: Option<std::net::IpAddr> = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse().ok());
        if !allow_private
            && (literal.is_some_and(|ip| !crate::net::is_public(ip))
                || url.host_str() == Some("localhost"))
        {
            return Err(format!(
                "{} is not a public address: set APP_WEBHOOK_ALLOW_PRIVATE=true to deliver to it",
                crate::net::redact_url(url.as_str())
            ));
        }
        if out.contains(&url) {
            return Err(format!(
                "{} is listed twice",
                crate::net::redact_url(url.as_str())
            ));
        }
        out.push(url);
    }
    if out.is_empty() {
        return Err("lists no URL".into());
    }
    if out.len() > 10 {
        return Err(format!("lists {} URLs; at most 10", out.len()));
    }
    Ok(out)
}

/// Checks a Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 bytes (32 to
/// 88 characters).
fn check_app_secret(raw: &str) -> Result<(), String> {
    let body = raw
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_ (the Standard Webhooks form: whsec_ + base64)")?;
    if standardwebhooks::Webhook::new(raw).is_err() {
        return Err("is not whsec_ followed by base64".into());
    }
    if !(32..=88).contains(&body.len()) {
        return Err(
            "must hold 24 to 64 bytes after whsec_; make one with: echo whsec_$(openssl rand -base64 32)"
                .into(),
        );
    }
    Ok(())
}

/// Retention settings, which the `retention` module applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Processed and ignored webhook events older than this are pruned. The default, 30
    /// days, is Stripe's own window: Stripe neither redelivers nor lists an older event,
    /// so `events reconcile` cannot bring a pruned one back.
    pub webhook_days: u64,
    /// Finished sync runs older than this are pruned.
    pub sync_run_days: u64,
    /// The audit log is kept for ever unless this is set.
    pub audit_days: Option<u64>,
    /// Mirrors (customer, invoices, charges, subscriptions) of a customer deleted in
    /// Stripe are pruned this long after the deletion (`MIRROR_RETENTION_DAYS`). Their
    /// personal data is redacted at once; this is how long the redacted history (ids,
    /// amounts, statuses) stays for support and accounting questions.
    pub mirror_days: u64,
    /// Time between background passes; zero turns the pruner off (`prune` by hand).
    pub interval: Duration,
    /// Rows per delete statement: small, so intake never waits long behind one.
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            webhook_days: 30,
            sync_run_days: 90,
            audit_days: None,
            mirror_days: 90,
            interval: Duration::from_secs(600),
            batch: 500,
        }
    }
}

/// What one client may hold of the listener: each limit keeps a client that sends
/// slowly, or not at all, from pinning memory or file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A connection must send a request's headers within this time, whether it is new
    /// or idle between requests (`HTTP_HEADER_TIMEOUT`), or it is closed.
    pub header_timeout: Duration,
    /// A request, body included, must be handled within this time (`HTTP_REQUEST_TIMEOUT`);
    /// otherwise `408`.
    pub request_timeout: Duration,
    /// Connections served at once (`HTTP_MAX_CONNECTIONS`); further ones are closed at
    /// once and counted, so the process never runs out of file descriptors.
    pub max_connections: usize,
    /// Connections one peer may hold at once (`HTTP_MAX_CONNECTIONS_PER_ADDRESS`; an IPv6
    /// peer counts with its /64), so that one client cannot take every slot of
    /// `max_connections`. Peers in `TRUSTED_PROXIES` are exempt (they carry everyone), and
    /// so are `127.0.0.1` and `::1` (a proxy or app on this host). Equal to
    /// `max_connections`, it is off.
    pub max_connections_per_address: usize,
    /// The largest request head (request line and headers) a connection may send, and
    /// the most it buffers of one (`HTTP_MAX_HEADER_BYTES`, hyper's `max_buf_size`); a
    /// larger head is answered `431` and the connection closed. What unfinished heads can
    /// pin in total is `max_connections` times this.
    pub max_header_bytes: usize,
}

/// Default of `HTTP_MAX_HEADER_BYTES`: nginx's default for a request head
/// (`large_client_header_buffers 4 8k`), which proxies in front of us already enforce.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;

/// Default of `HTTP_MAX_CONNECTIONS_PER_ADDRESS`: a tenth of `max_connections` (at least
/// one), so it takes ten addresses (ten /64s) to fill the table, and the default follows
/// a changed `HTTP_MAX_CONNECTIONS`.
pub fn default_per_address(max_connections: usize) -> usize {
    (max_connections / 10).max(1)
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_connections_per_address: default_per_address(1000),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable (or flag's variable) at fault, as CONTRACT.md names it.
    pub variable: &'static str,
    /// What is wrong with it; never the value when it may be a secret.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.variable, self.message)
    }
}

/// Every problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// The sources configuration is read from, highest precedence first.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// From command-line flags.
    pub flags: HashMap<&'static str, String>,
    /// The process environment.
    pub env: HashMap<String, String>,
    /// The `.env` file, if any.
    pub dotenv: HashMap<String, String>,
}

impl Sources {
    /// The process environment plus `.env` at `path` (a missing file is fine unless
    /// `required`). A malformed `.env` is an error naming the line, not its content.
    pub fn from_process(dotenv_path: &Path, required: bool) -> Result<Self, ConfigError> {
        Ok(Self {
            flags: HashMap::new(),
            env: std::env::vars().collect(),
            dotenv: read_dotenv(dotenv_path, required)?,
        })
    }

    fn get(&self, name: &'static str) -> Option<String> {
        self.flags
            .get(name)
            .or_else(|| self.env.get(name))
            .or_else(|| self.dotenv.get(name))
            .cloned()
    }
}

fn read_dotenv(path: &Path, required: bool) -> Result<HashMap<String, String>, ConfigError> {
    let problem = |message: String| ConfigError {
        problems: vec![Problem {
            variable: "--env-file",
            message,
        }],
    };
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() && !required => return Ok(HashMap::new()),
        Err(e) if e.not_found() => {
            return Err(problem(format!("{} does not exist", path.display())));
        }
        Err(_) => return Err(problem(format!("{} cannot be read", path.display()))),
    };
    let mut map = HashMap::new();
    for item in iter {
        match item {
            Ok((k, v)) => {
                map.insert(k, v);
            }
            Err(dotenvy::Error::LineParse(line, at)) => {
                // The line may hold a secret: report where it is, not what it says.
                let number = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| text.lines().position(|l| l.contains(line.trim())))
                    .map(|i| format!("line {}", i + 1))
                    .unwrap_or_else(|| "a line".into());
                return Err(problem(format!(
                    "{}: {number} is malformed at character {at} (expected NAME=value; the value is not shown)",
                    path.display()
                )));
            }
            Err(_) => return Err(problem(format!("{} cannot be read", path.display()))),
        }
    }
    Ok(map)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `2025-03-31.basil` or `2024-06-20`: a date, optionally a release name.
fn valid_api_version(v: &str) -> bool {
    let (date, name) = v.split_once('.').unwrap_or((v, "x"));
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && [4, 2, 2]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase())
}

struct Loader<'a> {
    sources: &'a Sources,
    problems: Vec<Problem>,
}

impl Loader<'_> {
    fn get(&self, name: &'static str) -> Option<String> {
        self.sources.get(name).filter(|v| !v.trim().is_empty())
    }

    fn fail(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable,
            message: message.into(),
        });
    }

    fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        match self.get(name) {
            None => default,
            Some(v) => parse_bool(&v).unwrap_or_else(|| {
                self.fail(
                    name,
                    format!(
                        "must be true or false, not {:?}",
                        v.chars().take(20).collect::<String>()
                    ),
                );
                default
            }),
        }
    }

    fn number(&mut self, name: &'static str, default: u64, min: u64, max: u64) -> u64 {
        match self.get(name) {
            None => default,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                Ok(n) => {
                    self.fail(name, format!("must be between {min} and {max}, not {n}"));
                    default
                }
                Err(_) => {
                    self.fail(
                        name,
                        format!(
                            "must be a whole number, not {:?}",
                            v.chars().take(20).collect::<String>()
                        ),
                    );
                    default
                }
            },
        }
    }
}

impl Config {
    /// Loads and validates the configuration from `sources`.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut l = Loader {
            sources,
            problems: Vec::new(),
        };

        let secret_key =
            l.get("STRIPE_SECRET_KEY")
                .and_then(|raw| match ApiKey::parse(raw.trim()) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        l.fail("STRIPE_SECRET_KEY", e.to_string());
                        None
                    }
                });
        let secret_given = l.get("STRIPE_SECRET_KEY").is_some();
        let public_key =
            l.get("STRIPE_PUBLIC_KEY")
                .and_then(|raw| match PublishableKey::parse(raw.trim()) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        l.fail("STRIPE_PUBLIC_KEY", e.to_string());
                        None
                    }
                });
        let webhook_secrets =
            l.get("STRIPE_WEBHOOK_SECRET")
                .and_then(|raw| match WebhookSecrets::parse(&raw) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        l.fail("STRIPE_WEBHOOK_SECRET", e.to_string());
                        None
                    }
                });
        let enabled_flag = match l.get("STRIPE_ENABLED") {
            None => None,
            Some(v) => match parse_bool(&v) {
                Some(b) => Some(b),
                None => {
                    l.fail(
                        "STRIPE_ENABLED",
                        format!(
                            "must be true or false, not {:?}",
                            v.chars().take(20).collect::<String>()
                        ),
                    );
                    None
                }
            },
        };
        let disabled_reason = match (enabled_flag, secret_given) {
            (Some(false), _) => Some("STRIPE_ENABLED is false".to_owned()),
            (Some(true), false) => {
                Some("STRIPE_ENABLED is true but STRIPE_SECRET_KEY is not set".to_owned())
            }
            (None, false) => Some("STRIPE_SECRET_KEY is not set".to_owned()),
            (_, true) => None,
        };

        let api_version = l
            .get("STRIPE_API_VERSION")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| PINNED_API_VERSION.to_owned());
        if !valid_api_version(&api_version) {
            l.fail(
                "STRIPE_API_VERSION",
                format!("{api_version:?} is not a Stripe API version like {PINNED_API_VERSION}"),
            );
        }
        let api_base = l
            .get("STRIPE_API_BASE")
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        match reqwest::Url::parse(&api_base) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none() => {}
            // The value is not repeated: it may carry credentials (`https://user:pass@…`).
            _ => l.fail(
                "STRIPE_API_BASE",
                format!("is not an http(s) URL without a query, like {DEFAULT_API_BASE}"),
            ),
        }
        let connectivity_test = l.boolean("STRIPE_CONNECTIVITY_TEST", true);
        let tolerance = l.number("STRIPE_WEBHOOK_TOLERANCE", 300, 1, 86_400);
        let default_rps = match secret_key.as_ref().map(ApiKey::mode) {
            Some(Mode::Live) => 80,
            _ => 20,
        };
        let max_rps = l.number("STRIPE_MAX_RPS", default_rps, 0, 10_000) as u32;
        let timeout = l.number("STRIPE_TIMEOUT", 30, 1, 600);
        let max_retries = l.number("STRIPE_MAX_RETRIES", 3, 0, 10) as u32;
        let threshold = l.number("STRIPE_BREAKER_THRESHOLD", 10, 1, 1000) as u32;
        let max_attempts = l.number("WEBHOOK_MAX_ATTEMPTS", 8, 1, 100) as u32;
        let concurrency = l.number("WEBHOOK_CONCURRENCY", 4, 1, 64) as usize;
        let refetch_always = l.boolean("STRIPE_WEBHOOK_REFETCH", false);
        let lease_secs = l.number("WEBHOOK_LEASE_SECS", 60, 1, 3600);
        let open_for = l.number("STRIPE_BREAKER_OPEN_SECS", 30, 1, 3600);
        let max_connections = l.number("HTTP_MAX_CONNECTIONS", 1000, 1, 100_000);
        let http = HttpLimits {
            header_timeout: Duration::from_secs(l.number("HTTP_HEADER_TIMEOUT", 10, 1, 300)),
            request_timeout: Duration::from_secs(l.number("HTTP_REQUEST_TIMEOUT", 30, 1, 3600)),
            max_connections: max_connections as usize,
            max_connections_per_address: l.number(
                "HTTP_MAX_CONNECTIONS_PER_ADDRESS",
                default_per_address(max_connections as usize) as u64,
                1,
                max_connections,
            ) as usize,
            // hyper refuses a buffer smaller than 8 KiB.
            max_header_bytes: l.number(
                "HTTP_MAX_HEADER_BYTES",
                DEFAULT_MAX_HEADER_BYTES as u64,
                8192,
                1024 * 1024,
            ) as usize,
        };
        let past_due_grace =
            Duration::from_secs(l.number("PAST_DUE_GRACE_DAYS", 7, 0, 365) * 86_400);
        let keep = RetentionConfig::default();
        let retention = RetentionConfig {
            webhook_days: l.number("WEBHOOK_RETENTION_DAYS", keep.webhook_days, 1, 36_500),
            sync_run_days: l.number("SYNC_RUN_RETENTION_DAYS", keep.sync_run_days, 1, 36_500),
            audit_days: l
                .get("AUDIT_RETENTION_DAYS")
                .map(|_| l.number("AUDIT_RETENTION_DAYS", 0, 1, 36_500)),
            mirror_days: l.number("MIRROR_RETENTION_DAYS", keep.mirror_days, 1, 36_500),
            interval: Duration::from_secs(l.number(
                "PRUNE_INTERVAL_SECS",
                keep.interval.as_secs(),
                0,
                7 * 86_400,
            )),
            batch: l.number("PRUNE_BATCH", u64::from(keep.batch), 1, 100_000) as u32,
        };
        let allow_private = l.boolean("APP_WEBHOOK_ALLOW_PRIVATE", false);
        let app_timeout = Duration::from_secs(l.number("APP_WEBHOOK_TIMEOUT_SECS", 10, 1, 60));
        let app_secret = l.get("APP_WEBHOOK_SECRET");
        let app_webhooks = match l.get("APP_WEBHOOK_URL") {
            None => None,
            Some(raw) => match parse_app_endpoints(&raw, allow_private) {
                Err(e) => {
                    l.fail("APP_WEBHOOK_URL", e);
                    None
                }
                Ok(endpoints) => match app_secret
                    .as_deref()
                    .map(|s| (s, check_app_secret(s.trim())))
                {
                    None => {
                        l.fail(
                            "APP_WEBHOOK_SECRET",
                            "is required with APP_WEBHOOK_URL: events to the app are signed (echo whsec_$(openssl rand -base64 32))",
                        );
                        None
                    }
                    Some((_, Err(e))) => {
                        l.fail("APP_WEBHOOK_SECRET", e);
                        None
                    }
                    Some((secret, Ok(()))) => Some(AppWebhooks {
                        endpoints,
                        secret: secret.trim().to_owned().into(),
                        allow_private,
                        timeout: app_timeout,
                    }),
                },
            },
        };
        let low_threshold = match l.get("CREDITS_LOW_THRESHOLD") {
            None => None,
            Some(v) => match sm_domain::credits::Credits::parse(v.trim()) {
                Ok(c) => Some(c),
                Err(e) => {
                    l.fail("CREDITS_LOW_THRESHOLD", e.to_string());
                    None
                }
            },
        };
        let mut networks = |name: &'static str, allow_stripe: bool| {
            let raw = l.get(name)?;
            crate::net::parse_networks(&raw, allow_stripe)
                .map_err(|e| l.fail(name, e))
                .ok()
        };
        let webhook_sources = crate::net::SourcePolicy {
            allowed: networks("WEBHOOK_ALLOWED_IPS", true),
            trusted_proxies: networks("TRUSTED_PROXIES", false).unwrap_or_default(),
        };

        let database_url = match DatabaseUrl::parse(
            &l.get("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://stripe-manager.db".into()),
        ) {
            Ok(u) => Some(u),
            Err(e) => {
                l.fail("DATABASE_URL", e);
                None
            }
        };
        let health_bind = l.get("HEALTH_BIND").and_then(|raw| {
            raw.trim()
                .parse::<SocketAddr>()
                .map_err(|_| {
                    l.fail(
                        "HEALTH_BIND",
                        format!("{raw:?} is not an address like 127.0.0.1:9090"),
                    )
                })
                .ok()
        });
        let return_hosts = match l.get("RETURN_URL_ALLOWED_HOSTS") {
            None => ReturnHosts::default(),
            Some(raw) => ReturnHosts::parse(&raw).unwrap_or_else(|e| {
                l.fail("RETURN_URL_ALLOWED_HOSTS", e);
                ReturnHosts::default()
            }),
        };
        let bind_raw = l.get("BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind = match bind_raw.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                l.fail(
                    "BIND",
                    format!("{bind_raw:?} is not an address like 127.0.0.1:8080"),
                );
                None
            }
        };
        let app_env = match l
            .get("APP_ENV")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("development") | Some("dev") => AppEnv::Development,
            Some("test") => AppEnv::Test,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                l.fail(
                    "APP_ENV",
                    format!("must be development, test or production, not {other:?}"),
                );
                AppEnv::Development
            }
        };
        let log_format = match l
            .get("LOG_FORMAT")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                l.fail("LOG_FORMAT", format!("must be text or json, not {other:?}"));
                LogFormat::Text
            }
        };

        if !l.problems.is_empty() {
            return Err(ConfigError {
                problems: l.problems,
            });
        }
        Ok(Config {
            stripe: StripeConfig {
                secret_key,
                public_key,
                disabled_reason,
                api_version,
                api_base,
                connectivity_test,
                max_rps,
                timeout: Duration::from_secs(timeout),
                max_retries,
                breaker: BreakerConfig {
                    failure_threshold: threshold,
                    open_for: Duration::from_secs(open_for),
                },
            },
            webhook_secrets,
            webhook_tolerance: Duration::from_secs(tolerance),
            webhook_sources,
            database_url: database_url.expect("no problems means a URL"),
            bind: bind.expect("no problems means an address"),
            health_bind,
            return_hosts,
            app_env,
            log_format,
            worker: WorkerConfig {
                max_attempts,
                concurrency,
                apply: ApplyOptions { refetch_always },
                lease: Duration::from_secs(lease_secs),
                ..Default::default()
            },
            http,
            past_due_grace,
            retention,
            app_webhooks,
            low_threshold,
        })
    }

    /// Problems that do not stop the service from starting but that `check` reports:
    /// `(is_error, message)`. A mode mismatch is an error; a live key outside
    /// production is a warning.
    pub fn findings(&self) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        if let Some(w) = &self.app_webhooks {
            for url in w.endpoints.iter().filter(|u| u.scheme() == "http") {
                if !w.allow_private {
                    out.push((
                        false,
                        format!(
                            "APP_WEBHOOK_URL {} is plain http: events (balances, subscriptions) cross the network unencrypted; use https",
                            crate::net::redact_url(url.as_str())
                        ),
                    ));
                }
            }
        }
        if let (Some(secret), Some(public)) = (&self.stripe.secret_key, &self.stripe.public_key)
            && secret.mode() != public.mode()
        {
            out.push((
                    true,
                    format!(
                        "STRIPE_PUBLIC_KEY is a {} mode key but STRIPE_SECRET_KEY is a {} mode key; both must be test or both live",
                        public.mode(),
                        secret.mode()
                    ),
                ));
        }
        if !self.return_hosts.is_set() && self.stripe.mode() == Some(Mode::Live) {
            out.push((
                false,
                "RETURN_URL_ALLOWED_HOSTS is unset: checkout and portal return URLs may send customers \
                 to any site from a Stripe page; set it to your app's hosts"
                    .to_owned(),
            ));
        }
        if self.retention.webhook_days < 30 {
            out.push((
                false,
                format!(
                    "WEBHOOK_RETENTION_DAYS is {}: Stripe keeps events for 30 days, so `events reconcile` may store a \
                     pruned event again (its effects are not applied twice, but it shows as new)",
                    self.retention.webhook_days
                ),
            ));
        }
        if self.stripe.mode() == Some(Mode::Live)
            && self.app_env != AppEnv::Production
            && self.stripe.enabled()
        {
            out.push((false, "a live mode Stripe key is configured outside production (APP_ENV is not production)".into()));
        }
        if let Some(key) = &self.stripe.secret_key
            && key.kind() == KeyKind::Restricted
        {
            out.push((false, "a restricted key (rk_) needs read access to products, prices, events, checkout sessions, subscriptions, invoices and charges, and write access to customers and checkout sessions".into()));
        }
        out
    }
}

/// Where Stripe may send a customer back to (`RETURN_URL_ALLOWED_HOSTS`, comma
/// separated): a host (`app.example.com`) allows exactly it, a leading dot
/// (`.example.com`) allows it and every subdomain. An app's token could otherwise turn
/// Stripe's checkout and portal pages into a redirect to any site (phishing that starts
/// on a real Stripe page). Unset: any http(s) host, as before (success and cancel URLs
/// are per request, so there is no configured host to default to; `check` warns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnHosts(Option<Vec<String>>);

impl ReturnHosts {
    /// Parses the list; an entry with a scheme, a path, a port or nothing in it is refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut hosts = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bare = entry.strip_prefix('.').unwrap_or(entry);
            let plain = !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !plain {
                return Err(format!(
                    "{entry:?} is not a host name like app.example.com or .example.com (no scheme, port or path)"
                ));
            }
            hosts.push(entry.to_ascii_lowercase());
        }
        if hosts.is_empty() {
            return Err("names no host".into());
        }
        Ok(Self(Some(hosts)))
    }

    /// Whether the list is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `url` (already checked to be an http(s) URL) may be a return URL; the
    /// error names the host and the setting.
    pub fn check(&self, field: &str, url: &str) -> Result<(), String> {
        let Some(hosts) = &self.0 else {
            return Ok(());
        };
        // Not a URL with a host: the route's own URL check says what is wrong with it.
        let Some(host) = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return Ok(());
        };
        let allowed = hosts.iter().any(|h| match h.strip_prefix('.') {
            Some(domain) => host == domain || host.ends_with(h.as_str()),
            None => host == *h,
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{field}'s host {host:?} is not in RETURN_URL_ALLOWED_HOSTS"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn return_hosts_allow_exact_hosts_and_dotted_domains_only() {
        let hosts = ReturnHosts::parse("app.example.com, .shop.example").unwrap();
        for ok in [
            "https://app.example.com/done",
            "https://APP.example.com:8443/x",
            "https://shop.example/",
            "https://eu.shop.example/back",
        ] {
            assert_eq!(hosts.check("return_url", ok), Ok(()), "{ok}");
        }
        for no in [
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "https://notshop.example/",
            "https://example.com/",
        ] {
            let e = hosts.check("return_url", no).unwrap_err();
            assert!(e.contains("RETURN_URL_ALLOWED_HOSTS"), "{e}");
        }
        assert_eq!(
            ReturnHosts::default().check("x", "https://evil.example/"),
            Ok(())
        );
        for bad in [
            "https://app.example.com",
            "app.example.com:443",
            "a/b",
            " , ",
        ] {
            assert!(ReturnHosts::parse(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let sources = Sources {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Sources::default()
        };
        Config::load(&sources)
    }

    const KEY: &str = "sk_test_51ConfigSecretValue";

    #[test]
    fn defaults_without_anything() {
        let c = load(&[]).unwrap();
        assert_eq!(
            c.stripe.disabled_reason.as_deref(),
            Some("STRIPE_SECRET_KEY is not set")
        );
        assert_eq!(c.database_url.expose(), "sqlite://stripe-manager.db");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.stripe.api_version, PINNED_API_VERSION);
        assert_eq!(c.webhook_tolerance, Duration::from_secs(300));
        assert!(c.stripe.connectivity_test);
    }

    #[test]
    fn rps_default_follows_the_mode() {
        assert_eq!(
            load(&[("STRIPE_SECRET_KEY", KEY)]).unwrap().stripe.max_rps,
            20
        );
        assert_eq!(
            load(&[("STRIPE_SECRET_KEY", "sk_live_x")])
                .unwrap()
                .stripe
                .max_rps,
            80
        );
        assert_eq!(
            load(&[("STRIPE_SECRET_KEY", KEY), ("STRIPE_MAX_RPS", "5")])
                .unwrap()
                .stripe
                .max_rps,
            5
        );
    }

    #[test]
    fn disabled_and_keyless_are_not_errors() {
        let c = load(&[("STRIPE_SECRET_KEY", KEY), ("STRIPE_ENABLED", "false")]).unwrap();
        assert_eq!(
            c.stripe.disabled_reason.as_deref(),
            Some("STRIPE_ENABLED is false")
        );
        let c = load(&[("STRIPE_ENABLED", "true")]).unwrap();
        assert_eq!(
            c.stripe.disabled_reason.as_deref(),
            Some("STRIPE_ENABLED is true but STRIPE_SECRET_KEY is not set")
        );
    }

    #[test]
    fn every_problem_is_named_and_no_secret_is_echoed() {
        let err = load(&[
            ("STRIPE_SECRET_KEY", "pk_test_51SecretLookingValue"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_good,whsec_bad value"),
            ("STRIPE_MAX_RPS", "fast"),
            ("STRIPE_WEBHOOK_TOLERANCE", "0"),
            ("STRIPE_API_BASE", "ftp://root:ApiBasePassword@x"),
            ("STRIPE_API_VERSION", "latest"),
            ("DATABASE_URL", "mysql://root:pw@x/db"),
            ("BIND", "8080"),
            ("STRIPE_ENABLED", "maybe"),
        ])
        .unwrap_err();
        let vars: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            vars,
            vec![
                "STRIPE_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET",
                "STRIPE_ENABLED",
                "STRIPE_API_VERSION",
                "STRIPE_API_BASE",
                "STRIPE_WEBHOOK_TOLERANCE",
                "STRIPE_MAX_RPS",
                "DATABASE_URL",
                "BIND",
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("STRIPE_SECRET_KEY is a publishable key"),
            "{text}"
        );
        assert!(
            text.contains(
                "STRIPE_WEBHOOK_SECRET entry 2 of the comma-separated list contains whitespace"
            ),
            "{text}"
        );
        assert!(
            text.contains("STRIPE_MAX_RPS must be a whole number, not \"fast\""),
            "{text}"
        );
        assert!(!text.contains("SecretLookingValue"), "{text}");
        assert!(!text.contains(":pw@"), "{text}");
        assert!(!text.contains("ApiBasePassword"), "{text}");
    }

    #[test]
    fn connection_limits_default_and_validate() {
        let c = load(&[]).unwrap();
        assert_eq!(c.http.max_connections, 1000);
        assert_eq!(c.http.max_connections_per_address, 100);
        assert_eq!(c.http.max_header_bytes, 32 * 1024);
        assert_eq!(c.health_bind, None);
        let c = load(&[
            ("HTTP_MAX_CONNECTIONS", "50"),
            ("HEALTH_BIND", "127.0.0.1:9090"),
        ])
        .unwrap();
        assert_eq!(c.http.max_connections_per_address, 5);
        assert_eq!(c.health_bind.unwrap().port(), 9090);
        assert_eq!(
            load(&[("HTTP_MAX_CONNECTIONS", "5")])
                .unwrap()
                .http
                .max_connections_per_address,
            1
        );
        let err = load(&[
            ("HTTP_MAX_CONNECTIONS", "50"),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "51"),
            ("HTTP_MAX_HEADER_BYTES", "4096"),
            ("HEALTH_BIND", "9090"),
        ])
        .unwrap_err();
        let vars: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            vars,
            vec![
                "HTTP_MAX_CONNECTIONS_PER_ADDRESS",
                "HTTP_MAX_HEADER_BYTES",
                "HEALTH_BIND"
            ]
        );
    }

    #[test]
    fn flags_beat_env_which_beats_dotenv() {
        let mut sources = Sources::default();
        sources.dotenv.insert("BIND".into(), "127.0.0.1:1".into());
        assert_eq!(Config::load(&sources).unwrap().bind.port(), 1);
        sources.env.insert("BIND".into(), "127.0.0.1:2".into());
        assert_eq!(Config::load(&sources).unwrap().bind.port(), 2);
        sources.flags.insert("BIND", "127.0.0.1:3".into());
        assert_eq!(Config::load(&sources).unwrap().bind.port(), 3);
    }

    #[test]
    fn mode_mismatch_and_live_outside_production_are_findings() {
        let c = load(&[
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("STRIPE_PUBLIC_KEY", "pk_test_abc"),
        ])
        .unwrap();
        let f = c.findings();
        assert!(f.iter().any(|(err, m)| *err
            && m.contains(
                "STRIPE_PUBLIC_KEY is a test mode key but STRIPE_SECRET_KEY is a live mode key"
            )));
        assert!(
            f.iter().any(|(err, m)| !*err
                && m.contains("live mode Stripe key is configured outside production"))
        );
        let c = load(&[
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("APP_ENV", "production"),
        ])
        .unwrap();
        let f = c.findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].1.contains("RETURN_URL_ALLOWED_HOSTS is unset"),
            "{f:?}"
        );
        let c = load(&[
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("APP_ENV", "production"),
            ("RETURN_URL_ALLOWED_HOSTS", "app.example"),
        ])
        .unwrap();
        assert!(c.findings().is_empty());
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let c = load(&[
            ("STRIPE_SECRET_KEY", KEY),
            ("STRIPE_WEBHOOK_SECRET", "whsec_abcdefSECRET"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("ConfigSecretValue"), "{shown}");
        assert!(!shown.contains("abcdefSECRET"), "{shown}");
    }

    #[test]
    fn malformed_dotenv_names_the_line_not_the_value() {
        let path = std::env::temp_dir().join(format!("sm-dotenv-{}", std::process::id()));
        std::fs::write(
            &path,
            "BIND=127.0.0.1:9\nSTRIPE_SECRET_KEY='sk_test_unterminated\n",
        )
        .unwrap();
        let err = read_dotenv(&path, true).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.contains("is malformed"), "{err}");
        assert!(!err.contains("unterminated"), "{err}");
    }
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Events claimed per round. Large on PostgreSQL, where a claim and a batch write
    /// cost about the same for 32 events as for 256.
    pub batch: u32,
    /// Events applied at once.
    pub concurrency: usize,
    /// How long a claim is ours before another worker may take the event.
    pub lease: Duration,
    /// Attempts before an event is moved to `failed`.
    pub max_attempts: u32,
    /// How often to look for due work when nothing wakes us.
    pub poll: Duration,
    /// After a round that did not fill a batch, how long to let events gather before the
    /// next claim. Without it, light steady traffic is claimed and written one event at
    /// a time: three commits per event where the intake needs one (measured: the worker
    /// then slows the intake it shares the database and the cores with). It delays an
    /// event's application by at most this much; an idle worker still wakes at once.
    pub gather: Duration,
    /// How the applier treats catalog events.
    pub apply: ApplyOptions,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            concurrency: 4,
            lease: Duration::from_secs(60),
            max_attempts: 8,
            poll: Duration::from_secs(1),
            gather: Duration::from_millis(10),
            apply: ApplyOptions {
                refetch_always: false,
            },
        }
    }
}

/// Settings of the apply step.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Refetch every catalog object instead of trusting the payload.
    pub refetch_always: bool,
}
