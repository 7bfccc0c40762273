//! A hostile client: oversized targets, headers and bodies, malformed JSON, floods of bogus
//! names, more concurrent requests than the service takes, one client's burst, and a client
//! that trickles its request head (slowloris). Each gets a clear answer — JSON 4xx, 429, 503 —
//! or its connection closed; nothing hangs and nothing reaches Nexon.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::{Options, Stack, error_code, fresh_name, metric_value};

fn with(core_env: &[(&'static str, &str)]) -> Options {
    Options {
        core_env: core_env
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect(),
        ..Options::default()
    }
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_json_4xx() {
    let stack = Stack::start().await;
    let http = &stack.http;

    let long = stack.core(&format!("/v1/characters/{}", "a".repeat(3_000)));
    let response = http.get(&long).send().await.expect("answers");
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(error_code(response).await, "uri_too_long");

    let mut many = http.get(stack.core("/v1/characters/adel"));
    for i in 0..70 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    let response = many.send().await.expect("answers");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(error_code(response).await, "headers_too_large");
    let response = http
        .get(stack.core("/v1/characters/adel"))
        .header("x-big", "b".repeat(20_000))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    let probability = stack.core("/v1/potential/probability");
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(100_000));
    let response = http
        .post(&probability)
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");
    // Without a Content-Length (chunked), the body limit stops the read.
    let chunks = futures::stream::iter(
        huge.into_bytes()
            .chunks(8_192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = http
        .post(&probability)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");

    for malformed in ["{", "[]", "{\"item_type\":", "null", "\u{0}"] {
        let response = http
            .post(&probability)
            .header("content-type", "application/json")
            .body(malformed)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{malformed:?}");
        assert_eq!(error_code(response).await, "invalid_request");
    }
    stack.stop().await;
}

#[tokio::test]
async fn ten_thousand_bogus_names_are_refused_without_reaching_nexon() {
    let stack = Stack::start().await;
    let before = stack.sim.stats().total;
    // Invalid in every way a name can be: symbols, too long, mixed scripts, path tricks,
    // control characters, percent-encoded slashes.
    let bogus = |i: usize| match i % 6 {
        0 => format!("x!{i}"),
        1 => format!("{}{i}", "a".repeat(13)),
        2 => format!("ab%2F..%2F{i}"),
        3 => format!("%00{i}"),
        4 => format!("이름{i}abcdefghijk"),
        _ => format!("..%2F..%2Fetc%2Fpasswd{i}"),
    };
    let sends = futures::stream::iter(0..10_000).map(|i| {
        let url = stack.core(&format!("/v1/characters/{}/equipment", bogus(i)));
        let http = stack.http.clone();
        async move { http.get(url).send().await.expect("answers").status() }
    });
    let statuses: Vec<StatusCode> = sends.buffer_unordered(32).collect().await;
    assert_eq!(statuses.len(), 10_000);
    assert!(
        statuses.iter().all(|s| *s == StatusCode::BAD_REQUEST),
        "{:?}",
        statuses.iter().find(|s| **s != StatusCode::BAD_REQUEST)
    );
    assert_eq!(stack.sim.stats().total, before, "nothing reached Nexon");
    // Metrics stay bounded: one series for the route, not one per name.
    let metrics = stack
        .http
        .get(stack.core("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric_value(
            &metrics,
            r#"maple_core_http_requests_total{method="GET",route="/v1/characters/{name}/equipment",status="400"}"#
        ),
        10_000.0
    );
    assert!(!metrics.contains("passwd"));
    stack.stop().await;
}

#[tokio::test]
async fn beyond_its_capacity_core_sheds_load_with_503_and_health_still_answers() {
    let stack = Stack::start_with(with(&[("MAPLE_CORE_MAX_IN_FLIGHT", "2")])).await;
    stack
        .sim
        .faults()
        .set(FaultSpec::latency(1_500).on_path(maple_common::nexon::PATH_ITEM_EQUIPMENT))
        .await
        .expect("valid");
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (
                stack.http.clone(),
                stack.core(&format!("/v1/characters/{}/equipment", fresh_name("sh"))),
            );
            tokio::spawn(async move { http.get(url).send().await.expect("answers").status() })
        })
        .collect();
    // Both slots taken (each is waiting on the simulator).
    let started = Instant::now();
    while stack.sim.stats().total < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "requests reached Nexon"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..4 {
        let shed = stack.get("/v1/characters/adel").await;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            shed.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(error_code(shed).await, "overloaded");
    }
    assert_eq!(stack.get("/health/live").await.status(), StatusCode::OK);
    assert_eq!(stack.get("/metrics").await.status(), StatusCode::OK);
    for request in slow {
        assert_eq!(request.await.expect("task"), StatusCode::OK);
    }
    // Capacity is back.
    assert_eq!(
        stack.get("/v1/characters/adel").await.status(),
        StatusCode::OK
    );
    stack.stop().await;
}

#[tokio::test]
async fn one_client_is_rate_limited_on_the_api_but_not_on_health() {
    let stack = Stack::start_with(with(&[
        ("MAPLE_CORE_CLIENT_RATE", "1"),
        ("MAPLE_CORE_CLIENT_BURST", "3"),
    ]))
    .await;
    for _ in 0..3 {
        assert_eq!(
            stack.get("/v1/characters/no!name").await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    let limited = stack.get("/v1/characters/no!name").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(error_code(limited).await, "rate_limited");
    for _ in 0..10 {
        assert_eq!(stack.get("/health/live").await.status(), StatusCode::OK);
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_client_trickling_its_request_head_is_cut_off() {
    let stack = Stack::start_with(with(&[("MAPLE_CORE_HEADER_READ_TIMEOUT_MS", "500")])).await;
    let addr = stack.core_addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        socket
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let started = Instant::now();
        // One header byte every 100 ms, never finishing the head.
        loop {
            if started.elapsed() > Duration::from_secs(15) {
                return "still open after 15 s";
            }
            if socket.write_all(b"X").is_err() {
                return "closed";
            }
            let mut buffer = [0_u8; 512];
            match socket.read(&mut buffer) {
                Ok(0) => return "closed",
                Ok(_) => return "answered",
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return "closed",
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("task");
    assert!(
        outcome == "closed" || outcome == "answered",
        "the slow client was not cut off: {outcome}"
    );
    // Others are served meanwhile and after.
    assert_eq!(stack.get("/health/live").await.status(), StatusCode::OK);
    stack.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_load_balancer_each_forwarded_client_has_its_own_limit() {
    let stack = Stack::start_with(with(&[
        ("MAPLE_CORE_TRUSTED_PROXIES", "127.0.0.1"),
        ("MAPLE_CORE_CLIENT_RATE", "1"),
        ("MAPLE_CORE_CLIENT_BURST", "1"),
    ]))
    .await;
    let from = |client: &'static str| {
        stack
            .http
            .get(stack.core("/v1/characters/no!name"))
            .header("x-forwarded-for", client)
            .send()
    };
    assert_eq!(
        from("203.0.113.1").await.expect("answers").status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        from("203.0.113.1").await.expect("answers").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same balancer is not held back by the first.
    assert_eq!(
        from("203.0.113.2").await.expect("answers").status(),
        StatusCode::BAD_REQUEST
    );
    stack.stop().await;
}

#[tokio::test]
async fn the_proxy_checks_nexon_parameters_before_going_upstream() {
    let stack = Stack::start().await;
    let before = stack.sim.stats().total;
    for (query, field) in [
        ("ocid=..%2F..%2Fadmin", "ocid"),
        (
            "ocid=0123456789abcdef0123456789abcdef&date=2023-02-30",
            "date",
        ),
        (
            "ocid=0123456789abcdef0123456789abcdef&date=2024-13-01",
            "date",
        ),
        ("character_name=a%0Ab", "character_name"),
    ] {
        let response = stack
            .http
            .get(stack.proxy(&format!("{}?{query}", maple_common::nexon::PATH_BASIC)))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{query}: {message}");
    }
    assert_eq!(stack.sim.stats().total, before, "nothing went upstream");
    stack.stop().await;
}
