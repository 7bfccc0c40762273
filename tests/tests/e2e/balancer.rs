//! Two core instances behind a real load balancer: Debian's HAProxy running
//! `deploy/haproxy.cfg` (the file compose.yaml mounts), health-checking `/health/ready`.
//! Readiness follows what the service can do: with the database gone both instances stay in
//! rotation, cached characters are served and likes acknowledged; a draining instance leaves
//! rotation before it stops accepting, so no client sees the drain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::harness::{Options, Stack, free_port, fresh_name, redis_url};
use crate::private::{PrivateMariaDb, spawn_owned, wait_for_port};

/// HAProxy with `deploy/haproxy.cfg`, in front of two core instances; killed on drop.
struct Balancer {
    _child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
    http: reqwest::Client,
}

impl Balancer {
    async fn start(core_1: SocketAddr, core_2: SocketAddr) -> Self {
        let config = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(maple_tests::drill::HAPROXY_CFG);
        let (listen, admin) = (free_port(), free_port());
        let child = spawn_owned(
            Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&config)
                .env("MAPLE_LB_LISTEN", listen.to_string())
                .env("MAPLE_LB_ADMIN_LISTEN", admin.to_string())
                .env("MAPLE_CORE_1", core_1.to_string())
                .env("MAPLE_CORE_2", core_2.to_string()),
            "haproxy (scripts/services.sh installs it)",
        );
        wait_for_port(listen.port(), "haproxy", Duration::from_secs(10)).await;
        wait_for_port(admin.port(), "haproxy stats", Duration::from_secs(10)).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            _child: child,
            listen,
            admin,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// Each core server's state in the balancer's eyes (`UP`, `DOWN`, `UP 1/2`, …), from its
    /// CSV statistics.
    async fn servers(&self) -> HashMap<String, String> {
        let csv = self
            .http
            .get(format!("http://{}/stats;csv", self.admin))
            .send()
            .await
            .expect("stats")
            .text()
            .await
            .expect("csv");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("header")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
        let (proxy, server, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|fields| fields.get(proxy) == Some(&"cores"))
            .filter(|fields| fields[server].starts_with("core-"))
            .map(|fields| (fields[server].to_owned(), fields[status].to_owned()))
            .collect()
    }

    /// Waits (at most 20 s) until `server` is in state `status`.
    async fn until(&self, server: &str, status: &str) {
        let started = Instant::now();
        loop {
            let servers = self.servers().await;
            if servers.get(server).map(String::as_str) == Some(status) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{server} never {status}: {servers:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str) -> StatusCode {
        self.http
            .get(self.url(path))
            .send()
            .await
            .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
    }

    async fn like(&self, name: &str) -> StatusCode {
        self.http
            .post(self.url(&format!("/v1/characters/{name}/likes")))
            .send()
            .await
            .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_haproxy_a_database_outage_keeps_both_in_rotation_and_a_drain_is_unseen() {
    let mut db = PrivateMariaDb::install().await;
    let database_url = db.database_url().await;
    let stack = Stack::start_with(Options {
        core_env: vec![
            ("DATABASE_URL", database_url),
            ("REDIS_URL", redis_url()),
            ("MAPLE_CORE_DRAIN_DELAY_MS", "3000".to_owned()),
            ("MAPLE_CORE_SHUTDOWN_DEADLINE_MS", "8000".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let second = stack.another_core(&[]).await;
    let lb = Balancer::start(stack.core_addr, second.addr).await;
    lb.until("core-1", "UP").await;
    lb.until("core-2", "UP").await;

    // Characters seen through the balancer (so both instances' tiers hold some).
    let names: Vec<String> = (0..6).map(|_| fresh_name("lb")).collect();
    for name in &names {
        let path = format!("/v1/characters/{name}/equipment");
        assert_eq!(lb.get(&path).await, StatusCode::OK);
    }

    // The database dies. Readiness stays 200 (degraded), so both instances stay in rotation
    // through several check intervals (1 s each, out after 2 failures), serving what they
    // hold and acknowledging likes.
    db.kill().await;
    let mut acknowledged = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let servers = lb.servers().await;
        assert_eq!(
            servers.get("core-1").map(String::as_str),
            Some("UP"),
            "{servers:?}"
        );
        assert_eq!(
            servers.get("core-2").map(String::as_str),
            Some("UP"),
            "{servers:?}"
        );
        for name in &names {
            let path = format!("/v1/characters/{name}/equipment");
            assert_eq!(
                lb.get(&path).await,
                StatusCode::OK,
                "{name} while the database is down"
            );
            assert_eq!(lb.like(name).await, StatusCode::ACCEPTED, "like of {name}");
            acknowledged += 1;
        }
    }
    assert_eq!(acknowledged, 30);
    let ready: serde_json::Value = stack.get("/health/ready").await.json().await.expect("JSON");
    assert_eq!(ready["status"], "degraded");
    assert!(
        crate::harness::metric_value(
            &stack.core_metrics().await,
            "maple_core_dependency_up{dependency=\"database\"}"
        ) == 0.0
    );
    db.start().await;

    // One instance drains: readiness turns 503 while it keeps accepting for the drain delay,
    // the balancer takes it out, and clients under steady load see no failure.
    let draining = tokio::spawn(second.stop());
    let mut statuses: HashMap<StatusCode, usize> = HashMap::new();
    let mut out_of_rotation = false;
    while !draining.is_finished() {
        for name in &names {
            let path = format!("/v1/characters/{name}/equipment");
            *statuses.entry(lb.get(&path).await).or_default() += 1;
        }
        out_of_rotation |= lb.servers().await.get("core-2").map(String::as_str) == Some("DOWN");
    }
    draining.await.expect("drained");
    assert!(
        out_of_rotation,
        "core-2 never left rotation while it drained"
    );
    lb.until("core-2", "DOWN").await;
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![StatusCode::OK],
        "answers through the balancer during the drain: {statuses:?}"
    );
    // The other instance carries on alone.
    assert_eq!(
        lb.servers().await.get("core-1").map(String::as_str),
        Some("UP")
    );
    for name in &names {
        assert_eq!(lb.like(name).await, StatusCode::ACCEPTED);
    }
    stack.stop().await;
}
