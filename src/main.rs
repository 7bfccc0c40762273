//! `maple` (`cargo run --release`): the whole pipeline in one process for a local run —
//! the Nexon simulator (unless `NEXON_API_KEY` is set), the proxy and core — with the
//! embedded defaults. Ctrl-C or SIGTERM stops core first (draining), then the proxy, then
//! the simulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use maple_common::config::{ConfigErrors, EXIT_CONFIG, Env};
use maple_common::telemetry::{self, LogFormat, TelemetryConfig};
use maple_core::{App, CoreConfig};
use maple_proxy::ProxyConfig;
use maple_sim::{SimConfig, Simulator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// mimalloc: the small, short-lived blocks of a request cost a fraction of glibc's malloc and
/// free (docs/benchmarks.md, likes over HTTP).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// MapleExpectation on one machine: the Nexon simulator (unless a Nexon key is set), the proxy
/// and core, in the embedded mode (SQLite under var/, no Redis).
#[derive(Debug, clap::Parser)]
#[command(
    name = "maple",
    version = maple_common::cli::VERSION,
    after_help = "Settings (environment variables; the most used):
  MAPLE_CORE_LISTEN   core, the API (default 127.0.0.1:8080)
  MAPLE_PROXY_LISTEN  the Nexon proxy (default 127.0.0.1:8081)
  MAPLE_SIM_LISTEN    the simulator (default 127.0.0.1:8090)
  NEXON_API_KEY       a real Nexon key: the real API instead of the simulator
  DATABASE_URL        sqlite://var/maple.db (default) or mysql://…
  MAPLE_LOG_FORMAT    text (default here) or json; RUST_LOG filters the log lines
Every setting, with its default: docs/configuration.md.
The distributed stack (MySQL, Redis Sentinel, two cores): compose.yaml."
)]
struct Cli {}

/// How long the proxy gets to open its port before start-up is declared failed.
const PROXY_START_DEADLINE: Duration = Duration::from_secs(10);

struct Settings {
    core: CoreConfig,
    proxy: ProxyConfig,
    /// Where the simulator listens and its templates (`None`: built in).
    simulator: Option<(SocketAddr, Option<PathBuf>)>,
    telemetry: TelemetryConfig,
}

/// Every setting of the three parts, every bad value reported at once.
fn settings(env: &Env) -> Result<Settings, ConfigErrors> {
    let telemetry = TelemetryConfig::from_env(env, LogFormat::Text);
    // Reports what was noted so far (telemetry's) with the proxy's own.
    let proxy = ProxyConfig::load(env);
    // The simulator's settings matter only when it runs: without a Nexon key (or when the
    // proxy's settings are wrong, so that every bad value is reported at once).
    let simulated = proxy.as_ref().map_or(true, |proxy| {
        proxy.api_key.expose() == maple_proxy::config::SIMULATOR_API_KEY
    });
    let simulator = simulated.then(|| {
        (
            env.setting(&maple_sim::settings::LISTEN),
            env.optional(&maple_sim::settings::DATA_DIR),
        )
    });
    let core = CoreConfig::from_env(env);
    let (mut proxy, core) = match (proxy, core) {
        (Ok(proxy), Ok(core)) => (proxy, core),
        (proxy, core) => {
            let mut all = Vec::new();
            for result in [proxy.err(), core.err()] {
                all.extend(result.into_iter().flat_map(|ConfigErrors(errors)| errors));
            }
            return Err(ConfigErrors(all));
        }
    };
    // Core drains before the proxy stops, so the proxy has nothing left in flight.
    proxy.grace_period = Duration::ZERO;
    Ok(Settings {
        core,
        proxy,
        simulator,
        telemetry,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {} = maple_common::cli::parse();
    let settings = match settings(&Env::process()) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("maple: {errors}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let telemetry = match telemetry::start(
        &settings.telemetry,
        "info,pingora_core=warn,pingora_proxy=warn",
        "maple",
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("maple: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let result = run(settings).await;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .ok();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maple: {}", maple_common::cli::report(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let Settings {
        core,
        proxy,
        simulator,
        ..
    } = settings;
    let stop_simulator = CancellationToken::new();
    let simulator_task = match simulator {
        Some((listen, data_dir)) => {
            let simulator = Simulator::new(SimConfig {
                api_key: proxy.api_key.expose().to_owned(),
                data_dir,
                gzip: true,
            })?;
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("simulator cannot listen on {listen}: {e}"))?;
            Some(tokio::spawn(
                simulator.serve(listener, stop_simulator.clone().cancelled_owned()),
            ))
        }
        None => None,
    };

    let proxy_listen = proxy.listen;
    let proxy_admin = proxy.admin_listen;
    let upstream = proxy.upstream.to_string();
    let proxy = maple_proxy::spawn(proxy)?;
    wait_for_port(proxy_listen).await?;

    let core_listen = core.listen;
    let database = maple_core::redact_url(core.database_url.expose());
    let app = App::build(core).await?;
    let listener = TcpListener::bind(core_listen)
        .await
        .map_err(|e| anyhow::anyhow!("core cannot listen on {core_listen}: {e}"))?;
    let signals = maple_common::shutdown::Signals::install()
        .map_err(|e| anyhow::anyhow!("cannot install the SIGTERM/SIGINT handlers: {e}"))?;
    let core_task = tokio::spawn(app.serve(listener, async {
        let signal = signals.recv().await;
        tracing::info!(?signal, "stopping: core drains first");
    }));

    announce(core_listen, proxy_listen, proxy_admin, &upstream, &database);

    let core_result = core_task.await;
    tokio::task::spawn_blocking(move || proxy.stop()).await?;
    stop_simulator.cancel();
    if let Some(task) = simulator_task {
        task.await??;
    }
    core_result??;
    tracing::info!("all stopped");
    Ok(())
}

async fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if started.elapsed() > PROXY_START_DEADLINE {
            anyhow::bail!("the proxy did not open {addr} within {PROXY_START_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the launcher's job is to tell the user where to look"
)]
fn announce(core: SocketAddr, proxy: SocketAddr, admin: SocketAddr, upstream: &str, db: &str) {
    println!();
    println!("MapleExpectation is running (Ctrl-C stops it):");
    println!("  core      http://{core}   e.g. curl http://{core}/v1/characters/아델/equipment");
    println!("  metrics   http://{core}/metrics   health http://{core}/health/ready");
    println!("  proxy     http://{proxy}   admin http://{admin}/metrics");
    println!("  upstream  {upstream}");
    println!("  database  {db}");
    println!();
}
