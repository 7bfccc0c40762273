//! Graceful shutdown: a request in flight when shutdown begins still gets its answer.

use std::time::Duration;

use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::Stack;

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
async fn an_equipment_load_whose_client_left_is_stored_before_exit() {
    let mut stack = Stack::start().await;
    stack
        .sim
        .faults()
        .set(FaultSpec::latency(800).on_path(maple_common::nexon::PATH_ITEM_EQUIPMENT))
        .await
        .expect("valid");
    let name = crate::harness::fresh_name("left");
    // The client gives up long before Nexon answers; the load goes on without it.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let gave_up = impatient
        .get(stack.core(&format!("/v1/characters/{name}/equipment")))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    // Shutdown now: nothing is in flight for axum, but the load must still be stored.
    let core = stack.begin_core_shutdown();
    core.await.expect("core task").expect("clean stop");
    let store = stack.store().await;
    let ocid = store
        .find_ocid(&maple_core::character::CharacterName::parse(&name).expect("name"))
        .await
        .expect("database")
        .expect("character stored");
    assert!(
        store
            .load_equipment(&ocid)
            .await
            .expect("database")
            .is_some(),
        "the equipment fetched for the departed client was stored before exit"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_and_the_shutdown_phases_are_exported() {
    let mut stack = Stack::start().await;
    let metrics = stack
        .http
        .get(stack.core("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |text: &str, sample: &str| crate::harness::metric_value(text, sample);
    assert_eq!(
        value(&metrics, r#"maple_core_db_pool_connections{state="max"}"#),
        10.0
    );
    assert_eq!(value(&metrics, "maple_core_shutdown_phase"), 0.0, "serving");
    let state = stack.core_state.clone();
    stack
        .begin_core_shutdown()
        .await
        .expect("core task")
        .expect("clean stop");
    let after = String::from_utf8(state.metrics.render()).expect("utf-8");
    assert_eq!(value(&after, "maple_core_shutdown_phase"), 5.0, "stopped");
    for phase in ["drain", "equipment", "likes", "database"] {
        assert!(
            after.contains(&format!(
                "maple_core_shutdown_phase_seconds{{phase=\"{phase}\"}}"
            )),
            "{phase}: {after}"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_in_flight_gauge_forgets_a_request_whose_client_hung_up() {
    let stack = Stack::start().await;
    stack
        .sim
        .faults()
        .set(FaultSpec::latency(1_500).on_path(maple_common::nexon::PATH_ITEM_EQUIPMENT))
        .await
        .expect("valid");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    for i in 0..3 {
        let name = crate::harness::fresh_name(&format!("hungup{i}"));
        let gave_up = impatient
            .get(stack.core(&format!("/v1/characters/{name}/equipment")))
            .send()
            .await;
        assert!(gave_up.is_err(), "the client timed out");
    }
    // The server drops each abandoned request (at the hang-up, at the latest at the request
    // timeout); the gauge must follow. The scrape counts itself: 1 when nothing else runs.
    let mut in_flight = f64::NAN;
    for _ in 0..100 {
        let metrics = stack.core_metrics().await;
        in_flight = crate::harness::metric_value(&metrics, "maple_core_in_flight");
        if in_flight <= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(in_flight, 1.0, "only the scrape itself is in flight");
    stack.stop().await;
}
