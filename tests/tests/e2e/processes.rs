//! The shipped binaries as processes: `nexon-sim`, `maple-proxy`, `maple-core` wired together,
//! and the `maple` launcher; each must serve, then exit 0 on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::harness::{free_port, wait_until_healthy};

/// A binary of this workspace, built beside the test binary by `cargo test/nextest --workspace`.
pub fn workspace_binary(name: &str) -> PathBuf {
    // This crate's own binary tells where cargo puts them all.
    let own = PathBuf::from(env!("CARGO_BIN_EXE_load-gen"));
    let path = own.with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with --workspace so every binary is built",
        path.display()
    );
    path
}

pub struct Process {
    pub name: &'static str,
    child: Child,
}

impl Process {
    pub fn spawn(name: &'static str, envs: &[(&str, String)]) -> Self {
        Self::spawn_with(name, envs, Stdio::null(), Stdio::inherit(), "warn")
    }

    /// Like [`Self::spawn`], with everything the process prints (both streams, at `level`)
    /// appended to `log`.
    pub fn spawn_logged(
        name: &'static str,
        envs: &[(&str, String)],
        log: &std::path::Path,
        level: &str,
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let second = file.try_clone().expect("log file");
        Self::spawn_with(name, envs, Stdio::from(file), Stdio::from(second), level)
    }

    fn spawn_with(
        name: &'static str,
        envs: &[(&str, String)],
        stdout: Stdio,
        stderr: Stdio,
        level: &str,
    ) -> Self {
        let mut command = Command::new(workspace_binary(name));
        command
            .kill_on_drop(true)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // An empty level: the binary's own default (RUST_LOG unset).
        if !level.is_empty() {
            command.env("RUST_LOG", level);
        }
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        Self { name, child }
    }

    /// Sends `signal` (`"TERM"`, `"INT"`, `"KILL"`).
    pub fn signal(&self, signal: &str) {
        send(&self.child, signal, self.name);
    }

    /// Sends `signal` and waits (bounded) for the exit status.
    pub async fn stop(mut self, signal: &str) -> ExitStatus {
        self.signal(signal);
        let what = format!("{} after SIG{signal}", self.name);
        wait_bounded(&mut self.child, Duration::from_secs(30), &what).await
    }
}

/// Sends `signal` (`"TERM"`, `"INT"`, `"KILL"`) to `child`, named `what` in a failure.
pub fn send(child: &Child, signal: &str, what: &str) {
    let signal: Signal = format!("SIG{signal}").parse().expect("a signal's name");
    let pid = child.id().expect("the child has not been reaped yet");
    let pid = Pid::from_raw(i32::try_from(pid).expect("a pid"));
    kill(pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {what}: {e}"));
}

/// Waits for `child` to exit; past `limit` it is killed and the test fails, naming `what`.
/// Asynchronous: the runtime goes on serving whatever else the test runs (a simulator, a
/// fault proxy) meanwhile.
pub async fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.expect("wait"),
        Err(_) => {
            let _ = child.kill().await;
            panic!("{what} did not exit within {limit:?}");
        }
    }
}

pub fn temp_sqlite() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "maple-proc-{}-{}",
        std::process::id(),
        free_port().port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/maple.db", dir.display());
    (dir, url)
}

async fn fetch_equipment(http: &reqwest::Client, core: SocketAddr) {
    let response = http
        .get(format!("http://{core}/v1/characters/ProcessFan/equipment"))
        .send()
        .await
        .expect("core answers");
    let status = response.status();
    let body = response.bytes().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(body.len() > 300_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_three_binaries_serve_together_and_stop_cleanly_on_sigterm() {
    let (sim, proxy, admin, core) = (free_port(), free_port(), free_port(), free_port());
    let (dir, database_url) = temp_sqlite();
    let sim_process = Process::spawn("nexon-sim", &[("MAPLE_SIM_LISTEN", sim.to_string())]);
    let proxy_process = Process::spawn(
        "maple-proxy",
        &[
            ("MAPLE_PROXY_LISTEN", proxy.to_string()),
            ("MAPLE_PROXY_ADMIN_LISTEN", admin.to_string()),
            ("MAPLE_PROXY_UPSTREAM", format!("http://{sim}")),
            ("MAPLE_PROXY_GRACE_PERIOD_S", "0".into()),
        ],
    );
    let core_process = Process::spawn(
        "maple-core",
        &[
            ("MAPLE_CORE_LISTEN", core.to_string()),
            ("MAPLE_PROXY_URL", format!("http://{proxy}")),
            ("DATABASE_URL", database_url),
        ],
    );
    let http = reqwest::Client::new();
    wait_until_healthy(&http, &format!("http://{sim}/-/stats")).await;
    wait_until_healthy(&http, &format!("http://{admin}/health")).await;
    wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;
    fetch_equipment(&http, core).await;

    for process in [core_process, proxy_process, sim_process] {
        let name = process.name;
        let status = process.stop("TERM").await;
        assert!(status.success(), "{name} exited with {status}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_exits_64_naming_the_variable() {
    for (binary, var, value) in [
        ("maple-core", "DATABASE_URL", "postgres://nope"),
        ("maple-proxy", "MAPLE_PROXY_READ_TIMEOUT_MS", "soon"),
        ("maple", "MAPLE_CORE_LISTEN", "not-an-address"),
    ] {
        let output = Command::new(workspace_binary(binary))
            .env_clear()
            .env(var, value)
            .output()
            .await
            .expect("runs");
        assert_eq!(output.status.code(), Some(64), "{binary}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{binary}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_launcher_runs_everything_and_stops_on_ctrl_c() {
    let (sim, proxy, admin, core) = (free_port(), free_port(), free_port(), free_port());
    let (dir, database_url) = temp_sqlite();
    let launcher = Process::spawn(
        "maple",
        &[
            ("MAPLE_SIM_LISTEN", sim.to_string()),
            ("MAPLE_PROXY_LISTEN", proxy.to_string()),
            ("MAPLE_PROXY_ADMIN_LISTEN", admin.to_string()),
            ("MAPLE_PROXY_UPSTREAM", format!("http://{sim}")),
            ("MAPLE_CORE_LISTEN", core.to_string()),
            ("MAPLE_PROXY_URL", format!("http://{proxy}")),
            ("DATABASE_URL", database_url),
        ],
    );
    let http = reqwest::Client::new();
    wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;
    fetch_equipment(&http, core).await;
    let status = launcher.stop("INT").await;
    assert!(status.success(), "maple exited with {status}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_reads_its_yaml_file_and_drains_in_flight_requests_on_sigterm() {
    let (sim, proxy, admin) = (free_port(), free_port(), free_port());
    let (dir, _) = temp_sqlite();
    let config = dir.join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {proxy}\nadmin_listen: {admin}\nupstream: http://{sim}\n\
             grace_period_s: 3\nroutes:\n  id:\n    ttl_s: 0\n    deadline_ms: 5000\n"
        ),
    )
    .expect("write config");
    let sim_process = Process::spawn("nexon-sim", &[("MAPLE_SIM_LISTEN", sim.to_string())]);
    let proxy_process = Process::spawn(
        "maple-proxy",
        &[("MAPLE_PROXY_CONFIG", config.display().to_string())],
    );
    let http = reqwest::Client::new();
    wait_until_healthy(&http, &format!("http://{sim}/-/stats")).await;
    wait_until_healthy(&http, &format!("http://{admin}/health")).await;

    // A slow upstream: the request is still in flight when SIGTERM arrives.
    let fault = http
        .post(format!("http://{sim}/-/faults"))
        .json(&serde_json::json!({ "latency_ms": 1500 }))
        .send()
        .await
        .expect("sim control");
    assert!(fault.status().is_success());
    let in_flight = tokio::spawn({
        let http = http.clone();
        async move {
            http.get(format!(
                "http://{proxy}/maplestory/v1/id?character_name=drainme"
            ))
            .send()
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stopping = tokio::spawn(proxy_process.stop("TERM"));
    let response = in_flight.await.expect("task").expect("answered, not cut");
    assert_eq!(response.status(), StatusCode::OK, "drained");
    let status = stopping.await.expect("stopped");
    assert!(status.success(), "maple-proxy exited with {status}");
    assert!(sim_process.stop("TERM").await.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_proxy_config_file_exits_64_naming_the_key() {
    let (dir, _) = temp_sqlite();
    let config = dir.join("proxy.yaml");
    for (text, expected) in [
        ("breaker:\n  windw: 5\n", "breaker.windw"),
        ("retry:\n  max_attempts: 99\n", "retry.max_attempts"),
        ("listen: [\n", "MAPLE_PROXY_CONFIG"),
    ] {
        std::fs::write(&config, text).expect("write config");
        let output = Command::new(workspace_binary("maple-proxy"))
            .env_clear()
            .env("MAPLE_PROXY_CONFIG", &config)
            .output()
            .await
            .expect("runs");
        assert_eq!(output.status.code(), Some(64), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
    let missing = Command::new(workspace_binary("maple-proxy"))
        .env_clear()
        .env("MAPLE_PROXY_CONFIG", dir.join("absent.yaml"))
        .output()
        .await
        .expect("runs");
    assert_eq!(missing.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(dir);
}
