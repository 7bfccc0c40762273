//! No like lost to a SIGTERM, a `kill -9`, a dead Redis, a Sentinel failover, a Redis that lost
//! its data, or a graceful stop with batches still in Redis.

use super::*;

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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
    let (tasks, per_task) = (8_usize, 150_usize);
    let killed = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sends = (0..tasks).map(|t| {
        let (http, victim, fallback, name, killed, acked) = (
            stack.http.clone(),
            victim.clone(),
            fallback.clone(),
            name.clone(),
            killed.clone(),
            acked.clone(),
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
                acked.fetch_add(1, Ordering::Relaxed);
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    });
    let sends: Vec<_> = sends.collect();
    // The kill comes under load: once a sixth of the likes are acknowledged.
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < tasks * per_task / 6 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "likes never got going"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    process.signal("KILL");
    killed.store(true, Ordering::Relaxed);
    let at_kill = acked.load(Ordering::Relaxed);
    assert!(
        at_kill < tasks * per_task,
        "the kill came after the load ({at_kill} acknowledged)"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_mid_run_costs_no_like() {
    let redis_dir = std::env::temp_dir().join(format!("maple-redis-{}", free_port().port()));
    let port = free_port().port();
    let mut redis = PrivateRedis::start_persistent(port, &redis_dir).await;
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
    redis.kill().await;
    let during = accepted.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        accepted.load(Ordering::Relaxed) > during + 10,
        "likes kept being accepted while Redis was dead"
    );
    redis.restart().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn core_follows_a_sentinel_failover_and_loses_no_like() {
    let dir = std::env::temp_dir().join(format!("maple-sentinel-{}", free_port().port()));
    let (primary_port_0, replica_port) = (free_port().port(), free_port().port());
    let mut primary = PrivateRedis::start(primary_port_0).await;
    let _replica = PrivateRedis::start_replica(replica_port, primary_port_0).await;
    let sentinels: Vec<PrivateRedis> = PrivateRedis::start_sentinels(3, primary_port_0, &dir).await;
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
    primary.kill().await;
    let started = Instant::now();
    while sentinel_primary(sentinels[0].port()).await != Some(replica_port) {
        assert!(started.elapsed() < Duration::from_secs(30), "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old primary returns and the sentinels make it the new primary's replica, so
    // batches can be confirmed by a replica again; core writes to the new primary.
    primary.restart().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn likes_redis_loses_before_the_sync_are_applied_from_the_flushing_instance() {
    // A Redis without persistence (as the machine's), and neither syncs nor checks on their
    // own: the test decides when each runs.
    let mut redis = PrivateRedis::start(free_port().port()).await;
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
    redis.kill().await;
    redis.restart().await;
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

#[tokio::test(flavor = "multi_thread")]
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

/// Each connection's last command, from `CLIENT LIST` (`id` → `cmd`).
async fn last_commands(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Vec<(String, String)> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(connection)
        .await
        .expect("client list");
    list.lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .map(str::to_owned)
            };
            Some((field("id=")?, field("cmd=")?))
        })
        .collect()
}

/// `WAIT` runs on a connection of its own, and a shortfall is no Redis failure. Against a
/// private Redis with no replica, every flush's `WAIT 1 100` waits and comes up short: each
/// batch goes to the database (all 30 likes counted), the likes breaker stays closed (three
/// shortfalls used to open it, as failures), and the connection that ran `WAIT` runs nothing
/// else while equipment reads go on — before, one connection carried both, so each wait held
/// every read, latch poll and lease renewal behind it.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_shortfall_goes_to_the_database_on_a_connection_of_its_own() {
    let redis = PrivateRedis::start(free_port().port()).await;
    let stack = Stack::start_with(distributed(
        &redis.url(),
        &[
            ("MAPLE_CORE_REDIS_MIN_REPLICAS", "1"),
            // No sync meanwhile: reads must be exact without it.
            ("MAPLE_CORE_LIKES_SYNC_MS", "3600000"),
        ],
    ))
    .await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("rs");
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);

    // Watch which connection runs what while likes and equipment reads go on together.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, url) = (stop.clone(), redis.url());
        tokio::spawn(async move {
            let mut connection = redis_connection(&url).await;
            let mut seen: std::collections::HashMap<String, HashSet<String>> =
                std::collections::HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                for (id, cmd) in last_commands(&mut connection).await {
                    seen.entry(id).or_default().insert(cmd);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let readers = {
        let (stop, http, base) = (stop.clone(), stack.http.clone(), base.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("{base}/v1/characters/{}/equipment", fresh_name("rr"));
                let response = http.get(path).send().await.expect("answers");
                assert_eq!(response.status(), StatusCode::OK);
                reads += 1;
            }
            reads
        })
    };
    for i in 0..30 {
        let (status, _, _) = like(&stack.http, &base, &name, None)
            .await
            .expect("answers");
        assert_eq!(status, StatusCode::ACCEPTED, "like {i}");
    }
    stop.store(true, Ordering::Relaxed);
    let reads = readers.await.expect("readers");
    let seen = watcher.await.expect("watcher");
    assert!(reads > 0);

    let waiting: Vec<&String> = seen
        .iter()
        .filter(|(_, cmds)| cmds.contains("wait"))
        .map(|(id, _)| id)
        .collect();
    assert!(!waiting.is_empty(), "WAIT was seen: {seen:?}");
    for id in &waiting {
        let others: Vec<&String> = seen[*id]
            .iter()
            .filter(|cmd| {
                !matches!(
                    cmd.as_str(),
                    "wait"
                        | "evalsha"
                        | "eval"
                        | "script|load"
                        | "client|setinfo"
                        | "hello"
                        | "NULL"
                )
            })
            .collect();
        assert!(
            others.is_empty(),
            "the connection running WAIT also ran {others:?}: {seen:?}"
        );
    }
    assert!(
        seen.values().any(|cmds| cmds.contains("hmget")),
        "equipment reads were seen on another connection: {seen:?}"
    );

    let metrics = metrics_of(&stack.http, &base).await;
    assert!(
        metric_value(&metrics, "maple_core_like_replica_shortfalls_total") >= 30.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, r#"maple_core_redis_breaker_state{use="likes"}"#),
        0.0,
        "a shortfall is no Redis failure:\n{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_like_flushes_total{result="ok",target="redis"}"#
        ),
        0.0
    );
    // Each batch also reached the primary before its WAIT came up short; once the database
    // took it, that copy left Redis's pending counts, so reads count it once with no sync
    // (they counted it twice until the next sync before).
    assert_eq!(read_likes(&stack.http, &base, &name).await, 30);
    let store = stack.store().await;
    assert_eq!(stored_likes(&store, &name).await, 30);
    assert_eq!(
        pending_in_redis(&redis.url(), &stack.namespace, &store, &name).await,
        None
    );
    // The sync finds the ids queued, their contents gone and recorded: nothing is missing.
    stack.core_state.likes.sync_once().await.expect("sync");
    assert_eq!(stored_likes(&store, &name).await, 30);
    let metrics = metrics_of(&stack.http, &base).await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_like_synced_total{kind="missing_batches"}"#
        ),
        0.0
    );
    stack.stop().await;
}

/// A like is acknowledged as soon as it is stored: the count read that renews the counts it is
/// answered with runs afterwards, in the background. Core's database link is delayed (100 ms,
/// then 2 s): the latencies with the 100 ms database are printed (docs/benchmarks.md), and
/// with the 2 s one likes are still acknowledged within 150 ms (before, each waited for the
/// read, cut at 250 ms).
#[tokio::test(flavor = "multi_thread")]
async fn a_like_is_acknowledged_without_waiting_for_a_count_read() {
    let stack = Stack::start_with(distributed(&redis_url(), &[])).await;
    let mysql: std::net::SocketAddr = "127.0.0.1:3306".parse().expect("address");
    let link = maple_tests::tcp_fault::TcpFault::start(mysql)
        .await
        .expect("fault proxy");
    let through_link = stack
        .database_url
        .replace("127.0.0.1:3306", &link.addr.to_string());
    let core = stack.another_core(&[("DATABASE_URL", &through_link)]).await;
    let base = format!("http://{}", core.addr);
    let name = fresh_name("ack");
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);

    link.set_latency(Duration::from_millis(100));
    let mut took = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let (status, _, _) = like(&stack.http, &base, &name, None)
            .await
            .expect("answered");
        took.push(started.elapsed());
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    took.sort();
    eprintln!(
        "like latency with a 100 ms database (debug build, 50 sequential likes): p50 {:.1} ms, p99 {:.1} ms",
        took[24].as_secs_f64() * 1000.0,
        took[49].as_secs_f64() * 1000.0
    );
    link.set_latency(Duration::from_secs(2));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .expect("client");
    let mut partial = 0;
    for i in 51..=55 {
        let (status, body, _) = like(&impatient, &base, &name, None)
            .await
            .expect("acknowledged within 150 ms");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["likes"], i, "{body}");
        partial += i64::from(body["partial"] == true);
    }
    // Counts from reads that landed while the database was quicker: known, not guessed.
    assert_eq!(partial, 0);

    link.set_latency(Duration::ZERO);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 55);
    // The reads behind the acknowledgements ran (in the background).
    let started = Instant::now();
    loop {
        let metrics = metrics_of(&stack.http, &base).await;
        let read = |result: &str| {
            metric_value(
                &metrics,
                &format!("maple_core_like_count_refreshes_total{{result=\"{result}\"}}"),
            )
        };
        if read("ok") + read("overtaken") >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no count read landed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    core.stop().await;
    stack.stop().await;
}
