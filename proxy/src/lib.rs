//! `maple-proxy`: a pingora sidecar in front of the Nexon Open API. It owns the API key
//! (clients never hold it), a response cache with stale fallback and stale-while-revalidate,
//! request coalescing, retries within a budget and a deadline, a circuit breaker, a rate
//! limiter sized to the key's quota, a bulkhead, webhook alerts, JSON errors and Prometheus
//! metrics.
//!
//! # Layout
//! - [`config`]: typed configuration, a YAML file under `MAPLE_PROXY_*` overrides.
//! - [`service`]: pingora's `ProxyHttp`: admission, cache lookup, coalescing, error answers.
//! - [`routes`]: route templates, their policies, the canonical cache key.
//! - [`cache`]: the byte-bounded response cache and its freshness rules.
//! - `flight` (from `maple-common`): one upstream fetch per key in flight.
//! - [`upstream`]: the fetch itself: rate limit, bulkhead, breaker, retries.
//! - [`limits`]: the token bucket and the retry budget, clock injected.
//! - `breaker` (from `maple-common`): the circuit breaker (count window, half-open probes).
//! - [`alerts`]: de-duplicated, rate-limited webhook alerts.
//! - [`admin`]: `/metrics`, `/health`, `/breaker`, `/cache` on the admin port.
//! - [`metrics`]: every metric, declared once.
//!
//! [`run`] blocks the calling thread (pingora owns its runtimes); [`spawn`] runs it on a thread
//! of its own and hands back a handle that stops it, for the launcher and tests.
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod cache;
pub mod config;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod service;
pub mod upstream;

/// The circuit breaker and request coalescing, shared with core.
pub use maple_common::{breaker, flight};

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
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics registry")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the proxy thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot build an HTTP client (the upstream's or the alert webhook's)")]
    Client(#[from] reqwest::Error),
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

/// The fetcher's share of the configuration.
fn fetcher_config(config: &ProxyConfig) -> upstream::FetcherConfig {
    upstream::FetcherConfig {
        base: config.upstream.to_string(),
        api_key: config.api_key.clone(),
        connect_timeout: config.connect_timeout,
        read_timeout: config.read_timeout,
        max_body_bytes: config.max_body_bytes,
        retry: config.retry,
        rate_limit: config.rate_limit,
        bulkhead: config.bulkhead,
        routes: config.routes,
    }
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
    let metrics = ProxyMetrics::new()?.start_at_zero(
        &routes::Route::UPSTREAM.map(routes::Route::label),
        &upstream::Failure::CODES,
    );
    let breaker = Arc::new(breaker::Breaker::new(config.breaker));
    let config = Arc::new(config);
    let alerter = Arc::new(alerts::Alerter::new(
        config.alerts.clone(),
        metrics.clone(),
    )?);
    let fetcher = Arc::new(upstream::Fetcher::new(
        fetcher_config(&config),
        Arc::clone(&breaker),
        metrics.clone(),
        Arc::clone(&alerter),
    )?);
    let cache = cache::ResponseCache::new(config.cache);
    let flights = Arc::new(flight::Flights::default());

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        service::NexonProxy::new(
            Arc::clone(&config),
            metrics.clone(),
            cache.clone(),
            Arc::clone(&flights),
            fetcher,
            alerter,
        ),
        "nexon proxy",
    );
    proxy.add_tcp(&config.listen.to_string());

    let mut admin = Service::new(
        "proxy admin".to_owned(),
        admin::AdminApp::new(Arc::clone(&config), metrics, breaker, cache, flights),
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
