//! The Stripe manager: one shared, cheaply cloned handle per process.
//!
//! This is the Rust shape of the old system's singleton. It is built once by whoever
//! starts the process (`Application::build` or a CLI command) and passed by clone; there
//! is no global. Building it makes no network call. The optional start-up probe runs in
//! the background and only records what it learns, so a Stripe outage never blocks or
//! fails start-up; the service keeps serving its local data.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sm_domain::Mode;
use sm_stripe::client::HealthError;
use sm_stripe::{CircuitState, Client, ErrorKind, StripeError};

use crate::config::StripeConfig;

/// Why Stripe cannot be used right now. Never contains a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// Not configured: `STRIPE_ENABLED=false` or no key. Exit code 2.
    #[error("Stripe is disabled: {reason}")]
    Disabled {
        /// Why: the configuration's reason (`STRIPE_ENABLED is false`, no key).
        reason: String,
    },
    /// The key was refused. Exit code 3.
    #[error("Stripe refused the API key: {message}")]
    Auth {
        /// What Stripe answered.
        message: String,
    },
    /// Stripe could not be reached. Exit code 3.
    #[error("Stripe is unreachable: {message}")]
    Network {
        /// The transport's error, with its causes.
        message: String,
    },
    /// Calls are paused after repeated failures. Exit code 3.
    #[error("Stripe calls are paused (circuit breaker open): {message}")]
    CircuitOpen {
        /// The breaker's explanation (failures in a row, when calls resume).
        message: String,
    },
}

impl Unavailable {
    /// Maps a failed call to the reason Stripe is unavailable, if that is what it means.
    pub fn from_error(e: &StripeError) -> Option<Self> {
        let message = crate::error_chain(e);
        match e.kind() {
            ErrorKind::Auth => Some(Unavailable::Auth { message }),
            ErrorKind::Network | ErrorKind::RateLimited => Some(Unavailable::Network { message }),
            ErrorKind::CircuitOpen => Some(Unavailable::CircuitOpen { message }),
            ErrorKind::NotFound | ErrorKind::Request | ErrorKind::Decode => None,
        }
    }

    /// `disabled`, `auth`, `network` or `circuit_open`.
    pub fn code(&self) -> &'static str {
        match self {
            Unavailable::Disabled { .. } => "disabled",
            Unavailable::Auth { .. } => "auth",
            Unavailable::Network { .. } => "network",
            Unavailable::CircuitOpen { .. } => "circuit_open",
        }
    }
}

/// What the dashboard, `/readyz` and `check` show about Stripe.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StripeStatus {
    /// Whether Stripe is configured (a key, and `STRIPE_ENABLED` not false).
    pub enabled: bool,
    /// Whether calls may be made now (see [`StripeManager::availability`]).
    pub available: bool,
    /// Why Stripe is unavailable, when it is.
    pub reason: Option<String>,
    /// Test or live, from the key.
    pub mode: Option<Mode>,
    /// The API version sent with every request.
    pub api_version: String,
    /// The API base URL, credentials masked.
    pub api_base: String,
    /// The circuit breaker: `closed`, `open` or `half_open`; `null` without a client.
    pub circuit: Option<&'static str>,
    /// The last call Stripe answered (unix seconds).
    pub last_success_at: Option<i64>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<HealthError>,
}

/// The process's one Stripe handle: the configured client (or why there is none) and
/// its breaker and health. Cheap to clone; clones share them.
#[derive(Clone)]
pub struct StripeManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: StripeConfig,
    client: Option<Client>,
}

impl std::fmt::Debug for StripeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeManager")
            .field("enabled", &self.inner.config.enabled())
            .field("client", &self.inner.client)
            .finish()
    }
}

impl StripeManager {
    /// Builds the manager and its client. No network call happens here.
    pub fn new(config: &StripeConfig) -> Result<Self, StripeError> {
        let client = match (&config.secret_key, config.enabled()) {
            (Some(key), true) => Some(Client::new(key.clone(), config.client_config())?),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                client,
            }),
        })
    }

    /// True when both handles are the same manager (one client, one breaker).
    pub fn same_instance(a: &StripeManager, b: &StripeManager) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// The Stripe settings it was built from.
    pub fn config(&self) -> &StripeConfig {
        &self.inner.config
    }

    /// The client, when Stripe is configured; otherwise why not.
    pub fn client(&self) -> Result<&Client, Unavailable> {
        self.inner
            .client
            .as_ref()
            .ok_or_else(|| Unavailable::Disabled {
                reason: self
                    .inner
                    .config
                    .disabled_reason
                    .clone()
                    .unwrap_or_else(|| "no client".into()),
            })
    }

    /// What we know without calling Stripe: configured, circuit closed, and the last
    /// call (if any) did not fail for auth or network reasons.
    pub fn availability(&self) -> Result<(), Unavailable> {
        let client = self.client()?;
        if client.circuit_state() == CircuitState::Open {
            return Err(Unavailable::CircuitOpen {
                message: format!(
                    "{} consecutive failures; calls resume after a successful probe",
                    client.breaker().consecutive_failures()
                ),
            });
        }
        match client.health().last_error {
            Some(e) if e.kind == "auth" => Err(Unavailable::Auth { message: e.message }),
            Some(e) if e.kind == "network" => Err(Unavailable::Network { message: e.message }),
            _ => Ok(()),
        }
    }

    /// Whether [`Self::availability`] is `Ok`.
    pub fn is_available(&self) -> bool {
        self.availability().is_ok()
    }

    /// The client if Stripe is usable, else why not.
    pub fn ensure_available(&self) -> Result<&Client, Unavailable> {
        self.availability()?;
        self.client()
    }

    /// Calls Stripe once (no retries, within the configured timeout) and reports the
    /// round-trip time or why it failed.
    pub async fn check_connectivity(&self) -> Result<Duration, Unavailable> {
        let client = self.client()?;
        client.probe().await.map_err(|e| {
            Unavailable::from_error(&e).unwrap_or(Unavailable::Network {
                message: crate::error_chain(&e),
            })
        })
    }

    /// Starts the start-up probe in the background when `STRIPE_CONNECTIVITY_TEST` is on
    /// and Stripe is configured. Its outcome is logged and visible in [`Self::status`].
    pub fn spawn_startup_probe(
        &self,
    ) -> Option<tokio::task::JoinHandle<Result<Duration, Unavailable>>> {
        if !self.inner.config.connectivity_test || self.inner.client.is_none() {
            return None;
        }
        let manager = self.clone();
        Some(tokio::spawn(async move {
            let result = manager.check_connectivity().await;
            match &result {
                Ok(latency) => tracing::info!(
                    latency_ms = latency.as_millis() as u64,
                    "Stripe connectivity check passed"
                ),
                Err(e) => {
                    tracing::warn!(reason = e.code(), error = %e, "Stripe connectivity check failed; serving local data")
                }
            }
            result
        }))
    }

    /// Status for the dashboard, `/readyz` and `check`, from what is known (no call).
    pub fn status(&self) -> StripeStatus {
        let config = &self.inner.config;
        let availability = self.availability();
        let (circuit, health) = match &self.inner.client {
            Some(c) => (Some(c.circuit_state().as_str()), Some(c.health())),
            None => (None, None),
        };
        StripeStatus {
            enabled: config.enabled(),
            available: availability.is_ok(),
            reason: availability.err().map(|e| e.to_string()),
            mode: config.mode(),
            api_version: config.api_version.clone(),
            api_base: config.api_base_shown(),
            circuit,
            last_success_at: health.as_ref().and_then(|h| h.last_success_at),
            last_error: health.and_then(|h| h.last_error),
        }
    }
}
