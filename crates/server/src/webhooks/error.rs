//! Why an event could not be applied (yet): the one error type of the webhook path,
//! shared by the applier (`apply`) and the credit planners (`credit::*`). Its own module,
//! so that neither has to import the other for it (that was a module cycle).

use sm_stripe::StripeError;

/// Why applying an event failed, and so what the worker does with it (retry, park, or
/// dead-letter).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the stored payload is not a Stripe event: {0}")]
    Payload(String),
    #[error("refetching from Stripe failed: {0}")]
    Stripe(#[from] StripeError),
    #[error("Stripe is not configured, and this event needs a refetch: {0}")]
    Disabled(String),
    #[error("the database failed: {0}")]
    Store(#[from] sm_store::StoreError),
    #[error("{0} met a local row of the same version with other content; it will be refetched")]
    Tie(String),
    #[error("{0}")]
    Credit(String),
    /// Not applicable yet: it waits for something to arrive (`what`, e.g.
    /// `customer:cus_…`), stays pending without counting as a failure, and is woken
    /// when that arrives.
    #[error("waiting: {reason}")]
    Waiting { what: String, reason: String },
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
