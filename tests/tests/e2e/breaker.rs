//! The proxy's circuit breaker against a failing simulator: it opens, keeps every call away
//! from the upstream while open, lets exactly the probes through, and closes or re-opens.

use std::time::{Duration, Instant};

use maple_common::nexon::PATH_ID;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Options, Stack, error_code};

async fn lookup(stack: &Stack, name: &str) -> reqwest::Response {
    stack
        .http
        .get(stack.proxy(PATH_ID))
        .query(&[("character_name", name)])
        .send()
        .await
        .expect("proxy answers")
}

async fn breaker(stack: &Stack) -> Value {
    stack
        .http
        .get(format!("http://{}/breaker", stack.proxy_admin))
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("JSON")
}

/// Polls the admin API until the breaker reads `state` (bounded: panics after 15 s).
async fn wait_for_state(stack: &Stack, state: &str) {
    let started = Instant::now();
    while breaker(stack).await["state"] != state {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "breaker never became {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open periods are a few seconds: long enough that the checks made while open finish inside
/// one on a busy machine, short enough to wait out.
async fn start() -> Stack {
    let stack = Stack::start_with(Options {
        proxy_env: vec![
            ("MAPLE_PROXY_BREAKER_OPEN_MS", "3000".to_owned()),
            // One call per request, so the simulator's counter counts breaker decisions.
            ("MAPLE_PROXY_RETRY_MAX_ATTEMPTS", "1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    stack
        .sim
        .faults()
        .set(FaultSpec::status(500))
        .await
        .expect("valid");
    stack
}

async fn trip(stack: &Stack) {
    // Five 500s: the minimum number of calls, all failed.
    for i in 0..5 {
        let response = lookup(stack, &format!("tripper{i}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(response).await, "upstream_error");
    }
    wait_for_state(stack, "open").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_breaker_keeps_every_call_from_the_upstream_then_closes() {
    let stack = start().await;
    trip(&stack).await;
    let calls_when_opened = stack.sim.stats().total;
    assert_eq!(calls_when_opened, 5);

    for i in 0..20 {
        let response = lookup(&stack, &format!("blocked{i}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(error_code(response).await, "breaker_open");
    }
    assert_eq!(
        stack.sim.stats().total,
        calls_when_opened,
        "nothing reached the upstream"
    );

    // Core turns the open breaker into its own 503, passing on when to come back.
    let through_core = stack.get("/v1/characters/coreuser/equipment").await;
    assert_eq!(through_core.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(through_core.headers().contains_key("retry-after"));
    assert_eq!(error_code(through_core).await, "upstream_circuit_open");

    let metrics = stack.proxy_metrics().await;
    assert!(metrics.contains("maple_proxy_breaker_state 1"), "{metrics}");
    assert!(
        metrics.contains(r#"maple_proxy_breaker_transitions_total{from="closed",to="open"} 1"#)
    );

    // The upstream recovers; after the open period three probes pass and close the breaker.
    stack.sim.faults().clear().await;
    wait_for_state(&stack, "half_open").await;
    for i in 0..3 {
        assert_eq!(
            lookup(&stack, &format!("probe{i}")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(breaker(&stack).await["state"], "closed");
    assert_eq!(
        stack.sim.stats().total,
        calls_when_opened + 3,
        "exactly the probes"
    );
    assert_eq!(lookup(&stack, "afterwards").await.status(), StatusCode::OK);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_probe_reopens_the_breaker() {
    let stack = start().await;
    trip(&stack).await;
    wait_for_state(&stack, "half_open").await;
    let probe = lookup(&stack, "probe").await;
    assert_eq!(probe.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        error_code(probe).await,
        "upstream_error",
        "the probe reached the still-failing upstream"
    );
    let reopened = r#"maple_proxy_breaker_transitions_total{from="half_open",to="open"} 1"#;
    let started = Instant::now();
    while !stack.proxy_metrics().await.contains(reopened) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the breaker never re-opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = stack.sim.stats().total;
    let response = lookup(&stack, "blocked").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stack.sim.stats().total, calls);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_do_not_open_the_breaker() {
    let stack = Stack::start().await;
    // Unknown names are Nexon 400s: the upstream is healthy, the caller is wrong.
    for i in 0..20 {
        let response = lookup(&stack, &format!("ghost{i}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let calls = stack.sim.stats().total;
    assert_eq!(lookup(&stack, "realname").await.status(), StatusCode::OK);
    assert_eq!(
        stack.sim.stats().total,
        calls + 1,
        "still reaching the upstream"
    );
    assert_eq!(breaker(&stack).await["state"], "closed");
    stack.stop().await;
}
