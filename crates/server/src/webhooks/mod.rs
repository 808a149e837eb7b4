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
pub mod error;
pub mod intake;
pub mod reconcile;
pub mod source;
pub mod worker;

pub use intake::Intake;
pub use worker::Worker;

/// The event types stripe-manager acts on. Metrics label an event by its type only when
/// it is one of these, `other` otherwise, so a label's values stay bounded whatever
/// types arrive.
pub const HANDLED_TYPES: &[&str] = &[
    "product.created",
    "product.updated",
    "product.deleted",
    "price.created",
    "price.updated",
    "price.deleted",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.deleted",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "credit_note.created",
    "credit_note.updated",
    "credit_note.voided",
    "subscription_schedule.created",
    "subscription_schedule.updated",
    "subscription_schedule.released",
    "subscription_schedule.canceled",
    "subscription_schedule.completed",
    "subscription_schedule.aborted",
    "subscription_schedule.expiring",
    "entitlements.active_entitlement_summary.updated",
];

/// An event type as a metric label: itself if handled, else `other`.
pub fn type_label(kind: &str) -> &'static str {
    HANDLED_TYPES
        .iter()
        .find(|t| **t == kind)
        .copied()
        .unwrap_or("other")
}

pub use crate::clock::now_ms;
