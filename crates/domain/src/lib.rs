//! Pure types and rules of stripe-manager. Nothing in this crate does I/O, so every
//! rule here can be tested with plain values.
//!
//! # Layout
//! - [`ids`]: Stripe object ids as newtypes that parse (`prod_…`, `price_…`, `evt_…`, …),
//!   so a price id can never be passed where a product id is expected.
//! - [`mode`]: test mode versus live mode, derived from key prefixes.

pub mod ids;
pub mod mode;

pub use ids::{CustomerId, EventId, IdError, PriceId, ProductId};
pub use mode::Mode;
