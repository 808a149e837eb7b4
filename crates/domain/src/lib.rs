//! Pure types and rules of stripe-manager. Nothing in this crate does I/O, so every
//! rule here can be tested with plain values.
//!
//! # Layout
//! - [`ids`]: Stripe object ids as newtypes that parse (`prod_…`, `price_…`, `evt_…`, …),
//!   so a price id can never be passed where a product id is expected.
//! - [`mode`]: test mode versus live mode, derived from key prefixes.
//! - [`money`]: integer minor units with their currency (zero- and three-decimal aware).
//! - [`catalog`]: Stripe product/price → local rows, and the metadata rules that make a
//!   product a valid credit product.
//! - [`credits`]: exact credit quantities and the order in which debits spend lots.

pub mod catalog;
pub mod credits;
pub mod ids;
pub mod mode;
pub mod money;

pub use ids::{CustomerId, EventId, IdError, PriceId, ProductId};
pub use mode::Mode;
pub use money::Money;
