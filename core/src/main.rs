//! `maple-core`: config → signal handlers → telemetry → build → bind → serve → wait for a
//! signal → drain, all within the shutdown deadline.
//!
//! `maple-core admin-key NAME SCOPE[,SCOPE…]` instead prints a new admin API key and the line
//! to add to the keys file (`MAPLE_CORE_ADMIN_KEYS_FILE`), then exits.

// The service future (axum router + likes + shutdown) nests deeper than the default limit.
#![recursion_limit = "256"]

use std::process::ExitCode;

use maple_common::config::{EXIT_CONFIG, Env};
use maple_common::shutdown::Signals;
use maple_common::telemetry::{self, LogFormat, TelemetryConfig};
use maple_core::{App, CoreConfig};

/// mimalloc: the small, short-lived blocks of a request cost a fraction of glibc's malloc and
/// free (docs/benchmarks.md, likes over HTTP).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// MapleExpectation core: the HTTP API that prices a character's equipment (potential resets
/// and star force), with its cache tiers, likes and admin API.
#[derive(Debug, clap::Parser)]
#[command(
    name = "maple-core",
    version = maple_common::cli::VERSION,
    after_help = "Settings (environment variables; the most used):
  MAPLE_CORE_LISTEN       where to listen (default 127.0.0.1:8080)
  MAPLE_PROXY_URL         the Nexon proxy (default http://127.0.0.1:8081)
  DATABASE_URL            sqlite://var/maple.db (default) or mysql://…
  REDIS_URL               Redis for the shared tier, likes and locks (unset: embedded)
  MAPLE_LOG_FORMAT        json (default) or text; RUST_LOG filters the log lines
  MAPLE_ACCESS_LOG        one line per request: on (default) or off
Every setting, with its default: docs/configuration.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints a new admin API key (shown once) and the line to add to the keys file
    /// (MAPLE_CORE_ADMIN_KEYS_FILE), then exits.
    AdminKey {
        /// Who holds the key (shown in the audit log).
        name: String,
        /// Comma-separated scopes: admin:read, cache:purge, likes:sync, likes:backup,
        /// config:read.
        scopes: String,
    },
}

/// Prints a new key (shown once) and its stored form.
#[allow(
    clippy::print_stdout,
    reason = "the key on stdout is this command's output"
)]
fn admin_key(name: &str, scopes: &str) -> ExitCode {
    let scopes: Result<std::collections::BTreeSet<_>, _> = scopes
        .split(',')
        .map(|s| maple_core::Scope::parse(s.trim()))
        .collect();
    let scopes = match scopes {
        Ok(scopes) => scopes,
        Err(e) => {
            eprintln!("maple-core admin-key: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let (key, stored) = maple_core::new_key(name, scopes);
    println!("key (give it to its holder; it is not stored anywhere): {key}");
    println!(
        "add to the \"keys\" array of the keys file: {}",
        serde_json::to_string(&stored).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

/// After serving ends, how long spans still buffered may take to export.
const TELEMETRY_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);
/// Then how long blocking work still running (a backup write on a hung disk) may hold the
/// exit: the process is gone by the shutdown deadline plus these two.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

fn main() -> ExitCode {
    let cli: Cli = maple_common::cli::parse();
    if let Some(Command::AdminKey { name, scopes }) = &cli.command {
        return admin_key(name, scopes);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("maple-core: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    // Unlike dropping it, this does not wait for blocking tasks that never end.
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}

async fn run() -> ExitCode {
    let env = Env::process();
    // Telemetry's variables first: `from_env` reports every bad value noted so far.
    let telemetry = TelemetryConfig::from_env(&env, LogFormat::Json);
    let config = match CoreConfig::from_env(&env) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("maple-core: {errors}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("maple-core: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match telemetry::start(&telemetry, "info", "maple-core") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("maple-core: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let listen = config.listen;
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!(
                "maple-core: cannot start: {}",
                maple_common::cli::report(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("maple-core: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, "maple core listening");
    let shutdown = async {
        let signal = signals.recv().await;
        tracing::info!(?signal, "shutdown signal received");
    };
    let served = app.serve(listener, shutdown).await;
    // Spans still buffered are exported before exit, within a bound.
    let flush = tokio::task::spawn_blocking(move || telemetry.shutdown());
    if tokio::time::timeout(TELEMETRY_FLUSH, flush).await.is_err() {
        tracing::warn!("spans still buffered at exit were not all exported");
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maple-core: {e}");
            ExitCode::FAILURE
        }
    }
}
