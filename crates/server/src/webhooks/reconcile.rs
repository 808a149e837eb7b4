//! Recovery after downtime: page through Stripe's Events API (it keeps 30 days) and store
//! the events the inbox does not have, exactly as if they had been delivered. The worker
//! then applies them through the usual path; events already stored are left alone.
//! Then every linked customer's active entitlements are read again: Stripe's answer is
//! the truth, and a summary event older than 30 days cannot be recovered.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use sm_store::Store;
use sm_store::inbox::NewEvent;
use sm_stripe::{Client, StripeError};

/// The Events API keeps 30 days of events.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// What a recovery from the Events API did (the CLI's and the admin's reconcile).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Events Stripe returned for the window.
    pub seen: u64,
    /// Of which the inbox did not have: now stored as `pending`.
    pub stored: u64,
    /// Events API pages read.
    pub pages: u64,
    /// Linked customers whose entitlements were read again, and of those, whose set
    /// had changed.
    pub entitlements_read: u64,
    /// Of those, customers whose set had changed.
    pub entitlements_changed: u64,
    /// Customers whose entitlements Stripe refused to answer (deleted there, …).
    pub entitlements_failed: u64,
}

/// Why a reconciliation stopped; events stored before stay stored.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Stripe failed (listing events or reading entitlements).
    #[error(transparent)]
    Stripe(#[from] StripeError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(#[from] sm_store::StoreError),
    /// The Events API returned something that does not parse as an event.
    #[error("Stripe returned something that is not an event: {0}")]
    NotAnEvent(sm_stripe::Rejection),
}

/// Parses `72h`, `30m`, `7d`, `3600s` (or plain seconds) into a duration of at most 30 days.
pub fn parse_since(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("--since {raw:?} is not a duration like 72h, 30m or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "--since {raw:?} has an unknown unit; use s, m, h or d"
            ));
        }
    };
    let d = Duration::from_secs(secs);
    if d.is_zero() || d > MAX_WINDOW {
        return Err(format!(
            "--since must be between 1s and 30d (Stripe keeps 30 days of events), not {raw:?}"
        ));
    }
    Ok(d)
}

/// Stores every event created in the last `window` that the inbox lacks.
pub async fn reconcile(
    store: &Store,
    client: &Client,
    window: Duration,
) -> Result<ReconcileReport, ReconcileError> {
    let since = crate::clock::unix_now() - window.as_secs() as i64;
    let mut report = ReconcileReport::default();
    let mut pages = Box::pin(client.event_pages(since));
    while let Some(page) = pages.next().await {
        let page = page?;
        report.pages += 1;
        let mut batch = Vec::with_capacity(page.data.len());
        for raw in &page.data {
            let v = sm_stripe::webhook::from_events_api(raw.json.get())
                .map_err(ReconcileError::NotAnEvent)?;
            batch.push(NewEvent {
                id: v.id().to_owned(),
                kind: v.kind().to_owned(),
                created: v.created(),
                livemode: v.livemode(),
                api_version: v.api_version().map(str::to_owned),
                payload: v.body().to_owned(),
                source: "reconcile",
            });
        }
        report.seen += batch.len() as u64;
        let inserted = store.insert_events(&batch, super::now_ms()).await?;
        report.stored += inserted.iter().filter(|n| **n).count() as u64;
    }
    metrics::counter!("stripe_manager_webhook_events_reconciled_total").increment(report.stored);
    for customer in store.linked_customers().await? {
        match crate::entitlements::refresh(store, client, &customer).await {
            Ok(changed) => {
                report.entitlements_read += 1;
                report.entitlements_changed += u64::from(changed);
            }
            Err(crate::entitlements::RefreshError::Store(e)) => return Err(e.into()),
            // Stripe down: stop (every other read would fail too). One customer Stripe
            // refuses (deleted there): counted, and the others are still read.
            Err(crate::entitlements::RefreshError::Stripe(e)) if e.is_unavailable() => {
                return Err(e.into());
            }
            Err(crate::entitlements::RefreshError::Stripe(e)) => {
                tracing::warn!(%customer, error = %crate::error_chain(&e), "reconcile: could not read the customer's entitlements");
                report.entitlements_failed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_since("72h").unwrap(), Duration::from_secs(72 * 3600));
        assert_eq!(parse_since("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_since("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_since("90").unwrap(), Duration::from_secs(90));
        assert!(parse_since("31d").unwrap_err().contains("30 days"));
        assert!(parse_since("0h").is_err());
        assert!(parse_since("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_since("soon").unwrap_err().contains("not a duration"));
    }
}
