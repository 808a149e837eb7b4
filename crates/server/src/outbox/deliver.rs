//! Delivering events to the app: each instance claims due events (a lease, so two
//! instances never send one event at the same time, and an instance killed while
//! sending leaves it to be sent again when the lease runs out), POSTs each to its
//! endpoint signed per the Standard Webhooks specification (the `standardwebhooks`
//! crate: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`), and
//! records the outcome with the account locked, which lets the account's next event go.
//!
//! At least once: an event is marked delivered only after a 2xx; a crash between the
//! answer and the mark sends it again, with the same `webhook-id` for the app to
//! deduplicate. Retries back off (5 s × 3ⁿ, at most 2 h, ±20 % jitter) for three days
//! (from the event's creation or its latest replay), then the event is `failed`
//! (`app-events replay` sends it again). Events of an endpoint removed from
//! `APP_WEBHOOK_URL` are given up when the dispatcher starts.
//!
//! A request may take `APP_WEBHOOK_TIMEOUT_SECS` (10 s); an event claimed by an instance
//! that died is sent again once its lease (twice that, and 5 s) runs out.
//!
//! SSRF guard: the endpoints come from the operator's configuration only, redirects are
//! not followed, no proxy is used, and an address that is loopback, private, link-local
//! or otherwise not public is refused unless `APP_WEBHOOK_ALLOW_PRIVATE=true` — checked
//! on the address each connection actually uses (a resolver that filters), so a name
//! that later resolves elsewhere (DNS rebinding) is caught too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sm_store::outbox::{AppEventRow, Attempt};
use sm_store::{Store, StoreError};

use crate::config::AppWebhooks;
use crate::net::{is_public, redact_url as redact};

/// Requests in flight per claim, and events per claim: a claim is sent all at once,
/// so it takes at most one request's timeout and its lease (twice that) cannot run out
/// while this instance still holds the answers.
const CONCURRENCY: usize = 64;
const BATCH: u32 = CONCURRENCY as u32;
/// Claims in flight per instance (each at most [`BATCH`] events).
const LOOPS: usize = 1;
/// How long an event is retried before it is `failed`.
pub const GIVE_UP_MS: i64 = 3 * 86_400_000;
/// How often an idle instance looks for due events.
const POLL: Duration = Duration::from_millis(100);
/// Bytes of an endpoint's answer kept as the error.
const ERROR_BYTES: usize = 300;

/// The delay before attempt `attempts + 1`, jittered ±20 %.
pub fn backoff_ms(attempts: i64) -> i64 {
    let base = 5_000i64.saturating_mul(3i64.saturating_pow(attempts.clamp(1, 12) as u32 - 1));
    let base = base.min(2 * 3_600_000);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    (base as f64 * jitter) as i64
}

/// Resolves names as the system does, then drops every address that is not public
/// (see [`is_public`]); a name left with none is an error naming the setting.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address; set APP_WEBHOOK_ALLOW_PRIVATE=true to deliver to a private one"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Signs and sends events; one per instance.
pub struct Dispatcher {
    store: Store,
    http: reqwest::Client,
    signer: standardwebhooks::Webhook,
    endpoints: Vec<String>,
    owner: String,
    /// A claimed event is someone else's to send after this: twice the request's
    /// timeout and 5 s more.
    lease_ms: i64,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| redact(e)).collect::<Vec<_>>(),
            )
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Why the dispatcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// `APP_WEBHOOK_SECRET` could not be decoded (it must be `whsec_` and base64).
    #[error("APP_WEBHOOK_SECRET is not a Standard Webhooks secret: {0}")]
    Secret(#[from] standardwebhooks::WebhookError),
    /// The HTTP client could not be built (TLS set-up).
    #[error("the HTTP client for events to the app could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

impl Dispatcher {
    /// A dispatcher for `config`'s endpoints, signing with its secret; fails on a bad secret.
    pub fn new(store: Store, config: &AppWebhooks) -> Result<Self, DispatchError> {
        sm_stripe::client::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("stripe-manager/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            store,
            http: builder.build()?,
            signer: standardwebhooks::Webhook::new(config.secret_text())?,
            endpoints: config.endpoints.iter().map(|u| u.to_string()).collect(),
            owner: format!("sm-{}", uuid::Uuid::new_v4().simple()),
            lease_ms: 2 * config.timeout.as_millis() as i64 + 5_000,
        })
    }

    /// Claims what is due, sends it, records the outcomes; returns how many it claimed.
    /// `busy`: the previous claim found work, so claim at once.
    pub async fn run_once(&self, busy: bool) -> Result<usize, StoreError> {
        let now_ms = crate::clock::now_ms();
        // A read first when idle: claiming is a write, and an idle instance must not
        // take SQLite's one write lock ten times a second.
        if !busy
            && !self
                .store
                .has_due_app_events(&self.endpoints, now_ms)
                .await?
        {
            return Ok(0);
        }
        let claimed = self
            .store
            .claim_app_events(&self.owner, &self.endpoints, BATCH, now_ms, self.lease_ms)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let n = claimed.len();
        let outcomes: Vec<(AppEventRow, Attempt)> = futures_util::stream::iter(claimed)
            .map(|row| async move {
                let attempt = self.send(&row).await;
                (row, attempt)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.record(&outcomes).await?;
        Ok(n)
    }

    async fn send(&self, row: &AppEventRow) -> Attempt {
        let timestamp = crate::clock::unix_now();
        let signature = match self.signer.sign(&row.id, timestamp, row.payload.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                return Attempt::Failed {
                    status: None,
                    error: format!("could not sign: {e}"),
                };
            }
        };
        let answer = self
            .http
            .post(&row.endpoint)
            .header("content-type", "application/json")
            .header("webhook-id", &row.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(row.payload.clone())
            .send()
            .await;
        let (status, error) = match answer {
            Ok(r) if r.status().is_success() => {
                return Attempt::Delivered {
                    status: r.status().as_u16(),
                };
            }
            Ok(mut r) => {
                let status = r.status().as_u16();
                // At most ERROR_BYTES of the answer, read no further; one line, printable.
                let mut body = Vec::new();
                while body.len() < ERROR_BYTES {
                    match r.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(ERROR_BYTES);
                let text: String = String::from_utf8_lossy(&body)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                (Some(status), format!("HTTP {status}: {}", text.trim()))
            }
            // Without the URL: its query or credentials may hold a secret.
            Err(e) => (None, crate::error_chain(&e.without_url())),
        };
        let now_ms = crate::clock::now_ms();
        if now_ms - row.retry_from >= GIVE_UP_MS {
            Attempt::Failed { status, error }
        } else {
            Attempt::Retry {
                status,
                error,
                next_attempt_at: now_ms + backoff_ms(row.attempts),
            }
        }
    }

    /// Records the outcomes in one transaction, with their accounts locked (in id order):
    /// a finished event lets its account's next one go, and an event of the account
    /// stored meanwhile waits for this or is seen by it.
    async fn record(&self, outcomes: &[(AppEventRow, Attempt)]) -> Result<(), StoreError> {
        let now_ms = crate::clock::now_ms();
        let mut tx = self.store.begin().await?;
        // Only an event that finishes lets its account's next one go: those accounts are
        // locked; a retry changes nothing another transaction looks at.
        let accounts: Vec<&str> = outcomes
            .iter()
            .filter(|(_, a)| !matches!(a, Attempt::Retry { .. }))
            .map(|(r, _)| r.account.as_str())
            .collect();
        tx.lock_accounts(&accounts, now_ms / 1000).await?;
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let batch: Vec<(i64, &Attempt)> = outcomes.iter().map(|(r, a)| (r.seq, a)).collect();
        let ours = tx.finish_app_events(&batch, &self.owner, now_ms).await?;
        for ((row, attempt), ours) in outcomes.iter().zip(ours) {
            if !ours {
                continue;
            }
            let outcome = match attempt {
                Attempt::Delivered { .. } => {
                    metrics::histogram!("stripe_manager_app_event_delivery_seconds")
                        .record((now_ms - row.created_at).max(0) as f64 / 1000.0);
                    "delivered"
                }
                Attempt::Retry { error, .. } => {
                    tracing::warn!(event = %row.id, endpoint = %redact(&row.endpoint), attempts = row.attempts, %error, "event to the app not delivered; it will be retried");
                    "retry"
                }
                Attempt::Failed { error, .. } => {
                    tracing::error!(event = %row.id, endpoint = %redact(&row.endpoint), attempts = row.attempts, %error, "event to the app failed for good; `app-events replay` sends it again");
                    "failed"
                }
            };
            *counts.entry(outcome).or_default() += 1;
        }
        tx.commit().await?;
        for (outcome, n) in counts {
            metrics::counter!("stripe_manager_app_event_deliveries_total", "outcome" => outcome)
                .increment(n);
        }
        Ok(())
    }

    /// Runs until `stop`: claims at once while there is work, every `POLL` (100 ms) otherwise.
    pub fn spawn(
        self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            match self
                .store
                .fail_unconfigured_app_events(&self.endpoints, crate::clock::now_ms())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    events = n,
                    "outbox: events for endpoints no longer in APP_WEBHOOK_URL were given up; `app-events list --status failed` shows them"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: could not give up the events of removed endpoints")
                }
            }
            // Several claims in flight: while one batch waits for its answers or its
            // commit, another is being sent. Each claims only heads (SKIP LOCKED), so
            // they never share an event nor an account's turn.
            let this = Arc::new(self);
            let loops: Vec<_> = (0..LOOPS)
                .map(|_| {
                    let (this, mut stop) = (this.clone(), stop.clone());
                    tokio::spawn(async move {
                        let mut busy = false;
                        loop {
                            busy = match this.run_once(busy).await {
                                Ok(n) => n > 0,
                                Err(e) => {
                                    tracing::warn!(error = %e, "outbox: claiming or recording events failed; trying again");
                                    false
                                }
                            };
                            if *stop.borrow() {
                                return;
                            }
                            if !busy {
                                tokio::select! {
                                    _ = tokio::time::sleep(POLL) => {}
                                    _ = stop.changed() => return,
                                }
                            }
                        }
                    })
                })
                .collect();
            let _ = stop.changed().await;
            for l in loops {
                let _ = l.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_two_hours_with_jitter() {
        let first = backoff_ms(1);
        assert!((4_000..=6_000).contains(&first), "{first}");
        let later = backoff_ms(20);
        assert!((5_760_000..=8_640_000).contains(&later), "{later}");
    }
}
