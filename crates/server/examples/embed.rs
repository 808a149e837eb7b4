//! An axum app that embeds stripe-manager: its own routes at `/` and `/hello`, the
//! service under `/billing` (API, webhooks, admin, health, metrics), one tokio runtime, one
//! listener, and the database pool size the app chose. The background work (webhook
//! worker, change listener, pruner, releasers, events to the app) runs on the app's
//! runtime through [`Embedded`]; without it webhooks would be stored and never applied.
//!
//! Configuration comes from the environment as the service reads it (DATABASE_URL,
//! STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, …; `BIND` is not used); `EMBED_BIND`
//! (default `127.0.0.1:3000`) is where the app listens. Prints `listening on ADDR` when
//! ready and stops on Ctrl-C or SIGTERM. Run it with
//! `cargo run --example embed` (tests/embed.rs does, against the fake Stripe).

use std::path::Path;

use axum::Router;
use axum::routing::get;
use stripe_manager::config::Sources;
use stripe_manager::{Config, ConnectOptions, Embedded};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    stripe_manager::telemetry::init_logging(stripe_manager::config::LogFormat::Text);
    let config = Config::load(&Sources::from_process(Path::new(".env"), false)?)?;
    // The app's own pool settings: the service's connections count against them.
    let connect = ConnectOptions {
        max_connections: 16,
        ..ConnectOptions::default()
    };
    let billing = Embedded::start(config, &connect).await?;
    let app = Router::new()
        .route("/", get(|| async { "my app: billing is under /billing" }))
        .route("/hello", get(|| async { "hello from the host app" }))
        .nest("/billing", billing.router());
    let bind = std::env::var("EMBED_BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on {}", listener.local_addr()?);
    // With the peer's address: the service reads it for WEBHOOK_ALLOWED_IPS and the
    // admin's sign-in throttling (`ConnectInfo<SocketAddr>`).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(stripe_manager::app::shutdown_signal())
        .await?;
    // Requests are done: let the worker finish what it holds, then close the database.
    billing.shutdown().await;
    Ok(())
}
