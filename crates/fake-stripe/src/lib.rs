//! A stateful, fault-injecting fake of the Stripe API: a test fixture, not a product.
//!
//! Tests start it on port 0 in their own runtime ([`FakeStripe::start`]), point the
//! client at [`FakeStripe::url`], and assert on what it received
//! ([`FakeStripe::requests`]). It speaks Stripe's wire format: form-encoded bodies with
//! bracketed keys, Stripe's JSON shapes, newest-first cursor pagination (`limit`,
//! `starting_after`, `ending_before`, `has_more`), `404 resource_missing` errors,
//! `Stripe-Version` echo, `Request-Id` headers and idempotent POST replay.
//!
//! Faults are injected per request ([`Fault`]): an error status with `Retry-After` or
//! `Stripe-Should-Retry`, a slow answer, or a dropped connection, for the next N
//! requests or for one path. [`FakeStripe::set_rate_limit`] enforces a per-second limit
//! as Stripe does (429). Events produced by changes can be delivered as signed webhooks
//! ([`FakeStripe::deliver_webhooks_to`]).
//!
//! The `fake-stripe` binary runs the same server standalone; `/_fake/…` control routes
//! (see `README` in this crate's docs section of docs/USER_GUIDE.md) drive it from curl.
//!
//! # Layout
//! - `api`: objects, their JSON shapes and the events changes produce
//! - `store`: one kind of object in creation order, with cursors
//! - `form`: bracketed form decoding
//! - `faults`: fault matching and the rate window
//! - `webhook`: signing and delivery

// Stripe's objects are wide: `json!` needs more than the default recursion depth.
#![recursion_limit = "256"]

pub mod api;
pub mod faults;
pub mod form;
mod server;
pub mod store;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use api::{ApiError, Ctx, State};
pub use faults::{Fault, FaultKind};
pub use webhook::{Delivery, sign};

/// One request as the fake saw it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    /// Whether an `Authorization` header was present (the key itself is not kept).
    pub authorized: bool,
    pub body: String,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub faults: Mutex<faults::Faults>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub rate: Mutex<Option<faults::RateWindow>>,
    pub required_key: Mutex<Option<String>>,
    pub idempotency: Mutex<std::collections::HashMap<String, (String, u16, serde_json::Value)>>,
    pub webhooks: webhook::Webhooks,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FakeStripe {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    /// Starts on `127.0.0.1:0` in the current runtime.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("valid address"))
            .await
            .expect("bind a loopback port")
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            faults: Mutex::default(),
            log: Mutex::default(),
            rate: Mutex::default(),
            required_key: Mutex::default(),
            idempotency: Mutex::default(),
            webhooks: webhook::Webhooks::new(),
        });
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Self { shared, addr, task })
    }

    /// `http://127.0.0.1:PORT`, for `STRIPE_API_BASE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).add(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Enforce `per_second` requests per second (429 above it), or lift the limit.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        *lock(&self.shared.rate) = per_second.map(faults::RateWindow::new);
    }

    /// Requests answered 429 by the rate limit.
    pub fn rate_limited_count(&self) -> u64 {
        lock(&self.shared.rate).as_ref().map_or(0, |r| r.rejected)
    }

    /// Accept only this API key (others get 401 like Stripe's "Invalid API Key").
    pub fn require_key(&self, key: Option<&str>) {
        *lock(&self.shared.required_key) = key.map(str::to_owned);
    }

    /// Runs `f` on the state (seeding, completing a checkout, advancing the clock);
    /// events it produces are delivered like those from HTTP requests.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, events) = {
            let mut state = lock(&self.shared.state);
            let r = f(&mut state);
            (r, std::mem::take(&mut state.outbox))
        };
        self.shared.webhooks.dispatch(events);
        result
    }

    /// POSTs every future event, signed with `secret`, to `url`.
    pub fn deliver_webhooks_to(&self, url: &str, secret: &str) {
        self.shared.webhooks.set_target(url, secret);
    }

    /// Webhook deliveries attempted so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.webhooks.deliveries()
    }

    /// Waits until `n` deliveries have been attempted (for tests).
    pub async fn wait_for_deliveries(&self, n: usize) -> Vec<Delivery> {
        self.shared.webhooks.wait_for(n).await
    }
}
