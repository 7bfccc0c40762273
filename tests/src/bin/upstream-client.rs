//! `upstream-client`: the proxy's upstream call in isolation, to choose its HTTP client with
//! evidence (issue 18, item 8). Two clients fetch the simulator's ~350 KB equipment body in a
//! closed loop, the way `proxy/src/upstream.rs` does (GET, the API key header, the whole body
//! read, connections kept alive):
//! - `reqwest`: what the proxy uses today (hyper underneath, its own pool);
//! - `pingora`: pingora's own HTTP/1 connector (`pingora::connectors::http::Connector`, its
//!   pool), a session taken per request and released for reuse.
//!
//! The simulator runs as another process (`--sim`), so this process's CPU time is the
//! client's alone: the table shows requests per second and CPU microseconds per request (from
//! `/proc/self/stat`, Linux). Runs alternate (reqwest, pingora, reqwest, pingora, …) so a
//! drift of the shared machine hits both. Prints Markdown.
//!
//! ```text
//! upstream-client --sim http://127.0.0.1:18190 [--seconds 10] [--concurrency 32] [--rounds 2]
//! ```
#![allow(
    clippy::print_stdout,
    reason = "the table rows on stdout are this tool's output"
)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use maple_common::nexon::{API_KEY_HEADER, PATH_ITEM_EQUIPMENT};
use maple_sim::DEFAULT_API_KEY;
use maple_sim::characters::ocid_for;
use maple_tests::load::percentile;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

struct Args {
    sim: String,
    seconds: u64,
    concurrency: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sim: String::new(),
        seconds: 10,
        concurrency: 32,
        rounds: 2,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--sim" => args.sim = value.trim_end_matches('/').to_owned(),
            "--seconds" => args.seconds = number()?.max(1),
            "--concurrency" => args.concurrency = usize::try_from(number()?.max(1)).unwrap_or(1),
            "--rounds" => args.rounds = usize::try_from(number()?.max(1)).unwrap_or(1),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.sim.is_empty() {
        return Err("--sim URL is required (the simulator, as another process)".into());
    }
    Ok(args)
}

/// This process's user + system CPU time (`/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One fetch's outcome: its latency, or why it failed.
type Fetch = Result<(Duration, usize), String>;

#[derive(Clone)]
enum Client {
    Reqwest(reqwest::Client),
    Pingora(Arc<Connector>, Box<HttpPeer>, String),
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Self::Reqwest(_) => "reqwest",
            Self::Pingora(..) => "pingora connector",
        }
    }

    async fn fetch(&self, base: &str, path: &str) -> Fetch {
        let started = Instant::now();
        let bytes = match self {
            Self::Reqwest(client) => {
                let response = client
                    .get(format!("{base}{path}"))
                    .header(API_KEY_HEADER, DEFAULT_API_KEY)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("status {}", response.status()));
                }
                response.bytes().await.map_err(|e| e.to_string())?.len()
            }
            Self::Pingora(connector, peer, host) => {
                let (mut session, _reused) = connector
                    .get_http_session(peer.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut request = RequestHeader::build("GET", path.as_bytes(), None)
                    .map_err(|e| e.to_string())?;
                request
                    .insert_header("host", host.as_str())
                    .map_err(|e| e.to_string())?;
                request
                    .insert_header(API_KEY_HEADER, DEFAULT_API_KEY)
                    .map_err(|e| e.to_string())?;
                session
                    .write_request_header(Box::new(request))
                    .await
                    .map_err(|e| e.to_string())?;
                session
                    .finish_request_body()
                    .await
                    .map_err(|e| e.to_string())?;
                session
                    .read_response_header()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = session.response_header().map_or(0, |h| h.status.as_u16());
                let mut body = BytesMut::new();
                while let Some(chunk) = session
                    .read_response_body()
                    .await
                    .map_err(|e| e.to_string())?
                {
                    body.extend_from_slice(&chunk);
                }
                if status != 200 {
                    return Err(format!("status {status}"));
                }
                connector
                    .release_http_session(session, peer.as_ref(), Some(Duration::from_secs(60)))
                    .await;
                body.len()
            }
        };
        Ok((started.elapsed(), bytes))
    }
}

async fn run(client: Client, args: &Args) -> String {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let cpu_before = cpu_time();
    let started = Instant::now();
    for worker in 0..args.concurrency {
        let client = client.clone();
        let stop = Arc::clone(&stop);
        let base = args.sim.clone();
        // A key per worker, so no two fetch the same body at once (as distinct cache misses).
        let path = format!(
            "{PATH_ITEM_EQUIPMENT}?ocid={}",
            ocid_for(&format!("upstream{worker}")).as_str()
        );
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                results.push(client.fetch(&base, &path).await);
            }
            results
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failed = 0_usize;
    let mut bytes = 0_usize;
    let mut first_error = None;
    for worker in workers {
        for result in worker.await.unwrap_or_default() {
            match result {
                Ok((latency, n)) => {
                    latencies.push(latency.as_secs_f64() * 1000.0);
                    bytes += n;
                }
                Err(error) => {
                    failed += 1;
                    first_error.get_or_insert(error);
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu_before);
    latencies.sort_by(f64::total_cmp);
    let ok = latencies.len();
    let cpu_us = cpu.as_secs_f64() * 1e6 / ok.max(1) as f64;
    let mut row = format!(
        "| {} | {} | {ok} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {failed} |",
        client.name(),
        args.concurrency,
        ok as f64 / elapsed,
        cpu_us,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        bytes as f64 / elapsed / 1e6,
    );
    if let Some(error) = first_error {
        row.push_str(&format!(" first error: {error}"));
    }
    row
}

fn pingora_client(base: &str) -> Result<Client, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or("--sim must be an http:// URL")?;
    let addr: SocketAddr = authority
        .parse()
        .map_err(|e| format!("--sim {authority}: {e} (an IP:port)"))?;
    let mut peer = HttpPeer::new(addr, false, String::new());
    // The proxy's defaults: connect 1 s, each read 3 s.
    peer.options.connection_timeout = Some(Duration::from_secs(1));
    peer.options.read_timeout = Some(Duration::from_secs(3));
    Ok(Client::Pingora(
        Arc::new(Connector::new(None)),
        Box::new(peer),
        authority.to_owned(),
    ))
}

fn reqwest_client(concurrency: usize) -> Result<Client, String> {
    // As `Fetcher::new` builds it.
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map(Client::Reqwest)
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("upstream-client: {error}");
            return ExitCode::from(64);
        }
    };
    let clients = match (reqwest_client(args.concurrency), pingora_client(&args.sim)) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("upstream-client: {error}");
            return ExitCode::from(64);
        }
    };
    println!(
        "| client | connections | fetches | fetches/s | CPU µs per fetch (client) | p50 ms | p99 ms | MB/s | failed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for _ in 0..args.rounds {
        for client in &clients {
            println!("{}", run(client.clone(), &args).await);
        }
    }
    ExitCode::SUCCESS
}
