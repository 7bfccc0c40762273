//! The sync leader and the lock: a leader killed between commit and cleanup, a paused leader
//! fenced out, mutual exclusion with increasing fences and the MySQL fallback, lease renewal.

use super::*;

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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
