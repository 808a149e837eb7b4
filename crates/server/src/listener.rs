//! The accept loop: HTTP/1 connections with limits, so that a client without
//! credentials cannot pin memory or file descriptors, nor take every slot.
//!
//! `axum::serve` sets no header-read timeout (hyper's needs a timer it does not give),
//! no connection cap, and hides accept errors; this loop is the same few lines with
//! those added:
//! - at most `HTTP_MAX_CONNECTIONS` connections; one more is closed at once and counted
//!   (`stripe_manager_http_connections_refused_total{limit="total"}`), so real
//!   deliveries keep file descriptors;
//! - at most `HTTP_MAX_CONNECTIONS_PER_ADDRESS` of them from one peer (an IPv6 peer
//!   counts with its /64, see [`crate::net::address_group`]); one more is closed at once
//!   and counted (`limit="per_address"`), so one client holds a share of the slots, not
//!   all of them. Peers in `TRUSTED_PROXIES` are exempt (every client behind them shares
//!   their address, and limiting each client is the proxy's job), and so are `127.0.0.1`
//!   and `::1` (a proxy or app on this machine);
//! - a connection must send a request's headers within `HTTP_HEADER_TIMEOUT`, both
//!   when new and when idle between requests (hyper restarts that timer each time it
//!   waits for a request head), so stalled and idle sockets are closed;
//! - a request head may be at most `HTTP_MAX_HEADER_BYTES`, and hyper buffers no more
//!   than that per connection (`max_buf_size`): a larger head is answered `431` and the
//!   connection closed, so unfinished heads pin at most `HTTP_MAX_CONNECTIONS` times it;
//! - bodies and handlers are bounded by `HTTP_REQUEST_TIMEOUT` in the router, and a write
//!   to a client that reads nothing fails after the same time without progress
//!   (`WriteDeadline`), so a zero receive window cannot hold a slot;
//! - accept errors (`EMFILE`, …) are logged and retried after a short pause instead of
//!   spinning.
//!
//! `HEALTH_BIND` runs a second loop with its own slots ([`Admission::health`]), so
//! probes and scrapes get in whatever clients hold of the main listener.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::{Config, HttpLimits};

/// Connections the `HEALTH_BIND` listener serves at once: probes and scrapes need few,
/// and it is meant for an address only monitoring reaches.
pub const HEALTH_MAX_CONNECTIONS: usize = 64;

/// The loopback addresses a local proxy or app connects from, exempt from the
/// per-address cap. Only these two, not all of 127.0.0.0/8: a test (or anyone local)
/// can still be held to a share from 127.0.0.2.
const LOOPBACK: [IpAddr; 2] = [
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
];

/// Which listener a loop serves: it decides what a refusal is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    Health,
}

/// How one listener admits connections: its limits and the peers exempt from the
/// per-address cap.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: HttpLimits,
    /// Peers not held to `max_connections_per_address` (`TRUSTED_PROXIES`).
    exempt: Vec<IpNet>,
    role: Role,
}

impl Admission {
    /// The main listener (`BIND`): `HTTP_*` limits; trusted proxies and this host's own
    /// loopback addresses (`127.0.0.1`, `::1`: a proxy or app on the same machine, never a
    /// remote client) are exempt from the per-address cap.
    pub fn main(config: &Config) -> Self {
        let mut exempt = config.webhook_sources.trusted_proxies.clone();
        exempt.extend(LOOPBACK.iter().map(|ip| IpNet::from(*ip)));
        Self {
            limits: config.http,
            exempt,
            role: Role::Main,
        }
    }

    /// The health listener (`HEALTH_BIND`): the same timeouts and head size, its own
    /// [`HEALTH_MAX_CONNECTIONS`] slots, no per-address cap (probes often share one
    /// address, such as a node's kubelet).
    pub fn health(config: &Config) -> Self {
        Self {
            limits: HttpLimits {
                max_connections: HEALTH_MAX_CONNECTIONS,
                max_connections_per_address: HEALTH_MAX_CONNECTIONS,
                ..config.http
            },
            exempt: Vec::new(),
            role: Role::Health,
        }
    }

    fn refused(&self, why: Refusal, peer: SocketAddr) {
        match (self.role, why) {
            (Role::Health, _) => {
                metrics::counter!("stripe_manager_http_connections_refused_total", "limit" => "health")
                    .increment(1);
            }
            (Role::Main, Refusal::Total) => {
                metrics::counter!("stripe_manager_http_connections_refused_total", "limit" => "total")
                    .increment(1);
            }
            (Role::Main, Refusal::PerAddress) => {
                metrics::counter!("stripe_manager_http_connections_refused_total", "limit" => "per_address")
                    .increment(1);
            }
        }
        tracing::debug!(%peer, ?why, listener = ?self.role, "connection limit reached; connection closed");
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Total,
    PerAddress,
}

/// Open connections per address group, for the per-address cap. Entries go when their
/// count reaches zero, so the table holds at most one entry per open connection.
#[derive(Debug)]
struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A slot for one more connection of `group`, or `None` when it holds `max`.
    fn enter(self: &Arc<Self>, group: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(group).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: self.clone(),
            group,
        })
    }
}

/// One connection's place in [`PerAddress`], given back when dropped.
#[derive(Debug)]
struct AddressSlot {
    table: Arc<PerAddress>,
    group: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.group) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.group);
            }
        }
    }
}

/// A connection whose writes must make progress: a client that stops reading an answer
/// (a zero TCP window) would otherwise hold its slot for ever, since hyper has no write
/// timeout and the header timeout only runs while waiting for a request. When a write
/// (or flush) has waited `limit` without the kernel taking a byte, it fails with
/// `TimedOut` and hyper closes the connection; any progress starts the clock again, so a
/// slow reader that keeps reading is served.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while a write waits; `None` once one went through.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that is `Pending` answers: still pending, or `TimedOut` once it has
    /// waited `limit` in all.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of the answer in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        done: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match done {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let done = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(done, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let done = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(done, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let done = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(done, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let done = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(done, cx)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight
/// connections finish (at most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    admission: Admission,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = admission.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Equal to the total cap, the per-address cap could never refuse: skip its table.
    let per_address = (limits.max_connections_per_address < limits.max_connections).then(|| {
        Arc::new(PerAddress {
            max: limits.max_connections_per_address,
            open: Mutex::new(HashMap::new()),
        })
    });
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes)
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
        // The peer's share first: a client over it must not take a slot of the total,
        // even for a moment.
        // `::ffff:a.b.c.d` (a dual-stack listener's IPv4 peer) as `a.b.c.d`, so that an
        // IPv4 entry of `TRUSTED_PROXIES` matches it.
        let ip = peer.ip().to_canonical();
        let address_slot = match &per_address {
            Some(table) if !admission.exempt.iter().any(|n| n.contains(&ip)) => {
                match table.enter(crate::net::address_group(ip)) {
                    Some(slot) => Some(slot),
                    None => {
                        admission.refused(Refusal::PerAddress, peer);
                        drop(stream);
                        continue;
                    }
                }
            }
            _ => None,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            admission.refused(Refusal::Total, peer);
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
        let stream = WriteDeadline::new(stream, limits.request_timeout);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
            drop(address_slot);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_group_holds_at_most_its_share_and_gets_it_back() {
        let table = Arc::new(PerAddress {
            max: 2,
            open: Mutex::new(HashMap::new()),
        });
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let first = table.enter(a).unwrap();
        let _second = table.enter(a).unwrap();
        assert!(table.enter(a).is_none());
        let _other = table.enter(b).unwrap();
        drop(first);
        let _again = table.enter(a).unwrap();
        drop((_second, _again, _other));
        assert!(
            table.open.lock().unwrap().is_empty(),
            "no entry is left behind"
        );
    }
}
