//! The capacity model's measurements (`drill --capacity`), on the drill's hosts: what a
//! request costs each tier, with 1, 2 and 3 core hosts, with the in-process cache too small to
//! help (every equipment read goes to Redis), with likes only, and with each link's delay at
//! 0, 0.25 and 1 ms. Every figure comes from counters read before and after a step: each
//! process's CPU time (`/proc/PID/stat`), Redis's `INFO` (its CPU, bytes in and out), the
//! cores' count of equipment answers from Redis (an L2 read), the database's like count.
//!
//! This machine has two cores for every host together, so throughput is the machine's, not a
//! host's; CPU-seconds per 1,000 requests is what carries over to real hosts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::hosts::{Hosts, Role};
use super::load::{Load, Mix};
use super::report::Window;
use super::{Options, redis_primary};

/// Closed-loop users for a step (no think time: the machine's throughput).
const USERS: usize = 24;

/// The mix without think time.
const FULL_SPEED: Mix = Mix {
    weights: [3, 1, 1],
    think_ms: (0, 0),
};

/// Likes only, full speed.
const LIKES_ONLY: Mix = Mix {
    weights: [0, 1, 0],
    think_ms: (0, 0),
};

/// CPU seconds a process has used (user + system). `/proc` counts in USER_HZ, 100 on Linux
/// x86-64.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ") ".
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The cores' metric of equipment answers Redis gave.
const L2_READS: &str = "maple_core_equipment_source_total{source=\"l2\"}";

/// What one step read.
#[derive(Debug, Default, Clone)]
struct Reading {
    /// CPU seconds by group (`cores`, `balancer`, `redis primary`, `database`, `proxies`,
    /// `relays`), and by core host.
    cpu: BTreeMap<String, f64>,
    redis: BTreeMap<String, f64>,
    db_likes: u64,
}

impl Reading {
    fn delta(&self, before: &Self) -> Self {
        let minus = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
                .collect()
        };
        Self {
            cpu: minus(&self.cpu, &before.cpu),
            redis: minus(&self.redis, &before.redis),
            db_likes: self.db_likes.saturating_sub(before.db_likes),
        }
    }

    fn cpu(&self, group: &str) -> f64 {
        self.cpu.get(group).copied().unwrap_or(0.0)
    }

    fn redis(&self, field: &str) -> f64 {
        self.redis.get(field).copied().unwrap_or(0.0)
    }
}

async fn read(hosts: &Hosts, primary: &str) -> anyhow::Result<Reading> {
    let mut reading = Reading::default();
    for host in &hosts.hosts {
        let group = match host.role {
            Role::Core => "cores",
            Role::Balancer => "balancer",
            Role::Database => "database",
            Role::Proxy => "proxies",
            Role::Redis { .. } if host.name == primary => "redis primary",
            _ => "other",
        };
        if let Some(pid) = hosts.server_pid(&host.name) {
            let seconds = cpu_seconds(pid);
            *reading.cpu.entry(group.to_owned()).or_default() += seconds;
            if host.role == Role::Core {
                reading.cpu.insert(host.name.clone(), seconds);
            }
        }
        if let Some(pid) = hosts.relay_pid(&host.name) {
            *reading.cpu.entry("relays".to_owned()).or_default() += cpu_seconds(pid);
        }
    }
    reading.redis = redis_info(&hosts.get(primary).addr(6379)).await?;
    // L2 reads: the cores' own count of equipment answers from Redis (Redis's HMGET count
    // also holds the like-count snapshots).
    let client = super::hosts::check_client();
    let mut l2 = 0.0;
    for core in hosts.names(Role::Core) {
        if !hosts.is_running(&core) {
            continue;
        }
        let url = format!("http://{}/metrics", hosts.get(&core).addr(8080));
        let text = client.get(&url).send().await?.text().await?;
        l2 += text
            .lines()
            .filter_map(|line| line.strip_prefix(L2_READS))
            .filter_map(|value| value.trim().parse::<f64>().ok())
            .sum::<f64>();
    }
    reading.redis.insert("l2_reads".to_owned(), l2);
    reading.db_likes = db_likes(hosts).await?;
    Ok(reading)
}

/// Every like the database holds.
async fn db_likes(hosts: &Hosts) -> anyhow::Result<u64> {
    let text = hosts
        .sql(
            hosts.database(),
            "SELECT COALESCE(SUM(likes), 0) FROM maple.character_likes",
        )
        .await?;
    Ok(text.trim().parse().unwrap_or(0))
}

/// Redis `INFO`: CPU seconds, bytes in and out.
async fn redis_info(addr: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"INFO\r\n").await?;
    let mut text = Vec::new();
    let mut chunk = vec![0_u8; 64 * 1024];
    // A bulk string: `$LEN\r\n` then LEN bytes.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut chunk)).await??;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..n]);
        let header_end = text.windows(2).position(|w| w == b"\r\n");
        if let Some(end) = header_end
            && let Ok(len) = String::from_utf8_lossy(&text[1..end]).parse::<usize>()
            && text.len() >= end + 2 + len
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    let mut info = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "used_cpu_sys" | "used_cpu_user" => {
                *info.entry("cpu".to_owned()).or_default() += value.trim().parse().unwrap_or(0.0);
            }
            "total_net_input_bytes" | "total_net_output_bytes" => {
                info.insert(key.to_owned(), value.trim().parse().unwrap_or(0.0));
            }
            _ => {}
        }
    }
    Ok(info)
}

/// One step's figures.
#[derive(Debug)]
struct Step {
    label: String,
    seconds: f64,
    served: u64,
    likes: u64,
    p50_ms: f64,
    p99_ms: f64,
    delta: Reading,
    /// The database's likes before the step.
    db_before: u64,
    core_hosts: usize,
}

impl Step {
    fn per_1000(&self, cpu: f64) -> f64 {
        if self.served == 0 {
            return f64::NAN;
        }
        cpu * 1000.0 / self.served as f64
    }
}

/// Runs `mix` for `length` through the balancer and reads the counters around it.
async fn step(
    hosts: &Hosts,
    options: &Options,
    label: &str,
    mix: Mix,
    length: Duration,
) -> anyhow::Result<Step> {
    let primary = redis_primary(hosts).await?;
    let lb = hosts.get("lb");
    let load = Load::new(
        &format!("http://{}", lb.addr(8080)),
        options.characters,
        mix,
    );
    // Likes of earlier steps still on their way to the database would count as this step's.
    settled_likes(hosts).await?;
    let before = read(hosts, &primary).await?;
    let start = load.now();
    let users = load.start(USERS);
    tokio::time::sleep(length).await;
    load.stop();
    for user in users {
        let _ = user.await;
    }
    let end = load.now();
    let after = read(hosts, &primary).await?;
    let samples = load
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let window = Window {
        label: label.to_owned(),
        start,
        end,
    };
    let tallied = super::report::tally_window(&samples, &window);
    let served = tallied.requests - tallied.failed;
    let likes = load
        .ledger
        .lock()
        .map_or(0, |l| l.acknowledged.len() as u64);
    let core_hosts = hosts
        .names(Role::Core)
        .iter()
        .filter(|n| hosts.is_running(n))
        .count();
    eprintln!(
        "capacity: {label}: {served} served, {} failed in {:.1} s",
        tallied.failed, tallied.seconds
    );
    Ok(Step {
        label: label.to_owned(),
        seconds: tallied.seconds,
        served,
        likes,
        p50_ms: tallied.p50_ms,
        p99_ms: tallied.p99_ms,
        delta: after.delta(&before),
        db_before: before.db_likes,
        core_hosts,
    })
}

/// Waits (up to 30 s) until the balancer shows `server` in `state` (`UP`, `DOWN`).
async fn until_balancer(hosts: &Hosts, server: &str, state: &str) -> anyhow::Result<()> {
    if super::balancer_shows(hosts.get("lb"), server, state, Duration::from_secs(30)).await {
        Ok(())
    } else {
        anyhow::bail!("the balancer never showed {server} {state}")
    }
}

/// Every step; answers the Markdown tables.
///
/// # Errors
/// When a host does not come back or a counter cannot be read.
pub async fn measure(options: &Options, hosts: &mut Hosts) -> anyhow::Result<String> {
    let length = options.window;
    let cores = hosts.names(Role::Core);
    let mut by_cores = Vec::new();
    // 1 core host, then 2, then 3.
    for name in &cores[1..] {
        hosts.kill(name).await;
        until_balancer(hosts, name, "DOWN").await?;
    }
    for (i, name) in cores.iter().enumerate() {
        if i > 0 {
            hosts.start(name).await?;
            until_balancer(hosts, name, "UP").await?;
        }
        let label = format!("{} core host{}", i + 1, if i == 0 { "" } else { "s" });
        by_cores.push(step(hosts, options, &label, FULL_SPEED, length).await?);
    }
    // Every equipment read from Redis: cores with the smallest in-process cache.
    hosts
        .core_env
        .push(("MAPLE_CORE_L1_MAX_BYTES".into(), "1048576".into()));
    for name in &cores {
        hosts.kill(name).await;
        hosts.start(name).await?;
        until_balancer(hosts, name, "UP").await?;
    }
    let l2_bound = step(
        hosts,
        options,
        "3 core hosts, L1 1 MiB (reads go to Redis)",
        FULL_SPEED,
        length,
    )
    .await?;
    hosts.core_env.clear();
    for name in &cores {
        hosts.kill(name).await;
        hosts.start(name).await?;
        until_balancer(hosts, name, "UP").await?;
    }
    // Likes only: how fast they reach the database, and what they cost it.
    let likes = step(hosts, options, "likes only", LIKES_ONLY, length).await?;
    let drained = drain_time(hosts, &likes).await?;
    // The links' delay.
    let mut by_delay = Vec::new();
    let mut round_trips = Vec::new();
    for delay_us in [0, 250, 1000] {
        for host in &hosts.hosts {
            hosts.set_delay(&host.name, delay_us, 0)?;
        }
        // The relays read their control file every 100 ms.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let primary = redis_primary(hosts).await?;
        round_trips.push((
            delay_us,
            ping_round_trips(&hosts.get(&primary).addr(6379)).await?,
        ));
        let label = format!("links {delay_us} µs each way");
        by_delay.push(step(hosts, options, &label, FULL_SPEED, length).await?);
    }
    for host in &hosts.hosts {
        hosts.set_delay(&host.name, options.delay_us, options.jitter_us)?;
    }
    let mut out = tables(&by_cores, &l2_bound, &likes, drained, &by_delay);
    let _ = writeln!(
        out,
        "\nOne link's round trip as measured (500 Redis PINGs from the client host, one after \
         another on one connection, with no other load):\n\n\
         | delay each way | p50 ms | p99 ms |\n|---|---|---|"
    );
    for (delay_us, (p50, p99)) in round_trips {
        let _ = writeln!(out, "| {delay_us} µs | {p50:.3} | {p99:.3} |");
    }
    Ok(out)
}

/// p50 and p99 of 500 PINGs' round trips, ms.
async fn ping_round_trips(addr: &str) -> anyhow::Result<(f64, f64)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut times = Vec::with_capacity(500);
    let mut answer = [0_u8; 7];
    for _ in 0..500 {
        let sent = std::time::Instant::now();
        stream.write_all(b"PING\r\n").await?;
        stream.read_exact(&mut answer).await?;
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((
        crate::load::percentile(&times, 50.0),
        crate::load::percentile(&times, 99.0),
    ))
}

/// Waits until the database's like count holds still over two sync periods (up to 30 s).
async fn settled_likes(hosts: &Hosts) -> anyhow::Result<()> {
    let mut last = db_likes(hosts).await?;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = db_likes(hosts).await?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    anyhow::bail!("the database's like count was still moving after 30 s")
}

/// After a likes step: the seconds from the step's end until the database held every like
/// acknowledged in it (polled every 100 ms; the sync leader moves them once a second).
async fn drain_time(hosts: &Hosts, step: &Step) -> anyhow::Result<f64> {
    let started = tokio::time::Instant::now();
    let target = step.db_before + step.likes;
    for _ in 0..600 {
        if db_likes(hosts).await? >= target {
            return Ok(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the database held fewer likes than acknowledged 60 s after the step")
}

fn tables(
    by_cores: &[Step],
    l2_bound: &Step,
    likes: &Step,
    drained: f64,
    by_delay: &[Step],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Requests (equipment : likes : expectations 3 : 1 : 1, {USERS} users without think \
         time), CPU-seconds per 1,000 served requests:\n"
    );
    let _ = writeln!(
        out,
        "| step | served/s | p50 ms | p99 ms | cores (all) | per core host | balancer | \
         proxies | Redis primary | database | relays |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in by_cores.iter().chain([l2_bound]).chain(by_delay) {
        let per_host = s.per_1000(s.delta.cpu("cores")) / s.core_hosts.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.label,
            s.served as f64 / s.seconds,
            s.p50_ms,
            s.p99_ms,
            s.per_1000(s.delta.cpu("cores")),
            per_host,
            s.per_1000(s.delta.cpu("balancer")),
            s.per_1000(s.delta.cpu("proxies")),
            s.per_1000(s.delta.cpu("redis primary")),
            s.per_1000(s.delta.cpu("database")),
            s.per_1000(s.delta.cpu("relays")),
        );
    }
    let _ = writeln!(
        out,
        "\nRedis: bytes in + out per served request and the primary's CPU-seconds per 1,000 \
         requests (its INFO), L2 reads per request (the cores' \
         `maple_core_equipment_source_total{{source=\"l2\"}}`), bytes and the primary's \
         CPU-seconds per L2 read (all of the primary's traffic and CPU divided by the L2 \
         reads: an upper bound where likes and locks share it):\n"
    );
    let _ = writeln!(
        out,
        "| step | bytes/request | CPU-s per 1,000 requests | L2 reads/request | bytes/L2 read | CPU-s per 1,000 L2 reads |\n|---|---|---|---|---|---|"
    );
    for s in by_cores.iter().chain([l2_bound]) {
        let bytes =
            s.delta.redis("total_net_input_bytes") + s.delta.redis("total_net_output_bytes");
        let reads = s.delta.redis("l2_reads");
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} |",
            s.label,
            bytes / s.served.max(1) as f64,
            s.per_1000(s.delta.redis("cpu")),
            reads / s.served.max(1) as f64,
            if reads > 0.0 { bytes / reads } else { f64::NAN },
            if reads > 0.0 {
                s.delta.redis("cpu") * 1000.0 / reads
            } else {
                f64::NAN
            },
        );
    }
    let _ = writeln!(
        out,
        "\nLikes only ({USERS} users without think time): acknowledged per second, moved into \
         MariaDB per second during the step, the time after the step until none was pending, \
         CPU-seconds per 1,000 likes:\n"
    );
    let _ = writeln!(
        out,
        "| acknowledged/s | into MariaDB/s | drained after | database | Redis primary | cores | p99 ms |\n|---|---|---|---|---|---|---|"
    );
    let per_like = |cpu: f64| cpu * 1000.0 / likes.likes.max(1) as f64;
    let _ = writeln!(
        out,
        "| {:.0} | {:.0} | {:.1} s | {:.3} | {:.3} | {:.3} | {:.1} |",
        likes.likes as f64 / likes.seconds,
        likes.delta.db_likes as f64 / likes.seconds,
        drained,
        per_like(likes.delta.cpu("database")),
        per_like(likes.delta.cpu("redis primary")),
        per_like(likes.delta.cpu("cores")),
        likes.p99_ms,
    );
    out
}
