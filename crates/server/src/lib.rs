#![warn(missing_docs)]

//! stripe-manager: Stripe as the single source of truth for a SaaS product catalog and
//! the credit system built on it. One binary: HTTP server and CLI.
//!
//! # Layout
//! - [`config`]: configuration from flags, environment and `.env`, validated
//! - [`manager`]: the shared Stripe handle (client, availability, status)
//! - [`app`]: `AppState` and the `Application` that `serve` runs
//! - [`http`]: routers per resource and shared middleware
//! - [`webhooks`]: intake (verify, store, answer), worker (lease, apply, retry) and apply
//! - [`telemetry`]: logs and the Prometheus recorder
//! - [`cli`]: the commands

/// The release and the commit it was built from (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SM_COMMIT"),
    ")"
);

/// The commit alone.
pub const COMMIT: &str = env!("SM_COMMIT");

pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod changes;
pub mod checkout;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod config;
pub mod credits;
pub mod entitlements;
pub mod http;
pub mod listener;
pub mod manager;
pub mod mirror;
pub mod net;
pub mod outbox;
pub mod privacy;
pub mod retention;
pub mod sellable;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod topup;
pub mod webhooks;

pub use app::{AppState, Application, Background, Embedded};
pub use config::Config;
pub use manager::{StripeManager, Unavailable};
pub use sm_store::ConnectOptions;

/// An error followed by its sources (`a: b: c`), skipping sources whose text the
/// previous message already includes. For messages to operators.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
