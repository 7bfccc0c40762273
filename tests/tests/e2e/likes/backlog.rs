//! A sync that drains any backlog: a commit that runs out of time is split, and its timeouts
//! do not open the database breaker that guards every other caller.

use super::*;
use maple_core::likes::SyncError;
use maple_tests::tcp_fault::TcpFault;

/// With each round trip to the database taking 600 ms (a transaction of several statements then
/// runs past the 3 s bound, while a connection can still be had), the sync of two claimed
/// batches times out, is split in halves, and the first half (one batch: the pass stops there)
/// times out too — yet the database breaker has no failure on record (these two timeouts
/// opened it before). Once the database is quick again the same claim syncs, every like once.
#[tokio::test(flavor = "multi_thread")]
async fn a_sync_commit_that_times_out_is_split_and_leaves_the_breaker_closed() {
    let stack = Stack::start_with(distributed(
        &redis_url(),
        &[("MAPLE_CORE_LIKES_SYNC_MS", "3600000")],
    ))
    .await;
    let base = format!("http://{}", stack.core_addr);
    let server = mysql_addr(&stack.database_url);
    let link = TcpFault::start(server).await.expect("fault proxy");
    let through = stack
        .database_url
        .replace(&server.to_string(), &link.addr.to_string());
    let leader = stack
        .another_core(&[("DATABASE_URL", through.as_str())])
        .await;
    let names = [fresh_name("bs"), fresh_name("bs")];
    for name in &names {
        assert_eq!(read_likes(&stack.http, &base, name).await, 0);
        let (status, _, _) = like(&stack.http, &base, name, None).await.expect("answers");
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let likes = &leader.state.likes;
    let (redis, scripts) = likes.redis_parts().expect("redis");
    let guard = leader
        .state
        .locks
        .acquire(SYNC_LOCK, Duration::ZERO)
        .await
        .expect("lock");
    let ids = scripts.claim(redis, 500).await.expect("claim");
    assert_eq!(ids.len(), 2, "one batch per like");

    // Connections opened beforehand: a new one takes several round trips, past the pool's
    // 1 s acquire bound once slowed, and each timed-out transaction drops its connection.
    let warm = (0..8).map(|_| leader.state.store.ping());
    for pinged in futures::future::join_all(warm).await {
        pinged.expect("database");
    }
    link.set_latency(Duration::from_millis(600));
    let until = Instant::now() + Duration::from_secs(60);
    let slow = likes.sync_claimed(redis, guard.fence(), &ids, until).await;
    assert_eq!(slow, Err(SyncError::TimedOut));
    let metrics = metrics_of(&stack.http, &leader.url("")).await;
    assert_eq!(
        metric_value(&metrics, "maple_core_like_sync_splits_total"),
        1.0
    );
    let breaker = leader.state.store.breaker();
    assert_eq!(
        breaker.state,
        maple_common::breaker::State::Closed,
        "{breaker:?}"
    );
    assert_eq!(breaker.failures_in_window, 0, "{breaker:?}");

    link.set_latency(Duration::ZERO);
    let synced = likes
        .sync_claimed(redis, guard.fence(), &ids, until)
        .await
        .expect("sync");
    assert_eq!(synced, 2);
    guard.release().await;
    let store = stack.store().await;
    for name in &names {
        assert_eq!(stored_likes(&store, name).await, 1, "{name}");
        assert_eq!(read_likes(&stack.http, &base, name).await, 1, "{name}");
    }
    leader.stop().await;
    stack.stop().await;
}

/// `host:port` of a `mysql://user@host:port/db` URL.
fn mysql_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once('@').expect("user@").1;
    let host = rest.split('/').next().expect("host");
    host.parse().expect("an address")
}
