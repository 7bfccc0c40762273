//! A real Prometheus (Debian's package; `scripts/services.sh` installs it) scraping a running
//! distributed stack — simulator, proxy, core with Redis and MariaDB — with
//! `observability/alerts.yml`: every rule evaluates without error, a fault injected through the
//! simulator fires its alert (the breaker opened by a failing upstream fires
//! `MapleProxyBreakerOpen`), and after a short load every query of every Grafana dashboard
//! returns a series (no panel reads nothing until a first event). The rules' `for:` are
//! shortened in the test's copy; nothing else of the rules changes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use maple_common::nexon::PATH_ID;
use maple_sim::faults::FaultSpec;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::harness::{Options, Stack, free_port};

/// A private Prometheus with its own data folder, killed on drop.
struct Prometheus {
    /// Killed when dropped (`kill_on_drop`).
    _child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The alert rules with every `for:` shortened to `for_`.
fn rules_with_short_for(for_: &str) -> String {
    let text = std::fs::read_to_string(repository().join("observability/alerts.yml"))
        .expect("observability/alerts.yml");
    text.lines()
        .map(|line| match line.trim_start().strip_prefix("for:") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}for: {for_}")
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Prometheus {
    async fn start(proxy_admin: std::net::SocketAddr, core: std::net::SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "maple-prometheus-{}-{}",
            std::process::id(),
            free_port().port()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("alerts.yml"), rules_with_short_for("1s")).expect("rules");
        // The shipped scrape configuration, pointed at this stack and made fast.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - alerts.yml\n\
             scrape_configs:\n\
             \x20 - job_name: maple-proxy\n    static_configs:\n      - targets: [\"{proxy_admin}\"]\n\
             \x20 - job_name: maple-core\n    static_configs:\n      - targets: [\"{core}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml"))
            .output()
            .await
            .expect("promtool runs (scripts/services.sh installs prometheus)");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let listen = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .kill_on_drop(true)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts (scripts/services.sh installs it)");
        Self {
            _child: child,
            base: format!("http://{listen}"),
            dir,
        }
    }

    async fn api(&self, http: &reqwest::Client, path: &str) -> Option<Value> {
        let response = http.get(format!("{}{path}", self.base)).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// Polls `path` until `done` holds for its data (bounded).
    async fn wait_for(
        &self,
        http: &reqwest::Client,
        path: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            if let Some(data) = self.api(http, path).await
                && done(&data)
            {
                return data;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what}: {:?}\n{}",
                self.api(http, path).await,
                std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn rules(data: &Value) -> Vec<&Value> {
    data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .collect()
}

fn firing(data: &Value, alert: &str) -> bool {
    data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["labels"]["alertname"] == alert && a["state"] == "firing")
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_evaluates_every_rule_and_a_failing_upstream_fires_the_breaker_alert() {
    // The distributed shape (Redis, MariaDB), so every dashboard's metrics have their source.
    let stack = Stack::start_with(Options {
        db: crate::harness::Db::MySql,
        proxy_env: vec![
            ("MAPLE_PROXY_BREAKER_OPEN_MS", "60000".to_owned()),
            ("MAPLE_PROXY_RETRY_MAX_ATTEMPTS", "1".to_owned()),
        ],
        core_env: vec![
            ("REDIS_URL", crate::harness::redis_url()),
            ("MAPLE_CORE_LIKES_SYNC_MS", "200".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let prometheus = Prometheus::start(stack.proxy_admin, stack.core_addr).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    // Some traffic, so the rules have series to work on.
    assert!(
        stack
            .get("/v1/characters/PromFan/equipment")
            .await
            .status()
            .is_success()
    );

    prometheus
        .wait_for(&http, "/api/v1/targets", "both targets up", |data| {
            let targets = data["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            targets.len() == 2 && targets.iter().all(|t| t["health"] == "up")
        })
        .await;
    let evaluated = prometheus
        .wait_for(&http, "/api/v1/rules", "every rule evaluated", |data| {
            let rules = rules(data);
            !rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown")
        })
        .await;
    let rules = rules(&evaluated);
    assert_eq!(rules.len(), 17, "every rule of alerts.yml is loaded");
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "{} does not evaluate: {}",
            rule["name"], rule["lastError"]
        );
    }
    let alerts = prometheus
        .api(&http, "/api/v1/alerts")
        .await
        .expect("alerts");
    assert!(!firing(&alerts, "MapleProxyBreakerOpen"), "{alerts}");

    // The fault: Nexon answers 500; five failed calls open the breaker.
    stack
        .sim
        .faults()
        .set(FaultSpec::status(500))
        .await
        .expect("valid fault");
    for i in 0..5 {
        let response = stack
            .http
            .get(stack.proxy(PATH_ID))
            .query(&[("character_name", format!("promtrip{i}"))])
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    }
    prometheus
        .wait_for(
            &http,
            "/api/v1/alerts",
            "MapleProxyBreakerOpen fires",
            |data| firing(data, "MapleProxyBreakerOpen"),
        )
        .await;
    stack.sim.faults().clear().await;

    // A short load on every kind of route, then every query of every dashboard answers with
    // at least one series: no panel reads nothing because its metric appears only after a
    // first event.
    for i in 0..3 {
        let name = format!("PromLoad{i}");
        for path in [
            format!("/v1/characters/{name}/equipment"),
            format!("/v1/characters/{name}/expectation"),
            format!("/v1/characters/{name}/likes"),
        ] {
            stack.get(&path).await;
        }
        stack
            .http
            .post(stack.core(&format!("/v1/characters/{name}/likes")))
            .send()
            .await
            .expect("like answered");
    }
    let mut empty = dashboard_queries();
    let started = Instant::now();
    while !empty.is_empty() && started.elapsed() < Duration::from_secs(30) {
        let mut still = Vec::new();
        for (dashboard, expr) in empty {
            let query = format!(
                "/api/v1/query?query={}",
                url_encode(&expr.replace("$__rate_interval", "1m"))
            );
            let answered = prometheus.api(&http, &query).await;
            if answered.is_none_or(|data| data["result"].as_array().is_none_or(Vec::is_empty)) {
                still.push((dashboard, expr));
            }
        }
        empty = still;
        if !empty.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries with no series after a short load with one fault:\n{}",
        empty
            .iter()
            .map(|(dashboard, expr)| format!("  {dashboard}: {expr}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(prometheus);
    stack.stop().await;
}

/// Every `expr` of every dashboard under `observability/grafana/dashboards/`, with its file.
fn dashboard_queries() -> Vec<(String, String)> {
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    found.push(expr.to_owned());
                }
                map.values().for_each(|v| walk(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let dir = repository().join("observability/grafana/dashboards");
    let mut queries = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let dashboard: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("dashboard")).expect("JSON");
        let mut found = Vec::new();
        walk(&dashboard, &mut found);
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        queries.extend(found.into_iter().map(|expr| (name.clone(), expr)));
    }
    assert!(
        queries.len() > 40,
        "the dashboards' queries: {}",
        queries.len()
    );
    queries
}

/// Percent-encodes a query parameter's value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
