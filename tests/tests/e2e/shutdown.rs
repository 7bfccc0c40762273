//! Graceful shutdown: a request in flight when shutdown begins still gets its answer.

use std::time::Duration;

use maple_tests::sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::Stack;

#[tokio::test]
async fn in_flight_requests_finish_during_drain() {
    let mut stack = Stack::start().await;
    stack
        .sim
        .faults()
        .set(FaultSpec::latency(600))
        .await
        .expect("valid");
    let url = stack.core("/v1/characters/slowpoke/equipment");
    let http = stack.http.clone();
    let in_flight = tokio::spawn(async move { http.get(url).send().await });
    // Let the request reach the simulator's delay before shutdown begins.
    while stack.sim.stats().total == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let core = stack.begin_core_shutdown();
    let response = in_flight
        .await
        .expect("task")
        .expect("answered, not dropped");
    assert_eq!(response.status(), StatusCode::OK);
    core.await.expect("core task").expect("clean stop");
    let refused = stack.http.get(stack.core("/health/live")).send().await;
    assert!(refused.is_err(), "no new connections after drain");
    stack.stop().await;
}
