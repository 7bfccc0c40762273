//! The HTTP/1 server loop: hyper with a header-read timeout (a client that trickles its request
//! head — slowloris — is cut off), a bound on header count and buffer size, the peer address
//! for per-client limits, and a graceful drain with a deadline.
//!
//! axum's own `serve` sets no timer, so hyper's header-read timeout never fires there; that is
//! why core runs its own accept loop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
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
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_buf_size: 64 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and gives the
/// open connections `drain` to finish what they are doing (kept-alive idle ones close at once).
///
/// # Errors
/// Never for a failed accept (logged and retried); the `Result` mirrors axum's `serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_buf_size);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
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
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(deadline = ?drain, "draining in-flight requests");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; abandoning in-flight requests");
    }
    Ok(())
}

/// The peer address a request came from (set by [`serve`]).
pub fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
