//! `maple-core`: config → telemetry → build → bind → serve → wait for signal → drain.
//!
//! `maple-core admin-key NAME SCOPE[,SCOPE…]` instead prints a new admin API key and the line
//! to add to the keys file (`MAPLE_CORE_ADMIN_KEYS_FILE`), then exits.

// The service future (axum router + likes + shutdown) nests deeper than the default limit.
#![recursion_limit = "256"]

use std::process::ExitCode;

use maple_common::config::{EXIT_CONFIG, Env};
use maple_common::telemetry::{self, LogFormat};
use maple_core::{App, CoreConfig};

/// Prints a new key (shown once) and its stored form.
#[allow(
    clippy::print_stdout,
    reason = "the key on stdout is this command's output"
)]
fn admin_key(args: &[String]) -> ExitCode {
    let (Some(name), Some(scopes)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: maple-core admin-key NAME SCOPE[,SCOPE…]  (scopes: {})",
            maple_core::admin::Scope::ALL.map(|s| s.as_str()).join(", ")
        );
        return ExitCode::from(EXIT_CONFIG as u8);
    };
    let scopes: Result<std::collections::BTreeSet<_>, _> = scopes
        .split(',')
        .map(|s| maple_core::admin::Scope::parse(s.trim()))
        .collect();
    let scopes = match scopes {
        Ok(scopes) => scopes,
        Err(e) => {
            eprintln!("maple-core admin-key: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let (key, stored) = maple_core::admin::new_key(name, scopes);
    println!("key (give it to its holder; it is not stored anywhere): {key}");
    println!(
        "add to the \"keys\" array of the keys file: {}",
        serde_json::to_string(&stored).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("admin-key") {
        return admin_key(&args[1..]);
    }
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
    let telemetry = match telemetry::start(&env, format, "info", "maple-core") {
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
    let served = app.serve(listener, shutdown).await;
    // Spans still buffered are exported before exit (bounded).
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .ok();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maple-core: {e}");
            ExitCode::FAILURE
        }
    }
}
