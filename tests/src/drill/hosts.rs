//! The drill's hosts: what each runs, from which local binary, with which settings, and how
//! to tell it is up.
//!
//! Every server on a host listens on the host's loopback; the host's `link-relay` accepts on
//! the host's address and passes the bytes on after the link's delay. So every connection that
//! crosses the network crosses one delayed link, in front of the server it reaches, and killing
//! a host's processes (relay included) is the host gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use super::Options;
use super::net::{Network, SUBNET};

/// What a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Where the users (and the drill's own checks) come from.
    Client,
    /// HAProxy with `deploy/haproxy.cfg`: the cores for the users, the proxies for the cores.
    Balancer,
    Core,
    Proxy,
    /// A Redis; `primary` is the one the others replicate at the start.
    Redis {
        primary: bool,
    },
    Sentinel,
    Database,
    /// The simulator, as Nexon.
    Nexon,
}

/// A host of the plan: its name (`core-1`), the last octet of its address, its role.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub octet: u8,
    pub role: Role,
}

impl Host {
    pub fn ip(&self) -> String {
        format!("{SUBNET}.{}", self.octet)
    }

    /// `(public port on the host's address, the server's port on its loopback)`.
    pub fn ports(&self) -> &'static [(u16, u16)] {
        match self.role {
            Role::Client => &[],
            Role::Balancer => &[(8080, 18080), (8404, 18404), (8081, 18081)],
            Role::Core => &[(8080, 18080)],
            Role::Proxy => &[(8081, 18081), (9081, 19081)],
            Role::Redis { .. } => &[(6379, 16379)],
            Role::Sentinel => &[(26379, 36379)],
            Role::Database => &[(3306, 13306)],
            Role::Nexon => &[(8090, 18090)],
        }
    }

    pub fn addr(&self, public: u16) -> String {
        format!("{}:{public}", self.ip())
    }
}

/// The running processes of each host, and where their logs and data go.
#[derive(Debug)]
pub struct Hosts {
    pub net: Network,
    pub hosts: Vec<Host>,
    /// Settings given to every core started from now on, over the drill's own.
    pub core_env: Vec<(String, String)>,
    options: Options,
    children: BTreeMap<String, Vec<Child>>,
}

impl Hosts {
    pub fn new(net: Network, hosts: Vec<Host>, options: Options) -> Self {
        Self {
            net,
            hosts,
            core_env: Vec::new(),
            options,
            children: BTreeMap::new(),
        }
    }

    pub fn get(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in the plan"))
    }

    fn of(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    fn first(&self, role: Role) -> &Host {
        self.of(role)
            .next()
            .unwrap_or_else(|| panic!("the plan has no {role:?}"))
    }

    fn dir(&self, host: &str) -> PathBuf {
        self.options.run_dir.join(host)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.options.bin_dir.join(name)
    }

    /// The relay's control file for the host (`DELAY_US JITTER_US`).
    pub fn control_file(&self, host: &str) -> PathBuf {
        self.dir(host).join("link")
    }

    /// Sets the delay of the host's link (both ways) from now on.
    pub fn set_delay(&self, host: &str, delay_us: u64, jitter_us: u64) -> anyhow::Result<()> {
        // Written aside, then renamed: the relay never reads a half-written file.
        let file = self.control_file(host);
        let aside = file.with_extension("new");
        std::fs::write(&aside, format!("{delay_us} {jitter_us}\n"))
            .context("writing the link's control file")?;
        std::fs::rename(&aside, &file).context("renaming the link's control file")
    }

    /// One-time preparation: folders, and the database's data directory. The run folder must
    /// be new or empty: an earlier run's database, Redis files or Sentinel state would be
    /// taken for this one's.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let run = &self.options.run_dir;
        if run.exists() && std::fs::read_dir(run)?.next().is_some() {
            bail!(
                "the run folder {} is not empty: give a new one (an earlier run's data would \
                 be taken for this run's)",
                run.display()
            );
        }
        for host in &self.hosts {
            std::fs::create_dir_all(self.dir(&host.name))?;
        }
        let db = self.first(Role::Database);
        let data = self.dir(&db.name).join("data");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running mariadb-install-db")?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Starts what the host runs (servers first, then its relay) and waits until it answers
    /// through its link.
    pub async fn start(&mut self, name: &str) -> anyhow::Result<()> {
        let host = self.get(name).clone();
        for (label, program, args, envs) in self.commands(&host)? {
            let child = self.spawn(&host, label, &program, &args, &envs)?;
            self.children
                .entry(host.name.clone())
                .or_default()
                .push(child);
        }
        if !host.ports().is_empty() {
            let relay = self.relay_command(&host);
            let child = self.spawn(&host, "relay", &relay.0, &relay.1, &[])?;
            self.children
                .entry(host.name.clone())
                .or_default()
                .push(child);
        }
        self.wait_up(&host, Duration::from_secs(90)).await?;
        if host.role == Role::Database {
            self.create_database(&host).await?;
        }
        Ok(())
    }

    /// `kill -9` of everything the host runs: the host is gone (its address still answers
    /// with a refusal, as a host whose services crashed does; a silent host is a partition).
    pub async fn kill(&mut self, name: &str) {
        self.net.kill_host(name).await;
        for mut child in self.children.remove(name).unwrap_or_default() {
            let _ = child.kill().await;
        }
    }

    /// Stops every host's processes.
    pub async fn kill_all(&mut self) {
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            self.kill(&name).await;
        }
    }

    /// The pid of the host's first process (its server), for CPU readings.
    pub fn server_pid(&self, name: &str) -> Option<u32> {
        self.children.get(name)?.first()?.id()
    }

    /// The pid of the host's link relay.
    pub fn relay_pid(&self, name: &str) -> Option<u32> {
        self.children.get(name)?.last()?.id()
    }

    /// Whether the host's processes run.
    pub fn is_running(&self, name: &str) -> bool {
        self.children.contains_key(name)
    }

    /// Every host's hosts of `role`.
    pub fn names(&self, role: Role) -> Vec<String> {
        self.of(role).map(|h| h.name.clone()).collect()
    }

    fn spawn(
        &self,
        host: &Host,
        label: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Child> {
        let log_path = self.dir(&host.name).join(format!("{label}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let err = log.try_clone()?;
        Command::new("ip")
            .args(["netns", "exec", &self.net.namespace(&host.name)])
            .arg(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir(&host.name))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} on {}", program.display(), host.name))
    }

    fn relay_command(&self, host: &Host) -> (PathBuf, Vec<String>) {
        let mut args = Vec::new();
        for (public, private) in host.ports() {
            args.push("--forward".to_owned());
            args.push(format!("{}:{public}=127.0.0.1:{private}", host.ip()));
        }
        args.extend([
            "--delay-us".to_owned(),
            self.options.delay_us.to_string(),
            "--jitter-us".to_owned(),
            self.options.jitter_us.to_string(),
            "--control".to_owned(),
            self.control_file(&host.name).display().to_string(),
        ]);
        (self.bin("link-relay"), args)
    }

    /// `(label, program, arguments, environment)` of each server the host runs.
    #[allow(clippy::type_complexity, reason = "a list of commands, read once")]
    fn commands(
        &self,
        host: &Host,
    ) -> anyhow::Result<Vec<(&'static str, PathBuf, Vec<String>, Vec<(String, String)>)>> {
        let env = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let dir = self.dir(&host.name);
        Ok(match host.role {
            Role::Client => Vec::new(),
            Role::Nexon => vec![(
                "nexon-sim",
                self.bin("nexon-sim"),
                Vec::new(),
                env(&[
                    ("MAPLE_SIM_LISTEN", "127.0.0.1:18090".into()),
                    ("RUST_LOG", "warn".into()),
                ]),
            )],
            Role::Proxy => vec![(
                "maple-proxy",
                self.bin("maple-proxy"),
                Vec::new(),
                env(&[
                    ("MAPLE_PROXY_LISTEN", "127.0.0.1:18081".into()),
                    ("MAPLE_PROXY_ADMIN_LISTEN", "127.0.0.1:19081".into()),
                    (
                        "MAPLE_PROXY_UPSTREAM",
                        format!("http://{}", self.first(Role::Nexon).addr(8090)),
                    ),
                    ("NEXON_API_KEY", maple_sim::DEFAULT_API_KEY.into()),
                    ("RUST_LOG", "warn".into()),
                ]),
            )],
            Role::Core => vec![("maple-core", self.bin("maple-core"), Vec::new(), {
                let mut pairs = env(&[
                    ("MAPLE_CORE_LISTEN", "127.0.0.1:18080".into()),
                    (
                        "MAPLE_PROXY_URL",
                        format!("http://{}", self.first(Role::Balancer).addr(8081)),
                    ),
                    (
                        "DATABASE_URL",
                        format!(
                            "mysql://root@{}/maple",
                            self.first(Role::Database).addr(3306)
                        ),
                    ),
                    (
                        "MAPLE_CORE_BACKUP_DIR",
                        dir.join("backup").display().to_string(),
                    ),
                    // As compose.yaml: readiness says 503 for 3 s before a stop.
                    ("MAPLE_CORE_DRAIN_DELAY_MS", "3000".into()),
                    (
                        "MAPLE_CORE_EQUIPMENT_FRESH_S",
                        self.options.fresh_s.to_string(),
                    ),
                    // Every user of the drill comes from the one client host, which the
                    // per-client limits would take for one abusive client.
                    ("MAPLE_CORE_CLIENT_RATE", "0".into()),
                    ("MAPLE_CORE_CLIENT_MISS_RATE", "0".into()),
                    ("MAPLE_CORE_LIKES_RATE", "0".into()),
                    ("MAPLE_CORE_LIKES_KEYS_PER_CLIENT", "0".into()),
                    ("MAPLE_CORE_PRICING_PER_CLIENT", "0".into()),
                    ("RUST_LOG", "warn".into()),
                ]);
                pairs.extend(self.core_env.iter().cloned());
                let sentinels: Vec<String> =
                    self.of(Role::Sentinel).map(|s| s.addr(26379)).collect();
                if sentinels.is_empty() {
                    let redis = self.first(Role::Redis { primary: true });
                    pairs.push(("REDIS_URL".into(), format!("redis://{}", redis.addr(6379))));
                } else {
                    pairs.extend(env(&[
                        ("REDIS_SENTINELS", sentinels.join(",")),
                        ("REDIS_SENTINEL_MASTER", "maple".into()),
                        // As compose.yaml: a like batch is stored once the replica holds it.
                        ("MAPLE_CORE_REDIS_MIN_REPLICAS", "1".into()),
                    ]));
                }
                pairs
            })],
            Role::Redis { primary } => {
                let mut args: Vec<String> = [
                    "--port",
                    "16379",
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--maxmemory",
                    "512mb",
                    "--maxmemory-policy",
                    "noeviction",
                    "--replica-announce-port",
                    "6379",
                ]
                .map(str::to_owned)
                .to_vec();
                args.extend(["--replica-announce-ip".into(), host.ip()]);
                args.extend(["--dir".into(), dir.display().to_string()]);
                // A restarted former primary starts as a primary; the Sentinels turn it into
                // a replica of the new one.
                if !primary {
                    let primary = self.first(Role::Redis { primary: true });
                    args.extend(["--replicaof".into(), primary.ip(), "6379".into()]);
                }
                vec![("redis-server", "redis-server".into(), args, Vec::new())]
            }
            Role::Sentinel => {
                let conf = dir.join("sentinel.conf");
                // Written once: a Sentinel rewrites its file with what it learns (the new
                // primary after a failover), which a restart must keep.
                if !conf.exists() {
                    let primary = self.first(Role::Redis { primary: true });
                    std::fs::write(
                        &conf,
                        format!(
                            "port 36379\nbind 127.0.0.1\ndir {dir}\n\
                             sentinel announce-ip {ip}\nsentinel announce-port 26379\n\
                             sentinel monitor maple {primary} 6379 2\n\
                             sentinel down-after-milliseconds maple 2000\n\
                             sentinel failover-timeout maple 10000\n\
                             sentinel parallel-syncs maple 1\n",
                            dir = dir.display(),
                            ip = host.ip(),
                            primary = primary.ip(),
                        ),
                    )?;
                }
                vec![(
                    "redis-sentinel",
                    "redis-server".into(),
                    vec![conf.display().to_string(), "--sentinel".into()],
                    Vec::new(),
                )]
            }
            Role::Database => vec![(
                "mariadbd",
                "mariadbd".into(),
                vec![
                    "--no-defaults".into(),
                    format!("--datadir={}", dir.join("data").display()),
                    "--port=13306".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--socket={}", dir.join("sock").display()),
                    "--user=root".into(),
                    "--skip-log-bin".into(),
                    "--innodb-buffer-pool-size=64M".into(),
                ],
                Vec::new(),
            )],
            Role::Balancer => {
                let mut pairs = env(&[
                    ("MAPLE_LB_LISTEN", "127.0.0.1:18080".into()),
                    ("MAPLE_LB_ADMIN_LISTEN", "127.0.0.1:18404".into()),
                    ("MAPLE_LB_PROXY_LISTEN", "127.0.0.1:18081".into()),
                    ("MAPLE_PROXY_ADMIN_PORT", "9081".into()),
                ]);
                for (i, core) in self.of(Role::Core).enumerate() {
                    pairs.push((format!("MAPLE_CORE_{}", i + 1), core.addr(8080)));
                }
                for (i, proxy) in self.of(Role::Proxy).enumerate() {
                    pairs.push((format!("MAPLE_PROXY_{}", i + 1), proxy.addr(8081)));
                }
                vec![(
                    "haproxy",
                    "haproxy".into(),
                    vec![
                        "-db".into(),
                        "-f".into(),
                        self.options.haproxy_cfg.display().to_string(),
                    ],
                    pairs,
                )]
            }
        })
    }

    async fn create_database(&self, host: &Host) -> anyhow::Result<()> {
        self.sql(host, "CREATE DATABASE IF NOT EXISTS maple")
            .await?;
        Ok(())
    }

    /// Runs `sql` on the database host's server (`mariadb` in its namespace), tab-separated
    /// rows out.
    pub async fn sql(&self, host: &Host, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.net.namespace(&host.name)])
            .args([
                "mariadb",
                "--protocol=tcp",
                "-h127.0.0.1",
                "-P13306",
                "-uroot",
            ])
            .args(["-N", "-B", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running mariadb")?;
        if !out.status.success() {
            bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn database(&self) -> &Host {
        self.first(Role::Database)
    }

    /// Waits until every public port of the host answers as its server should.
    pub async fn wait_up(&self, host: &Host, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.probe(host).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    bail!(
                        "{} did not come up within {within:?} ({e}); logs in {}",
                        host.name,
                        self.dir(&host.name).display()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// One look at the host through its link.
    pub async fn probe(&self, host: &Host) -> anyhow::Result<()> {
        let http = |port: u16, path: &str| format!("http://{}{path}", host.addr(port));
        match host.role {
            Role::Client => Ok(()),
            Role::Balancer => http_ok(&http(8404, "/stats;csv")).await,
            Role::Core => http_ok(&http(8080, "/health/ready")).await,
            Role::Proxy => http_ok(&http(9081, "/health")).await,
            Role::Nexon => http_ok(&http(8090, "/-/stats")).await,
            Role::Redis { .. } => resp_ping(&host.addr(6379)).await,
            Role::Sentinel => resp_ping(&host.addr(26379)).await,
            Role::Database => greeting(&host.addr(3306)).await,
        }
    }
}

/// A client for the drill's own checks: no proxy from the environment, short timeouts.
pub fn check_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

async fn http_ok(url: &str) -> anyhow::Result<()> {
    let status = check_client().get(url).send().await?.status();
    if status.is_success() {
        Ok(())
    } else {
        bail!("{url}: {status}")
    }
}

async fn resp_ping(addr: &str) -> anyhow::Result<()> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await??;
    stream.write_all(b"PING\r\n").await?;
    let mut answer = [0_u8; 7];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut answer)).await??;
    if &answer == b"+PONG\r\n" {
        Ok(())
    } else {
        bail!("{addr}: {}", String::from_utf8_lossy(&answer))
    }
}

/// MariaDB speaks first: a handshake packet.
async fn greeting(addr: &str) -> anyhow::Result<()> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await??;
    let mut first = [0_u8; 4];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut first)).await??;
    Ok(())
}
