//! The `Application`: everything `serve` runs, built in one place so tests start the
//! real thing on port 0 with a fresh database and a fake Stripe.

use std::future::Future;
use std::net::SocketAddr;

use sm_store::ConnectOptions;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::webhooks::Worker;

pub use crate::state::{AppState, StartError};

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects and migrates the database, builds the manager, binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let bind = config.bind;
        let state = AppState::build(config, &ConnectOptions::default()).await?;
        let applied = state.store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| StartError::Bind { addr: bind, source })?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self { listener, state } = self;
        for (is_error, finding) in state.config.findings() {
            if is_error {
                tracing::error!("{finding}");
            } else {
                tracing::warn!("{finding}");
            }
        }
        match state.stripe.config().disabled_reason.as_deref() {
            Some(reason) => tracing::warn!(%reason, "Stripe is disabled; serving local data only"),
            None => {
                state.stripe.spawn_startup_probe();
            }
        }
        let upkeep = crate::telemetry::spawn_upkeep(state.metrics.clone());
        let (stop_workers, workers_stop) = tokio::sync::watch::channel(false);
        let mut worker_config = state.config.worker.clone();
        if state.store.backend() == sm_store::Backend::Sqlite {
            // SQLite has one writer at a time: a smaller batch holds its lock for less
            // time (the intake waits behind it). Planning only reads, so it keeps its
            // concurrency: one event waiting on Stripe must not hold up the others.
            worker_config.batch = worker_config.batch.min(64);
        }
        let pruner = crate::retention::spawn_pruner(
            state.store.clone(),
            state.config.retention,
            workers_stop.clone(),
        );
        let releaser =
            crate::credits::holds::spawn_releaser(state.store.clone(), workers_stop.clone());
        let expiries = crate::outbox::expiry::spawn(state.store.clone(), workers_stop.clone());
        let charger = crate::topup::charge::spawn(
            state.store.clone(),
            state.stripe.clone(),
            workers_stop.clone(),
        );
        let dispatcher = match &state.config.app_webhooks {
            Some(config) => Some(
                crate::outbox::deliver::Dispatcher::new(state.store.clone(), config)
                    .map_err(std::io::Error::other)?
                    .spawn(workers_stop.clone()),
            ),
            None => None,
        };
        // One LISTEN connection per instance: it keeps the caches honest and wakes the
        // worker when any instance stores an event.
        let listener_task = crate::changes::listen(
            state.store.clone(),
            state.changes.clone(),
            state.intake.stored.clone(),
        );
        let worker = Worker::new(
            state.store.clone(),
            state.stripe.clone(),
            state.intake.stored.clone(),
            worker_config,
        )
        .spawn(workers_stop);
        let router = crate::http::router(state.clone());
        tracing::info!(addr = %listener.local_addr()?, database = %state.config.database_url, "stripe-manager listening");
        crate::listener::serve(listener, router, state.config.http, shutdown).await;
        // Requests are done; let the worker finish the events in hand.
        let _ = stop_workers.send(true);
        let _ = worker.await;
        listener_task.abort();
        for task in [Some(releaser), Some(expiries), Some(charger), dispatcher]
            .into_iter()
            .flatten()
        {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), task).await;
        }
        if let Some(pruner) = pruner {
            let _ = tokio::time::timeout(crate::retention::STOP_WAIT, pruner).await;
        }
        upkeep.abort();
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
