//! Likes in both modes: stored and read back, idempotency keys, per-client rates, exact counts
//! over two instances.

use super::*;

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_counts_once_in_both_modes() {
    let embedded = Stack::start().await;
    one_key_counts_once(&embedded).await;
    embedded.stop().await;
    let distributed = Stack::start_with(distributed(&redis_url(), &[])).await;
    one_key_counts_once(&distributed).await;
    distributed.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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
    // Enough likes that a reader overlaps them (acknowledgements take a millisecond or two).
    let (tasks, per_task) = (16, 100);
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
                let body: Value = http
                    .get(format!("{base}/v1/characters/{name}/likes"))
                    .send()
                    .await
                    .expect("answers")
                    .json()
                    .await
                    .expect("json");
                let likes = body["likes"].as_i64().expect("likes");
                seen.push((likes, body["partial"] == true));
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
    // A read that says it is partial (the sync kept moving under it through every retry) is
    // not a consistent count; the full ones never go down.
    let full: Vec<i64> = seen
        .iter()
        .filter(|(_, partial)| !partial)
        .map(|(n, _)| *n)
        .collect();
    eprintln!(
        "reads during the load: {} full, {} partial",
        full.len(),
        seen.len() - full.len()
    );
    assert!(seen.len() >= 5, "the reader overlapped the load: {seen:?}");
    assert!(full.len() >= 3, "some reads were full ones: {seen:?}");
    assert!(
        full.windows(2).all(|w| w[0] <= w[1]),
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

/// Idempotency keys are stored as a fixed-size digest, never as the client's text: every key
/// costs the same in Redis and the database however long it is. A retry with the same key
/// still counts once. The raw key used to be stored (up to 128 bytes, 24 h, in a Redis that
/// does not evict).
#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_are_stored_as_digests() {
    let redis = PrivateRedis::start(free_port().port()).await;
    let stack = Stack::start_with(distributed(&redis.url(), &[])).await;
    let base = format!("http://{}", stack.core_addr);
    let name = fresh_name("ik");
    let key = format!("client-visible-key-{}", "x".repeat(100));
    for attempt in 0..2 {
        let (status, body, replayed) = like(&stack.http, &base, &name, Some(&key))
            .await
            .expect("answers");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["counted"], attempt == 0, "{body}");
        assert_eq!(replayed, attempt == 1);
    }
    let mut connection = redis_connection(&redis.url()).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*likes:idem:*")
        .query_async(&mut connection)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains("client-visible-key"), "{keys:?}");
    let digest = keys[0].rsplit(':').next().expect("digest");
    assert_eq!(digest.len(), 32, "{digest}");
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{digest}");
    assert_eq!(read_likes(&stack.http, &base, &name).await, 1);
    stack.stop().await;
}

/// Core reports Redis's memory against its `maxmemory` (`maple_core_redis_memory_bytes`),
/// which `MapleRedisMemoryHigh` watches: with `noeviction` a full Redis refuses writes.
#[tokio::test(flavor = "multi_thread")]
async fn redis_memory_is_reported_against_its_limit() {
    let redis = PrivateRedis::start(free_port().port()).await;
    let mut connection = redis_connection(&redis.url()).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("64mb")
        .query_async(&mut connection)
        .await
        .expect("config set");
    let stack = Stack::start_with(distributed(&redis.url(), &[])).await;
    let base = format!("http://{}", stack.core_addr);
    let started = Instant::now();
    loop {
        let metrics = metrics_of(&stack.http, &base).await;
        let max = metric_value(&metrics, r#"maple_core_redis_memory_bytes{kind="max"}"#);
        if max > 0.0 {
            assert_eq!(max, 64.0 * 1024.0 * 1024.0, "{metrics}");
            let used = metric_value(&metrics, r#"maple_core_redis_memory_bytes{kind="used"}"#);
            assert!(used > 0.0 && used < max, "{metrics}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never reported:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.stop().await;
}

/// Each client has a daily allowance of idempotency keys (`MAPLE_CORE_LIKES_KEYS_PER_CLIENT`):
/// each is remembered 24 h in a Redis that does not evict, so one client must not be able to
/// fill it. Beyond the cap a keyed like is 429 with the window's end in `Retry-After`; likes
/// without a key, and other clients, go on. There was no cap.
#[tokio::test(flavor = "multi_thread")]
async fn each_client_has_a_daily_allowance_of_idempotency_keys() {
    let stack = Stack::start_with(Options {
        core_env: vec![
            ("MAPLE_CORE_LIKES_KEYS_PER_CLIENT", "3".to_owned()),
            ("MAPLE_CORE_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let name = fresh_name("ka");
    let from = |client: &'static str, key: Option<String>| {
        let mut request = stack
            .http
            .post(stack.core(&format!("/v1/characters/{name}/likes")))
            .header("x-forwarded-for", client);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move { request.send().await.expect("answers") }
    };
    for i in 0..3 {
        let response = from("203.0.113.20", Some(format!("key-{i}"))).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "key {i}");
    }
    // A retry with a key already counted — what the API asks after `outcome_unknown` — is a
    // replay, not a new key: it is answered, not charged (it was charged again before).
    let retried = from("203.0.113.20", Some("key-1".to_owned())).await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED, "a retry at the cap");
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let refused = from("203.0.113.20", Some("key-3".to_owned())).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        retry_after > 23 * 3600 && retry_after <= 24 * 3600,
        "{retry_after}"
    );
    assert_eq!(error_code(refused).await, "rate_limited");
    assert_eq!(
        from("203.0.113.20", None).await.status(),
        StatusCode::ACCEPTED,
        "a like without a key is not held back"
    );
    assert_eq!(
        from("203.0.113.21", Some("other-0".to_owned()))
            .await
            .status(),
        StatusCode::ACCEPTED,
        "another client has its own allowance"
    );
    let metrics = stack.core_metrics().await;
    assert_eq!(
        metric_value(&metrics, "maple_core_like_keys_refused_total"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        read_likes(&stack.http, &format!("http://{}", stack.core_addr), &name).await,
        5
    );
    stack.stop().await;
}
