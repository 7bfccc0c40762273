//! One idempotency record: a keyed like counts once whichever path each attempt takes —
//! Redis then the database (before or after the sync), or the database then Redis.

use super::*;
use maple_tests::tcp_fault::TcpFault;

/// A stack whose likes go to the Redis at `url`, syncing only when a test says so, and giving
/// up on an unanswered Redis call quickly.
async fn stack_on(url: &str) -> Stack {
    Stack::start_with(distributed(
        url,
        &[
            ("MAPLE_CORE_LIKES_SYNC_MS", "3600000"),
            ("MAPLE_CORE_REDIS_TIMEOUT_MS", "300"),
        ],
    ))
    .await
}

/// Sends a keyed like; asserts the 202 and returns whether it was counted.
async fn keyed_like(stack: &Stack, name: &str, key: &str) -> bool {
    let base = format!("http://{}", stack.core_addr);
    let (status, body, _) = like(&stack.http, &base, name, Some(key))
        .await
        .expect("answers");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["counted"].as_bool().expect("counted")
}

async fn flushes(stack: &Stack, target: &str) -> f64 {
    let metrics = metrics_of(&stack.http, &format!("http://{}", stack.core_addr)).await;
    metric_value(
        &metrics,
        &format!(r#"maple_core_like_flushes_total{{result="ok",target="{target}"}}"#),
    )
}

/// Runs sync passes until nothing of `names` is pending in Redis (bounded: the Redis breaker
/// may be open for a few seconds after a partition).
async fn sync_all(stack: &Stack, redis: &str, names: &[&str]) {
    let store = stack.store().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = stack.core_state.likes.sync_once().await;
        let mut left = false;
        for name in names {
            left |= pending_in_redis(redis, &stack.namespace, &store, name)
                .await
                .is_some();
        }
        if !left {
            return;
        }
        assert!(Instant::now() < deadline, "the sync drained Redis in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Acknowledged through Redis, retried while Redis is unreachable: the database path counts
/// the retry of a like already synced as a repeat (the sync recorded its key with its batch),
/// and when the first attempt was not synced yet, the sync finds the key the database path
/// recorded and does not count the batch's like again. Both counted twice before.
#[tokio::test(flavor = "multi_thread")]
async fn a_like_through_redis_then_the_database_counts_once() {
    let link = TcpFault::start(redis_addr()).await.expect("fault proxy");
    let stack = stack_on(&format!("redis://{}", link.addr)).await;
    let base = format!("http://{}", stack.core_addr);
    let (synced, unsynced) = (fresh_name("ks"), fresh_name("ku"));
    for name in [&synced, &unsynced] {
        assert_eq!(read_likes(&stack.http, &base, name).await, 0);
    }
    assert!(keyed_like(&stack, &synced, "again-1").await);
    sync_all(&stack, &redis_url(), &[&synced]).await;
    assert!(keyed_like(&stack, &unsynced, "again-2").await);
    assert_eq!(flushes(&stack, "redis").await, 2.0);

    link.partition();
    assert!(
        !keyed_like(&stack, &synced, "again-1").await,
        "the database knew the key of the synced like"
    );
    // Only Redis knows this key yet: the database path counts it for now.
    assert!(keyed_like(&stack, &unsynced, "again-2").await);
    assert_eq!(
        flushes(&stack, "db").await,
        2.0,
        "both retries took the database path"
    );
    link.heal();

    sync_all(&stack, &redis_url(), &[&synced, &unsynced]).await;
    let store = stack.store().await;
    for name in [&synced, &unsynced] {
        assert_eq!(stored_likes(&store, name).await, 1, "{name}");
        assert_eq!(read_likes(&stack.http, &base, name).await, 1, "{name}");
    }
    let metrics = metrics_of(&stack.http, &base).await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_like_synced_total{kind="duplicate_keys"}"#
        ),
        1.0,
        "the sync recognised the key the database path recorded first"
    );
    stack.stop().await;
}

/// Acknowledged by the database while Redis was down, retried once Redis is back: the flush
/// asks the database's record first, so the retry is a repeat — in the answer, in reads
/// before any sync, and in the database after it. It was counted again in Redis before.
#[tokio::test(flavor = "multi_thread")]
async fn a_like_through_the_database_then_redis_counts_once() {
    // Down, not partitioned: a partition holds the timed-out flush and delivers it on healing,
    // and a batch that lands so is in both stores until the sync (reads count it twice then).
    let mut redis = PrivateRedis::start(free_port().port()).await;
    let stack = stack_on(&redis.url()).await;
    let base = format!("http://{}", stack.core_addr);
    let (name, other) = (fresh_name("kd"), fresh_name("ko"));
    for name in [&name, &other] {
        assert_eq!(read_likes(&stack.http, &base, name).await, 0);
    }
    redis.kill().await;
    assert!(keyed_like(&stack, &name, "first-db").await);
    assert_eq!(flushes(&stack, "db").await, 1.0);
    redis.restart().await;

    // Until a flush reaches Redis again (its breaker may be open for a few seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    while flushes(&stack, "redis").await < 1.0 {
        assert!(Instant::now() < deadline, "flushes reach Redis again");
        let (status, _, _) = like(&stack.http, &base, &other, None)
            .await
            .expect("answers");
        assert_eq!(status, StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let redis_flushes = flushes(&stack, "redis").await;
    assert!(
        !keyed_like(&stack, &name, "first-db").await,
        "the database's record of the key was checked"
    );
    assert_eq!(flushes(&stack, "redis").await, redis_flushes + 1.0);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 1);
    sync_all(&stack, &redis.url(), &[&name, &other]).await;
    let store = stack.store().await;
    assert_eq!(stored_likes(&store, &name).await, 1);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 1);
    stack.stop().await;
}
