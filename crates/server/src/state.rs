//! The state every request handler and background task shares ([`AppState`]), apart
//! from the `Application` that serves it, so the HTTP layer depends on this and not on
//! the application that mounts it.

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sm_store::{ConnectOptions, Store, StoreError};
use sm_stripe::StripeError;

use crate::auth::TokenCache;
use crate::catalog::Catalog;
use crate::changes::Changes;
use crate::config::Config;
use crate::manager::StripeManager;
use crate::sync::Syncer;
use crate::webhooks::Intake;

/// Shared by every request handler and background task. One `Arc`: axum clones the
/// state for every extractor of every request, and cloning a dozen `Arc`s and handles
/// each time (and dropping them) was 7 % of the server's CPU under webhook load
/// (perf, docs/BENCHMARKS.md). Fields are reached through `Deref` (`state.store`).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database (SQLite or PostgreSQL).
    pub store: Store,
    /// The Stripe handle (client, breaker, health).
    pub stripe: StripeManager,
    /// Catalog reads (cached).
    pub catalog: Catalog,
    /// When what is cached must be read again (changes announced by any instance).
    pub changes: Arc<Changes>,
    /// API tokens already checked (cached like the catalog).
    pub tokens: TokenCache,
    /// Accounts' active entitlements (cached like tokens).
    pub entitlements: crate::entitlements::EntitlementCache,
    /// Catalog syncs from Stripe.
    pub syncer: Syncer,
    /// Stores verified webhook events (group commit).
    pub intake: Intake,
    /// Balances, consumption, adjustments.
    pub ledger: crate::credits::Ledger,
    /// The Prometheus recorder's handle: renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Progress of a full sync started from the admin UI.
    pub live_sync: Arc<crate::sync::LiveSync>,
}

impl AppState {
    /// Connects the store and builds the Stripe manager. No Stripe call happens here.
    pub async fn build(config: Config, connect: &ConnectOptions) -> Result<Self, StartError> {
        // Every path that changes the ledger (the service, the CLI) records its events
        // to the app.
        let outbox = sm_store::outbox::OutboxSettings {
            endpoints: config
                .app_webhooks
                .as_ref()
                .map(|w| w.endpoints.iter().map(|u| u.to_string()).collect())
                .unwrap_or_default(),
            low_threshold: config.low_threshold.map(|c| c.hundredths()),
        };
        let store = Store::connect(&config.database_url, connect)
            .await?
            .with_outbox(outbox);
        let stripe = StripeManager::new(&config.stripe)?;
        let changes = Arc::new(Changes::new(store.clone()));
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            catalog: Catalog::new(store.clone(), changes.clone()),
            tokens: TokenCache::new(store.clone(), changes.clone()),
            entitlements: crate::entitlements::EntitlementCache::new(
                store.clone(),
                changes.clone(),
            ),
            changes,
            syncer: Syncer::new(store.clone(), stripe.clone()),
            intake: Intake::start(store.clone()),
            ledger: crate::credits::Ledger::new(store.clone()),
            store,
            stripe,
            metrics: crate::telemetry::metrics_handle(),
            live_sync: Default::default(),
        })))
    }

    /// This state with another intake: for `examples/bench_server` (a discarding one).
    pub fn with_intake(mut self, intake: Intake) -> Self {
        Arc::make_mut(&mut self.0).intake = intake;
        self
    }
}

/// Why the service (or an embedded instance) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Connecting to or migrating the database failed (a newer schema than the binary's too).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Stripe client could not be built from the configuration.
    #[error("cannot build the Stripe client: {0}")]
    Stripe(#[from] StripeError),
    /// The dispatcher of events to the app could not be built (`APP_WEBHOOK_SECRET`).
    #[error(transparent)]
    AppEvents(#[from] crate::outbox::deliver::DispatchError),
    /// The listener could not bind (address in use, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address it was asked to bind (`BIND`).
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
