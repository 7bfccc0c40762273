//! Starts the real pipeline for a test: simulator and core on port 0, the pingora proxy on a
//! free port (pingora binds by itself), and a private database (a SQLite file in a temporary
//! folder, or a fresh database on the machine's MariaDB).

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use maple_common::config::Env;
use maple_core::store::Store;
use maple_core::{App, CoreConfig};
use maple_proxy::{ProxyConfig, ProxyHandle};
use maple_sim::{SimConfig, Simulator};
use sqlx::Connection as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The machine's MariaDB (see the README); override with `MAPLE_TEST_MYSQL_URL`.
pub fn mysql_server_url() -> String {
    std::env::var("MAPLE_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A port nobody listens on right now.
pub fn free_port() -> SocketAddr {
    // Below the kernel's ephemeral range (32768–60999 on these machines), where outgoing
    // connections take their local ports: a port-0 pick comes from that range, and one of the
    // tests' own client connections could take it before the server binds it (seen once in
    // CI: an in-process proxy never came up). Here only another test's pick can collide.
    for _ in 0..1000 {
        let port: u16 = rand::random_range(20_000..32_768);
        if let Ok(listener) = StdListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().expect("local addr");
        }
    }
    let listener = StdListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which database core uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    MySql,
}

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: Db,
    pub proxy_read_timeout_ms: u64,
    /// The key the proxy sends; `None` sends the simulator's.
    pub proxy_api_key: Option<String>,
    /// More proxy settings (`MAPLE_PROXY_*`).
    pub proxy_env: Vec<(&'static str, String)>,
    /// More core settings (`MAPLE_CORE_*`, `REDIS_URL`).
    pub core_env: Vec<(&'static str, String)>,
}

impl Options {
    /// Proxy settings on top of the defaults.
    pub fn proxy(settings: &[(&'static str, &str)]) -> Self {
        Self {
            proxy_env: settings
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect(),
            ..Self::default()
        }
    }

    /// The proxy caches nothing: every request reaches the simulator (for tests of what
    /// happens on the way there).
    pub fn uncached() -> Self {
        Self::proxy(&UNCACHED)
    }
}

/// Proxy settings that turn its cache off.
pub const UNCACHED: [(&str, &str); 4] = [
    ("MAPLE_PROXY_ROUTES_ID_TTL_S", "0"),
    ("MAPLE_PROXY_ROUTES_BASIC_TTL_S", "0"),
    ("MAPLE_PROXY_ROUTES_ITEM_EQUIPMENT_TTL_S", "0"),
    ("MAPLE_PROXY_ROUTES_OTHER_TTL_S", "0"),
];

impl Default for Options {
    fn default() -> Self {
        Self {
            db: Db::Sqlite,
            proxy_read_timeout_ms: 5_000,
            proxy_api_key: None,
            proxy_env: Vec::new(),
            core_env: Vec::new(),
        }
    }
}

/// Simulator + proxy + core, all real, in this process.
pub struct Stack {
    pub sim: Simulator,
    pub sim_addr: SocketAddr,
    sim_stop: CancellationToken,
    sim_task: Option<JoinHandle<std::io::Result<()>>>,
    proxy: Option<ProxyHandle>,
    pub proxy_addr: SocketAddr,
    pub proxy_admin: SocketAddr,
    pub core_addr: SocketAddr,
    /// The first core instance's state.
    pub core_state: maple_core::AppState,
    core_stop: CancellationToken,
    core_task: Option<JoinHandle<std::io::Result<()>>>,
    pub database_url: String,
    /// The Redis key prefix of this stack's core instances (unique per stack).
    pub namespace: String,
    /// Where this stack's core instances write like backup files.
    pub backup_dir: PathBuf,
    mysql_database: Option<String>,
    temp_dir: Option<PathBuf>,
    pub http: reqwest::Client,
    core_env: Vec<(&'static str, String)>,
}

/// A core instance serving on its own port.
pub struct CoreInstance {
    pub addr: SocketAddr,
    /// The instance's state, for tests that drive its parts (likes sync, locks) directly.
    pub state: maple_core::AppState,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl CoreInstance {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("core task")
            .expect("core stopped cleanly");
    }
}

async fn spawn_core(env: Vec<(&'static str, String)>) -> CoreInstance {
    let config = CoreConfig::from_env(&Env::from_pairs(env)).expect("core config");
    let app = App::build(config).await.expect("core builds");
    let state = app.state().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind core");
    let addr = listener.local_addr().expect("core addr");
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.serve(listener, stop.clone().cancelled_owned()));
    CoreInstance {
        addr,
        state,
        stop,
        task,
    }
}

/// A character name no earlier run used (Redis outlives test runs): `prefix` plus letters
/// from the clock and a counter, within the 12-character limit.
pub fn fresh_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = nanos ^ (u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 64);
    let mut name = prefix.to_owned();
    while name.len() < 12 {
        name.push(char::from(b'a' + u8::try_from(n % 26).unwrap_or(0)));
        n /= 26;
    }
    name
}

/// The machine's Redis (see the README); override with `MAPLE_TEST_REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("MAPLE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The machine's Redis as a socket address (for a [`TcpFault`](maple_tests::tcp_fault::TcpFault)
/// in front of it).
pub fn redis_addr() -> std::net::SocketAddr {
    redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("redis host:port")
}

/// The value of one sample in a Prometheus text (`name{labels}` exactly as exported), zero
/// when absent.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let sim = Simulator::new(SimConfig::default()).expect("built-in templates");
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        let sim_addr = sim_listener.local_addr().expect("sim addr");
        let sim_stop = CancellationToken::new();
        let sim_task = tokio::spawn(
            sim.clone()
                .serve(sim_listener, sim_stop.clone().cancelled_owned()),
        );

        let proxy_addr = free_port();
        let proxy_admin = free_port();
        let mut proxy_env = vec![
            ("MAPLE_PROXY_LISTEN", proxy_addr.to_string()),
            ("MAPLE_PROXY_ADMIN_LISTEN", proxy_admin.to_string()),
            ("MAPLE_PROXY_UPSTREAM", format!("http://{sim_addr}")),
            (
                "MAPLE_PROXY_READ_TIMEOUT_MS",
                options.proxy_read_timeout_ms.to_string(),
            ),
            ("MAPLE_PROXY_CONNECT_TIMEOUT_MS", "500".to_owned()),
            ("MAPLE_PROXY_THREADS", "1".to_owned()),
            ("MAPLE_PROXY_GRACE_PERIOD_S", "0".to_owned()),
        ];
        proxy_env.extend(options.proxy_env.iter().cloned());
        if let Some(key) = &options.proxy_api_key {
            proxy_env.push(("NEXON_API_KEY", key.clone()));
        }
        let proxy_config =
            ProxyConfig::from_env(&Env::from_pairs(proxy_env)).expect("proxy config");
        let proxy = maple_proxy::spawn(proxy_config).expect("proxy starts");

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        wait_until_healthy(&http, &format!("http://{proxy_admin}/health")).await;

        let dir = std::env::temp_dir().join(unique("maple-e2e"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let namespace = unique("t");
        let backup_dir = dir.join("backup");
        let (database_url, mysql_database, temp_dir) = match options.db {
            Db::Sqlite => (
                format!("sqlite://{}/maple.db", dir.display()),
                None,
                Some(dir),
            ),
            Db::MySql => {
                let name = unique("maple_e2e");
                let mut conn =
                    sqlx::MySqlConnection::connect(&format!("{}/test", mysql_server_url()))
                        .await
                        .expect("MariaDB reachable (start it as the README says)");
                sqlx::query(&format!("CREATE DATABASE `{name}`"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                conn.close().await.ok();
                (
                    format!("{}/{name}", mysql_server_url()),
                    Some(name),
                    Some(dir),
                )
            }
        };
        let mut core_env = vec![
            ("MAPLE_PROXY_URL", format!("http://{proxy_addr}")),
            ("DATABASE_URL", database_url.clone()),
            ("MAPLE_CORE_UPSTREAM_TIMEOUT_MS", "5000".to_owned()),
            ("MAPLE_CORE_REQUEST_TIMEOUT_MS", "9000".to_owned()),
            ("MAPLE_CORE_SHUTDOWN_DEADLINE_MS", "5000".to_owned()),
            ("MAPLE_CORE_REDIS_NAMESPACE", namespace.clone()),
            ("MAPLE_CORE_BACKUP_DIR", backup_dir.display().to_string()),
            // Tests send many likes from one address; the limit has its own test.
            ("MAPLE_CORE_LIKES_RATE", "0".to_owned()),
            ("MAPLE_CORE_CLIENT_RATE", "0".to_owned()),
            // And look up many new names from it; the miss rate has its own tests.
            ("MAPLE_CORE_CLIENT_MISS_RATE", "0".to_owned()),
            // And use many idempotency keys: the daily allowance (10,000 a client and instance)
            // has its own test. At its default the chaos suite at full length ran into it (its
            // two instances refused every keyed like once they had taken 20,000).
            ("MAPLE_CORE_LIKES_KEYS_PER_CLIENT", "0".to_owned()),
            // And price many option sets at once from it; the pricing gate has its own test.
            ("MAPLE_CORE_PRICING_PER_CLIENT", "0".to_owned()),
            ("MAPLE_CORE_PRICING_QUEUE", "100000".to_owned()),
            ("MAPLE_CORE_PRICING_WAIT_MS", "8000".to_owned()),
        ];
        core_env.extend(options.core_env.iter().cloned());
        let core = spawn_core(core_env.clone()).await;
        let core_state = core.state.clone();
        let (core_addr, core_stop, core_task) = (core.addr, core.stop, core.task);

        Self {
            sim,
            sim_addr,
            sim_stop,
            sim_task: Some(sim_task),
            proxy: Some(proxy),
            proxy_addr,
            proxy_admin,
            core_addr,
            core_state,
            core_stop,
            core_task: Some(core_task),
            database_url,
            namespace,
            backup_dir,
            mysql_database,
            temp_dir,
            http,
            core_env,
        }
    }

    /// Another core instance on the same proxy and database, with the same settings except
    /// `changes` (a value of `""` removes the setting).
    pub async fn another_core(&self, changes: &[(&'static str, &str)]) -> CoreInstance {
        spawn_core(self.core_env_with(changes)).await
    }

    /// This stack's core settings with `changes` (a value of `""` removes the setting), e.g.
    /// to start `maple-core` as a process.
    pub fn core_env_with(&self, changes: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = self.core_env.clone();
        for (key, value) in changes {
            env.retain(|(k, _)| k != key);
            if !value.is_empty() {
                env.push((key, (*value).to_owned()));
            }
        }
        env
    }

    pub fn core(&self, path: &str) -> String {
        format!("http://{}{path}", self.core_addr)
    }

    pub fn proxy(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy_addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.core(path))
            .send()
            .await
            .expect("core answers")
    }

    /// `ocid`'s equipment body as the simulator (Nexon) sends it, asked directly with its key:
    /// its gzip bytes when `gzip` (and the simulator offers gzip), else the JSON.
    pub async fn nexon_equipment(&self, ocid: &str, gzip: bool) -> Vec<u8> {
        let mut request = self
            .http
            .get(format!(
                "http://{}{}",
                self.sim_addr,
                maple_common::nexon::PATH_ITEM_EQUIPMENT
            ))
            .query(&[("ocid", ocid)])
            .header(
                maple_common::nexon::API_KEY_HEADER,
                maple_sim::DEFAULT_API_KEY,
            );
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        let response = request.send().await.expect("simulator answers");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.expect("body").to_vec()
    }

    /// The proxy's `/maplestory/v1/id` lookup for `name`, sent straight to the proxy.
    pub async fn lookup(&self, name: &str) -> reqwest::Response {
        self.http
            .get(self.proxy(maple_common::nexon::PATH_ID))
            .query(&[("character_name", name)])
            .send()
            .await
            .expect("proxy answers")
    }

    /// The value of one sample in the proxy's metrics (`name{labels}` exactly as exported),
    /// zero when absent.
    pub async fn proxy_metric(&self, sample: &str) -> f64 {
        metric_value(&self.proxy_metrics().await, sample)
    }

    /// The proxy's `sample` once it reads `expected`, or its value after 5 s. The proxy counts
    /// a request in its logging phase, a moment after the client has the answer: a test that
    /// checks a count right after its requests waits for it to settle.
    pub async fn proxy_metric_settled(&self, sample: &str, expected: f64) -> f64 {
        let started = Instant::now();
        loop {
            let value = self.proxy_metric(sample).await;
            if value == expected || started.elapsed() > Duration::from_secs(5) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Core's Prometheus text.
    pub async fn core_metrics(&self) -> String {
        metrics_of(&self.http, &format!("http://{}", self.core_addr)).await
    }

    /// The proxy's Prometheus text.
    pub async fn proxy_metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.proxy_admin))
            .send()
            .await
            .expect("admin answers")
            .text()
            .await
            .expect("text")
    }

    /// A second connection to core's database, for checking what it stored.
    pub async fn store(&self) -> Store {
        Store::connect(&self.database_url, 2)
            .await
            .expect("database")
    }

    /// Stops the simulator (the upstream goes away; its port is closed).
    pub async fn stop_simulator(&mut self) {
        self.sim_stop.cancel();
        if let Some(task) = self.sim_task.take() {
            task.await.expect("sim task").expect("sim stopped cleanly");
        }
    }

    /// Begins core's graceful shutdown and returns its task.
    pub fn begin_core_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        self.core_stop.cancel();
        self.core_task.take().expect("core running")
    }

    pub async fn stop(mut self) {
        self.core_stop.cancel();
        if let Some(task) = self.core_task.take() {
            task.await
                .expect("core task")
                .expect("core stopped cleanly");
        }
        if let Some(proxy) = self.proxy.take() {
            tokio::task::spawn_blocking(move || proxy.stop())
                .await
                .expect("proxy stopped");
        }
        self.stop_simulator().await;
        if let Some(name) = self.mysql_database.take()
            && let Ok(mut conn) =
                sqlx::MySqlConnection::connect(&format!("{}/test", mysql_server_url())).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute(&mut conn)
                .await;
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Polls `url` until it answers 200 (bounded: panics after 15 s).
pub async fn wait_until_healthy(http: &reqwest::Client, url: &str) {
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{url} not healthy after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The bytes a gzip body inflates to (panics on anything that is not gzip).
pub fn inflate(gzip: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// A response header as text ("" when absent or not text).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The `error.code` of a JSON error response.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_owned()
}

/// A webhook receiver standing in for Discord: records every JSON body posted to it.
pub struct Webhook {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    stop: CancellationToken,
}

impl Webhook {
    pub async fn start() -> Self {
        use axum::routing::post;
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let sink = std::sync::Arc::clone(&sink);
                async move {
                    sink.lock().expect("webhook lock").push(body);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
        });
        Self {
            url,
            received,
            stop,
        }
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().expect("webhook lock").clone()
    }

    /// Waits until at least `n` alerts arrived (bounded: panics after 15 s).
    pub async fn wait_for(&self, n: usize) -> Vec<serde_json::Value> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{n} alerts expected, {} arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The Prometheus text of the instance at `base` (`http://host:port`).
pub async fn metrics_of(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}
