//! `maple-core`: config → telemetry → build → bind → serve → wait for signal → drain.

use std::process::ExitCode;

use maple_common::config::{EXIT_CONFIG, Env};
use maple_common::telemetry::{self, LogFormat};
use maple_core::{App, CoreConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let env = Env::process();
    let (config, format) = match (
        CoreConfig::from_env(&env),
        LogFormat::from_env(&env, LogFormat::Json),
    ) {
        (Ok(c), Ok(f)) => (c, f),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("maple-core: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    telemetry::init(format, "info");
    let listen = config.listen;
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("maple-core: cannot start: {e}");
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
        let _ = maple_common::shutdown::signal().await;
        tracing::info!("shutdown signal received");
    };
    match app.serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maple-core: {e}");
            ExitCode::FAILURE
        }
    }
}
