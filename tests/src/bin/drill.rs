//! `drill`: the distributed stack on hosts of its own (network namespaces behind a switch,
//! every link delayed by `link-relay`), HAProxy in front, under the users' load while hosts
//! die, partition and slow down; then the likes' ledger and Nexon's calls. Needs root.
//! `scripts/drill.sh` builds the binaries and runs it; the test suite runs `drill --small`.
//!
//! ```text
//! drill [--small] [--users 60] [--characters 200] [--window-s 30] [--db-down-s 30]
//!       [--delay-us 250] [--jitter-us 50] [--slow-ms 50] [--redis-mbit N] [--fresh-s 300]
//!       [--prefix mdrill] [--run-dir DIR] [--bin-dir DIR] [--haproxy-cfg FILE]
//!       [--report FILE.json]
//! drill --capacity [--window-s 30] [--characters 200] [--delay-us 250] …
//! drill --tear-down [--prefix mdrill]
//! ```
//!
//! `--capacity` measures instead of drilling (docs/scaling.md): on the same hosts, what a
//! request costs each tier with 1, 2 and 3 core hosts, with reads going to Redis, with likes
//! only, and with the links at 0, 0.25 and 1 ms; each step lasts `--window-s`.
//!
//! Prints each window's figures (a Markdown table) and the closing line
//! `drill: N requests, F failed (…), likes acknowledged A, counted A, lost 0, double 0,
//! upstream calls U for C characters`; exits 0 when nothing was lost or counted twice, every
//! like settled and Nexon was never asked twice for a character within the freshness period,
//! 1 when not, 2 when the drill could not run.
#![allow(
    clippy::print_stdout,
    reason = "the table and the summary on stdout are this tool's output"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use maple_tests::drill::{self, Options};

struct Args {
    options: Options,
    tear_down: bool,
    capacity: bool,
    report: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let small = raw.iter().any(|a| a == "--small");
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_default();
    let prefix = if small { "mdsmall" } else { "mdrill" };
    let mut options = Options {
        prefix: prefix.to_owned(),
        small,
        bin_dir: own_dir,
        haproxy_cfg: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(drill::HAPROXY_CFG),
        // Named once the prefix is known.
        run_dir: PathBuf::new(),
        delay_us: 250,
        jitter_us: 50,
        redis_mbit: None,
        users: if small { 20 } else { 60 },
        characters: if small { 40 } else { 200 },
        window: Duration::from_secs(if small { 10 } else { 30 }),
        db_down: Duration::from_secs(30),
        slow_us: 50_000,
        fresh_s: 300,
    };
    let mut args = Args {
        options: Options { ..options.clone() },
        tear_down: false,
        capacity: false,
        report: None,
    };
    let mut flags = raw.into_iter();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--small" => continue,
            "--tear-down" => {
                args.tear_down = true;
                continue;
            }
            "--capacity" => {
                args.capacity = true;
                continue;
            }
            _ => {}
        }
        let value = flags.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--users" => options.users = number()?.try_into().map_err(|_| "--users")?,
            "--characters" => {
                options.characters = number()?.try_into().map_err(|_| "--characters")?;
            }
            "--window-s" => options.window = Duration::from_secs(number()?),
            "--db-down-s" => options.db_down = Duration::from_secs(number()?),
            "--delay-us" => options.delay_us = number()?,
            "--jitter-us" => options.jitter_us = number()?,
            "--slow-ms" => options.slow_us = number()? * 1000,
            "--redis-mbit" => {
                options.redis_mbit = Some(number()?.try_into().map_err(|_| "--redis-mbit")?);
            }
            "--fresh-s" => options.fresh_s = number()?,
            "--prefix" => options.prefix = value,
            "--run-dir" => options.run_dir = value.into(),
            "--bin-dir" => options.bin_dir = value.into(),
            "--haproxy-cfg" => options.haproxy_cfg = value.into(),
            "--report" => args.report = Some(value.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.capacity && small {
        return Err("--capacity measures the whole topology: not with --small".into());
    }
    if options.users == 0 || options.characters == 0 || options.window.is_zero() {
        return Err("users, characters and the window must be positive".into());
    }
    if options.jitter_us > options.delay_us {
        return Err("--jitter-us must not exceed --delay-us".into());
    }
    if !options.prefix.chars().all(|c| c.is_ascii_alphanumeric()) || options.prefix.len() > 12 {
        return Err("--prefix: 1 to 12 letters or digits".into());
    }
    if options.run_dir.as_os_str().is_empty() {
        options.run_dir = std::env::temp_dir().join(format!(
            "maple-drill-{}-{}",
            options.prefix,
            std::process::id()
        ));
    }
    // The hosts' processes start in their own folders: every path absolute.
    let absolute =
        |path: &PathBuf| std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()));
    options.bin_dir = absolute(&options.bin_dir)?;
    options.haproxy_cfg = absolute(&options.haproxy_cfg)?;
    options.run_dir = absolute(&options.run_dir)?;
    args.options = options;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("drill: {problem}");
            return ExitCode::from(64);
        }
    };
    let network = drill::net::Network::new(&args.options.prefix);
    if args.tear_down {
        tear_down(&network);
        return ExitCode::SUCCESS;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("drill: needs root (it makes network namespaces)");
        return ExitCode::from(2);
    }
    if args.capacity {
        let result = in_client_host(
            &args.options,
            drill::measure(args.options.clone(), network.clone()),
        );
        tear_down(&network);
        return match result {
            Ok(tables) => {
                println!("{tables}");
                let _ = std::fs::remove_dir_all(&args.options.run_dir);
                ExitCode::SUCCESS
            }
            Err(e) => could_not_run(&e, &args.options),
        };
    }
    let result = in_client_host(
        &args.options,
        drill::run(args.options.clone(), network.clone()),
    );
    // Whatever happened: every process of every host killed, every namespace gone.
    tear_down(&network);
    match result {
        Ok(report) => {
            println!("{}", report.table());
            if let Some(balancer) = &report.balancer {
                println!(
                    "balancer: core-1 DOWN {} after the kill; failed requests {} before, {} after",
                    balancer
                        .down_after_ms
                        .map_or("never".to_owned(), |ms| format!("{ms} ms")),
                    balancer.failures_before_down,
                    balancer.failures_after_down
                );
            }
            println!(
                "upstream: {} equipment calls came within {} s of the character's previous one; \
                 likes never acknowledged: {}",
                report.upstream_repeats, report.fresh_s, report.unresolved
            );
            println!("{}", report.summary());
            if let Some(path) = &args.report
                && let Err(e) =
                    std::fs::write(path, serde_json::to_vec_pretty(&report).unwrap_or_default())
            {
                eprintln!("drill: writing {}: {e}", path.display());
                return ExitCode::from(2);
            }
            if report.passed() {
                let _ = std::fs::remove_dir_all(&args.options.run_dir);
                ExitCode::SUCCESS
            } else {
                logs_kept(&args.options);
                ExitCode::from(1)
            }
        }
        Err(e) => could_not_run(&e, &args.options),
    }
}

/// After a failure the run folder stays, for its logs.
fn logs_kept(options: &Options) {
    eprintln!(
        "drill: each host's logs are in {}",
        options.run_dir.display()
    );
}

/// Exit 2: the drill could not run (or was interrupted).
fn could_not_run(e: &anyhow::Error, options: &Options) -> ExitCode {
    eprintln!("drill: {e:#}");
    logs_kept(options);
    ExitCode::from(2)
}

/// A runtime on this thread for the set-up and the tear-down (the drill's own runtime lives in
/// the client host's namespace).
fn local() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn tear_down(network: &drill::net::Network) {
    match local() {
        Ok(runtime) => runtime.block_on(network.tear_down()),
        Err(e) => eprintln!("drill: no runtime to tear down with: {e}"),
    }
}

/// Builds the network, moves this process into the client host and runs `work` there on a
/// runtime of its own; SIGINT and SIGTERM end it early (the caller tears down).
fn in_client_host<T>(
    options: &Options,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let network = local()?.block_on(drill::build_network(options))?;
    drill::enter_client(&network)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = work => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            _ = terminate.recv() => anyhow::bail!("terminated"),
        }
    });
    // The hosts' processes were started with kill-on-drop: dropping the runtime (and the
    // drill's future with it) kills them.
    drop(runtime);
    outcome
}
