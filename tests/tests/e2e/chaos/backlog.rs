//! The long database outage: MariaDB down while likes go to 5,000 distinct characters through
//! two core instances — 45 s in the test command (tens of thousands of likes), five minutes in
//! `scripts/chaos.sh` (`MAPLE_CHAOS_DB_OUTAGE_S`, seconds). The likes wait in Redis;
//! when MariaDB returns the backlog drains — multi-row statements, a set split if its commit
//! runs out of time — and every acknowledged like is in the database once. The figures go to
//! `MAPLE_CHAOS_BACKLOG_REPORT` when set (`scripts/chaos.sh` puts them in `docs/chaos.md`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::StatusCode;
use sqlx::Connection as _;

use crate::harness::{Options, Stack, fresh_name, metric_value, metrics_of, redis_url};
use crate::private::PrivateMariaDb;

/// Distinct characters the likes go to.
const CHARACTERS: usize = 5_000;

/// Every tenth like carries an idempotency key of its own (their keys travel with the batches).
const KEYED_EVERY: u64 = 10;

/// How each like was answered.
#[derive(Debug, Default)]
struct Tally {
    acked: AtomicU64,
    /// 503 `outcome_unknown`: may or may not count.
    unknown: AtomicU64,
    refused: AtomicU64,
}

async fn stored_total(database_url: &str) -> i64 {
    let mut conn = sqlx::MySqlConnection::connect(database_url)
        .await
        .expect("db");
    let (total,): (i64,) =
        sqlx::query_as("SELECT CAST(COALESCE(SUM(likes), 0) AS SIGNED) FROM character_likes")
            .fetch_one(&mut conn)
            .await
            .expect("query");
    total
}

async fn pending_batches(namespace: &str) -> i64 {
    let mut redis = redis::Client::open(redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let (queued, inflight): (i64, i64) = redis::pipe()
        .cmd("LLEN")
        .arg(format!("{namespace}:likes:queue"))
        .cmd("LLEN")
        .arg(format!("{namespace}:likes:inflight"))
        .query_async(&mut redis)
        .await
        .expect("LLEN");
    queued + inflight
}

/// Likes from `workers` tasks, each to the next of `names` (a stride apart), a short pause
/// between, alternating instances, until `stop`.
fn start_likes(
    http: &reqwest::Client,
    bases: &[String; 2],
    names: &Arc<Vec<String>>,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..8_usize)
        .map(|w| {
            let (http, bases, names) = (http.clone(), bases.clone(), names.clone());
            let (stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut step = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    step += 1;
                    let i = usize::try_from(step).unwrap_or(0) * 8 + w;
                    let name = &names[i % names.len()];
                    let url = format!("{}/v1/characters/{name}/likes", bases[i % 2]);
                    let mut request = http.post(&url);
                    if step.is_multiple_of(KEYED_EVERY) {
                        request = request.header("idempotency-key", format!("backlog-{w}-{step}"));
                    }
                    let counter = match request.send().await {
                        Ok(r) if r.status() == StatusCode::ACCEPTED => &tally.acked,
                        Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            if body["error"]["code"] == "outcome_unknown" {
                                &tally.unknown
                            } else {
                                &tally.refused
                            }
                        }
                        _ => &tally.refused,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_database_outage_leaves_a_backlog_that_drains_with_no_like_lost() {
    let outage = Duration::from_secs(
        std::env::var("MAPLE_CHAOS_DB_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(45),
    );
    let mut db = PrivateMariaDb::install().await;
    let database_url = db.database_url().await;
    let stack = Stack::start_with(Options {
        core_env: vec![
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", redis_url()),
            ("MAPLE_CORE_LIKES_SYNC_MS", "200".to_owned()),
            ("MAPLE_CORE_LIKES_RATE", "100000".to_owned()),
            ("MAPLE_CORE_LIKES_BURST", "100000".to_owned()),
        ],
        // 10,000 name lookups up front: above the key's default quota.
        proxy_env: vec![
            ("MAPLE_PROXY_RATELIMIT_RPS", "100000".to_owned()),
            ("MAPLE_PROXY_RATELIMIT_BURST", "100000".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let other = stack.another_core(&[]).await;
    let bases = [format!("http://{}", stack.core_addr), other.url("")];
    let names: Arc<Vec<String>> = Arc::new((0..CHARACTERS).map(|_| fresh_name("bl")).collect());
    // Each character known to both instances before the outage (its ocid is in their memory).
    let warm = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let (http, bases) = (stack.http.clone(), bases.clone());
            async move {
                for base in &bases {
                    let url = format!("{base}/v1/characters/{name}/likes");
                    let response = http.get(&url).send().await.expect("core answers");
                    assert_eq!(response.status(), StatusCode::OK, "{name}");
                }
            }
        })
        .buffer_unordered(32);
    warm.collect::<Vec<()>>().await;

    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers = start_likes(&stack.http, &bases, &names, &stop, &tally);
    tokio::time::sleep(Duration::from_secs(2)).await;
    db.kill().await;
    let down = Instant::now();
    tokio::time::sleep(outage).await;
    let during = tally.acked.load(Ordering::Relaxed);
    let backlog = pending_batches(&stack.namespace).await;
    db.start().await;
    let up = Instant::now();
    eprintln!(
        "MariaDB back after {:.0} s: {during} likes acknowledged, {backlog} batches waiting in Redis",
        down.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("like worker");
    }
    let acked = i64::try_from(tally.acked.load(Ordering::Relaxed)).expect("count");
    let unknown = i64::try_from(tally.unknown.load(Ordering::Relaxed)).expect("count");
    let refused = tally.refused.load(Ordering::Relaxed);

    // The backlog drains: nothing left queued in Redis, the database holds every like.
    let mut stored = stored_total(&database_url).await;
    while (stored < acked || pending_batches(&stack.namespace).await > 0)
        && up.elapsed() < Duration::from_secs(240)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stored = stored_total(&database_url).await;
    }
    let drained = up.elapsed();
    let left = pending_batches(&stack.namespace).await;
    let mut splits = 0.0;
    for base in &bases {
        let metrics = metrics_of(&stack.http, base).await;
        splits += metric_value(&metrics, "maple_core_like_sync_splits_total");
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| MariaDB down {} s, likes to {CHARACTERS} characters | {acked} acknowledged ({during} before MariaDB returned), {unknown} outcome unknown, {refused} refused | {backlog} batches in Redis when it returned | drained in {:.1} s ({splits} split commits) | {stored} stored ({} lost) |",
        outage.as_secs(),
        drained.as_secs_f64(),
        (acked - stored).max(0),
    );
    eprintln!("{report}");
    if let Ok(path) = std::env::var("MAPLE_CHAOS_BACKLOG_REPORT") {
        std::fs::write(&path, &report).expect("report written");
    }
    assert_eq!(left, 0, "batches still waiting in Redis:\n{report}");
    assert!(stored >= acked, "acknowledged likes lost:\n{report}");
    assert!(stored <= acked + unknown, "likes counted twice:\n{report}");
    assert!(backlog > 0, "the outage left a backlog in Redis:\n{report}");
    assert!(during > 0, "likes were acknowledged during the outage");
    other.stop().await;
    stack.stop().await;
    db.kill().await;
}
