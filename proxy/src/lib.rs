//! `maple-proxy`: a pingora sidecar in front of the Nexon Open API. It owns the API key
//! (clients never hold it), connect and read timeouts, a circuit breaker, JSON errors and
//! Prometheus metrics. Retries, the cache and coalescing are still to come.
//!
//! # Layout
//! - [`config`]: typed configuration from `MAPLE_PROXY_*` and `NEXON_API_KEY`.
//! - [`service`]: the `ProxyHttp` logic: routing, key injection, error answers.
//! - [`breaker`]: the circuit breaker (count window, half-open probes), clock injected.
//! - [`admin`]: `/metrics`, `/health` and `/breaker` on the admin port.
//! - [`metrics`]: every metric, declared once.
//!
//! [`run`] blocks the calling thread (pingora owns its runtimes); [`spawn`] runs it on a thread
//! of its own and hands back a handle that stops it, for the launcher and tests.
#![forbid(unsafe_code)]

pub mod admin;
pub mod breaker;
pub mod config;
pub mod metrics;
pub mod service;

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio_util::sync::CancellationToken;

pub use crate::config::ProxyConfig;
use crate::metrics::ProxyMetrics;

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the proxy thread: {0}")]
    Thread(std::io::Error),
}

/// Runs the proxy until `shutdown` is cancelled, then drains for the configured grace period.
/// Blocks the calling thread, which must not be inside a tokio runtime.
///
/// # Errors
/// [`StartError`] when a port is taken or the metrics cannot be registered.
pub fn run(config: ProxyConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    let server = build(config)?;
    server.run(RunArgs {
        shutdown_signal: Box::new(CancelSignal(shutdown)),
    });
    Ok(())
}

/// A proxy running on its own thread.
#[derive(Debug)]
pub struct ProxyHandle {
    shutdown: CancellationToken,
    thread: JoinHandle<()>,
}

impl ProxyHandle {
    /// Asks the proxy to stop and waits until it has.
    pub fn stop(self) {
        self.shutdown.cancel();
        if self.thread.join().is_err() {
            tracing::error!("the proxy thread panicked");
        }
    }
}

/// Starts the proxy on a new thread.
///
/// # Errors
/// [`StartError`] when a port is taken (checked before the thread starts) or the thread
/// cannot be created.
pub fn spawn(config: ProxyConfig) -> Result<ProxyHandle, StartError> {
    let server = build(config)?;
    let shutdown = CancellationToken::new();
    let signal = CancelSignal(shutdown.clone());
    let thread = std::thread::Builder::new()
        .name("maple-proxy".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            });
        })
        .map_err(StartError::Thread)?;
    Ok(ProxyHandle { shutdown, thread })
}

fn build(config: ProxyConfig) -> Result<Server, StartError> {
    // pingora binds inside its runtimes and cannot report a taken port to us; check first so
    // the operator gets a clear error instead of a panic on a worker thread.
    for addr in [config.listen, config.admin_listen] {
        TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    }
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let metrics = ProxyMetrics::new()?;
    let breaker = Arc::new(breaker::Breaker::new(config.breaker));
    let config = Arc::new(config);

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        service::NexonProxy::new(Arc::clone(&config), metrics.clone(), Arc::clone(&breaker)),
        "nexon proxy",
    );
    proxy.add_tcp(&config.listen.to_string());

    let mut admin = Service::new(
        "proxy admin".to_owned(),
        admin::AdminApp::new(Arc::clone(&config), metrics, breaker),
    );
    admin.add_tcp(&config.admin_listen.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    tracing::info!(
        listen = %config.listen,
        admin = %config.admin_listen,
        upstream = %config.upstream,
        "nexon proxy starting"
    );
    Ok(server)
}

/// Turns a cancelled token into pingora's graceful termination.
struct CancelSignal(CancellationToken);

#[async_trait]
impl ShutdownSignalWatch for CancelSignal {
    async fn recv(&self) -> ShutdownSignal {
        self.0.cancelled().await;
        ShutdownSignal::GracefulTerminate
    }
}
