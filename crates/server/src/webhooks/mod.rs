//! Webhooks that lose nothing and apply nothing twice.
//!
//! ```text
//! POST /webhooks/stripe ─ verify (raw bytes) ─► Intake (group commit) ─► inbox row ─► 200
//!                                                     │ wakes
//!                                                     ▼
//!                         Worker: claim (lease) ─► [Stripe refetch, no transaction open]
//!                                               ─► one transaction: effects + status
//! ```
//!
//! - [`intake`]: one writer task takes every verified event waiting, inserts them in
//!   one transaction (one fsync) and answers each request: durable before 200, and
//!   many deliveries share a commit under load.
//! - [`worker`]: claims due events with a lease, applies each in one transaction with
//!   its status change, retries failures with backoff, and moves an event to `failed`
//!   (the dead letter) after the last attempt.
//! - [`reconcile`]: recovery of missed events from the Events API (30 days)
//! - [`source`]: the optional allow-list of source networks and trusted proxies
//! - [`apply`]: what an event does to local state: catalog events, and through
//!   [`credit`] checkout, subscription, invoice and refund events; any other type
//!   is stored and marked `ignored`.

pub mod apply;
pub mod credit;
pub mod intake;
pub mod reconcile;
pub mod source;
pub mod worker;

pub use intake::Intake;
pub use worker::Worker;

/// Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
