//! `nexon-sim`: the Nexon Open API simulator as a process.
//!
//! Environment: `MAPLE_SIM_LISTEN` (default 127.0.0.1:8090), `MAPLE_SIM_API_KEY` (default
//! `maple-sim-dev-key`), `MAPLE_DATA_DIR` (default: the templates built into the binary),
//! `MAPLE_SIM_GZIP` (default true: gzip to clients that take it).

use std::process::ExitCode;

use maple_common::config::{EXIT_CONFIG, Env};
use maple_common::telemetry::{self, LogFormat, TelemetryConfig};
use maple_sim::{self as sim, SimConfig, Simulator};

/// The Nexon Open API simulator: Nexon's paths, key header, JSON shapes and error bodies, with
/// deterministic characters, call counters and fault injection (`/-/faults`, `/-/stats`).
#[derive(Debug, clap::Parser)]
#[command(
    name = "nexon-sim",
    version = maple_common::cli::VERSION,
    after_help = "Settings (environment variables):
  MAPLE_SIM_LISTEN    where to listen (default 127.0.0.1:8090)
  MAPLE_SIM_API_KEY   the x-nxopen-api-key it accepts (default maple-sim-dev-key)
  MAPLE_DATA_DIR      a folder with other templates (default: data/ built into the binary)
  MAPLE_SIM_GZIP      gzip answers to clients that take gzip (default true)
  MAPLE_LOG_FORMAT    json (default) or text; RUST_LOG filters the log lines
Every setting, with its default: docs/configuration.md."
)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {} = maple_common::cli::parse();
    let env = Env::process();
    let telemetry = TelemetryConfig::from_env(&env, LogFormat::Json);
    let listen = env.setting(&sim::settings::LISTEN);
    let config = SimConfig {
        api_key: env.setting(&sim::settings::API_KEY),
        data_dir: env.optional(&sim::settings::DATA_DIR),
        gzip: env.setting(&sim::settings::GZIP),
    };
    if let Err(errors) = env.settle(Ok(())) {
        eprintln!("nexon-sim: {errors}");
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    let _telemetry = match telemetry::start(&telemetry, "info", "nexon-sim") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("nexon-sim: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let simulator = match Simulator::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nexon-sim: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nexon-sim: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, "nexon simulator listening");
    let signals = match maple_common::shutdown::Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("nexon-sim: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        signals.recv().await;
    };
    match simulator.serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nexon-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
