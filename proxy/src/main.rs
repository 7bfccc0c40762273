//! `maple-proxy`: config → telemetry → run until SIGTERM/SIGINT → drain.

use std::process::ExitCode;

use maple_common::config::{EXIT_CONFIG, Env};
use maple_common::telemetry::{self, LogFormat, TelemetryConfig};
use maple_proxy::ProxyConfig;
use tokio_util::sync::CancellationToken;

/// mimalloc: the small, short-lived blocks of a request cost a fraction of glibc's malloc and
/// free (docs/benchmarks.md, likes over HTTP).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// MapleExpectation's Nexon Open API sidecar (pingora): holds the API key and gives any
/// service timeouts, retries, a circuit breaker, a cache with stale fallback, request
/// coalescing and the key's rate limit.
#[derive(Debug, clap::Parser)]
#[command(
    name = "maple-proxy",
    version = maple_common::cli::VERSION,
    after_help = "Settings (environment variables; the most used):
  MAPLE_PROXY_LISTEN        where clients connect (default 127.0.0.1:8081)
  MAPLE_PROXY_ADMIN_LISTEN  metrics and admin (default 127.0.0.1:9081)
  NEXON_API_KEY             the key (or MAPLE_PROXY_API_KEY_FILE); without one the
                            upstream is the simulator at http://127.0.0.1:8090
  MAPLE_PROXY_UPSTREAM      the upstream (default https://open.api.nexon.com with a key)
  MAPLE_PROXY_CONFIG        a YAML file with the same settings
  MAPLE_LOG_FORMAT          json (default) or text; RUST_LOG filters the log lines
  MAPLE_ACCESS_LOG          one line per request: on (default) or off
Every setting, with its default: docs/configuration.md."
)]
struct Cli {}

fn main() -> ExitCode {
    let Cli {} = maple_common::cli::parse();
    let env = Env::process();
    // Telemetry's variables first: `load` reports every bad value noted so far.
    let telemetry = TelemetryConfig::from_env(&env, LogFormat::Json);
    let config = match ProxyConfig::load(&env) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("maple-proxy: {errors}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let telemetry = match telemetry::start(&telemetry, "info", "maple-proxy") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("maple-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };

    let shutdown = CancellationToken::new();
    let signals = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maple-proxy: cannot start the signal runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handlers = match signals.block_on(async { maple_common::shutdown::Signals::install() }) {
        Ok(handlers) => handlers,
        Err(e) => {
            eprintln!("maple-proxy: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let token = shutdown.clone();
    let watcher = std::thread::spawn(move || {
        signals.block_on(async {
            let signal = handlers.recv().await;
            tracing::info!(?signal, "shutdown signal received, draining");
            token.cancel();
        });
    });
    let result = maple_proxy::run(config, shutdown.clone());
    shutdown.cancel();
    drop(watcher); // the watcher thread ends with the process
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maple-proxy: {}", maple_common::cli::report(&e));
            ExitCode::FAILURE
        }
    }
}
