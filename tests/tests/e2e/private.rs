//! Private servers from the machine's binaries (redis-server, mariadbd) that a test may kill,
//! partition or restart — never the machine's shared instances.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::harness::free_port;

/// Waits until a server listens on `port` (bounded: panics after `patience`). Asynchronous, so
/// the runtime it waits on goes on serving whatever else the test runs.
pub async fn wait_for_port(port: u16, server: &str, patience: Duration) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < patience,
            "{server} never came up on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `command` as a child the test owns: killed if the test drops it (a failed assertion
/// included), reaped by tokio.
pub fn spawn_owned(command: &mut Command, what: &str) -> Child {
    command
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} runs: {e}"))
}

/// `kill -9` and the exit reaped.
async fn kill_child(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill().await;
    }
}

/// A private Redis the test may kill (never the machine's shared one).
pub struct PrivateRedis {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Keeps nothing on disk (as the machine's Redis).
    pub async fn start(port: u16) -> Self {
        Self::spawn(port, &["--save", "", "--appendonly", "no"]).await
    }

    /// Appends every write to a file in `dir` and syncs it before answering (the
    /// configuration that loses nothing acknowledged when Redis is killed), so a restart on
    /// the same `dir` has everything back.
    pub async fn start_persistent(port: u16, dir: &std::path::Path) -> Self {
        std::fs::create_dir_all(dir).expect("redis dir");
        let dir = dir.display().to_string();
        Self::spawn(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                &dir,
            ],
        )
        .await
    }

    /// A replica of the Redis on `primary` (no disk).
    pub async fn start_replica(port: u16, primary: u16) -> Self {
        Self::spawn(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "no",
                "--replicaof",
                "127.0.0.1",
                &primary.to_string(),
            ],
        )
        .await
    }

    /// A Redis node of a replicated set, started from its own configuration file (no data on
    /// disk, as the machine's Redis): a primary, or a replica of the Redis on `replica_of`.
    /// Sentinel rewrites the file when it changes the node's role (`CONFIG REWRITE`), so a
    /// restart comes back in the role the node last had — as a deployed Redis does.
    pub async fn start_node(port: u16, replica_of: Option<u16>) -> Self {
        let own = Self::folder(port);
        let conf = own.join("redis.conf");
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nappendonly no\n",
            own.display()
        );
        if let Some(primary) = replica_of {
            text.push_str(&format!("replicaof 127.0.0.1 {primary}\n"));
        }
        std::fs::write(&conf, text).expect("redis conf");
        let mut node = Self {
            port,
            args: vec![conf.display().to_string()],
            child: None,
        };
        node.restart().await;
        node
    }

    /// A Sentinel watching the primary on `primary` as `maple` (quorum 2, down after 1 s).
    pub async fn start_sentinel(port: u16, primary: u16, dir: &std::path::Path) -> Self {
        std::fs::create_dir_all(dir).expect("sentinel dir");
        let conf = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor maple 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds maple 1000\n\
                 sentinel failover-timeout maple 5000\nsentinel parallel-syncs maple 1\n"
            ),
        )
        .expect("sentinel conf");
        let mut sentinel = Self {
            port,
            args: vec![conf.display().to_string(), "--sentinel".to_owned()],
            child: None,
        };
        let child = spawn_owned(
            Command::new("redis-server")
                .current_dir(dir)
                .args(&sentinel.args),
            "redis-server --sentinel",
        );
        sentinel.child = Some(child);
        wait_for_port(port, "sentinel", Duration::from_secs(10)).await;
        sentinel
    }

    /// `count` Sentinels watching the primary on `primary`, started together.
    pub async fn start_sentinels(count: usize, primary: u16, dir: &std::path::Path) -> Vec<Self> {
        let starting = (0..count).map(|_| Self::start_sentinel(free_port().port(), primary, dir));
        futures::future::join_all(starting).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(port: u16, args: &[&str]) -> Self {
        let mut redis = Self {
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    /// This instance's own working folder. Its own: a replica writes the RDB it receives to
    /// `dump.rdb` in its working folder, and a Redis loads that file when it starts; instances
    /// sharing one folder (or an old run's file) would start with each other's data.
    fn folder(port: u16) -> std::path::PathBuf {
        let own = std::env::temp_dir().join(format!("maple-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&own).expect("redis folder");
        own
    }

    /// Starts it again on the same port with the same settings (a configuration file, if it
    /// has one, comes first, as redis-server requires).
    pub async fn restart(&mut self) {
        let child = spawn_owned(
            Command::new("redis-server")
                .current_dir(Self::folder(self.port))
                .args(&self.args)
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"]),
            "redis-server",
        );
        self.child = Some(child);
        wait_for_port(self.port, "redis-server", Duration::from_secs(10)).await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether this Redis has a replica online (`INFO replication`).
    pub async fn has_replica_online(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        let info: Result<String, _> = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await;
        info.is_ok_and(|info| info.contains("state=online"))
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        kill_child(self.child.take()).await;
    }
}

/// The primary's port as the Sentinel on `sentinel` names it (`maple`), if it answers.
pub async fn sentinel_primary(sentinel: u16) -> Option<u16> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel}")).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let answer: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("maple")
        .query_async(&mut connection)
        .await
        .ok()?;
    answer.and_then(|(_, port)| port.parse().ok())
}

/// A private MariaDB from the machine's binaries, in a temporary data folder, that the test may
/// kill and restart (never the machine's shared server).
pub struct PrivateMariaDb {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateMariaDb {
    pub async fn install() -> Self {
        let port = free_port().port();
        let dir = std::env::temp_dir().join(format!("maple-mariadb-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let status = spawn_owned(
            Command::new("mariadb-install-db").args([
                "--no-defaults",
                &format!("--datadir={}", dir.join("data").display()),
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]),
            "mariadb-install-db",
        )
        .wait()
        .await
        .expect("mariadb-install-db runs");
        assert!(status.success(), "mariadb-install-db failed");
        let mut db = Self {
            dir,
            port,
            child: None,
        };
        db.start().await;
        db
    }

    pub async fn start(&mut self) {
        let child = spawn_owned(
            Command::new("mariadbd").args([
                "--no-defaults".to_owned(),
                format!("--datadir={}", self.dir.join("data").display()),
                format!("--port={}", self.port),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--socket={}", self.dir.join("sock").display()),
                "--user=root".to_owned(),
                "--skip-log-bin".to_owned(),
                "--innodb-buffer-pool-size=32M".to_owned(),
            ]),
            "mariadbd",
        );
        self.child = Some(child);
        wait_for_port(self.port, "mariadbd", Duration::from_secs(30)).await;
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        kill_child(self.child.take()).await;
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub async fn database_url(&self) -> String {
        use sqlx::Connection as _;
        let server = format!("mysql://root@127.0.0.1:{}", self.port);
        let mut conn = sqlx::MySqlConnection::connect(&format!("{server}/mysql"))
            .await
            .expect("private MariaDB answers");
        sqlx::query("CREATE DATABASE IF NOT EXISTS maple")
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        format!("{server}/maple")
    }
}

impl Drop for PrivateMariaDb {
    /// The server is killed as its child is dropped (`kill_on_drop`).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
