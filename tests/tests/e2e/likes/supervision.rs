//! The background loops are supervised: a flusher that panics is restarted (and counted in
//! `maple_core_task_restarts_total{task="likes_flush"}`), and every like sent meanwhile is
//! acknowledged and counted exactly once.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_flusher_is_restarted_and_every_like_counts_once() {
    let stack = Stack::start_with(distributed(
        &redis_url(),
        &[("MAPLE_CORE_LIKES_SYNC_MS", "200")],
    ))
    .await;
    let name = fresh_name("sup");
    let base = format!("http://{}", stack.core_addr);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);

    // The next three flushes panic before they take the buffer, as a bug would.
    stack.core_state.likes.panic_next_flushes(3);
    let sent = 60;
    let likes: Vec<_> = (0..sent)
        .map(|_| {
            let (http, base, name) = (stack.http.clone(), base.clone(), name.clone());
            tokio::spawn(async move { like(&http, &base, &name, None).await })
        })
        .collect();
    for like in likes {
        let (status, body, _) = like.await.expect("task").expect("answered");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    let metrics = stack.core_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "maple_core_task_restarts_total{task=\"likes_flush\"}"
        ),
        3.0
    );
    assert_eq!(read_likes(&stack.http, &base, &name).await, sent);
    let store = stack.store().await;
    assert_eq!(
        wait_for_stored(&store, &name, sent, Duration::from_secs(20)).await,
        sent
    );
    // A like after the restarts is acknowledged as quickly as ever: the flusher runs again.
    let (status, _, _) = like(&stack.http, &base, &name, None)
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        wait_for_stored(&store, &name, sent + 1, Duration::from_secs(20)).await,
        sent + 1
    );
    stack.stop().await;
}

/// A like the flusher cannot confirm before the request timeout is answered `outcome_unknown`
/// (it stays buffered and is counted once the flusher runs again), never `request_timeout`,
/// which would tell the client it was not stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_like_unconfirmed_by_the_request_timeout_is_answered_outcome_unknown() {
    let stack = Stack::start_with(distributed(
        &redis_url(),
        &[
            ("MAPLE_CORE_LIKES_SYNC_MS", "200"),
            ("MAPLE_CORE_REQUEST_TIMEOUT_MS", "2000"),
            ("MAPLE_CORE_UPSTREAM_TIMEOUT_MS", "1000"),
            ("MAPLE_CORE_LATCH_WAIT_MS", "500"),
            ("MAPLE_CORE_LATCH_TTL_MS", "1500"),
        ],
    ))
    .await;
    let name = fresh_name("unk");
    let base = format!("http://{}", stack.core_addr);
    assert_eq!(read_likes(&stack.http, &base, &name).await, 0);

    // Every flush panics for now: the like stays buffered past the request timeout.
    stack.core_state.likes.panic_next_flushes(usize::MAX);
    let (status, body, _) = like(&stack.http, &base, &name, None)
        .await
        .expect("answered");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "outcome_unknown", "{body}");

    // The flusher recovers: the buffered like is stored and counted once.
    stack.core_state.likes.panic_next_flushes(0);
    let store = stack.store().await;
    assert_eq!(
        wait_for_stored(&store, &name, 1, Duration::from_secs(30)).await,
        1
    );
    stack.stop().await;
}
