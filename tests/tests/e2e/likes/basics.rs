//! Likes in both modes: stored and read back, idempotency keys, per-client rates, exact counts
//! over two instances.

use super::*;

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
