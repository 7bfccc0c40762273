//! What a newcomer meets first: `maple` copied alone into a directory of its own runs from an
//! empty working directory and prices a character (the data it needs is built in); every binary answers `--help` and
//! `--version` at once and refuses an unknown flag with 64; start-up says where it listens in
//! one line, without third-party noise; a start-up error names its cause once; and one access
//! line per request carries the caller's trace id, in core's log and in the proxy's.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::Command;

use crate::harness::{free_port, wait_until_healthy};
use crate::processes::{Process, send, wait_bounded, workspace_binary};

const BINARIES: [&str; 4] = ["maple", "maple-core", "maple-proxy", "nexon-sim"];

/// A fresh, empty directory of this test's own.
fn empty_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "maple-fresh-{tag}-{}-{}",
        std::process::id(),
        free_port().port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `binary args` with a clean environment; a binary that does not exit within 20 s (it
/// started serving instead of answering) fails the test.
async fn run(binary: &Path, args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Output {
    let child = Command::new(binary)
        .kill_on_drop(true)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let what = format!("{} {args:?}", binary.display());
    tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not exit within 20 s"))
        .expect("output")
}

#[tokio::test(flavor = "multi_thread")]
async fn maple_copied_alone_into_an_empty_directory_prices_a_character() {
    let root = empty_dir("alone");
    let bin = root.join("bin");
    let cwd = root.join("run");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::fs::create_dir_all(&cwd).expect("run dir");
    let maple = bin.join("maple");
    std::fs::copy(workspace_binary("maple"), &maple).expect("copy maple");
    // Nothing to read where it runs, and nothing but itself where it lives.
    assert_eq!(std::fs::read_dir(&cwd).expect("run dir").count(), 0);
    assert_eq!(std::fs::read_dir(&bin).expect("bin dir").count(), 1);

    let (sim, proxy, admin, core) = (free_port(), free_port(), free_port(), free_port());
    let log = root.join("maple.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(&maple)
        .kill_on_drop(true)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MAPLE_SIM_LISTEN", sim.to_string())
        .env("MAPLE_PROXY_LISTEN", proxy.to_string())
        .env("MAPLE_PROXY_ADMIN_LISTEN", admin.to_string())
        .env("MAPLE_PROXY_UPSTREAM", format!("http://{sim}"))
        .env("MAPLE_CORE_LISTEN", core.to_string())
        .env("MAPLE_PROXY_URL", format!("http://{proxy}"))
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("maple starts");
    let http = reqwest::Client::new();
    wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;

    let equipment = http
        .get(format!("http://{core}/v1/characters/FreshClone/equipment"))
        .send()
        .await
        .expect("core answers");
    assert_eq!(equipment.status(), StatusCode::OK);
    let body: Value = equipment.json().await.expect("JSON");
    assert_eq!(body["item_equipment"].as_array().map(Vec::len), Some(24));

    let expectation = http
        .get(format!(
            "http://{core}/v1/characters/FreshClone/expectation"
        ))
        .send()
        .await
        .expect("core answers");
    assert_eq!(expectation.status(), StatusCode::OK);
    let body: Value = expectation.json().await.expect("JSON");
    let items = body["valuation"]["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{body}");
    let total = body["valuation"]["total_mesos"].as_f64();
    assert!(total.is_some_and(|mesos| mesos > 0.0), "a total: {body}");

    // The embedded database was made where the user ran it.
    assert!(cwd.join("var/maple.db").is_file());
    send(&child, "INT", "maple");
    let status = wait_bounded(&mut child, Duration::from_secs(30), "maple after SIGINT").await;
    assert!(status.success(), "maple exited with {status}");
    let output = std::fs::read_to_string(&log).expect("log");
    assert!(output.contains(&format!("http://{core}")), "{output}");
    assert!(
        !output.contains("opentelemetry"),
        "no exporter chatter: {output}"
    );
    assert!(!output.contains("shared"), "{output}");
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_version_answer_at_once_and_unknown_flags_exit_64() {
    let cwd = empty_dir("cli");
    let version = maple_common::cli::VERSION;
    for binary in BINARIES {
        let path = workspace_binary(binary);
        for flag in ["--help", "-h"] {
            let out = run(&path, &[flag], &[], &cwd).await;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{binary} {flag}");
            assert!(
                stdout.contains(&format!("Usage: {binary}")),
                "{binary}: {stdout}"
            );
            assert!(
                stdout.contains("docs/configuration.md"),
                "{binary} names the table: {stdout}"
            );
            assert!(
                stdout.contains("MAPLE_"),
                "{binary} names its settings: {stdout}"
            );
        }
        let out = run(&path, &["--version"], &[], &cwd).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{binary} --version");
        assert_eq!(stdout.trim(), format!("{binary} {version}"));
        assert!(!maple_common::cli::GIT_COMMIT.is_empty());

        let out = run(&path, &["--no-such-flag"], &[], &cwd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{binary}: {stderr}");
        assert!(
            stderr.contains("--no-such-flag") && stderr.contains("Usage:"),
            "{stderr}"
        );
    }
    let out = run(
        &workspace_binary("maple-core"),
        &["help", "admin-key"],
        &[],
        &cwd,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("admin-key <NAME> <SCOPES>"), "{stdout}");
    let out = run(
        &workspace_binary("maple-core"),
        &["admin-key", "ops", "admin:read,cache:purge"],
        &[],
        &cwd,
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("\"scopes\":[\"admin:read\",\"cache:purge\"]")
    );
    let _ = std::fs::remove_dir_all(cwd);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_up_error_names_its_cause_once() {
    let cwd = empty_dir("cause");
    let missing = cwd.join("nowhere");
    let missing = missing.display().to_string();
    let tables = format!("{missing}/rates.csv");
    for (binary, var, value, file) in [
        (
            "maple",
            "MAPLE_DATA_DIR",
            missing.as_str(),
            "evan_equip.json",
        ),
        (
            "maple-core",
            "MAPLE_POTENTIAL_TABLES",
            tables.as_str(),
            "rates.csv",
        ),
        (
            "nexon-sim",
            "MAPLE_DATA_DIR",
            missing.as_str(),
            "evan_equip.json",
        ),
    ] {
        let port = free_port().to_string();
        let envs = [
            (var, value),
            ("MAPLE_CORE_LISTEN", port.as_str()),
            ("DATABASE_URL", "sqlite::memory:"),
        ];
        let out = run(&workspace_binary(binary), &[], &envs, &cwd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{binary} must not start");
        assert_eq!(stderr.matches(file).count(), 1, "{binary}: {stderr}");
        assert_eq!(
            stderr.matches("No such file").count(),
            1,
            "{binary}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(cwd);
}

/// A bad configuration names every invalid variable in one report, exit 64, before anything
/// starts: an operator fixes them in one round, not one per restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_configuration_names_every_invalid_variable_at_once() {
    let cwd = empty_dir("settings");
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "maple-core",
            &[
                ("MAPLE_CORE_LISTEN", "nowhere"),
                ("MAPLE_CORE_REQUEST_TIMEOUT_MS", "0"),
                ("MAPLE_PRICE_RED_CUBE", "cheap"),
                ("MAPLE_LOG_FORMAT", "xml"),
            ],
        ),
        (
            "maple-proxy",
            &[
                ("MAPLE_PROXY_LISTEN", "nowhere"),
                ("MAPLE_PROXY_BREAKER_PROBES", "0"),
                ("MAPLE_ACCESS_LOG", "maybe"),
            ],
        ),
        (
            "nexon-sim",
            &[
                ("MAPLE_SIM_LISTEN", "nowhere"),
                ("MAPLE_SIM_GZIP", "perhaps"),
                ("MAPLE_LOG_FORMAT", "xml"),
            ],
        ),
        (
            "maple",
            &[
                ("MAPLE_PROXY_LISTEN", "nowhere"),
                ("MAPLE_CORE_REQUEST_TIMEOUT_MS", "0"),
                ("MAPLE_SIM_LISTEN", "nowhere"),
                ("MAPLE_LOG_FORMAT", "xml"),
            ],
        ),
    ];
    for (binary, bad) in cases {
        let mut envs = bad.to_vec();
        envs.push(("DATABASE_URL", "sqlite::memory:"));
        let out = run(&workspace_binary(binary), &[], &envs, &cwd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{binary}: {stderr}");
        assert!(
            stderr.contains(&format!("{} invalid settings:", bad.len())),
            "{binary}: {stderr}"
        );
        for (var, value) in bad {
            assert_eq!(
                stderr.matches(&format!("{value:?} for {var}")).count(),
                1,
                "{binary}: {var} once in {stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(cwd);
}

/// Lines of `log` (JSON) that are access-log lines.
fn access_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "access")
        .collect()
}

/// Waits (bounded) for an access line of `log` that `matches`.
async fn access_line(log: &Path, matches: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        if let Some(line) = access_lines(log).into_iter().find(&matches) {
            return line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no such access line in {}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines a process logged before any request: JSON objects, not access lines.
fn start_up_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"))
        })
        .filter(|line| line["target"] != "access")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_quiet_start_line_then_an_access_line_per_request_with_the_callers_trace_id() {
    let dir = empty_dir("access");
    let (sim, proxy, admin, core) = (free_port(), free_port(), free_port(), free_port());
    let (sim_log, proxy_log, core_log) = (
        dir.join("sim.log"),
        dir.join("proxy.log"),
        dir.join("core.log"),
    );
    // The default log level (no RUST_LOG), JSON lines.
    let sim_process = Process::spawn_logged(
        "nexon-sim",
        &[("MAPLE_SIM_LISTEN", sim.to_string())],
        &sim_log,
        "",
    );
    let proxy_process = Process::spawn_logged(
        "maple-proxy",
        &[
            ("MAPLE_PROXY_LISTEN", proxy.to_string()),
            ("MAPLE_PROXY_ADMIN_LISTEN", admin.to_string()),
            ("MAPLE_PROXY_UPSTREAM", format!("http://{sim}")),
            ("MAPLE_PROXY_GRACE_PERIOD_S", "0".into()),
        ],
        &proxy_log,
        "",
    );
    let core_process = Process::spawn_logged(
        "maple-core",
        &[
            ("MAPLE_CORE_LISTEN", core.to_string()),
            ("MAPLE_PROXY_URL", format!("http://{proxy}")),
            (
                "DATABASE_URL",
                format!("sqlite://{}/maple.db", dir.display()),
            ),
        ],
        &core_log,
        "",
    );
    let http = reqwest::Client::new();
    for (log, addr) in [(&sim_log, sim), (&proxy_log, proxy), (&core_log, core)] {
        let started = Instant::now();
        while !std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(&addr.to_string())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} names no address",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lines = start_up_lines(log);
        assert_eq!(
            lines.len(),
            1,
            "one start-up line in {}: {lines:?}",
            log.display()
        );
        assert_eq!(lines[0]["level"], "INFO");
        assert!(
            lines[0]["listen"]
                .as_str()
                .is_some_and(|l| l == addr.to_string()),
            "{lines:?}"
        );
    }

    let trace = format!("{:032x}", rand::random::<u128>() | 1);
    let response = http
        .get(format!("http://{core}/v1/characters/AccessFan/equipment"))
        .header(
            "traceparent",
            format!("00-{trace}-{:016x}-01", rand::random::<u64>() | 1),
        )
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("core answers");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("body").len() as u64;

    let line = access_line(&core_log, |l| l["trace_id"] == trace.as_str()).await;
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/v1/characters/{name}/equipment");
    assert_eq!(line["status"], 200);
    assert_eq!(line["source"], "upstream");
    assert_eq!(line["bytes"], bytes, "{line}");
    // No trusted proxy is configured: the peer, not the header, is the client.
    assert_eq!(line["client"], "127.0.0.1");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );

    // The proxy's lines for the same request (the ocid lookup, then the equipment) carry the
    // same trace id.
    let line = access_line(&proxy_log, |l| {
        l["trace_id"] == trace.as_str() && l["route"] == maple_common::nexon::PATH_ITEM_EQUIPMENT
    })
    .await;
    assert_eq!(line["status"], 200);
    assert_eq!(line["cache"], "miss");
    assert_eq!(line["upstream_attempts"], 1);
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");

    // An unknown route is logged under its template, not its raw path.
    let response = http
        .get(format!(
            "http://{core}/v1/secret-path-{}",
            std::process::id()
        ))
        .send()
        .await
        .expect("core answers");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let line = access_line(&core_log, |l| l["status"] == 404).await;
    assert_eq!(line["route"], "unmatched");

    for process in [core_process, proxy_process, sim_process] {
        let name = process.name;
        assert!(process.stop("TERM").await.success(), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_can_be_turned_off() {
    let dir = empty_dir("access-off");
    let core = free_port();
    let log = dir.join("core.log");
    let process = Process::spawn_logged(
        "maple-core",
        &[
            ("MAPLE_CORE_LISTEN", core.to_string()),
            (
                "DATABASE_URL",
                format!("sqlite://{}/maple.db", dir.display()),
            ),
            ("MAPLE_ACCESS_LOG", "off".into()),
        ],
        &log,
        "",
    );
    let http = reqwest::Client::new();
    wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;
    for _ in 0..3 {
        let response = http
            .get(format!("http://{core}/health/live"))
            .send()
            .await
            .expect("core answers");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(process.stop("TERM").await.success());
    assert!(
        access_lines(&log).is_empty(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // A value that is neither on nor off is refused, naming the variable.
    let out = run(
        &workspace_binary("maple-core"),
        &[],
        &[("MAPLE_ACCESS_LOG", "loud")],
        &dir,
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAPLE_ACCESS_LOG"));
    let _ = std::fs::remove_dir_all(dir);
}
