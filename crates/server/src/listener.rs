//! The accept loop: HTTP/1 connections with limits, so that a client without
//! credentials cannot pin memory or file descriptors.
//!
//! `axum::serve` sets no header-read timeout (hyper's needs a timer it does not give),
//! no connection cap, and hides accept errors; this loop is the same few lines with
//! those added:
//! - at most `HTTP_MAX_CONNECTIONS` connections; one more is closed at once and counted
//!   (`stripe_manager_http_connections_refused_total`), so real deliveries keep file descriptors;
//! - a connection must send a request's headers within `HTTP_HEADER_TIMEOUT`, both
//!   when new and when idle between requests (hyper restarts that timer each time it
//!   waits for a request head), so stalled and idle sockets are closed;
//! - bodies and handlers are bounded by `HTTP_REQUEST_TIMEOUT` in the router;
//! - accept errors (`EMFILE`, …) are logged and retried after a short pause instead of
//!   spinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::HttpLimits;

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight
/// connections finish (at most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: log,
                    // pause so a full table can drain, and go on.
                    tracing::warn!(error = %e, "accept failed");
                    metrics::counter!("stripe_manager_http_accept_errors_total").increment(1);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("stripe_manager_http_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection limit reached; connection closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                    req
                });
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 30 s after shutdown; closing them");
    }
}
