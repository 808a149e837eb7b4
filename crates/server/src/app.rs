//! The `Application`: everything `serve` runs, built in one place so tests start the
//! real thing on port 0 with a fresh database and a fake Stripe.

use std::future::Future;
use std::net::SocketAddr;

use sm_store::ConnectOptions;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::webhooks::Worker;

pub use crate::state::{AppState, StartError};

/// The standalone service: its state and a bound listener. [`Application::build`], then
/// [`Application::run_until`] (what `serve` does; tests bind port 0).
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// `HEALTH_BIND`'s listener, when set.
    health: Option<TcpListener>,
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
        let health = match state.config.health_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            health,
            state,
        })
    }

    /// The address it listens on (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `HEALTH_BIND`'s listener answers, when it is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The shared state its routes and background tasks use.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            health,
            state,
        } = self;
        let background = Background::start(&state).map_err(std::io::Error::other)?;
        let router = crate::http::router(state.clone());
        tracing::info!(
            addr = %listener.local_addr()?,
            database = %state.config.database_url,
            admin = %format!("http://{}/admin", listener.local_addr()?),
            admin_user = "created with: stripe-manager admin create-user EMAIL",
            "stripe-manager listening"
        );
        // Both listeners stop on the same signal.
        let (stop, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            shutdown.await;
            drop(stop);
        });
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
            let _ = rx.changed().await;
        };
        let health = health.map(|health| {
            if let Ok(addr) = health.local_addr() {
                tracing::info!(%addr, "health listener (/healthz, /readyz, /metrics)");
            }
            tokio::spawn(crate::listener::serve(
                health,
                crate::http::health_router(state.clone()),
                crate::listener::Admission::health(&state.config),
                until_stopped(stopped.clone()),
            ))
        });
        crate::listener::serve(
            listener,
            router,
            crate::listener::Admission::main(&state.config),
            until_stopped(stopped),
        )
        .await;
        if let Some(health) = health {
            let _ = health.await;
        }
        // Requests are done; let the worker finish the events in hand.
        background.stop().await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The work an instance does besides answering requests: the webhook worker, the change
/// listener (caches and wake-ups across instances), the pruner, the hold releaser, the
/// credit expiry sweeper, the top-up charger, the events to the app and the metrics'
/// upkeep. [`Application`] runs it beside its listener; an app that embeds the library
/// starts it with [`Embedded`], or itself, beside its own server. Without it, webhooks
/// would be stored and never applied.
#[derive(Debug)]
pub struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    listener: tokio::task::JoinHandle<()>,
    upkeep: tokio::task::JoinHandle<()>,
    pruner: Option<tokio::task::JoinHandle<()>>,
    others: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Starts everything on the current tokio runtime; logs what the configuration
    /// warns about, and probes Stripe once unless it is disabled.
    pub fn start(state: &AppState) -> Result<Self, StartError> {
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
        // Built before anything is spawned: a refused configuration leaves nothing running.
        let dispatcher = match &state.config.app_webhooks {
            Some(config) => Some(crate::outbox::deliver::Dispatcher::new(
                state.store.clone(),
                config,
            )?),
            None => None,
        };
        let upkeep = crate::telemetry::spawn_upkeep(state.metrics.clone());
        let (stop, workers_stop) = tokio::sync::watch::channel(false);
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
        let mut others = vec![
            crate::credits::holds::spawn_releaser(state.store.clone(), workers_stop.clone()),
            crate::outbox::expiry::spawn(state.store.clone(), workers_stop.clone()),
            crate::topup::charge::spawn(
                state.store.clone(),
                state.stripe.clone(),
                workers_stop.clone(),
            ),
        ];
        if let Some(dispatcher) = dispatcher {
            others.push(dispatcher.spawn(workers_stop.clone()));
        }
        // One LISTEN connection per instance: it keeps the caches honest and wakes the
        // worker when any instance stores an event.
        let listener = crate::changes::listen(
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
        Ok(Self {
            stop,
            worker,
            listener,
            upkeep,
            pruner,
            others,
        })
    }

    /// Stops it: the worker finishes the events in hand, the others their pass (each
    /// given a bounded time). Call it once the requests are done.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.worker).await;
        self.listener.abort();
        for task in std::mem::take(&mut self.others) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), task).await;
        }
        if let Some(pruner) = self.pruner.take() {
            let _ = tokio::time::timeout(crate::retention::STOP_WAIT, pruner).await;
        }
        self.upkeep.abort();
    }
}

/// Dropped without [`Background::stop`] (a host that lost the handle): everything is told
/// to stop and the endless tasks are aborted, so nothing keeps polling the database.
impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.listener.abort();
        self.upkeep.abort();
    }
}

/// stripe-manager inside another axum app: its state, a router to mount (under a
/// prefix with `Router::nest`, or beside the app's own routes with `merge`: it sets no
/// fallback), and its [`Background`] work, on the app's tokio runtime and without a
/// listener of its own. `examples/embed.rs` shows it whole.
#[derive(Debug)]
pub struct Embedded {
    state: AppState,
    background: Background,
}

impl Embedded {
    /// Connects with `connect` (the app's pool settings), migrates, and starts the
    /// background work.
    pub async fn start(config: Config, connect: &ConnectOptions) -> Result<Self, StartError> {
        let state = AppState::build(config, connect).await?;
        let applied = state.store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
        let background = Background::start(&state)?;
        Ok(Self { state, background })
    }

    /// Every route (API, webhooks, health, metrics, the admin UI under the host's prefix)
    /// behind the service's own layers, without a fallback (see
    /// [`crate::http::embeddable_router`]).
    pub fn router(&self) -> axum::Router {
        crate::http::embeddable_router(self.state.clone())
    }

    /// The shared state (store, Stripe handle, config) the routes use; for the app's own reads.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops the background work and closes the database (after the app's server has
    /// finished its requests).
    pub async fn shutdown(self) {
        self.background.stop().await;
        self.state.store.close().await;
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
