//! The transport: one `reqwest` client behind the retry policy, the rate limiter and the
//! circuit breaker, plus a typed method for each endpoint we use.
//!
//! There are deliberately no methods that create, update or delete products or prices:
//! Stripe is the source of truth for the catalog and this crate cannot write it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::breaker::{BreakerConfig, CircuitBreaker, CircuitState};
use crate::error::{StripeError, scrub};
use crate::form::Form;
use crate::keys::ApiKey;
use crate::limiter::RateLimiter;
use crate::retry::{Attempt, RetryPolicy, Verdict};
use crate::types::{
    Charge, CheckoutSession, Customer, Event, Invoice, LineItem, List, Price, Product, Subscription,
};

/// Where requests go unless `STRIPE_API_BASE` says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// The API version sent as `Stripe-Version` on every request unless configured. Pinning
/// it means a change in Stripe's account default can never change the shapes we parse.
/// `2025-03-31.basil` is the first version with the current invoice and subscription
/// shapes (`invoice.parent`, periods on subscription items); the wire types also accept
/// the older shapes, which webhook endpoints created earlier still send.
pub const PINNED_API_VERSION: &str = "2025-03-31.basil";

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL without a trailing slash, e.g. `https://api.stripe.com`.
    pub api_base: String,
    /// Sent as `Stripe-Version` on every request.
    pub api_version: String,
    /// Whole-request timeout of one attempt (connect, send, read the body).
    pub timeout: Duration,
    /// Connect timeout of one attempt.
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Client-side requests per second; 0 turns the limiter off.
    pub max_rps: u32,
    pub breaker: BreakerConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_owned(),
            api_version: PINNED_API_VERSION.to_owned(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            max_rps: 20,
            breaker: BreakerConfig::default(),
        }
    }
}

/// What we last learned about Stripe from real calls, for health and status pages.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Health {
    /// Unix time of the last call that got an answer from Stripe (any status below 500
    /// except an authentication error).
    pub last_success_at: Option<i64>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<HealthError>,
    /// HTTP attempts sent, retries included.
    pub attempts: u64,
    /// Of which retries.
    pub retries: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthError {
    /// `auth`, `network`, `circuit_open` or `rate_limited`.
    pub kind: String,
    pub message: String,
    pub at: i64,
}

/// A cheaply cloned handle to one configured Stripe client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Counts the HTTP attempts made through this handle (see [`Client::counted`]).
    counter: Option<Arc<AtomicU64>>,
}

struct Inner {
    http: reqwest::Client,
    key: ApiKey,
    config: ClientConfig,
    limiter: Option<RateLimiter>,
    breaker: CircuitBreaker,
    health: Mutex<Health>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("key", &self.inner.key)
            .field("api_base", &self.inner.config.api_base)
            .field("api_version", &self.inner.config.api_version)
            .finish()
    }
}

/// One logical request: what to send and what to call it in metrics and logs.
struct Call<'a> {
    /// Names the endpoint for metrics and logs (`products.list`); never a raw path.
    op: &'static str,
    method: Method,
    path: &'a str,
    query: &'a [(String, String)],
    form: Option<&'a Form>,
    /// For POSTs; a fresh UUID v4 when `None`.
    idempotency_key: Option<String>,
}

/// Error shape of Stripe's error bodies.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    /// A card error's reason from the issuer (`authentication_required`, …).
    decline_code: Option<String>,
    message: Option<String>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Installs the ring-based TLS provider once per process; reqwest is built without a
/// default provider so that we compile one crypto stack (ring), not two. Any other
/// `reqwest::Client` in the process (tests, webhook senders) needs this first.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    /// Builds the client. No network call happens here.
    pub fn new(key: ApiKey, config: ClientConfig) -> Result<Self, StripeError> {
        install_tls_provider();
        let api_base = config.api_base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("stripe-manager/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| StripeError::Network {
                base: api_base.clone(),
                source,
            })?;
        // Burst 1: requests are spaced evenly, so no one-second window (which is how Stripe
        // counts) ever sees more than `max_rps` of them.
        let limiter = (config.max_rps > 0).then(|| RateLimiter::new(config.max_rps, 1));
        let breaker = CircuitBreaker::new(config.breaker.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                key,
                config: ClientConfig { api_base, ..config },
                limiter,
                breaker,
                health: Mutex::new(Health::default()),
            }),
            counter: None,
        })
    }

    pub fn key(&self) -> &ApiKey {
        &self.inner.key
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.inner.breaker.state()
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    pub fn health(&self) -> Health {
        self.inner
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A handle to the same client that also counts its HTTP attempts (retries
    /// included) into `counter`, so one job can report its own request count while
    /// other callers share the client.
    pub fn counted(&self, counter: Arc<AtomicU64>) -> Client {
        Client {
            inner: self.inner.clone(),
            counter: Some(counter),
        }
    }

    /// True when both handles share one client (same pool, breaker and limiter).
    pub fn same_instance(a: &Client, b: &Client) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    fn note(&self, f: impl FnOnce(&mut Health)) {
        let mut h = self.inner.health.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut h);
    }

    fn note_outcome(&self, result: &Result<(u16, Vec<u8>), StripeError>) {
        let now = unix_now();
        match result {
            Ok(_) => self.note(|h| {
                h.last_success_at = Some(now);
                h.last_error = None;
            }),
            Err(e) => {
                use crate::error::ErrorKind::*;
                let kind = match e.kind() {
                    Auth => "auth",
                    Network => "network",
                    CircuitOpen => "circuit_open",
                    RateLimited => "rate_limited",
                    // Stripe answered: it is reachable and the key works.
                    NotFound | Request | Decode => {
                        self.note(|h| {
                            h.last_success_at = Some(now);
                            h.last_error = None;
                        });
                        return;
                    }
                };
                let message = e.to_string();
                self.note(|h| {
                    h.last_error = Some(HealthError {
                        kind: kind.to_owned(),
                        message,
                        at: now,
                    })
                });
            }
        }
    }

    /// Sends one logical request, retrying per `policy`. POSTs always carry an
    /// idempotency key; the same key is sent on every retry so Stripe applies the
    /// request once.
    async fn execute(
        &self,
        call: Call<'_>,
        policy: &RetryPolicy,
    ) -> Result<(u16, Vec<u8>), StripeError> {
        let Call {
            op,
            method,
            path,
            query,
            form,
            idempotency_key,
        } = call;
        let idempotency_key = match (method == Method::POST, idempotency_key) {
            (true, None) => Some(uuid::Uuid::new_v4().to_string()),
            (_, key) => key,
        };
        let idempotency_key = idempotency_key.as_deref();
        let inner = &*self.inner;
        let url = format!("{}{}", inner.config.api_base, path);
        let mut retries = 0u32;
        loop {
            let permit = inner.breaker.try_acquire().map_err(|r| {
                metrics::counter!("stripe_manager_stripe_api_requests_total", "endpoint" => op, "outcome" => "circuit_open").increment(1);
                StripeError::CircuitOpen {
                    failures: r.failures,
                    retry_in: r.retry_in,
                }
            })?;
            if let Some(limiter) = &inner.limiter {
                let waited = limiter.acquire().await;
                if !waited.is_zero() {
                    metrics::counter!("stripe_manager_stripe_rate_limiter_waits_total")
                        .increment(1);
                    metrics::histogram!("stripe_manager_stripe_rate_limiter_wait_seconds")
                        .record(waited.as_secs_f64());
                }
            }
            let mut request = inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(inner.key.expose())
                .header("Stripe-Version", &inner.config.api_version);
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(form) = form {
                request = request.form(form.pairs());
            }
            if let Some(counter) = &self.counter {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            self.note(|h| {
                h.attempts += 1;
                if retries > 0 {
                    h.retries += 1;
                }
            });
            let started = Instant::now();
            let sent = async {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>((status, headers, body))
            }
            .await;
            let elapsed = started.elapsed().as_secs_f64();

            let (attempt, error) = match sent {
                Ok((status, headers, body)) => {
                    let outcome = if status < 300 {
                        "ok"
                    } else if status >= 500 {
                        "server_error"
                    } else {
                        "client_error"
                    };
                    metrics::counter!("stripe_manager_stripe_api_requests_total", "endpoint" => op, "outcome" => outcome).increment(1);
                    metrics::histogram!("stripe_manager_stripe_api_request_duration_seconds", "endpoint" => op)
                        .record(elapsed);
                    if status >= 500 {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                    if status < 300 {
                        return Ok((status, body));
                    }
                    let attempt = Attempt::Response {
                        status,
                        should_retry: header_str(&headers, "stripe-should-retry")
                            .map(|v| v.eq_ignore_ascii_case("true")),
                        retry_after: header_str(&headers, "retry-after")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                    };
                    (attempt, api_error(status, &headers, &body))
                }
                Err(source) => {
                    permit.failure();
                    let timeout = source.is_timeout();
                    metrics::counter!("stripe_manager_stripe_api_requests_total", "endpoint" => op,
                        "outcome" => if timeout { "timeout" } else { "network_error" })
                    .increment(1);
                    if timeout {
                        (
                            Attempt::Timeout,
                            StripeError::Timeout {
                                base: inner.config.api_base.clone(),
                                timeout: inner.config.timeout,
                            },
                        )
                    } else {
                        (
                            Attempt::Network,
                            StripeError::Network {
                                base: inner.config.api_base.clone(),
                                source: source.without_url(),
                            },
                        )
                    }
                }
            };
            match policy.decide(retries, &attempt, fastrand::f64()) {
                Verdict::RetryAfter(wait) => {
                    retries += 1;
                    metrics::counter!("stripe_manager_stripe_api_retries_total", "endpoint" => op)
                        .increment(1);
                    tracing::debug!(endpoint = op, retry = retries, ?wait, error = %error, "retrying Stripe request");
                    tokio::time::sleep(wait).await;
                }
                Verdict::Stop => return Err(error),
            }
        }
    }

    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, StripeError> {
        let op = call.op;
        let result = self.execute(call, &self.inner.config.retry).await;
        self.note_outcome(&result);
        let (_, body) = result?;
        serde_json::from_slice(&body).map_err(|source| StripeError::Decode {
            what: op.to_owned(),
            source,
        })
    }

    /// A GET with query parameters, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, StripeError> {
        self.call(Call {
            op,
            method: Method::GET,
            path,
            query,
            form: None,
            idempotency_key: None,
        })
        .await
    }

    /// A POST with a form body. `idempotency_key` defaults to a fresh UUID v4; pass one
    /// derived from your own request to make a retried caller idempotent too.
    pub async fn post<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        form: &Form,
        idempotency_key: Option<String>,
    ) -> Result<T, StripeError> {
        self.call(Call {
            op,
            method: Method::POST,
            path,
            query: &[],
            form: Some(form),
            idempotency_key,
        })
        .await
    }

    /// A DELETE (Stripe's cancel of a subscription). No idempotency key: Stripe asks for
    /// none on DELETE, which is idempotent by definition.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
    ) -> Result<T, StripeError> {
        self.delete_keyed(op, path, None).await
    }

    /// A DELETE with an `Idempotency-Key` (reused by every retry). Stripe documents keys
    /// for POST and says a DELETE is idempotent by definition, so the key changes nothing
    /// there; it is sent so that a retried deletion is recognisable as one request in
    /// Stripe's logs. Callers make a repeated deletion harmless themselves (a deleted
    /// customer answers 404 `resource_missing`).
    pub async fn delete_with_key<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        key: &str,
    ) -> Result<T, StripeError> {
        self.delete_keyed(op, path, Some(key.to_owned())).await
    }

    async fn delete_keyed<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        idempotency_key: Option<String>,
    ) -> Result<T, StripeError> {
        self.call(Call {
            op,
            method: Method::DELETE,
            path,
            query: &[],
            form: None,
            idempotency_key,
        })
        .await
    }

    /// A cheap authenticated read that proves the key works and Stripe answers:
    /// one product, which is the permission this service needs anyway.
    ///
    /// One attempt, no retries: a connectivity check must answer within the timeout.
    pub async fn probe(&self) -> Result<Duration, StripeError> {
        let started = Instant::now();
        let once = RetryPolicy {
            max_retries: 0,
            ..self.inner.config.retry.clone()
        };
        let query = [("limit".to_owned(), "1".to_owned())];
        let result = self
            .execute(
                Call {
                    op: "probe",
                    method: Method::GET,
                    path: "/v1/products",
                    query: &query,
                    form: None,
                    idempotency_key: None,
                },
                &once,
            )
            .await;
        self.note_outcome(&result);
        let (_, body) = result?;
        serde_json::from_slice::<List<Product>>(&body).map_err(|source| StripeError::Decode {
            what: "probe".into(),
            source,
        })?;
        Ok(started.elapsed())
    }

    pub async fn retrieve_product(&self, id: &str) -> Result<Product, StripeError> {
        self.get(
            "products.retrieve",
            &format!("/v1/products/{}", path_segment(id)),
            &[],
        )
        .await
    }

    /// Like [`Client::retrieve_product`], with the exact JSON Stripe sent.
    pub async fn retrieve_product_raw(
        &self,
        id: &str,
    ) -> Result<crate::types::Raw<Product>, StripeError> {
        self.get(
            "products.retrieve",
            &format!("/v1/products/{}", path_segment(id)),
            &[],
        )
        .await
    }

    /// Like [`Client::retrieve_price`], with the exact JSON Stripe sent.
    pub async fn retrieve_price_raw(
        &self,
        id: &str,
    ) -> Result<crate::types::Raw<Price>, StripeError> {
        self.get(
            "prices.retrieve",
            &format!("/v1/prices/{}", path_segment(id)),
            &[],
        )
        .await
    }

    pub async fn retrieve_price(&self, id: &str) -> Result<Price, StripeError> {
        self.get(
            "prices.retrieve",
            &format!("/v1/prices/{}", path_segment(id)),
            &[],
        )
        .await
    }

    pub async fn retrieve_customer(&self, id: &str) -> Result<Customer, StripeError> {
        self.get(
            "customers.retrieve",
            &format!("/v1/customers/{}", path_segment(id)),
            &[],
        )
        .await
    }

    /// Creates a customer; `idempotency_key` should be derived from the account so a
    /// retried caller does not create two.
    pub async fn create_customer(
        &self,
        form: &Form,
        idempotency_key: Option<String>,
    ) -> Result<Customer, StripeError> {
        self.post("customers.create", "/v1/customers", form, idempotency_key)
            .await
    }

    pub async fn create_checkout_session(
        &self,
        form: &Form,
        idempotency_key: Option<String>,
    ) -> Result<CheckoutSession, StripeError> {
        self.post(
            "checkout.sessions.create",
            "/v1/checkout/sessions",
            form,
            idempotency_key,
        )
        .await
    }

    pub async fn retrieve_checkout_session(
        &self,
        id: &str,
    ) -> Result<CheckoutSession, StripeError> {
        self.get(
            "checkout.sessions.retrieve",
            &format!("/v1/checkout/sessions/{}", path_segment(id)),
            &[],
        )
        .await
    }

    /// All line items of a session (a session has at most a few; one page of 100).
    pub async fn checkout_session_line_items(
        &self,
        id: &str,
    ) -> Result<List<LineItem>, StripeError> {
        self.get(
            "checkout.sessions.line_items",
            &format!("/v1/checkout/sessions/{}/line_items", path_segment(id)),
            &[("limit".into(), "100".into())],
        )
        .await
    }

    pub async fn retrieve_subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.get(
            "subscriptions.retrieve",
            &format!("/v1/subscriptions/{}", path_segment(id)),
            &[],
        )
        .await
    }

    /// Like [`Client::retrieve_subscription`], with the exact JSON Stripe sent.
    pub async fn retrieve_subscription_raw(
        &self,
        id: &str,
    ) -> Result<crate::types::Raw<Subscription>, StripeError> {
        self.get(
            "subscriptions.retrieve",
            &format!("/v1/subscriptions/{}", path_segment(id)),
            &[],
        )
        .await
    }

    pub async fn retrieve_invoice(&self, id: &str) -> Result<Invoice, StripeError> {
        self.get(
            "invoices.retrieve",
            &format!("/v1/invoices/{}", path_segment(id)),
            &[],
        )
        .await
    }

    /// The payment intent that paid an invoice (`expand[]=payments`; since
    /// 2025-03-31.basil invoices no longer name it themselves), if any: only a `paid`
    /// invoice payment (an open or canceled one moved no money), the largest first when
    /// several paid parts of it.
    pub async fn invoice_payment_intent(&self, id: &str) -> Result<Option<String>, StripeError> {
        let invoice: serde_json::Value = self
            .get(
                "invoices.retrieve",
                &format!("/v1/invoices/{}", path_segment(id)),
                &[("expand[]".into(), "payments".into())],
            )
            .await?;
        Ok(invoice["payments"]["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"] == "paid")
            .filter_map(|p| {
                Some((
                    p["amount_paid"].as_i64().unwrap_or(0),
                    p["payment"]["payment_intent"].as_str()?,
                ))
            })
            .max_by_key(|(amount, _)| *amount)
            .map(|(_, pi)| pi.to_owned()))
    }

    pub async fn retrieve_charge(&self, id: &str) -> Result<Charge, StripeError> {
        self.get(
            "charges.retrieve",
            &format!("/v1/charges/{}", path_segment(id)),
            &[],
        )
        .await
    }

    pub async fn retrieve_event(&self, id: &str) -> Result<Event, StripeError> {
        self.get(
            "events.retrieve",
            &format!("/v1/events/{}", path_segment(id)),
            &[],
        )
        .await
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// Ids come from our own database or from parsed newtypes, but a path must never be
/// steerable by a stray `/` or `?`: anything outside Stripe's id alphabet is escaped.
pub(crate) fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn api_error(status: u16, headers: &HeaderMap, body: &[u8]) -> StripeError {
    let request_id = header_str(headers, "request-id").map(str::to_owned);
    let (error_type, code, decline_code, message) = match serde_json::from_slice::<ErrorBody>(body)
    {
        Ok(ErrorBody { error }) => (
            error.kind.map(String::into_boxed_str),
            error.code,
            error.decline_code.map(String::into_boxed_str),
            error.message.map(|m| scrub(&m)).unwrap_or_default(),
        ),
        Err(_) => (
            None,
            None,
            None,
            scrub(&String::from_utf8_lossy(&body[..body.len().min(200)])),
        ),
    };
    StripeError::Api {
        status,
        error_type,
        code,
        decline_code,
        message,
        request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("prod_AbC_9"), "prod_AbC_9");
        assert_eq!(path_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
