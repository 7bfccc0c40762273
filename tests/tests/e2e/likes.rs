//! Likes end to end: exact counts across instances, idempotency, rate limits, and no like lost
//! to a SIGTERM, a `kill -9`, a dead Redis, a Redis that lost its data, a dead leader, a paused
//! leader or a dead database;
//! the lock's mutual exclusion and fences; backup files written and applied at boot.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maple_core::character::CharacterName;
use maple_core::likes::{BackupDir, Batch, SYNC_LOCK, SyncPass};
use maple_core::lock::Backend;
use maple_core::store::{Store, StoreError};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{
    CoreInstance, Db, Options, Stack, error_code, free_port, fresh_name, metric_value, metrics_of,
    redis_addr, redis_url,
};
use crate::private::{PrivateMariaDb, PrivateRedis, sentinel_primary};
use crate::processes::Process;

mod backlog;
mod backups;
mod basics;
mod faults;
mod keys;
mod leader;
mod supervision;

fn distributed(redis: &str, extra: &[(&'static str, &str)]) -> Options {
    let mut core_env = vec![("REDIS_URL", redis.to_owned())];
    core_env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Options {
        db: Db::MySql,
        core_env,
        ..Options::default()
    }
}

/// Sends one like; the status and the JSON body.
async fn like(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    key: Option<&str>,
) -> reqwest::Result<(StatusCode, Value, bool)> {
    let mut request = http.post(format!("{base}/v1/characters/{name}/likes"));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await?;
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body, replayed))
}

async fn read_likes(http: &reqwest::Client, base: &str, name: &str) -> i64 {
    let response = http
        .get(format!("{base}/v1/characters/{name}/likes"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["likes"].as_i64().expect("likes")
}

/// The count the database holds for `name` (synced likes only).
async fn stored_likes(store: &Store, name: &str) -> i64 {
    let ocid = store_ocid(store, name).await;
    let counts = store.like_counts(&[ocid.as_str()]).await.expect("database");
    counts.get(ocid.as_str()).copied().unwrap_or(0)
}

/// Polls until the database holds `expected` likes for `name` (bounded), returns what it saw.
async fn wait_for_stored(store: &Store, name: &str, expected: i64, patience: Duration) -> i64 {
    let started = Instant::now();
    loop {
        let stored = stored_likes(store, name).await;
        if stored == expected || started.elapsed() > patience {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers")
}

/// Likes of `name` still in Redis (not yet in the database).
async fn pending_in_redis(url: &str, namespace: &str, store: &Store, name: &str) -> Option<i64> {
    let ocid = store_ocid(store, name).await;
    let mut redis = redis_connection(url).await;
    redis::cmd("HGET")
        .arg(format!("{namespace}:likes:pending"))
        .arg(ocid)
        .query_async(&mut redis)
        .await
        .expect("HGET")
}

/// Keeps sending likes to `base` until told to stop or the instance stops answering; counts
/// the 202s.
fn load(
    http: reqwest::Client,
    base: String,
    name: String,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match like(&http, &base, &name, None).await {
                Ok((StatusCode::ACCEPTED, _, _)) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok((status, body, _)) => {
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
                    return;
                }
                Err(_) => return,
            }
        }
    })
}

/// Stack whose instances never sync by themselves: the test drives each step.
async fn manual_sync_stack() -> Stack {
    Stack::start_with(distributed(
        &redis_url(),
        &[
            ("MAPLE_CORE_LIKES_SYNC_MS", "3600000"),
            ("MAPLE_CORE_LOCK_LEASE_MS", "600"),
        ],
    ))
    .await
}

async fn like_n(stack: &Stack, name: &str, n: usize) {
    let base = format!("http://{}", stack.core_addr);
    for _ in 0..n {
        let (status, _, _) = like(&stack.http, &base, name, None)
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED);
    }
}

/// The sum of one sample over several instances' metrics.
async fn metric_sum(http: &reqwest::Client, bases: &[String], sample: &str) -> f64 {
    let mut sum = 0.0;
    for base in bases {
        sum += metric_value(&metrics_of(http, base).await, sample);
    }
    sum
}

/// The ocid the database knows for `name`.
async fn store_ocid(store: &Store, name: &str) -> String {
    let name = CharacterName::parse(name).expect("name");
    store
        .find_ocid(&name)
        .await
        .expect("database")
        .expect("character known")
        .as_str()
        .to_owned()
}
