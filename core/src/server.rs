//! The HTTP/1 server loop: hyper with a header-read timeout (a client that trickles its request
//! head — slowloris — is cut off), a bound on header count and buffer size, the peer address
//! for per-client limits, and a graceful drain with a deadline.
//!
//! axum's own `serve` sets no timer, so hyper's header-read timeout never fires there; that is
//! why core runs its own accept loop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// Connection-level limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request head (from its first byte, and between
    /// requests on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Most header fields hyper parses (beyond it the connection gets a bare 431).
    pub max_headers: usize,
    /// Largest read buffer, so the largest request head hyper accepts.
    pub max_buf_size: usize,
    /// Most connections open at once: at the cap the loop stops accepting (new clients wait in
    /// the kernel's backlog) until one closes, so a flood of connections costs queueing, not
    /// memory or file descriptors.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        use crate::config::settings;
        Self {
            header_read_timeout: Duration::from_millis(
                settings::HEADER_READ_TIMEOUT_MS.default_value(),
            ),
            max_headers: 100,
            max_buf_size: 64 * 1024,
            max_connections: settings::MAX_CONNECTIONS.default_value(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves to the instant in-flight requests
/// must end by; then stops accepting, lets open connections finish what they are doing until
/// that instant (kept-alive idle ones close at once), and aborts those still open after it.
///
/// # Errors
/// Never for a failed accept (logged and retried); the `Result` mirrors axum's `serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = Instant>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_buf_size);
    tokio::pin!(shutdown);
    let mut at_cap = false;
    let drain_until = loop {
        let full = connections.len() >= limits.max_connections;
        if full != at_cap {
            at_cap = full;
            if full {
                tracing::warn!(
                    connections = connections.len(),
                    "connection cap reached: not accepting until one closes"
                );
            }
        }
        tokio::select! {
            // At the cap: wait for a connection to end instead of accepting.
            Some(_) = connections.join_next(), if full => {}
            accepted = listener.accept(), if !full => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = router.clone().map_request(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
                // Reap the connections that ended, so the set holds only open ones.
                while connections.try_join_next().is_some() {}
            }
            until = &mut shutdown => break until,
        }
    };
    drop(listener);
    let drain = drain_until.saturating_duration_since(Instant::now());
    tracing::info!(deadline = ?drain, "draining in-flight requests");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "drain deadline passed; aborting the requests still in flight"
        );
    }
    // Aborts what is left and waits for it to go (an aborted task ends at its next await).
    connections.shutdown().await;
    Ok(())
}

/// The peer address a request came from (set by [`serve`]).
pub fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
