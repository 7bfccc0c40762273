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

/// A proxy that names an ocid for any character (`/maplestory/v1/id`) and never answers
/// anything else: an equipment load through it waits as long as its timeouts let it. Counts
/// the calls it holds.
async fn black_hole() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&held);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buffer = vec![0_u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    if !buffer[..n].starts_with(b"GET /maplestory/v1/id?") {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Never answered; the connection stays open until the peer goes.
                        let _ = stream.read(&mut buffer).await;
                        return;
                    }
                    let body = r#"{"ocid":"0123456789abcdef0123456789abcdef"}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream
                        .write_all(format!("{head}{body}").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, held, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_never_finishes_does_not_hold_the_exit_past_the_deadline() {
    let (hole, held, hole_task) = black_hole().await;
    let (dir, database_url) = crate::processes::temp_sqlite();
    let core = crate::harness::free_port();
    // Timeouts far beyond the deadline: only the shutdown deadline can end the request.
    let process = crate::processes::Process::spawn(
        "maple-core",
        &[
            ("MAPLE_CORE_LISTEN", core.to_string()),
            ("MAPLE_PROXY_URL", format!("http://{hole}")),
            ("DATABASE_URL", database_url),
            (
                "MAPLE_CORE_BACKUP_DIR",
                dir.join("backup").display().to_string(),
            ),
            ("MAPLE_CORE_UPSTREAM_TIMEOUT_MS", "600000".to_owned()),
            ("MAPLE_CORE_LATCH_TTL_MS", "700000".to_owned()),
            ("MAPLE_CORE_REQUEST_TIMEOUT_MS", "1200000".to_owned()),
            ("MAPLE_CORE_SHUTDOWN_DEADLINE_MS", "3000".to_owned()),
        ],
    );
    let http = reqwest::Client::new();
    crate::harness::wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;
    let stuck = tokio::spawn({
        let url = format!("http://{core}/v1/characters/NeverEnds/equipment");
        let http = http.clone();
        async move { http.get(url).send().await }
    });
    // The request is in its handler, and its equipment load waits on a proxy that never
    // answers.
    while held.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = std::time::Instant::now();
    let status = process.stop("TERM").await;
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(4),
        "the process took {took:?} to exit; the deadline is 3 s (plus a second)"
    );
    let answer = tokio::time::timeout(Duration::from_secs(5), stuck)
        .await
        .expect("the client's request ended with the process")
        .expect("task");
    assert!(
        answer.is_err(),
        "no answer to the aborted request: {answer:?}"
    );
    hole_task.abort();
    let _ = std::fs::remove_dir_all(dir);
}
