//! The multi-host drill (`drill`, `scripts/drill.sh`): the distributed stack on hosts of its
//! own — network namespaces joined by a switch, each link delayed by a `link-relay` — behind
//! HAProxy with `deploy/haproxy.cfg`, under the users' load while hosts die, partition and slow
//! down; then the ledger: each character's like count in the database equal to the likes
//! acknowledged for it, and Nexon asked at most once per character per freshness period.
//!
//! The drill's own process joins the client host's namespace before it starts its runtime, so
//! the users' connections and every check leave from the client host.

pub mod capacity;
pub mod hosts;
pub mod load;
pub mod net;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use hosts::{Host, Hosts, Role};
use load::Load;
use report::{BalancerWatch, Report, Window};

/// The load balancer's configuration, from the repository's root: the file `compose.yaml`
/// mounts into its `lb` service (`tests/tests/e2e/compose.rs` holds the two to one file).
pub const HAPROXY_CFG: &str = "deploy/haproxy.cfg";

/// How the drill runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespaces are `{prefix}-{host}`.
    pub prefix: String,
    /// Two cores, one Redis, one proxy, one fault (a core killed): the test suite's drill.
    pub small: bool,
    /// Where `maple-core`, `maple-proxy`, `nexon-sim` and `link-relay` are.
    pub bin_dir: PathBuf,
    pub haproxy_cfg: PathBuf,
    /// Each host's logs and data.
    pub run_dir: PathBuf,
    /// Each link's delay, each way, and its jitter (± µs).
    pub delay_us: u64,
    pub jitter_us: u64,
    /// A cap on what each Redis host sends (`tbf`), if any.
    pub redis_mbit: Option<u32>,
    pub users: usize,
    pub characters: usize,
    /// Each fault window.
    pub window: Duration,
    /// How long the database host stays down.
    pub db_down: Duration,
    /// The slow link's delay, each way.
    pub slow_us: u64,
    /// Core's equipment freshness: Nexon may see one call per character per this period.
    pub fresh_s: u64,
}

impl Options {
    /// The hosts of the plan.
    pub fn hosts(&self) -> Vec<Host> {
        let host = |name: &str, octet, role| Host {
            name: name.to_owned(),
            octet,
            role,
        };
        let mut hosts = vec![
            host("client", 10, Role::Client),
            host("lb", 11, Role::Balancer),
            host("nexon", 71, Role::Nexon),
            host("db", 61, Role::Database),
            host("redis-1", 41, Role::Redis { primary: true }),
            host("proxy-1", 31, Role::Proxy),
            host("core-1", 21, Role::Core),
            host("core-2", 22, Role::Core),
        ];
        if !self.small {
            hosts.extend([
                host("redis-2", 42, Role::Redis { primary: false }),
                host("sentinel-1", 51, Role::Sentinel),
                host("sentinel-2", 52, Role::Sentinel),
                host("sentinel-3", 53, Role::Sentinel),
                host("proxy-2", 32, Role::Proxy),
                host("core-3", 23, Role::Core),
            ]);
        }
        hosts
    }
}

/// The order hosts start in: what others need first.
fn start_order(hosts: &[Host]) -> Vec<String> {
    let rank = |role: Role| match role {
        Role::Client => 0,
        Role::Nexon => 1,
        Role::Database => 2,
        Role::Redis { primary: true } => 3,
        Role::Redis { primary: false } => 4,
        Role::Sentinel => 5,
        Role::Proxy => 6,
        Role::Balancer => 7,
        Role::Core => 8,
    };
    let mut ordered: Vec<&Host> = hosts.iter().collect();
    ordered.sort_by_key(|h| (rank(h.role), h.octet));
    ordered.into_iter().map(|h| h.name.clone()).collect()
}

/// Builds the network (after removing an earlier run's leftovers with the same prefix).
///
/// # Errors
/// When `ip` refuses (not root, no iproute2).
pub async fn build_network(options: &Options) -> anyhow::Result<net::Network> {
    let network = net::Network::new(&options.prefix);
    network.tear_down().await;
    network.create_switch().await?;
    for host in options.hosts() {
        network.add_host(&host.name, host.octet).await?;
    }
    if let Some(mbit) = options.redis_mbit {
        for host in options.hosts() {
            if matches!(host.role, Role::Redis { .. }) {
                network.cap_bandwidth(&host.name, mbit).await?;
            }
        }
    }
    Ok(network)
}

/// Moves the calling thread into the client host's namespace; threads it starts later (the
/// runtime's) are born there.
///
/// # Errors
/// When the namespace is missing or the process may not enter it.
pub fn enter_client(network: &net::Network) -> anyhow::Result<()> {
    let path = format!("/run/netns/{}", network.namespace("client"));
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {path}"))?;
    Ok(())
}

/// Starts every host, in order, each once it answers through its link.
async fn start_hosts(options: &Options, network: net::Network) -> anyhow::Result<Hosts> {
    let mut hosts = Hosts::new(network, options.hosts(), options.clone());
    hosts.prepare().await?;
    let started = tokio::time::Instant::now();
    for name in start_order(&hosts.hosts) {
        hosts.start(&name).await?;
        eprintln!("drill: {name} up ({})", hosts.get(&name).ip());
    }
    eprintln!(
        "drill: {} hosts up in {:.1} s; links {} µs each way (± {} µs)",
        hosts.hosts.len(),
        started.elapsed().as_secs_f64(),
        options.delay_us,
        options.jitter_us
    );
    Ok(hosts)
}

/// Starts every host, then asks once for every character's equipment through the balancer;
/// answers the hosts and the users' load (not started yet).
async fn start_warm(
    options: &Options,
    network: net::Network,
) -> anyhow::Result<(Hosts, Arc<Load>)> {
    let hosts = start_hosts(options, network).await?;
    let load = Load::new(
        &format!("http://{}", hosts.get("lb").addr(8080)),
        options.characters,
        load::Mix::USERS,
    );
    load.warm().await?;
    Ok((hosts, load))
}

/// The capacity model's measurements on the whole topology (see [`capacity`]); answers
/// Markdown tables.
///
/// # Errors
/// When a host does not come up or a counter cannot be read.
pub async fn measure(options: Options, network: net::Network) -> anyhow::Result<String> {
    let (mut hosts, _) = start_warm(&options, network).await?;
    capacity::measure(&options, &mut hosts).await
}

/// Starts every host, runs the load and the faults, and answers the report.
///
/// # Errors
/// When a host does not come up, or the load cannot start.
pub async fn run(options: Options, network: net::Network) -> anyhow::Result<Report> {
    let (mut hosts, load) = start_warm(&options, network).await?;
    let users = load.start(options.users);
    let mut windows = Vec::new();
    let mut watch = None;
    let outcome = if options.small {
        small_scenario(&options, &mut hosts, &load, &mut windows, &mut watch).await
    } else {
        full_scenario(&options, &mut hosts, &load, &mut windows, &mut watch).await
    };
    load.stop();
    for user in users {
        let _ = user.await;
    }
    outcome?;
    eprintln!("drill: load stopped; sending unacknowledged likes again");
    let unresolved = load.settle_likes(Duration::from_secs(90)).await;
    let acknowledged = load.acknowledged_by_character();
    let counted = counted_likes(&hosts, &acknowledged).await?;
    let upstream = upstream_calls(&hosts).await?;
    let samples = load
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Report::build(
        &samples,
        &windows,
        &acknowledged,
        &counted,
        unresolved,
        &upstream,
        options.characters,
        options.fresh_s,
        watch,
    ))
}

/// Marks a window: from now until the returned closure is called.
fn open(load: &Load, label: &str) -> (String, Duration) {
    eprintln!("drill: {label}");
    (label.to_owned(), load.now())
}

fn close(windows: &mut Vec<Window>, load: &Load, (label, start): (String, Duration)) {
    windows.push(Window {
        label,
        start,
        end: load.now(),
    });
}

/// The first window: the load alone.
async fn steady(options: &Options, load: &Load, windows: &mut Vec<Window>) {
    let w = open(load, "steady");
    tokio::time::sleep(options.window).await;
    close(windows, load, w);
}

/// `kill -9` of core-1's host, then a window's wait while the balancer is watched for the
/// host's `DOWN`. The window stays open: the caller closes it.
async fn kill_core_1(options: &Options, hosts: &mut Hosts, load: &Arc<Load>) -> BalancerWatch {
    let killed_at = load.now();
    let watching = tokio::spawn(watch_balancer(
        hosts.get("lb").clone(),
        "core-1",
        Arc::clone(load),
        options.window,
    ));
    hosts.kill("core-1").await;
    tokio::time::sleep(options.window).await;
    let down_at = watching.await.unwrap_or(None);
    BalancerWatch::new(killed_at, down_at, load.now())
}

/// Two cores behind the balancer; one is killed under load and stays dead.
async fn small_scenario(
    options: &Options,
    hosts: &mut Hosts,
    load: &Arc<Load>,
    windows: &mut Vec<Window>,
    watch: &mut Option<BalancerWatch>,
) -> anyhow::Result<()> {
    steady(options, load, windows).await;
    let w = open(load, "core-1 killed (kill -9)");
    *watch = Some(kill_core_1(options, hosts, load).await);
    close(windows, load, w);
    Ok(())
}

/// Every fault, one after another, each in its own window.
async fn full_scenario(
    options: &Options,
    hosts: &mut Hosts,
    load: &Arc<Load>,
    windows: &mut Vec<Window>,
    watch: &mut Option<BalancerWatch>,
) -> anyhow::Result<()> {
    let half = options.window / 2;
    steady(options, load, windows).await;

    let w = open(load, "core-1 killed (kill -9), back after the window");
    *watch = Some(kill_core_1(options, hosts, load).await);
    hosts.start("core-1").await?;
    close(windows, load, w);

    let w = open(load, "core-2 partitioned, healed half-way");
    let core_2 = hosts.get("core-2").octet;
    hosts.net.set_plugged(core_2, false).await?;
    tokio::time::sleep(half).await;
    hosts.net.set_plugged(core_2, true).await?;
    tokio::time::sleep(half).await;
    close(windows, load, w);

    let primary = redis_primary(hosts).await?;
    let w = open(
        load,
        &format!("Redis primary {primary} dies (Sentinel failover), back as a replica half-way"),
    );
    hosts.kill(&primary).await;
    tokio::time::sleep(half).await;
    hosts.start(&primary).await?;
    tokio::time::sleep(half).await;
    close(windows, load, w);

    let w = open(
        load,
        &format!("database host down {} s", options.db_down.as_secs()),
    );
    hosts.kill("db").await;
    tokio::time::sleep(options.db_down).await;
    hosts.start("db").await?;
    tokio::time::sleep(half).await;
    close(windows, load, w);

    let w = open(load, "proxy-1 dies, back after the window");
    hosts.kill("proxy-1").await;
    tokio::time::sleep(options.window).await;
    hosts.start("proxy-1").await?;
    close(windows, load, w);

    let primary = redis_primary(hosts).await?;
    let w = open(
        load,
        &format!(
            "link to Redis primary {primary} slow ({} ms each way)",
            options.slow_us / 1000
        ),
    );
    hosts.set_delay(&primary, options.slow_us, 0)?;
    tokio::time::sleep(options.window).await;
    hosts.set_delay(&primary, options.delay_us, options.jitter_us)?;
    close(windows, load, w);

    let w = open(load, "recovered");
    tokio::time::sleep(half).await;
    close(windows, load, w);
    Ok(())
}

/// The host the Sentinels name as the primary now (asked for up to 10 s: during a failover a
/// Sentinel may name none).
async fn redis_primary(hosts: &Hosts) -> anyhow::Result<String> {
    let sentinel = hosts.get("sentinel-1").addr(26379);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ask_primary(&sentinel).await {
            Ok(ip) => {
                return hosts
                    .hosts
                    .iter()
                    .find(|h| h.ip() == ip)
                    .map(|h| h.name.clone())
                    .with_context(|| format!("no host has the primary's address {ip}"));
            }
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `SENTINEL get-master-addr-by-name maple`: the primary's address, read until the whole
/// answer (two bulk strings) is in.
async fn ask_primary(sentinel: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(sentinel).await?;
    stream
        .write_all(b"SENTINEL get-master-addr-by-name maple\r\n")
        .await?;
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 256];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut chunk)).await??;
        if n == 0 {
            anyhow::bail!("the Sentinel closed the connection");
        }
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if text.starts_with("*-1") {
            anyhow::bail!("the Sentinel names no primary");
        }
        // `*2`, `$len`, the address, `$len`, the port: five lines.
        let lines: Vec<&str> = text.split("\r\n").collect();
        if lines.len() > 5 {
            return Ok(lines[2].to_owned());
        }
    }
}

/// Polls the balancer's CSV until `server` is DOWN (or `within` passed); answers when, on
/// the load's clock.
async fn watch_balancer(
    lb: Host,
    server: &'static str,
    load: Arc<Load>,
    within: Duration,
) -> Option<Duration> {
    balancer_shows(&lb, server, "DOWN", within)
        .await
        .then(|| load.now())
}

/// Polls the balancer's CSV every 100 ms until it shows `server` in `state` (`UP`, `DOWN`);
/// `false` when `within` passed first.
pub async fn balancer_shows(lb: &Host, server: &str, state: &str, within: Duration) -> bool {
    let client = hosts::check_client();
    let url = format!("http://{}/stats;csv", lb.addr(8404));
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(answer) = client.get(&url).send().await
            && let Ok(csv) = answer.text().await
            && server_status(&csv, server).is_some_and(|s| s.starts_with(state))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The `status` column of `server`'s row in HAProxy's CSV.
pub fn server_status(csv: &str, server: &str) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let name = header.iter().position(|c| *c == "svname")?;
    let status = header.iter().position(|c| *c == "status")?;
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .find(|row| row.get(name) == Some(&server))
        .and_then(|row| row.get(status).map(|s| (*s).to_owned()))
}

/// The database's like counts for the drill's characters, read once they match what was
/// acknowledged (the sync leader moves Redis's buffered likes there) or after 120 s, then
/// once more 5 s later so a late double count shows.
async fn counted_likes(
    hosts: &Hosts,
    acknowledged: &std::collections::HashMap<String, u64>,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let by_ocid: BTreeMap<String, String> = acknowledged
        .keys()
        .map(|name| {
            (
                maple_sim::characters::ocid_for(name).as_str().to_owned(),
                name.clone(),
            )
        })
        .collect();
    let read = || async {
        let rows = hosts
            .sql(
                hosts.database(),
                "SELECT ocid, likes FROM maple.character_likes",
            )
            .await?;
        let mut counted = BTreeMap::new();
        for row in rows.lines() {
            let mut cells = row.split('\t');
            if let (Some(ocid), Some(likes)) = (cells.next(), cells.next())
                && let Some(name) = by_ocid.get(ocid)
            {
                counted.insert(name.clone(), likes.trim().parse::<u64>().unwrap_or(0));
            }
        }
        anyhow::Ok(counted)
    };
    let expected: BTreeMap<String, u64> =
        acknowledged.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let counted = read().await.unwrap_or_default();
        if counted == expected || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    read().await
}

/// What Nexon saw: every call, and each character's equipment call times.
#[derive(Debug)]
pub struct Upstream {
    pub total: u64,
    pub equipment: BTreeMap<String, Vec<u64>>,
}

async fn upstream_calls(hosts: &Hosts) -> anyhow::Result<Upstream> {
    let nexon = hosts.get("nexon");
    let client = hosts::check_client();
    let stats: maple_sim::stats::StatsSnapshot = client
        .get(format!("http://{}/-/stats", nexon.addr(8090)))
        .send()
        .await?
        .json()
        .await?;
    let equipment = client
        .get(format!("http://{}/-/stats/equipment", nexon.addr(8090)))
        .send()
        .await?
        .json()
        .await?;
    Ok(Upstream {
        total: stats.total,
        equipment,
    })
}
