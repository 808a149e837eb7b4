//! The worker: claims due events with a lease, applies each (see [`super::apply`]),
//! and on failure schedules a retry with exponential backoff, or after the last attempt
//! moves the event to `failed`, the dead letter an operator can replay.
//!
//! Woken at once by the intake after each commit, with a poll as a fallback (and for
//! retries coming due and leases expiring). Concurrency is bounded. On shutdown it stops
//! claiming and lets the events in hand finish: each one commits whole or not at all, so
//! nothing is left half-applied, and a lease that expires is claimed again later.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sm_store::Store;
use sm_store::inbox::InboxEvent;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::apply::{Versions, apply, commit_planned, plan, write_batch};

/// How long the worker waits for more plans to complete before writing those it has.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Plans still running this long after their batch was claimed are finished in the
/// background while the worker claims new events.
const STRAGGLERS_AFTER: Duration = Duration::from_secs(1);

/// Batches finishing in the background at most; beyond, the worker waits for one.
const MAX_BACKGROUND: usize = 4;

/// When a parked event (see `ApplyError::Waiting`) is tried again even if nothing wakes
/// it: what it waits for may arrive by a path that does not wake it (a customer's
/// `metadata.account` set in the Dashboard), or just before it was parked. Soon at
/// first, then hourly.
fn parked_retry_ms(received_ms: i64, now_ms: i64) -> i64 {
    match now_ms - received_ms {
        w if w < 60_000 => 5_000,
        w if w < 3_600_000 => 60_000,
        _ => 3_600_000,
    }
}
use super::now_ms;
use crate::manager::StripeManager;

pub use crate::config::WorkerConfig;

/// The wait before attempt `n + 1` after `n` failed attempts: 1 s, 2 s, 4 s, … capped
/// at an hour, with full jitter.
pub fn retry_delay(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 13) as u32 - 1;
    let ceiling = Duration::from_secs(1 << exp).min(Duration::from_secs(3600));
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// The webhook worker: claims due events from the inbox with a lease, applies each in one
/// transaction with its status, retries failures with backoff and dead-letters the last.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Store,
    stripe: StripeManager,
    wake: Arc<Notify>,
    config: WorkerConfig,
    owner: String,
}

impl Worker {
    /// A worker over `store`, woken by `wake` (the intake's notification) and otherwise polling;
    /// it names itself `host:pid:…` in leases.
    pub fn new(
        store: Store,
        stripe: StripeManager,
        wake: Arc<Notify>,
        config: WorkerConfig,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Self {
            store,
            stripe,
            wake,
            config,
            owner: format!(
                "{host}:{}:{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
        }
    }

    /// Runs until `shutdown` becomes true, then finishes the events in hand.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut background = JoinSet::new();
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let claimed = match self
                    .store
                    .claim_events(
                        &self.owner,
                        self.config.batch,
                        now_ms(),
                        self.config.lease.as_millis() as i64,
                    )
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim webhook events; retrying");
                        Vec::new()
                    }
                };
                if claimed.is_empty() {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll) => {}
                        // A dropped sender (its owner gone without stopping us) is a
                        // stop too: else `changed()` answers at once, for ever.
                        r = shutdown.changed() => if r.is_err() { break }
                    }
                    continue;
                }
                while background.len() >= MAX_BACKGROUND {
                    background.join_next().await;
                }
                let full = claimed.len() >= self.config.batch as usize;
                self.process_batch(claimed, &mut background).await;
                while background.try_join_next().is_some() {}
                if !full && !self.config.gather.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.gather) => {}
                        r = shutdown.changed() => if r.is_err() { break }
                    }
                }
            }
            // Finish the events in hand, those waiting on Stripe included.
            while background.join_next().await.is_some() {}
            tracing::debug!("webhook worker stopped");
        })
    }

    /// Plans the claimed events (refetching where needed, `concurrency` at a time) and
    /// writes them as their plans complete: whatever is planned is written as soon as
    /// nothing more completes within [`FLUSH_AFTER`], so an event waiting on a slow Stripe
    /// call holds up only itself, never the events planned beside it. If plans are still
    /// running after [`STRAGGLERS_AFTER`], they are finished in `background` and the
    /// worker goes on claiming new events. Catalog effects are written together in one
    /// transaction (falling back to one per event when the batch cannot commit whole),
    /// ledger effects one per transaction.
    async fn process_batch(&self, claimed: Vec<InboxEvent>, background: &mut JoinSet<()>) {
        let client = self.stripe.client().ok().cloned();
        let options = self.config.apply;
        let versions = match Versions::prefetch(&self.store, &claimed).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not read stored versions for the batch; reading them one by one");
                Versions::default()
            }
        };
        let versions = Arc::new(versions);
        let store = self.store.clone();
        let mut plans = futures_util::stream::iter(claimed)
            .map(move |event| {
                let store = store.clone();
                let client = client.clone();
                let versions = versions.clone();
                let span = tracing::info_span!("event", id = %event.id, kind = %event.kind, attempt = event.attempts);
                async move {
                    let result = plan(&store, client.as_ref(), &event, options, &versions).await;
                    (event, result)
                }
                .instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .boxed();
        let started = tokio::time::Instant::now();
        let mut ready = Vec::new();
        loop {
            let next = if ready.is_empty() {
                if started.elapsed() >= STRAGGLERS_AFTER {
                    let this = self.clone();
                    background.spawn(async move { this.finish(plans).await });
                    return;
                }
                match tokio::time::timeout(STRAGGLERS_AFTER, plans.next()).await {
                    Ok(next) => next,
                    Err(_) => continue,
                }
            } else {
                match tokio::time::timeout(FLUSH_AFTER, plans.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.write_planned(std::mem::take(&mut ready)).await;
                        continue;
                    }
                }
            };
            match next {
                Some((event, Ok(p))) => ready.push((event, p)),
                Some((event, Err(e))) => self.failed(&event, &e).await,
                None => break,
            }
        }
        self.write_planned(ready).await;
    }

    /// Writes the remaining plans of a batch as they complete.
    async fn finish(
        &self,
        mut plans: futures_util::stream::BoxStream<
            'static,
            (
                InboxEvent,
                Result<super::apply::Planned, super::apply::ApplyError>,
            ),
        >,
    ) {
        while let Some((event, result)) = plans.next().await {
            match result {
                Ok(p) => self.write_planned(vec![(event, p)]).await,
                Err(e) => self.failed(&event, &e).await,
            }
        }
    }

    async fn write_planned(&self, planned: Vec<(InboxEvent, super::apply::Planned)>) {
        let (ledger, ready): (Vec<_>, Vec<_>) =
            planned.into_iter().partition(|(_, p)| p.writes_ledger());
        // Ledger effects commit one event per transaction (see `Planned::writes_ledger`).
        for (event, planned) in ledger {
            match commit_planned(&self.store, &event, &self.owner, &planned).await {
                Ok(applied) => self.succeeded(&event, applied),
                Err(e) => self.failed(&event, &e).await,
            }
        }
        if ready.is_empty() {
            return;
        }
        match write_batch(&self.store, &ready, &self.owner).await {
            Ok(outcomes) => {
                for ((event, _), applied) in ready.iter().zip(outcomes) {
                    self.succeeded(event, applied);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = ready.len(), "batch did not commit; applying one by one");
                for (event, _) in ready {
                    self.process(event).await;
                }
            }
        }
    }

    fn succeeded(&self, event: &InboxEvent, applied: super::apply::Applied) {
        let latency = (now_ms() - event.received_at).max(0) as f64 / 1000.0;
        metrics::counter!("stripe_manager_webhook_events_processed_total", "type" => super::type_label(&event.kind), "outcome" => applied.status()).increment(1);
        metrics::histogram!("stripe_manager_webhook_processing_latency_seconds").record(latency);
    }

    async fn failed(&self, event: &InboxEvent, e: &super::apply::ApplyError) {
        if let super::apply::ApplyError::Waiting { what, .. } = e {
            let message = crate::error_chain(e);
            tracing::info!(id = %event.id, waiting_for = %what, "event parked until what it needs arrives");
            metrics::counter!("stripe_manager_webhook_events_parked_total", "type" => super::type_label(&event.kind))
                .increment(1);
            if let Err(e) = self
                .store
                .park_event(
                    &event.id,
                    &self.owner,
                    &message,
                    what,
                    now_ms() + parked_retry_ms(event.received_at, now_ms()),
                )
                .await
            {
                tracing::error!(error = %e, "could not park the event; the lease will expire and it be retried");
            }
            return;
        }
        let dead = event.attempts >= i64::from(self.config.max_attempts);
        // A dead event's "next attempt" is the time it died (the store keeps it as the
        // time it left the queue).
        let next = if dead {
            now_ms()
        } else {
            now_ms() + retry_delay(event.attempts).as_millis() as i64
        };
        let message = crate::error_chain(e);
        if dead {
            tracing::error!(id = %event.id, error = %message, attempts = event.attempts, "event failed for the last time; moved to the dead letter");
            metrics::counter!("stripe_manager_webhook_events_failed_total", "type" => super::type_label(&event.kind))
                .increment(1);
        } else {
            tracing::warn!(id = %event.id, error = %message, attempts = event.attempts, "event failed; will retry");
            metrics::counter!("stripe_manager_webhook_events_retried_total", "type" => super::type_label(&event.kind))
                .increment(1);
        }
        if let Err(e) = self
            .store
            .release_event(&event.id, &self.owner, &message, next, dead)
            .await
        {
            tracing::error!(error = %e, "could not record the failure; the lease will expire and the event be retried");
        }
    }

    async fn process(&self, event: InboxEvent) {
        let span = tracing::info_span!("event", id = %event.id, kind = %event.kind, attempt = event.attempts);
        self.process_in_span(event).instrument(span).await
    }

    async fn process_in_span(&self, event: InboxEvent) {
        let client = self.stripe.client().ok();
        match apply(&self.store, client, &event, &self.owner, self.config.apply).await {
            Ok(applied) => self.succeeded(&event, applied),
            Err(e) => self.failed(&event, &e).await,
        }
    }
}
