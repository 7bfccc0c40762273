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
    CoreInstance, Db, Options, Stack, error_code, free_port, fresh_name, metric_value, redis_url,
};
use crate::private::{PrivateMariaDb, PrivateRedis, sentinel_primary};
use crate::processes::Process;

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

async fn metrics_of(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
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

#[tokio::test]
async fn embedded_likes_are_stored_and_read_back() {
    let stack = Stack::start().await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("lk");
    let sends = (0..25).map(|_| like(&stack.http, &base, &name, None));
    let answers = futures::future::join_all(sends).await;
    let mut highest = 0;
    for answer in answers {
        let (status, body, _) = answer.expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["counted"], true);
        highest = highest.max(body["likes"].as_i64().expect("likes"));
    }
    // The last flush saw all of them.
    assert_eq!(highest, 25);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 25);
    // No Redis: the flush went straight to SQLite, so the database already has them.
    assert_eq!(stored_likes(&stack.store().await, &name).await, 25);
    let metrics = metrics_of(&stack.http, &base).await;
    assert_eq!(
        metric_value(&metrics, r#"maple_core_likes_total{result="accepted"}"#),
        25.0
    );
    assert!(
        metric_value(
            &metrics,
            r#"maple_core_like_flushes_total{result="ok",target="db"}"#
        ) >= 1.0,
        "{metrics}"
    );

    // Bad input: unknown character, bad name, bad idempotency key.
    let (status, body, _) = like(&stack.http, &base, "ghostly", None)
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "character_not_found");
    let (status, body, _) = like(&stack.http, &base, "no%20spaces!", None)
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_character_name");
    let (status, body, _) = like(&stack.http, &base, &name, Some("has space"))
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_header");
    let long = "k".repeat(129);
    let (status, _, _) = like(&stack.http, &base, &name, Some(&long))
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 25);
    stack.stop().await;
}

/// Eight sends of one key (five at once, then three in turn) count one like.
async fn one_key_counts_once(stack: &Stack) {
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("ik");
    let at_once = (0..5).map(|_| like(&stack.http, &base, &name, Some("retry-1")));
    let mut answers: Vec<_> = futures::future::join_all(at_once)
        .await
        .into_iter()
        .map(|a| a.expect("answered"))
        .collect();
    for _ in 0..3 {
        answers.push(
            like(&stack.http, &base, &name, Some("retry-1"))
                .await
                .expect("answered"),
        );
    }
    let counted = answers
        .iter()
        .filter(|(_, body, _)| body["counted"] == true)
        .count();
    assert_eq!(counted, 1, "{answers:?}");
    for (status, body, replayed) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED);
        assert_eq!(*replayed, body["counted"] == false);
    }
    assert_eq!(read_likes(&stack.http, &base, &name).await, 1);
    let (_, body, _) = like(&stack.http, &base, &name, Some("retry-2"))
        .await
        .expect("answered");
    assert_eq!(body["counted"], true);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 2);
}

#[tokio::test]
async fn an_idempotency_key_counts_once_in_both_modes() {
    let embedded = Stack::start().await;
    one_key_counts_once(&embedded).await;
    embedded.stop().await;
    let distributed = Stack::start_with(distributed(&redis_url(), &[])).await;
    one_key_counts_once(&distributed).await;
    distributed.stop().await;
}

#[tokio::test]
async fn each_client_is_rate_limited_with_retry_after() {
    let stack = Stack::start_with(Options {
        core_env: vec![
            ("MAPLE_CORE_LIKES_RATE", "1".to_owned()),
            ("MAPLE_CORE_LIKES_BURST", "2".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let url = stack.core(&format!("/v1/characters/{}/likes", fresh_name("rl")));
    for _ in 0..2 {
        let response = stack.http.post(&url).send().await.expect("answers");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let refused = stack.http.post(&url).send().await.expect("answers");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(refused).await, "rate_limited");
    // Reads are not limited.
    let read = stack.http.get(&url).send().await.expect("answers");
    assert_eq!(read.status(), StatusCode::OK);
    stack.stop().await;
}

#[tokio::test]
async fn likes_over_two_instances_end_exact_in_the_database() {
    // Frequent syncs, so reads overlap commits.
    let stack = Stack::start_with(distributed(
        &redis_url(),
        &[("MAPLE_CORE_LIKES_SYNC_MS", "50")],
    ))
    .await;
    let other = stack.another_core(&[]).await;
    let bases = [format!("http://{}", stack.core_addr), other.url("")];
    let names = [fresh_name("ex"), fresh_name("ex")];
    let (tasks, per_task) = (16, 40);
    // A reader meanwhile: a count read during a sync must never include a batch twice, so
    // the counts it sees never go down.
    assert_eq!(read_likes(&stack.http, &bases[1], &names[0]).await, 0);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (http, base, name, done) = (
            stack.http.clone(),
            bases[1].clone(),
            names[0].clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                seen.push(read_likes(&http, &base, &name).await);
            }
            seen
        })
    };
    let sends = (0..tasks).map(|t| {
        let (http, bases, names) = (stack.http.clone(), bases.clone(), names.clone());
        async move {
            for i in 0..per_task {
                let (status, body, _) = like(&http, &bases[(t + i) % 2], &names[i % 2], None)
                    .await
                    .expect("answered");
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            }
        }
    });
    futures::future::join_all(sends).await;
    done.store(true, Ordering::Relaxed);
    let seen = reader.await.expect("reader");
    assert!(seen.len() > 10, "the reader overlapped the load");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "counts never go down: {seen:?}"
    );
    let expected = i64::try_from(tasks * per_task / 2).expect("small");
    let store = stack.store().await;
    for name in &names {
        let stored = wait_for_stored(&store, name, expected, Duration::from_secs(20)).await;
        assert_eq!(stored, expected, "{name}");
        assert_eq!(
            pending_in_redis(&redis_url(), &stack.namespace, &store, name).await,
            None,
            "nothing left pending in Redis"
        );
        for base in &bases {
            assert_eq!(read_likes(&stack.http, base, name).await, expected);
        }
    }
    let synced: f64 = {
        let mut total = 0.0;
        for base in &bases {
            let metrics = metrics_of(&stack.http, base).await;
            total += metric_value(&metrics, r#"maple_core_like_synced_total{kind="likes"}"#);
        }
        total
    };
    assert_eq!(synced, (tasks * per_task) as f64, "each like synced once");
    other.stop().await;
    stack.stop().await;
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

#[tokio::test]
async fn a_sigterm_under_load_loses_no_like() {
    let mut stack = Stack::start_with(distributed(
        &redis_url(),
        &[("MAPLE_CORE_LIKES_SYNC_MS", "200")],
    ))
    .await;
    let survivor = stack.another_core(&[]).await;
    let name = fresh_name("st");
    let base = format!("http://{}", stack.core_addr);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);
    let (stop, accepted) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..8)
        .map(|_| {
            load(
                stack.http.clone(),
                base.clone(),
                name.clone(),
                stop.clone(),
                accepted.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shutdown = stack.begin_core_shutdown();
    shutdown.await.expect("task").expect("drained cleanly");
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let accepted = i64::try_from(accepted.load(Ordering::Relaxed)).expect("count");
    assert!(accepted > 0);
    // The survivor's sync moves whatever the stopped instance left in Redis.
    let store = stack.store().await;
    assert_eq!(
        wait_for_stored(&store, &name, accepted, Duration::from_secs(20)).await,
        accepted
    );
    assert_eq!(
        read_likes(&stack.http, &survivor.url(""), &name).await,
        accepted
    );
    survivor.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_kill_9_under_load_loses_no_like_and_retries_count_once() {
    let stack = Stack::start_with(distributed(
        &redis_url(),
        &[("MAPLE_CORE_LIKES_SYNC_MS", "200")],
    ))
    .await;
    let listen = free_port();
    let env = stack.core_env_with(&[("MAPLE_CORE_LISTEN", &listen.to_string())]);
    let process = Process::spawn("maple-core", &env);
    let victim = format!("http://{listen}");
    crate::harness::wait_until_healthy(&stack.http, &format!("{victim}/health/ready")).await;
    let fallback = format!("http://{}", stack.core_addr);
    let name = fresh_name("k9");
    assert_eq!(read_likes(&stack.http, &victim, &name).await, 0);

    // Each like has its own key; a send that fails is retried with the same key on the other
    // instance until it is acknowledged: the count must be exactly the number of likes.
    let (tasks, per_task) = (8_usize, 60_usize);
    let killed = Arc::new(AtomicBool::new(false));
    let sends = (0..tasks).map(|t| {
        let (http, victim, fallback, name, killed) = (
            stack.http.clone(),
            victim.clone(),
            fallback.clone(),
            name.clone(),
            killed.clone(),
        );
        tokio::spawn(async move {
            for i in 0..per_task {
                let key = format!("k9-{t}-{i}");
                let mut target = if killed.load(Ordering::Relaxed) {
                    &fallback
                } else {
                    &victim
                };
                loop {
                    match like(&http, target, &name, Some(&key)).await {
                        Ok((StatusCode::ACCEPTED, _, _)) => break,
                        _ => target = &fallback,
                    }
                }
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    });
    let sends: Vec<_> = sends.collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    process.signal("KILL");
    killed.store(true, Ordering::Relaxed);
    for send in sends {
        send.await.expect("sender");
    }
    drop(process);
    let expected = i64::try_from(tasks * per_task).expect("small");
    let store = stack.store().await;
    assert_eq!(
        wait_for_stored(&store, &name, expected, Duration::from_secs(20)).await,
        expected
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_dead_redis_mid_run_costs_no_like() {
    let redis_dir = std::env::temp_dir().join(format!("maple-redis-{}", free_port().port()));
    let port = free_port().port();
    let mut redis = PrivateRedis::start_persistent(port, &redis_dir);
    let stack = Stack::start_with(distributed(
        &redis.url(),
        &[("MAPLE_CORE_LIKES_SYNC_MS", "200")],
    ))
    .await;
    let other = stack.another_core(&[]).await;
    let name = fresh_name("rd");
    let bases = [format!("http://{}", stack.core_addr), other.url("")];
    assert_eq!(read_likes(&stack.http, &bases[0], &name).await, 0);
    let (stop, accepted) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..6)
        .map(|i| {
            load(
                stack.http.clone(),
                bases[i % 2].clone(),
                name.clone(),
                stop.clone(),
                accepted.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    let during = accepted.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        accepted.load(Ordering::Relaxed) > during + 10,
        "likes kept being accepted while Redis was dead"
    );
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let accepted = i64::try_from(accepted.load(Ordering::Relaxed)).expect("count");
    let store = stack.store().await;
    assert_eq!(
        wait_for_stored(&store, &name, accepted, Duration::from_secs(30)).await,
        accepted
    );
    let mut db_flushes = 0.0;
    for base in &bases {
        let metrics = metrics_of(&stack.http, base).await;
        db_flushes += metric_value(
            &metrics,
            r#"maple_core_like_flushes_total{result="ok",target="db"}"#,
        );
    }
    assert!(
        db_flushes >= 1.0,
        "the database took likes while Redis was dead"
    );
    other.stop().await;
    stack.stop().await;
    drop(redis);
    let _ = std::fs::remove_dir_all(redis_dir);
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

#[tokio::test]
async fn a_leader_killed_between_commit_and_cleanup_counts_nothing_twice() {
    let stack = manual_sync_stack().await;
    let name = fresh_name("lm");
    like_n(&stack, &name, 30).await;
    let store = stack.store().await;
    assert_eq!(stored_likes(&store, &name).await, 0, "nothing synced yet");

    // The doomed leader: takes the lock, claims the batches, commits them... and dies before
    // taking them out of Redis (its lease then runs out).
    let leader = stack.another_core(&[]).await;
    let likes = &leader.state.likes;
    let (redis, scripts) = likes.redis_parts().expect("redis");
    let guard = leader
        .state
        .locks
        .acquire(SYNC_LOCK, Duration::ZERO)
        .await
        .expect("lock");
    let ids = scripts.claim(redis, 500).await.expect("claim");
    assert!(!ids.is_empty());
    let batches = scripts.read(redis, &ids).await.expect("read");
    let synced = store
        .apply_synced_batches(guard.fence(), &batches, maple_core::clock::now_ms())
        .await
        .expect("commit");
    assert_eq!(synced.likes, 30);
    drop(guard);
    leader.stop().await;

    // The next leader takes the dead one's in-flight batches over: the database recognises
    // them, so nothing is added twice, and Redis is cleaned up.
    let started = Instant::now();
    let pass = loop {
        match stack.core_state.likes.sync_once().await.expect("sync") {
            SyncPass::Busy if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            pass => break pass,
        }
    };
    assert_eq!(
        pass,
        SyncPass::Idle,
        "the batches were recognised as applied"
    );
    assert_eq!(stored_likes(&store, &name).await, 30);
    assert_eq!(
        pending_in_redis(&redis_url(), &stack.namespace, &store, &name).await,
        None
    );
    let metrics = metrics_of(&stack.http, &format!("http://{}", stack.core_addr)).await;
    assert!(
        metric_value(
            &metrics,
            r#"maple_core_like_synced_total{kind="skipped_batches"}"#
        ) >= 1.0,
        "{metrics}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_paused_leader_whose_lease_expired_is_fenced_out() {
    let stack = manual_sync_stack().await;
    let name = fresh_name("fz");
    like_n(&stack, &name, 12).await;
    let store = stack.store().await;
    let paused = stack.another_core(&[]).await;
    let (redis, scripts) = paused.state.likes.redis_parts().expect("redis");
    let guard = paused
        .state
        .locks
        .acquire(SYNC_LOCK, Duration::ZERO)
        .await
        .expect("lock");
    let ids = scripts.claim(redis, 500).await.expect("claim");
    let batches = scripts.read(redis, &ids).await.expect("read");
    // The holder stalls; its lease is gone (as if it had expired during the pause).
    let mut direct = redis_connection(&redis_url()).await;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:lock:{SYNC_LOCK}", stack.namespace))
        .query_async(&mut direct)
        .await
        .expect("DEL");
    // A new leader syncs everything meanwhile...
    assert_eq!(
        stack.core_state.likes.sync_once().await.expect("sync"),
        SyncPass::Synced(12)
    );
    // ...and the paused one wakes and tries to apply its (same) batches: refused.
    let late = store
        .apply_synced_batches(guard.fence(), &batches, maple_core::clock::now_ms())
        .await;
    assert!(
        matches!(late, Err(StoreError::Fenced { token, current, .. }) if current > token),
        "{late:?}"
    );
    assert_eq!(stored_likes(&store, &name).await, 12);
    drop(guard);
    paused.stop().await;
    stack.stop().await;
}

/// Runs `rounds` critical sections on each of `instances` × `tasks`; asserts no two overlap and
/// that fences increase strictly in the order the sections ran. Returns the backends used.
async fn contend(
    instances: &[&maple_core::AppState],
    tasks: usize,
    rounds: usize,
) -> HashSet<Backend> {
    let lock = format!("e2e-{}", fresh_name("lock"));
    let inside = Arc::new(AtomicBool::new(false));
    let fences = Arc::new(Mutex::new(Vec::new()));
    let backends = Arc::new(Mutex::new(HashSet::new()));
    let mut handles = Vec::new();
    for state in instances {
        for _ in 0..tasks {
            let (locks, lock, inside, fences, backends) = (
                state.locks.clone(),
                lock.clone(),
                inside.clone(),
                fences.clone(),
                backends.clone(),
            );
            handles.push(tokio::spawn(async move {
                for _ in 0..rounds {
                    let guard = locks
                        .acquire(&lock, Duration::from_secs(20))
                        .await
                        .expect("acquired within the wait");
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    fences.lock().expect("fences").push(guard.fence().token);
                    backends.lock().expect("backends").insert(guard.backend());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.store(false, Ordering::SeqCst);
                    guard.release().await;
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let fences = fences.lock().expect("fences").clone();
    assert_eq!(fences.len(), instances.len() * tasks * rounds);
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "fences increase: {fences:?}"
    );
    backends.lock().expect("backends").clone()
}

#[tokio::test]
async fn the_lock_excludes_across_instances_with_increasing_fences_and_falls_back_to_mysql() {
    let stack = Stack::start_with(distributed(&redis_url(), &[])).await;
    let other = stack.another_core(&[]).await;
    let backends = contend(&[&stack.core_state, &other.state], 4, 5).await;
    assert_eq!(backends, HashSet::from([Backend::Redis]));
    other.stop().await;

    // Redis unreachable: the same guarantees through MariaDB's GET_LOCK.
    let dead_redis = format!("redis://127.0.0.1:{}", free_port().port());
    let a = stack.another_core(&[("REDIS_URL", &dead_redis)]).await;
    let b = stack.another_core(&[("REDIS_URL", &dead_redis)]).await;
    let backends = contend(&[&a.state, &b.state], 3, 4).await;
    assert_eq!(backends, HashSet::from([Backend::MySql]));
    let metrics = metrics_of(&stack.http, &a.url("")).await;
    assert!(
        metrics.contains("maple_core_lock_fallbacks_total{lock=\"e2e-"),
        "{metrics}"
    );
    a.stop().await;
    b.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn with_redis_and_the_database_dead_likes_go_to_a_backup_file_and_come_back() {
    let mut db = PrivateMariaDb::install();
    let database_url = db.database_url().await;
    let redis_dir = std::env::temp_dir().join(format!("maple-redis-{}", free_port().port()));
    let mut redis = PrivateRedis::start_persistent(free_port().port(), &redis_dir);
    let options = Options {
        core_env: vec![
            ("DATABASE_URL", database_url),
            ("REDIS_URL", redis.url()),
            ("MAPLE_CORE_LIKES_SYNC_MS", "200".to_owned()),
        ],
        ..Options::default()
    };
    let stack = Stack::start_with(options).await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("bk");
    like_n(&stack, &name, 5).await;
    let store = Store::connect(&db.database_url().await, 2)
        .await
        .expect("database");
    assert_eq!(
        wait_for_stored(&store, &name, 5, Duration::from_secs(10)).await,
        5
    );
    assert_eq!(read_likes(&stack.http, &base, &name).await, 5);

    db.kill();
    redis.kill();
    for _ in 0..10 {
        let (status, body, _) = like(&stack.http, &base, &name, None)
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let files = BackupDir::new(stack.backup_dir.clone()).pending();
    assert!(!files.is_empty(), "backup files written");
    // Still counted for readers of this instance (the stored count is remembered), marked
    // partial (Redis could not be asked).
    let body: Value = stack
        .http
        .get(format!("{base}/v1/characters/{name}/likes"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["likes"], 15, "{body}");
    assert_eq!(body["partial"], true, "{body}");

    db.start();
    redis.restart();
    // Recovery (every 5 s) applies the files; the sync moves everything to the database.
    assert_eq!(
        wait_for_stored(&store, &name, 15, Duration::from_secs(40)).await,
        15
    );
    let started = Instant::now();
    while !BackupDir::new(stack.backup_dir.clone())
        .pending()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "files archived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stack
            .backup_dir
            .join("archive")
            .read_dir()
            .expect("archive")
            .count()
            >= 1
    );
    stack.stop().await;
    drop(redis);
    let _ = std::fs::remove_dir_all(redis_dir);
}

#[tokio::test]
async fn backup_files_are_applied_at_boot_and_bad_ones_kept() {
    let stack = Stack::start().await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("bt");
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);
    let store = stack.store().await;
    let ocid = store
        .find_ocid(&CharacterName::parse(&name).expect("name"))
        .await
        .expect("db")
        .expect("known");

    // What a previous run left: one good file (written twice under two names would be two
    // batches; the same batch id twice must count once) and one that is not a backup.
    let dir = tempdir_beside(&stack.backup_dir);
    let backups = BackupDir::new(dir.clone());
    let batch = Batch {
        id: "1764000000000-0123456789abcdef".to_owned(),
        counts: [(ocid.as_str().to_owned(), 7)].into(),
        keyed: vec![(ocid.as_str().to_owned(), "boot-1".to_owned())],
    };
    let path = backups.write(&batch).expect("written");
    std::fs::copy(&path, dir.join("likes-1764000000000-0123456789abcdee.json")).expect("copy");
    std::fs::write(dir.join("likes-garbage.json"), b"{not json").expect("garbage");

    let booted = stack
        .another_core(&[("MAPLE_CORE_BACKUP_DIR", &dir.display().to_string())])
        .await;
    // 7 + 1 keyed, once: the copy carries the same batch id.
    assert_eq!(read_likes(&stack.http, &booted.url(""), &name).await, 8);
    let left: Vec<_> = backups.pending();
    assert_eq!(
        left,
        vec![dir.join("likes-garbage.json")],
        "only the bad file stays"
    );
    let metrics = metrics_of(&stack.http, &booted.url("")).await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_like_backup_files{state="unreadable"}"#
        ),
        1.0
    );
    booted.stop().await;
    stack.stop().await;
}

fn tempdir_beside(dir: &std::path::Path) -> std::path::PathBuf {
    let other = dir.with_file_name(format!("boot-{}", fresh_name("d")));
    std::fs::create_dir_all(&other).expect("dir");
    other
}

#[tokio::test]
async fn a_held_lock_is_renewed_past_its_lease_and_freed_by_release() {
    // Leases of 600 ms: without renewal the lock would be free after 0.6 s.
    let stack = manual_sync_stack().await;
    let other = stack.another_core(&[]).await;
    let lock = format!("e2e-{}", fresh_name("renew"));
    let held = stack
        .core_state
        .locks
        .acquire(&lock, Duration::ZERO)
        .await
        .expect("free");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!held.is_lost(), "renewed while held");
    let refused = other
        .state
        .locks
        .acquire(&lock, Duration::from_millis(200))
        .await;
    assert!(
        matches!(refused, Err(maple_core::lock::LockError::Busy(_))),
        "{refused:?}"
    );
    held.release().await;
    let next = other
        .state
        .locks
        .acquire(&lock, Duration::ZERO)
        .await
        .expect("free after release");
    assert_eq!(next.backend(), Backend::Redis);
    next.release().await;
    other.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn core_follows_a_sentinel_failover_and_loses_no_like() {
    let dir = std::env::temp_dir().join(format!("maple-sentinel-{}", free_port().port()));
    let (primary_port_0, replica_port) = (free_port().port(), free_port().port());
    let mut primary = PrivateRedis::start(primary_port_0);
    let _replica = PrivateRedis::start_replica(replica_port, primary_port_0);
    let sentinels: Vec<PrivateRedis> = (0..3)
        .map(|_| PrivateRedis::start_sentinel(free_port().port(), primary_port_0, &dir))
        .collect();
    // The replica is in sync before anything counts on it.
    let started = Instant::now();
    while !primary.has_replica_online().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "replica never synced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port()))
        .collect::<Vec<_>>()
        .join(",");
    let stack = Stack::start_with(Options {
        db: Db::MySql,
        core_env: vec![
            ("REDIS_SENTINELS", list),
            ("REDIS_SENTINEL_MASTER", "maple".to_owned()),
            // A like counts as stored in Redis only once a replica holds it too.
            ("MAPLE_CORE_REDIS_MIN_REPLICAS", "1".to_owned()),
            ("MAPLE_CORE_LIKES_SYNC_MS", "200".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("sf");
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);
    let redis_ok = |metrics: &str| {
        metric_value(
            metrics,
            r#"maple_core_like_flushes_total{result="ok",target="redis"}"#,
        )
    };
    let (stop, accepted) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..4)
        .map(|_| {
            load(
                stack.http.clone(),
                base.clone(),
                name.clone(),
                stop.clone(),
                accepted.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        redis_ok(&metrics_of(&stack.http, &base).await) > 0.0,
        "flushing to Redis"
    );

    // The primary dies; the sentinels promote the replica; likes go on meanwhile.
    primary.kill();
    let started = Instant::now();
    while sentinel_primary(sentinels[0].port()).await != Some(replica_port) {
        assert!(started.elapsed() < Duration::from_secs(30), "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old primary returns and the sentinels make it the new primary's replica, so
    // batches can be confirmed by a replica again; core writes to the new primary.
    primary.restart();
    let before = redis_ok(&metrics_of(&stack.http, &base).await);
    let started = Instant::now();
    while redis_ok(&metrics_of(&stack.http, &base).await) <= before + 5.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "core never flushed to the new primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let accepted = i64::try_from(accepted.load(Ordering::Relaxed)).expect("count");
    let store = stack.store().await;
    assert_eq!(
        wait_for_stored(&store, &name, accepted, Duration::from_secs(30)).await,
        accepted,
        "every acknowledged like is in the database"
    );
    stack.stop().await;
    drop(sentinels);
    let _ = std::fs::remove_dir_all(dir);
}

/// The sum of one sample over several instances' metrics.
async fn metric_sum(http: &reqwest::Client, bases: &[String], sample: &str) -> f64 {
    let mut sum = 0.0;
    for base in bases {
        sum += metric_value(&metrics_of(http, base).await, sample);
    }
    sum
}

#[tokio::test]
async fn likes_redis_loses_before_the_sync_are_applied_from_the_flushing_instance() {
    // A Redis without persistence (as the machine's), and neither syncs nor checks on their
    // own: the test decides when each runs.
    let mut redis = PrivateRedis::start(free_port().port());
    let stack = Stack::start_with(distributed(
        &redis.url(),
        &[
            ("MAPLE_CORE_LIKES_SYNC_MS", "3600000"),
            ("MAPLE_CORE_LIKES_WATCH_MS", "3600000"),
        ],
    ))
    .await;
    let instances = |stack: &Stack, other: &CoreInstance| {
        [stack.core_state.likes.clone(), other.state.likes.clone()]
    };
    let other = stack.another_core(&[]).await;
    let bases = [format!("http://{}", stack.core_addr), other.url("")];
    let likes = instances(&stack, &other);
    let name = fresh_name("rl");
    assert_eq!(read_likes(&stack.http, &bases[0], &name).await, 0);
    // 20 plain likes and 5 keys sent twice each, over both instances: 25 count.
    for i in 0..30 {
        let key = (i >= 20).then(|| format!("k{}", i % 5));
        let (status, body, _) = like(&stack.http, &bases[i % 2], &name, key.as_deref())
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let store = stack.store().await;
    assert_eq!(
        pending_in_redis(&redis.url(), &stack.namespace, &store, &name).await,
        Some(25),
        "all in Redis, none synced yet"
    );
    let retained = r"maple_core_like_retained_batches";
    assert!(metric_sum(&stack.http, &bases, retained).await >= 2.0);

    // One batch's contents vanish (as an eviction would do) while its id stays queued: the
    // sync must not record that id as applied, and the instance that flushed it re-applies
    // it from memory.
    let mut connection = redis_connection(&redis.url()).await;
    let queued: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{}:likes:queue", stack.namespace))
        .arg(0)
        .arg(-1)
        .query_async(&mut connection)
        .await
        .expect("LRANGE");
    let evicted = queued.first().expect("a batch queued").clone();
    let evicted_likes: i64 = redis::cmd("HGET")
        .arg(format!("{}:likes:batch:{evicted}", stack.namespace))
        .arg(store_ocid(&store, &name).await)
        .query_async(&mut connection)
        .await
        .expect("HGET");
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:likes:batch:{evicted}", stack.namespace))
        .query_async(&mut connection)
        .await
        .expect("DEL");
    assert!(matches!(
        likes[0].sync_once().await,
        Ok(SyncPass::Synced(_))
    ));
    assert_eq!(stored_likes(&store, &name).await, 25 - evicted_likes);
    assert!(
        !store
            .recorded_batches(&[evicted.as_str()])
            .await
            .expect("db")
            .contains(&evicted),
        "a batch whose contents were gone was not recorded"
    );
    let rescued = likes[0].watch_once().await + likes[1].watch_once().await;
    assert_eq!(
        rescued, evicted_likes,
        "the flushing instance re-applied it"
    );
    assert_eq!(stored_likes(&store, &name).await, 25);
    assert_eq!(
        pending_in_redis(&redis.url(), &stack.namespace, &store, &name).await,
        None,
        "its likes left the pending counts, so reads do not count them twice"
    );
    assert_eq!(read_likes(&stack.http, &bases[1], &name).await, 25);
    let missing = r#"maple_core_like_synced_total{kind="missing_batches"}"#;
    assert_eq!(metric_sum(&stack.http, &bases, missing).await, 1.0);

    // 12 more likes (4 keyed, three of them keys already counted), then Redis restarts empty:
    // every batch it held is gone, with its queue entry.
    for i in 0..12 {
        let key = (i >= 8).then(|| format!("k{}", i % 4 + 2));
        let (status, body, _) = like(&stack.http, &bases[i % 2], &name, key.as_deref())
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(
        pending_in_redis(&redis.url(), &stack.namespace, &store, &name).await,
        Some(8 + 1)
    );
    redis.kill();
    redis.restart();
    // Core reconnects (its Redis breaker may hold calls back a while), then each instance
    // finds its batches gone.
    let (started, mut rescued) = (Instant::now(), 0);
    while rescued < 9 && started.elapsed() < Duration::from_secs(20) {
        rescued += likes[0].watch_once().await + likes[1].watch_once().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rescued, 9, "both instances re-applied what Redis lost");
    assert_eq!(stored_likes(&store, &name).await, 25 + 9);
    assert_eq!(read_likes(&stack.http, &bases[0], &name).await, 25 + 9);
    let lost = r#"maple_core_like_redis_lost_total{kind="likes"}"#;
    assert_eq!(
        metric_sum(&stack.http, &bases, lost).await,
        (evicted_likes + 9) as f64
    );
    // A sync and further checks add nothing: the re-applied batches are recorded.
    let _ = likes[0].sync_once().await;
    assert_eq!(likes[0].watch_once().await + likes[1].watch_once().await, 0);
    assert_eq!(stored_likes(&store, &name).await, 34);
    assert_eq!(metric_sum(&stack.http, &bases, retained).await, 0.0);

    // The usual way: synced batches are forgotten without being applied again.
    for i in 0..6 {
        let (status, _, _) = like(&stack.http, &bases[i % 2], &name, None)
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert!(matches!(
        likes[0].sync_once().await,
        Ok(SyncPass::Synced(6))
    ));
    assert_eq!(likes[0].watch_once().await + likes[1].watch_once().await, 0);
    assert_eq!(stored_likes(&store, &name).await, 40);
    assert_eq!(metric_sum(&stack.http, &bases, retained).await, 0.0);
    assert_eq!(
        metric_sum(&stack.http, &bases, lost).await,
        (evicted_likes + 9) as f64
    );

    // A leader that read its batches before one's contents vanished still takes that batch's
    // likes out of the pending counts (with what it read); a batch flushed before the
    // counted-marker existed is taken out by its own hash.
    for _ in 0..3 {
        let (status, _, _) = like(&stack.http, &bases[0], &name, None)
            .await
            .expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (redis_tier, scripts) = likes[0].redis_parts().expect("redis");
    let guard = stack
        .core_state
        .locks
        .acquire(SYNC_LOCK, Duration::ZERO)
        .await
        .expect("lock");
    let ids = scripts.claim(redis_tier, 500).await.expect("claim");
    assert_eq!(ids.len(), 3, "one batch per like");
    let read = scripts.read(redis_tier, &ids).await.expect("read");
    let ns = &stack.namespace;
    // A new connection: the old one died with the restart.
    let mut connection = redis_connection(&redis.url()).await;
    let _: () = redis::cmd("DEL")
        .arg(format!("{ns}:likes:batch:{}", ids[0]))
        .arg(format!("{ns}:likes:counted:{}", ids[1]))
        .query_async(&mut connection)
        .await
        .expect("DEL");
    store
        .apply_synced_batches(guard.fence(), &read, maple_core::clock::now_ms())
        .await
        .expect("commit");
    scripts.cleanup(redis_tier, &read).await.expect("cleanup");
    guard.release().await;
    assert_eq!(stored_likes(&store, &name).await, 43);
    assert_eq!(
        pending_in_redis(&redis.url(), &stack.namespace, &store, &name).await,
        None,
        "each batch left the pending counts once"
    );
    assert_eq!(likes[0].watch_once().await, 0, "all three are recorded");
    assert_eq!(read_likes(&stack.http, &bases[1], &name).await, 43);
    assert_eq!(metric_sum(&stack.http, &bases, retained).await, 0.0);
    other.stop().await;
    stack.stop().await;
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

#[tokio::test]
async fn a_graceful_stop_syncs_what_the_instance_flushed_to_redis() {
    // No sync of its own while running: what the instance flushed to Redis stays there until
    // its shutdown's last sync.
    let mut stack = manual_sync_stack().await;
    let name = fresh_name("gs");
    like_n(&stack, &name, 7).await;
    let store = stack.store().await;
    assert_eq!(stored_likes(&store, &name).await, 0, "all in Redis");
    stack
        .begin_core_shutdown()
        .await
        .expect("core task")
        .expect("core stopped cleanly");
    assert_eq!(stored_likes(&store, &name).await, 7, "synced before exit");
    assert_eq!(
        pending_in_redis(&redis_url(), &stack.namespace, &store, &name).await,
        None
    );
    stack.stop().await;
}
