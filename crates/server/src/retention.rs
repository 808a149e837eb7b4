//! Retention: the background pruner and `stripe-manager prune`.
//!
//! A pass computes its cutoffs from [`RetentionConfig`] and deletes each table's old
//! rows [`RetentionConfig::batch`] at a time, each batch a statement of its own, pausing
//! twice a batch's time after it: on SQLite a batch holds the one write lock for a few
//! milliseconds, so webhook intake waits at most that long and keeps two thirds of the
//! write time while a large backlog is pruned. On PostgreSQL one instance
//! prunes at a time (an advisory lock); the others skip their pass.

use std::time::Duration;

use sm_store::retention::{Cutoffs, PruneCounts, Target};
use sm_store::{Store, StoreError};

use crate::admin::{SESSION_ABSOLUTE, SESSION_IDLE, WINDOW};
use crate::config::RetentionConfig;

const DAY: i64 = 86_400;

/// Pause after a batch, in multiples of the batch's own time (see [`prune`]).
const PACE: u32 = 2;

/// The cutoffs of a pass at `now` (unix seconds).
pub fn cutoffs(config: &RetentionConfig, now: i64) -> Cutoffs {
    let days = |d: u64| now - i64::try_from(d).unwrap_or(i64::MAX / DAY) * DAY;
    let events_before = days(config.webhook_days);
    Cutoffs {
        events_received_before_ms: events_before * 1000,
        events_created_before: events_before,
        sync_runs_before: days(config.sync_run_days),
        audit_before: config.audit_days.map(days),
        sessions_idle_before: now - SESSION_IDLE,
        sessions_created_before: now - SESSION_ABSOLUTE,
        throttle_window_before: now - WINDOW,
        mirrors_deleted_before: days(config.mirror_days),
        now,
    }
}

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pass {
    /// Deleted rows (or, for a dry run, rows that would go).
    pub counts: PruneCounts,
    /// False when another instance held the pruner lock and this pass did nothing.
    pub ran: bool,
}

/// Runs one pass (or, `dry`, counts what it would delete).
pub async fn prune(
    store: &Store,
    config: &RetentionConfig,
    now: i64,
    dry: bool,
) -> Result<Pass, StoreError> {
    let cutoffs = cutoffs(config, now);
    if dry {
        return Ok(Pass {
            counts: store.prune_candidates(&cutoffs).await?,
            ran: true,
        });
    }
    let Some(lock) = store.try_lock_pruner().await? else {
        return Ok(Pass {
            counts: PruneCounts::default(),
            ran: false,
        });
    };
    let mut counts = PruneCounts::default();
    let result = async {
        for target in Target::ALL {
            loop {
                let started = std::time::Instant::now();
                let n = store.prune_batch(target, &cutoffs, config.batch).await?;
                counts.add(target, n);
                if n > 0 {
                    metrics::counter!("stripe_manager_retention_pruned_rows_total", "table" => target.table())
                        .increment(n);
                }
                if n < u64::from(config.batch) {
                    break;
                }
                // Paced: after each batch, a pause of PACE times its duration, so the
                // pruner takes at most a third of the database's write time and intake
                // the rest. Run back to back, 1,000,000 old events on SQLite cut intake
                // from 2,295 to 687 events/s with a p99 of 62 ms (docs/BENCHMARKS.md).
                tokio::time::sleep(started.elapsed() * PACE).await;
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    lock.release().await?;
    result?;
    Ok(Pass { counts, ran: true })
}

/// Prunes every [`RetentionConfig::interval`] until `stop` turns true; nothing when the
/// interval is zero. The first pass runs one interval after start, so a restart loop
/// does not prune on every start.
pub fn spawn_pruner(
    store: Store,
    config: RetentionConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + config.interval,
            config.interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let started = std::time::Instant::now();
            match prune(&store, &config, crate::clock::unix_now(), false).await {
                Ok(pass) if pass.ran && pass.counts.total() > 0 => tracing::info!(
                    deleted = pass.counts.total(),
                    webhook_events = pass.counts.webhook_events,
                    app_events = pass.counts.app_events,
                    sync_runs = pass.counts.sync_runs,
                    audit_log = pass.counts.audit_log,
                    mirrors = pass.counts.mirrors(),
                    seconds = started.elapsed().as_secs_f64(),
                    "retention: pruned"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "retention: the pass failed; it runs again next interval")
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }))
}

/// How long the shutdown waits for a pass in progress (its batches are short).
pub const STOP_WAIT: Duration = Duration::from_secs(5);
