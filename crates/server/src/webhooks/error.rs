//! Why an event could not be applied (yet): the one error type of the webhook path,
//! shared by the applier (`apply`) and the credit planners (`credit::*`). Its own module,
//! so that neither has to import the other for it (that was a module cycle).

use sm_stripe::StripeError;

/// Why applying an event failed, and so what the worker does with it (retry, park, or
/// dead-letter).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The stored event (or its object) does not parse: dead-lettered after the last attempt.
    #[error("the stored payload is not a Stripe event: {0}")]
    Payload(String),
    /// A Stripe refetch failed (retried with backoff).
    #[error("refetching from Stripe failed: {0}")]
    Stripe(#[from] StripeError),
    /// The event needs a refetch but Stripe is not configured; the text names what.
    #[error("Stripe is not configured, and this event needs a refetch: {0}")]
    Disabled(String),
    /// The database failed (retried).
    #[error("the database failed: {0}")]
    Store(#[from] sm_store::StoreError),
    /// A stored row of the same version has other content: retried, which refetches it.
    #[error("{0} met a local row of the same version with other content; it will be refetched")]
    Tie(String),
    /// The credits an event grants cannot be decided (a price without `credit_amount`, a
    /// proration out of range): fix the metadata in Stripe, sync, then replay the event.
    #[error("{0}")]
    Credit(String),
    /// Not applicable yet: it waits for something to arrive (`what`, e.g.
    /// `customer:cus_…`), stays pending without counting as a failure, and is woken
    /// when that arrives.
    #[error("waiting: {reason}")]
    Waiting {
        /// The key it waits on (`customer:cus_…`): what wakes it.
        what: String,
        /// For people: why it waits.
        reason: String,
    },
}

impl From<crate::mirror::MirrorError> for ApplyError {
    fn from(e: crate::mirror::MirrorError) -> Self {
        use crate::mirror::MirrorError;
        match e {
            MirrorError::Stripe(e) => ApplyError::Stripe(e),
            MirrorError::Store(e) => ApplyError::Store(e),
            e => ApplyError::Payload(e.to_string()),
        }
    }
}
