//! `load-gen`: HTTP load against core, as the original load test ran it: N users, each
//! requesting a random character's equipment (or, with `--like-share`, liking it) then
//! thinking for a random 0.1–0.5 s (or not at all: a closed loop at maximum throughput).
//! Prints one Markdown row.
//!
//! ```text
//! load-gen --target http://127.0.0.1:8080 [--users 500] [--seconds 60]
//!          [--think-min-ms 100] [--think-max-ms 500] [--characters 200] [--gzip true]
//!          [--like-share 0.25] [--label name]
//! ```
//!
//! Every character is requested once before the clock starts (the steady state of a service
//! whose popular characters are cached). Latency is from sending the request to the last
//! body byte; a failure is any answer but 200 (equipment) / 202 (like), or a transport error.
//! With likes, the run ends by checking the count: the characters' like counts must have
//! grown by exactly the number of 202s (polled for up to 60 s); a mismatch exits 1.
#![allow(
    clippy::print_stdout,
    reason = "the table row on stdout is this tool's output"
)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use maple_tests::load::percentile;
use rand::Rng as _;

struct Args {
    target: String,
    users: usize,
    seconds: u64,
    think_min_ms: u64,
    think_max_ms: u64,
    characters: usize,
    gzip: bool,
    like_share: f64,
    label: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: String::new(),
        users: 500,
        seconds: 60,
        think_min_ms: 100,
        think_max_ms: 500,
        characters: 200,
        gzip: true,
        like_share: 0.0,
        label: "core".into(),
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        let count = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--target" => args.target = value.trim_end_matches('/').to_owned(),
            "--users" => args.users = count()?,
            "--seconds" => args.seconds = number()?,
            "--think-min-ms" => args.think_min_ms = number()?,
            "--think-max-ms" => args.think_max_ms = number()?,
            "--characters" => args.characters = count()?,
            "--gzip" => args.gzip = value == "true",
            "--label" => args.label = value.clone(),
            "--like-share" => {
                args.like_share = value.parse().map_err(|e| format!("{flag}: {e}"))?;
                if !(0.0..=1.0).contains(&args.like_share) {
                    return Err("--like-share must be within 0..=1".into());
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.target.is_empty() {
        return Err("--target is required".into());
    }
    if args.users == 0 || args.characters == 0 || args.think_max_ms < args.think_min_ms {
        return Err("users and characters must be positive, think-max ≥ think-min".into());
    }
    Ok(args)
}

/// Names the simulator knows: `load` and six letters.
fn character(i: usize) -> String {
    maple_tests::load::character_name("load", i)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    likes: u64,
    failed: u64,
    bytes: u64,
    latencies_us: Vec<u32>,
}

async fn one(client: &reqwest::Client, url: &str, gzip: bool) -> (bool, u64) {
    let mut request = client.get(url);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    match request.send().await {
        Ok(response) => {
            let ok = response.status() == reqwest::StatusCode::OK;
            match response.bytes().await {
                Ok(body) => (ok, body.len() as u64),
                Err(_) => (false, 0),
            }
        }
        Err(_) => (false, 0),
    }
}

async fn like(client: &reqwest::Client, url: &str) -> bool {
    match client.post(url).send().await {
        Ok(response) => response.status() == reqwest::StatusCode::ACCEPTED,
        Err(_) => false,
    }
}

/// The sum of the characters' like counts.
async fn like_total(client: &reqwest::Client, urls: &[String]) -> Result<i64, String> {
    let mut total = 0;
    for url in urls {
        let body: serde_json::Value = client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        total += body["likes"].as_i64().ok_or(format!("{url}: no count"))?;
    }
    Ok(total)
}

async fn run(args: Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.users)
        .build()
        .map_err(|e| e.to_string())?;
    let urls: Vec<String> = (0..args.characters)
        .map(|i| format!("{}/v1/characters/{}/equipment", args.target, character(i)))
        .collect();
    let like_urls: Vec<String> = urls
        .iter()
        .map(|u| u.replace("/equipment", "/likes"))
        .collect();
    for url in &urls {
        let (ok, _) = one(&client, url, args.gzip).await;
        if !ok {
            return Err(format!("warming {url} failed"));
        }
    }
    let likes_before = if args.like_share > 0.0 {
        like_total(&client, &like_urls).await?
    } else {
        0
    };
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let users = (0..args.users).map(|_| {
        let client = client.clone();
        let urls = urls.clone();
        let like_urls = like_urls.clone();
        let (think_min, think_max, gzip) = (args.think_min_ms, args.think_max_ms, args.gzip);
        let like_share = args.like_share;
        tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < until {
                let pick = rand::rng().random_range(0..urls.len());
                let liking = like_share > 0.0 && rand::rng().random_bool(like_share);
                let sent = Instant::now();
                let (ok, bytes) = if liking {
                    let ok = like(&client, &like_urls[pick]).await;
                    tally.likes += u64::from(ok);
                    (ok, 0)
                } else {
                    one(&client, &urls[pick], gzip).await
                };
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                if ok {
                    tally.ok += 1;
                    tally.bytes += bytes;
                } else {
                    tally.failed += 1;
                }
                tally.latencies_us.push(micros);
                if think_max > 0 {
                    let think = rand::rng().random_range(think_min..=think_max);
                    tokio::time::sleep(Duration::from_millis(think)).await;
                }
            }
            tally
        })
    });
    let mut all = Tally::default();
    for user in futures::future::join_all(users).await {
        let tally = user.map_err(|e| e.to_string())?;
        all.ok += tally.ok;
        all.likes += tally.likes;
        all.failed += tally.failed;
        all.bytes += tally.bytes;
        all.latencies_us.extend(tally.latencies_us);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let total = all.ok + all.failed;
    // Every acknowledged like must be counted, exactly once.
    let check = if args.like_share > 0.0 {
        let expected = likes_before + i64::try_from(all.likes).unwrap_or(i64::MAX);
        let waiting = Instant::now();
        loop {
            let now = like_total(&client, &like_urls).await?;
            if now == expected {
                break format!("exact ({} acked)", all.likes);
            }
            if waiting.elapsed() > Duration::from_secs(60) {
                println!(
                    "| {} | count MISMATCH: expected {expected}, found {now} |",
                    args.label
                );
                return Err("like count mismatch".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        "–".to_owned()
    };
    println!(
        "| {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3}% | {:.1} | {} |",
        args.label,
        args.users,
        if args.think_max_ms == 0 {
            "none".to_owned()
        } else {
            format!("{}–{} ms", args.think_min_ms, args.think_max_ms)
        },
        total,
        total as f64 / elapsed,
        all.likes as f64 / elapsed,
        percentile(&all.latencies_us, 50.0) / 1000.0,
        percentile(&all.latencies_us, 90.0) / 1000.0,
        percentile(&all.latencies_us, 99.0) / 1000.0,
        percentile(&all.latencies_us, 100.0) / 1000.0,
        100.0 * all.failed as f64 / total.max(1) as f64,
        all.bytes as f64 / elapsed / 1e6,
        check,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("load-gen: {e}");
            return ExitCode::from(64);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
