//! `maple-proxy`: config → telemetry → run until SIGTERM/SIGINT → drain.

use std::process::ExitCode;

use maple_common::config::{EXIT_CONFIG, Env};
use maple_common::telemetry::{self, LogFormat};
use maple_proxy::ProxyConfig;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let env = Env::process();
    let config = ProxyConfig::load(&env);
    let format = LogFormat::from_env(&env, LogFormat::Json);
    let (config, format) = match (config, format) {
        (Ok(c), Ok(f)) => (c, f),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("maple-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let telemetry = match telemetry::start(&env, format, "info", "maple-proxy") {
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
    let token = shutdown.clone();
    let watcher = std::thread::spawn(move || {
        signals.block_on(async {
            let _ = maple_common::shutdown::signal().await;
            tracing::info!("shutdown signal received, draining");
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
            eprintln!("maple-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
