//! Like ingest without HTTP: how many likes/s the buffer → flush pipeline of one instance
//! acknowledges (each `add` returns only after its batch is stored), and whether every one was
//! counted. Two set-ups: embedded (SQLite) and distributed (Redis, MariaDB behind it).
//!
//! ```text
//! cargo bench -p maple-core --bench likes      # MAPLE_BENCH_SECONDS=10 MAPLE_BENCH_TASKS=512
//! ```
//! Needs the machine's Redis and MariaDB (as the tests do).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark's output is its report; set-up failures abort it"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maple_common::nexon::Ocid;
use maple_core::likes::{LikeConfig, Likes};
use maple_core::lock::Locks;
use maple_core::metrics::CoreMetrics;
use maple_core::redis_link::{RedisConfig, RedisLink, RedisUse};
use maple_core::store::Store;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(label: &str, store: Store, redis: Option<RedisLink>, backup: std::path::PathBuf) {
    let metrics = CoreMetrics::new().unwrap();
    let locks = Locks::new(
        redis.clone(),
        store.clone(),
        "bench".into(),
        Duration::from_secs(10),
        metrics.clone(),
    );
    let config = LikeConfig {
        backup_dir: backup,
        ..LikeConfig::default()
    };
    let likes = Likes::new(config, redis, store, locks, metrics.clone());
    likes.start().await;
    let ocids: Vec<Ocid> = (0..200)
        .map(|i| {
            format!(
                "{:032x}",
                0xbe4c_0000_u64 + i + u64::from(std::process::id()) * 1000
            )
            .parse()
            .unwrap()
        })
        .collect();
    let mut before = 0;
    for ocid in &ocids {
        before += likes.count(ocid).await.unwrap().likes;
    }
    let seconds = env_or("MAPLE_BENCH_SECONDS", 10);
    let tasks = env_or("MAPLE_BENCH_TASKS", 512);
    let acked = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let (likes, ocids, acked) = (likes.clone(), ocids.clone(), acked.clone());
            tokio::spawn(async move {
                let mut i = usize::try_from(t).unwrap();
                while Instant::now() < until {
                    likes.add(&ocids[i % ocids.len()], None).await.unwrap();
                    acked.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let acked = acked.load(Ordering::Relaxed);
    let mut after = 0;
    for ocid in &ocids {
        after += likes.count(ocid).await.unwrap().likes;
    }
    let counted = after - before;
    let flushes = metrics.like_flush_size.get_sample_count();
    println!(
        "| {label} | {tasks} | {acked} | {:.0} | {flushes} | {:.0} | {} |",
        acked as f64 / elapsed,
        acked as f64 / flushes.max(1) as f64,
        if counted == i64::try_from(acked).unwrap() {
            "exact".to_owned()
        } else {
            format!("MISMATCH: {counted} counted")
        }
    );
    likes.shutdown(Duration::from_secs(5)).await;
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("maple-bench-likes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        println!("| set-up | tasks | likes acked | likes/s | flushes | likes per flush | count |");
        println!("|---|---|---|---|---|---|---|");

        let sqlite = Store::connect(&format!("sqlite://{}/bench.db", dir.display()), 4)
            .await
            .unwrap();
        run("embedded: SQLite", sqlite, None, dir.join("backup-a")).await;

        let mysql_server = std::env::var("MAPLE_BENCH_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let database = format!("maple_bench_likes_{}", std::process::id());
        {
            use sqlx::Connection as _;
            let mut conn = sqlx::MySqlConnection::connect(&format!("{mysql_server}/test"))
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {database}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let mysql = Store::connect(&format!("{mysql_server}/{database}"), 10)
            .await
            .unwrap();
        let redis = RedisLink::new(
            RedisConfig {
                url: std::env::var("MAPLE_BENCH_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
                op_timeout: Duration::from_millis(250),
                keep_for: Duration::from_secs(3600),
                namespace: format!("bench-likes-{}", std::process::id()),
                sentinels: Vec::new(),
                master: String::new(),
                min_replicas: 0,
            },
            CoreMetrics::new().unwrap(),
            RedisUse::Likes,
        )
        .unwrap();
        run(
            "distributed: Redis → MariaDB",
            mysql,
            Some(redis),
            dir.join("backup-b"),
        )
        .await;
        {
            use sqlx::Connection as _;
            let mut conn = sqlx::MySqlConnection::connect(&format!("{mysql_server}/test"))
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE {database}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let _ = std::fs::remove_dir_all(dir);
    });
}
