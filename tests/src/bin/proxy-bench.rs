//! `proxy-bench`: resilience scenarios against any caching proxy in front of the simulator
//! (ours or nginx), counted with the simulator's own call counter. Used by
//! `scripts/bench-proxy.sh`; prints one Markdown table row per run.
//!
//! ```text
//! proxy-bench stampede --label L --proxy URL --sim URL [--n 500]
//! proxy-bench outage   --label L --proxy URL --sim URL [--keys 20] [--seconds 60]
//!                      [--concurrency 20] [--expire-wait-s 0] [--fault 503|hang]
//! ```
//!
//! `stampede`: N concurrent requests for one cold equipment key while the upstream takes
//! 500 ms; reports the upstream calls it caused. `outage`: warms `keys` equipment keys, waits
//! for them to expire, then makes the upstream fail for `seconds` while `concurrency` clients
//! read those keys in a closed loop; reports the share answered, the share served stale, the
//! upstream calls during the outage and latency percentiles.
#![allow(
    clippy::print_stdout,
    reason = "the table rows on stdout are this tool's output"
)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use maple_common::nexon::PATH_ITEM_EQUIPMENT;
use maple_sim::characters::ocid_for;
use maple_sim::stats::StatsSnapshot;
use maple_tests::load::percentile;

struct Args {
    scenario: String,
    label: String,
    proxy: String,
    sim: String,
    n: usize,
    keys: usize,
    seconds: u64,
    concurrency: usize,
    expire_wait_s: u64,
    fault: String,
}

fn parse_args() -> Result<Args, String> {
    let mut raw = std::env::args().skip(1);
    let scenario = raw.next().ok_or("scenario: stampede | outage")?;
    let mut args = Args {
        scenario,
        label: "proxy".into(),
        proxy: String::new(),
        sim: String::new(),
        n: 500,
        keys: 20,
        seconds: 60,
        concurrency: 20,
        expire_wait_s: 0,
        fault: "503".into(),
    };
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--label" => args.label = value.clone(),
            "--proxy" => args.proxy = value.trim_end_matches('/').to_owned(),
            "--sim" => args.sim = value.trim_end_matches('/').to_owned(),
            "--n" => args.n = usize::try_from(number()?).map_err(|e| e.to_string())?,
            "--keys" => args.keys = usize::try_from(number()?).map_err(|e| e.to_string())?,
            "--seconds" => args.seconds = number()?,
            "--concurrency" => {
                args.concurrency = usize::try_from(number()?).map_err(|e| e.to_string())?;
            }
            "--expire-wait-s" => args.expire_wait_s = number()?,
            "--fault" => args.fault = value.clone(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.proxy.is_empty() || args.sim.is_empty() {
        return Err("--proxy and --sim are required".into());
    }
    Ok(args)
}

struct Sim {
    http: reqwest::Client,
    base: String,
}

impl Sim {
    async fn reset_stats(&self) -> reqwest::Result<()> {
        self.http
            .delete(format!("{}/-/stats", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn equipment_calls(&self) -> reqwest::Result<u64> {
        let stats: StatsSnapshot = self
            .http
            .get(format!("{}/-/stats", self.base))
            .send()
            .await?
            .json()
            .await?;
        Ok(stats.calls(PATH_ITEM_EQUIPMENT))
    }

    async fn fault(&self, spec: serde_json::Value) -> reqwest::Result<()> {
        self.http
            .post(format!("{}/-/faults", self.base))
            .json(&spec)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn clear(&self) -> reqwest::Result<()> {
        self.http
            .delete(format!("{}/-/faults", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

fn equipment_url(proxy: &str, name: &str) -> String {
    format!(
        "{proxy}{PATH_ITEM_EQUIPMENT}?ocid={}",
        ocid_for(name).as_str()
    )
}

/// A name no earlier run used, so its key is cold in every cache.
fn fresh_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}{nanos}")
}

async fn stampede(args: &Args, sim: &Sim) -> Result<(), String> {
    let url = equipment_url(&args.proxy, &fresh_name("stampede"));
    sim.reset_stats().await.map_err(|e| e.to_string())?;
    sim.fault(serde_json::json!({ "latency_ms": 500, "path_prefix": PATH_ITEM_EQUIPMENT }))
        .await
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let requests = (0..args.n).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let result = client.get(url).send().await;
            let status = match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // Read the whole body: an answer counts once it has fully arrived.
                    if response.bytes().await.is_err() {
                        0
                    } else {
                        status
                    }
                }
                Err(_) => 0,
            };
            (status, sent.elapsed().as_secs_f64() * 1000.0)
        })
    });
    let results = futures::future::join_all(requests).await;
    let wall = started.elapsed();
    sim.clear().await.map_err(|e| e.to_string())?;
    let calls = sim.equipment_calls().await.map_err(|e| e.to_string())?;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(results.len());
    for result in results {
        let (status, millis) = result.map_err(|e| e.to_string())?;
        *statuses.entry(status).or_default() += 1;
        latencies.push(millis);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "| {} | {} | {} | {:?} | {:.0} | {:.0} | {:.2} |",
        args.label,
        args.n,
        calls,
        statuses,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        wall.as_secs_f64()
    );
    Ok(())
}

#[derive(Default)]
struct Tally {
    total: u64,
    ok: u64,
    stale: u64,
    by_status: BTreeMap<u16, u64>,
    latencies_ms: Vec<f64>,
}

async fn outage(args: &Args, sim: &Sim) -> Result<(), String> {
    let prefix = fresh_name("outage");
    let urls: Vec<String> = (0..args.keys)
        .map(|i| equipment_url(&args.proxy, &format!("{prefix}x{i}")))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    // Warm every key; a proxy still recovering from an earlier run (an open breaker) gets
    // up to a minute to answer.
    let warm_until = Instant::now() + Duration::from_secs(60);
    for url in &urls {
        loop {
            let response = client.get(url).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            response.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                break;
            }
            if Instant::now() > warm_until {
                return Err(format!("warming {url}: {status}"));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(args.expire_wait_s)).await;
    sim.reset_stats().await.map_err(|e| e.to_string())?;
    let duration_ms = args.seconds * 1000;
    let spec = match args.fault.as_str() {
        "hang" => serde_json::json!({ "hang": true, "duration_ms": duration_ms }),
        _ => serde_json::json!({ "error_status": 503, "duration_ms": duration_ms }),
    };
    sim.fault(spec).await.map_err(|e| e.to_string())?;
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let workers = (0..args.concurrency).map(|w| {
        let client = client.clone();
        let urls = urls.clone();
        tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut i = w;
            while Instant::now() < until {
                let url = &urls[i % urls.len()];
                i += 1;
                let sent = Instant::now();
                let (status, stale) = match client.get(url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let cache = response
                            .headers()
                            .get("x-cache")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        let complete = response.bytes().await.is_ok();
                        let stale = cache == "STALE" || cache == "UPDATING";
                        (if complete { status } else { 0 }, stale)
                    }
                    Err(_) => (0, false),
                };
                tally.total += 1;
                tally.ok += u64::from(status == 200);
                tally.stale += u64::from(status == 200 && stale);
                *tally.by_status.entry(status).or_default() += 1;
                tally
                    .latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            tally
        })
    });
    let mut all = Tally::default();
    for worker in futures::future::join_all(workers).await {
        let tally = worker.map_err(|e| e.to_string())?;
        all.total += tally.total;
        all.ok += tally.ok;
        all.stale += tally.stale;
        for (status, n) in tally.by_status {
            *all.by_status.entry(status).or_default() += n;
        }
        all.latencies_ms.extend(tally.latencies_ms);
    }
    let calls = sim.equipment_calls().await.map_err(|e| e.to_string())?;
    sim.clear().await.map_err(|e| e.to_string())?;
    all.latencies_ms.sort_by(f64::total_cmp);
    let share = |n: u64| 100.0 * n as f64 / all.total.max(1) as f64;
    println!(
        "| {} | {} | {} | {:.2}% | {:.2}% | {:?} | {} | {:.1} | {:.1} |",
        args.label,
        args.fault,
        all.total,
        share(all.ok),
        share(all.stale),
        all.by_status,
        calls,
        percentile(&all.latencies_ms, 50.0),
        percentile(&all.latencies_ms, 99.0),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("proxy-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let sim = Sim {
        http: reqwest::Client::new(),
        base: args.sim.clone(),
    };
    let result = match args.scenario.as_str() {
        "stampede" => stampede(&args, &sim).await,
        "outage" => outage(&args, &sim).await,
        other => Err(format!("unknown scenario {other}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
