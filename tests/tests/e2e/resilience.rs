//! The proxy's resilience against the simulator's faults, counted with its call counter: the
//! cache (hit, miss, revalidation, purge), stale fallback and fail-fast with an alert,
//! coalescing of a 500-way stampede, retries within a budget and a deadline, the rate limiter,
//! the bulkhead, client authentication.

use std::time::Duration;

use maple_common::nexon::PATH_ID;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::{Options, Stack, Webhook, error_code, header};

fn id_calls(stack: &Stack) -> u64 {
    stack.sim.stats().calls(PATH_ID)
}

async fn set_fault(stack: &Stack, fault: FaultSpec) {
    stack.sim.faults().set(fault).await.expect("valid fault");
}

#[tokio::test(flavor = "multi_thread")]
async fn hits_are_served_from_the_cache_and_anonymous_no_cache_is_ignored() {
    let stack = Stack::start().await;
    let first = stack.lookup("cachedname").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-cache"), "MISS");
    let body = first.text().await.expect("body");

    let second = stack.lookup("cachedname").await;
    assert_eq!(header(&second, "x-cache"), "HIT");
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.expect("body"), body, "the same answer");
    assert_eq!(id_calls(&stack), 1, "the hit never reached the upstream");

    // Another spelling of the same query shares the entry.
    let encoded = stack
        .http
        .get(format!(
            "{}?character_name=%63achedname",
            stack.proxy(PATH_ID)
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(header(&encoded, "x-cache"), "HIT");

    // Without client tokens nobody may skip the cache: `no-cache` from an anonymous client
    // would make every request a call on the key's quota.
    for header_name in ["cache-control", "pragma"] {
        let ignored = stack
            .http
            .get(stack.proxy(PATH_ID))
            .query(&[("character_name", "cachedname")])
            .header(header_name, "no-cache")
            .send()
            .await
            .expect("answers");
        assert_eq!(header(&ignored, "x-cache"), "HIT", "{header_name}");
    }
    assert_eq!(id_calls(&stack), 1, "no-cache without a token is ignored");

    // Nexon's 4xx pass through; only "no such character" is cached (briefly; the hardening
    // tests follow its life).
    let mut seen = Vec::new();
    for _ in 0..2 {
        let unknown = stack.lookup("ghostname").await;
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
        seen.push(header(&unknown, "x-cache"));
    }
    assert_eq!(seen, ["MISS", "HIT"]);
    assert_eq!(id_calls(&stack), 2);

    assert_eq!(
        stack
            .proxy_metric_settled(
                r#"maple_proxy_cache_requests_total{result="hit",route="/maplestory/v1/id"}"#,
                5.0
            )
            .await,
        5.0
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_entry_stands_in_when_the_upstream_fails() {
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_ROUTES_ID_TTL_S", "1"),
        ("MAPLE_PROXY_CACHE_REVALIDATE_S", "0"),
        ("MAPLE_PROXY_ROUTES_ID_DEADLINE_MS", "1000"),
        ("MAPLE_PROXY_BREAKER_OPEN_MS", "1000"),
    ]))
    .await;
    assert_eq!(stack.lookup("standin").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let stale = |response: reqwest::Response, cause: &'static str| async move {
        assert_eq!(response.status(), StatusCode::OK, "{cause}");
        assert_eq!(header(&response, "x-cache"), "STALE");
        assert_eq!(header(&response, "x-cache-stale-cause"), cause);
        let age: u64 = header(&response, "age").parse().expect("age header");
        assert!(age >= 1, "age {age}");
        let body: serde_json::Value = response.json().await.expect("the cached JSON");
        assert!(body["ocid"].is_string());
    };
    // A 5xx (three attempts), then a hang cut by the deadline: four failures in five calls.
    set_fault(&stack, FaultSpec::status(500)).await;
    stale(stack.lookup("standin").await, "upstream_error").await;
    set_fault(&stack, FaultSpec::hang()).await;
    stale(stack.lookup("standin").await, "upstream_timeout").await;
    // That opened the breaker: the entry stands in without an upstream call.
    let started = std::time::Instant::now();
    while stack.proxy_metric("maple_proxy_breaker_state").await != 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "breaker never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = id_calls(&stack);
    stale(stack.lookup("standin").await, "breaker_open").await;
    assert_eq!(id_calls(&stack), calls);

    // The upstream recovers; once the breaker lets a probe through, answers are fresh again.
    stack.sim.faults().clear().await;
    let started = std::time::Instant::now();
    loop {
        let response = stack.lookup("standin").await;
        assert_eq!(response.status(), StatusCode::OK);
        if header(&response, "x-cache") == "MISS" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_cached_fails_fast_with_the_cause_and_one_alert() {
    let webhook = Webhook::start().await;
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_ALERT_WEBHOOK_URL", webhook.url.as_str()),
        ("MAPLE_PROXY_RETRY_MAX_ATTEMPTS", "1"),
        // Keep the breaker out of it: this test is about the failure answer.
        ("MAPLE_PROXY_BREAKER_MIN_CALLS", "10"),
        ("MAPLE_PROXY_BREAKER_FAILURE_RATE_PCT", "100"),
    ]))
    .await;
    set_fault(&stack, FaultSpec::status(503)).await;
    for i in 0..5 {
        let response = stack.lookup(&format!("nocache{i}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&response, "x-maple-proxy-error"), "upstream_error");
        assert_eq!(error_code(response).await, "upstream_error");
    }
    let alerts = webhook.wait_for(1).await;
    let content = alerts[0]["content"].as_str().expect("Discord content");
    assert!(content.contains("upstream_error"), "{content}");
    assert!(
        !content.contains("maple-sim-dev-key") && !content.contains("nocache"),
        "no key, no query: {content}"
    );
    // Five failures of one cause: one alert, the rest suppressed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(webhook.received().len(), 1);
    assert_eq!(
        stack
            .proxy_metric(r#"maple_proxy_alerts_total{result="suppressed"}"#)
            .await,
        4.0
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_just_expired_entry_is_served_while_one_refresh_runs() {
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_ROUTES_ID_TTL_S", "1"),
        ("MAPLE_PROXY_CACHE_REVALIDATE_S", "600"),
    ]))
    .await;
    assert_eq!(stack.lookup("swr").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The refresh is slow; every request meanwhile is answered from the cache.
    set_fault(&stack, FaultSpec::latency(500)).await;
    let answers = futures::future::join_all((0..20).map(|_| stack.lookup("swr"))).await;
    for response in &answers {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response, "x-cache"), "STALE");
        assert_eq!(header(response, "x-cache-stale-cause"), "revalidating");
    }
    let started = std::time::Instant::now();
    loop {
        let response = stack.lookup("swr").await;
        if header(&response, "x-cache") == "HIT" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(id_calls(&stack), 2, "one fetch, one background refresh");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_way_stampede_makes_one_upstream_call() {
    let stack = Stack::start().await;
    // The upstream is slow, so every request arrives while the first is in flight.
    set_fault(&stack, FaultSpec::latency(1_000)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("{}?character_name=stampede", stack.proxy(PATH_ID));
    let requests = (0..500).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("answers");
            (response.status(), header(&response, "x-cache"))
        })
    });
    let results = futures::future::join_all(requests).await;
    let mut misses = 0;
    let mut coalesced = 0;
    let mut hits = 0;
    for result in results {
        let (status, cache) = result.expect("task");
        assert_eq!(status, StatusCode::OK);
        match cache.as_str() {
            "MISS" => misses += 1,
            "COALESCED" => coalesced += 1,
            "HIT" => hits += 1,
            other => panic!("unexpected x-cache {other}"),
        }
    }
    assert_eq!(id_calls(&stack), 1, "exactly one upstream call");
    assert_eq!(misses, 1);
    assert_eq!(misses + coalesced + hits, 500);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_retried_and_retry_after_is_honoured() {
    let stack = Stack::start_with(Options::uncached()).await;
    // Every second call fails: the first lookup passes, the second fails once then succeeds.
    set_fault(&stack, FaultSpec::status(502).ratio(0.5)).await;
    assert_eq!(stack.lookup("retry").await.status(), StatusCode::OK);
    assert_eq!(stack.lookup("retry").await.status(), StatusCode::OK);
    assert_eq!(id_calls(&stack), 3);
    let retried = r#"maple_proxy_retries_total{reason="upstream_error",route="/maplestory/v1/id"}"#;
    assert_eq!(stack.proxy_metric(retried).await, 1.0);

    // A 429 whose Retry-After fits in the deadline is waited out and retried…
    set_fault(&stack, FaultSpec::rate_limit(1).ratio(0.5)).await;
    assert_eq!(stack.lookup("patient").await.status(), StatusCode::OK);
    assert_eq!(stack.lookup("patient").await.status(), StatusCode::OK);
    let waited =
        r#"maple_proxy_retries_total{reason="upstream_rate_limited",route="/maplestory/v1/id"}"#;
    assert_eq!(stack.proxy_metric(waited).await, 1.0);

    // …one that does not fit is not: the client gets 429 with the upstream's Retry-After.
    set_fault(&stack, FaultSpec::rate_limit(9)).await;
    let calls = id_calls(&stack);
    let response = stack.lookup("impatient").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), "9");
    assert_eq!(error_code(response).await, "upstream_rate_limited");
    assert_eq!(id_calls(&stack), calls + 1, "not retried past the deadline");
    assert_eq!(
        stack
            .proxy_metric(r#"maple_proxy_retries_denied_total{reason="deadline"}"#)
            .await,
        1.0
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_retry_budget_stops_retries() {
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_RETRY_BUDGET_PCT", "0"),
        ("MAPLE_PROXY_RETRY_MIN_PER_S", "0"),
        ("MAPLE_PROXY_BREAKER_MIN_CALLS", "10"),
        ("MAPLE_PROXY_BREAKER_FAILURE_RATE_PCT", "100"),
    ]))
    .await;
    set_fault(&stack, FaultSpec::status(500)).await;
    for i in 0..5 {
        let response = stack.lookup(&format!("budget{i}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(id_calls(&stack), 5, "one attempt each");
    assert_eq!(
        stack
            .proxy_metric(r#"maple_proxy_retries_denied_total{reason="budget"}"#)
            .await,
        5.0
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_cuts_a_hung_upstream_before_the_read_timeout() {
    let stack = Stack::start_with(Options {
        proxy_read_timeout_ms: 20_000,
        ..Options::proxy(&[("MAPLE_PROXY_ROUTES_ID_DEADLINE_MS", "800")])
    })
    .await;
    set_fault(&stack, FaultSpec::hang()).await;
    let response = stack.lookup("hanging").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "upstream_timeout");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limiter_keeps_calls_within_the_quota() {
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_RATELIMIT_RPS", "0.1"),
        ("MAPLE_PROXY_RATELIMIT_BURST", "2"),
        ("MAPLE_PROXY_RATELIMIT_MAX_WAIT_MS", "0"),
    ]))
    .await;
    assert_eq!(stack.lookup("quota1").await.status(), StatusCode::OK);
    assert_eq!(stack.lookup("quota2").await.status(), StatusCode::OK);
    let refused = stack.lookup("quota3").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&refused, "retry-after")
        .parse()
        .expect("Retry-After");
    assert!(retry_after >= 1);
    assert_eq!(error_code(refused).await, "rate_limited");
    // Cached answers need no token.
    assert_eq!(stack.lookup("quota1").await.status(), StatusCode::OK);
    assert_eq!(id_calls(&stack), 2, "the third never reached the upstream");
    assert_eq!(
        stack
            .proxy_metric("maple_proxy_ratelimit_rejections_total")
            .await,
        1.0
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bulkhead_bounds_concurrent_upstream_calls() {
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_BULKHEAD_MAX_CONCURRENT", "1"),
        ("MAPLE_PROXY_BULKHEAD_MAX_WAIT_MS", "100"),
    ]))
    .await;
    set_fault(&stack, FaultSpec::latency(1_500)).await;
    let (first, second) = tokio::join!(stack.lookup("slot1"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack.lookup("slot2").await
    });
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(second).await, "overloaded");
    assert_eq!(id_calls(&stack), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_tokens_guard_the_proxy_and_the_admin_token_guards_purge() {
    let client_token = "client-token-0123456789";
    let admin_token = "admin-token-0123456789";
    let stack = Stack::start_with(Options::proxy(&[
        (
            "MAPLE_PROXY_CLIENT_TOKENS",
            "other-token-0123456789,client-token-0123456789",
        ),
        ("MAPLE_PROXY_ADMIN_TOKEN", admin_token),
    ]))
    .await;
    let anonymous = stack.lookup("guarded").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(anonymous).await, "unauthorized");
    let send = |token: &str| {
        stack
            .http
            .get(stack.proxy(PATH_ID))
            .query(&[("character_name", "guarded")])
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        send("client-token-012345678X")
            .await
            .expect("answers")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(id_calls(&stack), 0, "refused before the upstream");
    let ok = send(client_token).await.expect("answers");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(header(&ok, "x-cache"), "MISS");
    // A client with a token may skip the cache.
    let forced = stack
        .http
        .get(stack.proxy(PATH_ID))
        .query(&[("character_name", "guarded")])
        .bearer_auth(client_token)
        .header("cache-control", "no-cache")
        .send()
        .await
        .expect("answers");
    assert_eq!(header(&forced, "x-cache"), "MISS");
    assert_eq!(id_calls(&stack), 2, "no-cache with a token went upstream");

    let purge = format!("http://{}/cache/purge", stack.proxy_admin);
    let refused = stack.http.post(&purge).send().await.expect("answers");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refused = stack
        .http
        .post(&purge)
        .bearer_auth(client_token)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "a client token is not an admin"
    );
    let purged: serde_json::Value = stack
        .http
        .post(format!("{purge}?prefix={PATH_ID}"))
        .bearer_auth(admin_token)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(purged["purged"], 1);
    let after = send(client_token).await.expect("answers");
    assert_eq!(header(&after, "x-cache"), "MISS", "purged");
    assert_eq!(id_calls(&stack), 3);
    stack.stop().await;
}
