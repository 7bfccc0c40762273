//! Two faults of the stores, in a shape of their own — the main suite finds Redis through
//! Sentinel, so no fault proxy can sit in front of it: one core instance reaching a private
//! Redis (with AOF, so a restart keeps what it acknowledged) through a TCP fault proxy and a
//! private MariaDB, its backup folder on a 1 MiB tmpfs, under the main suite's load.
//!
//! 1. **Redis slow**: every command towards Redis waits 100 ms (below core's 250 ms Redis
//!    timeout: slow, not dead).
//! 2. **Full disk**: Redis and MariaDB down and the backup folder's filesystem full, so a like
//!    has nowhere to go: it is refused (503), never acknowledged and lost. Then space, Redis
//!    and MariaDB come back.
//!
//! Each is held 5 s in the test command, 10 s in `scripts/chaos.sh` (`MAPLE_CHAOS_LONG=1`).
//!
//! Fails if an acknowledged like is missing from the database, more are stored than sent, the
//! full disk refused no backup write, or a window answered nothing fresh. The table goes to
//! `MAPLE_CHAOS_STORES_REPORT` when set (`scripts/chaos.sh` puts it in `docs/chaos.md`).

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use maple_tests::tcp_fault::TcpFault;
use nix::mount::{MsFlags, mount, umount};
use reqwest::StatusCode;

use super::{
    FLUSHED, Pace, REAPPLIED, TABLE_HEAD, WINDOWS, Window, start_load, summarize, table_line,
    total_likes,
};
use crate::harness::{Options, Stack, UNCACHED, free_port, fresh_name, metric_value, metrics_of};
use crate::private::{PrivateMariaDb, PrivateRedis};

/// A tmpfs of `bytes` mounted on a fresh folder, unmounted on drop.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Self {
        let dir = std::env::temp_dir().join(format!("maple-fulldisk-{}", free_port().port()));
        std::fs::create_dir_all(&dir).expect("mount point");
        let options = format!("size={bytes}");
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| {
            panic!("the full-disk fault mounts a small tmpfs (it needs root, as CI has): {e}")
        });
        Self { dir }
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0_u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = umount(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn counter(http: &reqwest::Client, base: &str, sample: &str) -> f64 {
    metric_value(&metrics_of(http, base).await, sample)
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_slow_and_a_full_disk_lose_no_acknowledged_like() {
    let disk = Tmpfs::mount(1 << 20);
    let redis_dir = std::env::temp_dir().join(format!("maple-chaos-redis-{}", free_port().port()));
    let mut redis = PrivateRedis::start_persistent(free_port().port(), &redis_dir).await;
    let redis_addr: std::net::SocketAddr = redis
        .url()
        .trim_start_matches("redis://")
        .parse()
        .expect("addr");
    let link = TcpFault::start(redis_addr).await.expect("fault proxy");
    let mut db = PrivateMariaDb::install().await;
    let database_url = db.database_url().await;
    let stack = Stack::start_with(Options {
        proxy_env: UNCACHED
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect(),
        core_env: vec![
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", format!("redis://{}", link.addr)),
            (
                "MAPLE_CORE_BACKUP_DIR",
                disk.dir.join("backup").display().to_string(),
            ),
            ("MAPLE_CORE_LIKES_SYNC_MS", "200".to_owned()),
            ("MAPLE_CORE_EQUIPMENT_FRESH_S", "2".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let base = format!("http://{}", stack.core_addr);
    let names: Vec<String> = (0..12).map(|_| fresh_name("cs")).collect();
    let like_names: Vec<Vec<String>> = (0..WINDOWS)
        .map(|_| (0..3).map(|_| fresh_name("cm")).collect())
        .collect();
    for name in names.iter().chain(like_names.iter().flatten()) {
        let url = format!("{base}/v1/characters/{name}/equipment");
        let warm = stack.http.get(&url).send().await.expect("core answers");
        assert_eq!(warm.status(), StatusCode::OK);
    }
    let load = start_load(
        &stack.http,
        [base.clone(), base.clone()],
        &names,
        &like_names,
    );
    // The main suite's pace: each fault held 10 s at full length (scripts/chaos.sh), 5 s in the
    // test command, long enough for a hundred slowed Redis calls and for the full disk to refuse
    // backup writes.
    let pace = Pace::from_env();
    let (before, during, after) = (pace.before, pace.secs(10, 5), pace.after);
    let secs = during.as_secs();
    let mut windows = Vec::new();
    let mut flushes = Vec::new();
    let mut reapplied = Vec::new();
    let mut backup_failures = 0.0;
    for scenario in 0..2 {
        load.record.window.store(scenario, Ordering::Relaxed);
        let from = Instant::now();
        let mut flushed = Vec::new();
        for sample in FLUSHED {
            flushed.push(counter(&stack.http, &base, sample).await);
        }
        let lost_before = counter(&stack.http, &base, REAPPLIED).await;
        tokio::time::sleep(before).await;
        let fault = Instant::now();
        let name = if scenario == 0 {
            link.set_latency(Duration::from_millis(100));
            tokio::time::sleep(during).await;
            link.set_latency(Duration::ZERO);
            format!("Redis slow for {secs} s (100 ms on every command)")
        } else {
            let failed = r#"maple_core_like_backups_total{result="failed"}"#;
            let failed_before = counter(&stack.http, &base, failed).await;
            let filler = disk.fill();
            redis.kill().await;
            db.kill().await;
            tokio::time::sleep(during).await;
            backup_failures = counter(&stack.http, &base, failed).await - failed_before;
            std::fs::remove_file(filler).expect("space again");
            redis.restart().await;
            db.start().await;
            format!("full disk under the backup folder, Redis and MariaDB down, for {secs} s")
        };
        let healed = Instant::now();
        tokio::time::sleep(after).await;
        windows.push(Window {
            name,
            from,
            fault,
            healed,
            end: Instant::now(),
        });
        let mut targets = Vec::new();
        for (sample, before) in FLUSHED.iter().zip(flushed) {
            targets.push(counter(&stack.http, &base, sample).await - before);
        }
        flushes.push(targets);
        reapplied.push(counter(&stack.http, &base, REAPPLIED).await - lost_before);
    }
    load.stop.store(true, Ordering::Relaxed);
    for worker in load.workers {
        worker.await.expect("load worker");
    }
    let record = load.record;
    let acked = i64::try_from(record.likes_acked.load(Ordering::Relaxed)).expect("count");
    let given_up = i64::try_from(record.likes_given_up.load(Ordering::Relaxed)).expect("count");
    let used: Vec<String> = like_names[..2].iter().flatten().cloned().collect();
    let started = Instant::now();
    let mut stored = total_likes(&database_url, &used).await;
    while stored < acked && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored = total_likes(&database_url, &used).await;
    }
    let samples = record.samples.lock().expect("samples").clone();
    let mut report = String::from(TABLE_HEAD);
    let mut per_window = Vec::new();
    for (k, window) in windows.iter().enumerate() {
        let acked_k = i64::try_from(record.acked_in[k].load(Ordering::Relaxed)).expect("count");
        let stored_k = total_likes(&database_url, &like_names[k]).await;
        per_window.push((acked_k, stored_k));
        let row = summarize(window, &samples);
        report.push_str(&table_line(
            &row,
            (acked_k, stored_k),
            &flushes[k],
            reapplied[k],
            after,
        ));
        assert!(
            row.counts.get("fresh").copied().unwrap_or(0) > 0,
            "{}: nothing answered fresh:\n{report}",
            row.name
        );
    }
    report.push_str(&format!(
        "\nLikes: {acked} acknowledged, {stored} in the database ({} lost), {given_up} given up after 8 tries; backup writes refused by the full disk: {backup_failures}.\n",
        (acked - stored).max(0)
    ));
    eprintln!("{report}");
    if let Ok(path) = std::env::var("MAPLE_CHAOS_STORES_REPORT") {
        std::fs::write(&path, &report).expect("report written");
    }
    for (k, (acked_k, stored_k)) in per_window.iter().enumerate() {
        assert!(stored_k >= acked_k, "window {k}: likes lost:\n{report}");
    }
    assert!(stored >= acked, "acknowledged likes lost:\n{report}");
    assert!(stored <= acked + given_up, "likes counted twice:\n{report}");
    assert!(
        backup_failures > 0.0,
        "the full disk refused a backup write:\n{report}"
    );
    stack.stop().await;
    drop(redis);
    db.kill().await;
    let _ = std::fs::remove_dir_all(redis_dir);
}
