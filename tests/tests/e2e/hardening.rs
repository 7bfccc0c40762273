//! A hostile client: oversized targets, headers and bodies, malformed JSON, floods of bogus
//! names, more concurrent requests than the service takes, one client's burst, and a client
//! that trickles its request head (slowloris). Each gets a clear answer — JSON 4xx, 429, 503 —
//! or its connection closed; nothing hangs and nothing reaches Nexon.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

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

#[tokio::test(flavor = "multi_thread")]
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
    // Core answers 413 once the limit is read and closes the connection; a client still
    // writing its body then may meet the closed socket before it reads the answer (the
    // module's "or its connection closed").
    match http
        .post(&probability)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
    {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(error_code(response).await, "payload_too_large");
        }
        Err(error) => {
            let text = format!("{error:?}");
            assert!(
                text.contains("BrokenPipe") || text.contains("ConnectionReset"),
                "neither an answer nor a closed connection: {text}"
            );
        }
    }

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

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_its_request_head_is_cut_off() {
    let stack = Stack::start_with(with(&[("MAPLE_CORE_HEADER_READ_TIMEOUT_MS", "500")])).await;
    let addr = stack.core_addr;
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    // One header byte every 100 ms (50 ms waiting for an answer, 50 ms apart), never
    // finishing the head.
    let outcome = loop {
        if started.elapsed() > Duration::from_secs(15) {
            break "still open after 15 s";
        }
        if socket.write_all(b"X").await.is_err() {
            break "closed";
        }
        let mut buffer = [0_u8; 512];
        match tokio::time::timeout(Duration::from_millis(50), socket.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break "closed",
            Ok(Ok(_)) => break "answered",
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        outcome == "closed" || outcome == "answered",
        "the slow client was not cut off: {outcome}"
    );
    // Others are served meanwhile and after.
    assert_eq!(stack.get("/health/live").await.status(), StatusCode::OK);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
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

#[tokio::test(flavor = "multi_thread")]
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

fn id_calls(stack: &Stack) -> u64 {
    stack
        .sim
        .stats()
        .paths
        .get(maple_common::nexon::PATH_ID)
        .copied()
        .unwrap_or(0)
}

/// A name no character has, asked on every route that takes a name, costs one Nexon call: core
/// remembers the "not found" (`MAPLE_CORE_NOT_FOUND_TTL_S`) and asks again once it is past.
/// The proxy's cache is off, so this is core's own memory. Each lookup used to be a call.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_name_costs_one_nexon_call_until_its_memory_ends() {
    let mut options = Options::uncached();
    options.core_env = vec![("MAPLE_CORE_NOT_FOUND_TTL_S", "2".to_owned())];
    let stack = Stack::start_with(options).await;
    let name = fresh_name("ghost");
    let paths = [
        format!("/v1/characters/{name}"),
        format!("/v1/characters/{name}/equipment"),
        format!("/v1/characters/{name}/likes"),
        format!("/v1/characters/{name}/expectation"),
        format!("/v1/characters/{}/equipment", name.to_uppercase()),
    ];
    for path in &paths {
        let response = stack.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(response).await, "character_not_found", "{path}");
    }
    assert_eq!(id_calls(&stack), 1, "one call for five lookups");
    let metrics = stack.core_metrics().await;
    assert_eq!(
        metric_value(&metrics, "maple_core_not_found_remembered_total"),
        4.0,
        "{metrics}"
    );
    // Past its memory the name is asked about again (it may have been created since).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(stack.get(&paths[1]).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(id_calls(&stack), 2);
    stack.stop().await;
}

/// The proxy caches Nexon's "no such character" too: `OPENAPI00004` for a name on the id
/// route, `OPENAPI00003` for an ocid on any route, each served as a `HIT` with Nexon's own
/// status and body until `MAPLE_PROXY_CACHE_NOT_FOUND_S` ends or a purge; other 4xx answers
/// (a missing ocid is `OPENAPI00004` off the id route) are not. Five asks used to be five calls.
#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_caches_no_such_character_and_nothing_else_of_nexons_4xx() {
    let stack = Stack::start_with(Options::proxy(&[
        ("MAPLE_PROXY_CACHE_NOT_FOUND_S", "2"),
        ("MAPLE_PROXY_ADMIN_TOKEN", "an-admin-token-of-length"),
    ]))
    .await;
    let ask = |path: String| {
        let request = stack.http.get(stack.proxy(&path));
        async move {
            let response = request.send().await.expect("proxy answers");
            let status = response.status();
            let cache = response
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body: serde_json::Value = response.json().await.expect("json");
            (
                status,
                cache,
                body["error"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let by_name = format!(
        "{}?character_name={}",
        maple_common::nexon::PATH_ID,
        fresh_name("ghost")
    );
    let by_ocid = format!(
        "{}?ocid=0123456789abcdef0123456789abcdef",
        maple_common::nexon::PATH_ITEM_EQUIPMENT
    );
    for (path, code) in [(&by_name, "OPENAPI00004"), (&by_ocid, "OPENAPI00003")] {
        stack.sim.reset_stats();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (status, cache, name) = ask(path.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(name, code, "{path}: Nexon's own body");
            seen.push(cache);
        }
        assert_eq!(seen, ["MISS", "HIT", "HIT", "HIT", "HIT"], "{path}");
        assert_eq!(stack.sim.stats().total, 1, "{path}: one upstream call");
    }
    // Past its TTL: asked again.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    stack.sim.reset_stats();
    assert_eq!(ask(by_name.clone()).await.1, "MISS");
    assert_eq!(ask(by_name.clone()).await.1, "HIT");
    // A purge drops it like any entry.
    let purged = stack
        .http
        .post(format!("http://{}/cache/purge?prefix=/", stack.proxy_admin))
        .bearer_auth("an-admin-token-of-length")
        .send()
        .await
        .expect("admin answers");
    assert_eq!(purged.status(), StatusCode::OK);
    assert_eq!(ask(by_name.clone()).await.1, "MISS");
    assert_eq!(stack.sim.stats().total, 2);
    // Any other 4xx goes upstream each time.
    let no_ocid = format!("{}?date=2024-01-01", maple_common::nexon::PATH_BASIC);
    stack.sim.reset_stats();
    for _ in 0..2 {
        let (status, cache, name) = ask(no_ocid.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(name, "OPENAPI00004");
        assert_eq!(cache, "MISS");
    }
    assert_eq!(stack.sim.stats().total, 2, "not cached");
    stack.stop().await;
}

/// Name lookups that must ask Nexon are limited per client (`MAPLE_CORE_CLIENT_MISS_RATE`):
/// one client making up names cannot spend the API key's quota. Names already known are not
/// misses and stay served; so does another client.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_names_from_one_client_are_held_to_its_miss_rate() {
    let stack = Stack::start_with(with(&[
        ("MAPLE_CORE_TRUSTED_PROXIES", "127.0.0.1"),
        // A token every 10 s: none comes back while the test runs.
        ("MAPLE_CORE_CLIENT_MISS_RATE", "0.1"),
        ("MAPLE_CORE_CLIENT_MISS_BURST", "3"),
    ]))
    .await;
    let from = |client: &'static str, path: String| {
        let request = stack
            .http
            .get(stack.core(&path))
            .header("x-forwarded-for", client);
        async move { request.send().await.expect("answers") }
    };
    let known = format!("/v1/characters/{}/equipment", fresh_name("known"));
    assert_eq!(
        from("203.0.113.50", known.clone()).await.status(),
        StatusCode::OK
    );
    let before = id_calls(&stack);
    for _ in 0..3 {
        let made_up = format!("/v1/characters/{}", fresh_name("ghost"));
        assert_eq!(
            from("203.0.113.9", made_up).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    let refused = from(
        "203.0.113.9",
        format!("/v1/characters/{}", fresh_name("ghost")),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_code(refused).await, "rate_limited");
    assert_eq!(
        id_calls(&stack),
        before + 3,
        "the refused lookup asked nobody"
    );
    // A known name is no miss: still served to the same client.
    assert_eq!(
        from("203.0.113.9", known.clone()).await.status(),
        StatusCode::OK
    );
    // Another client has its own allowance.
    let other = from(
        "203.0.113.10",
        format!("/v1/characters/{}", fresh_name("ghost")),
    )
    .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let metrics = stack.core_metrics().await;
    assert_eq!(
        metric_value(&metrics, "maple_core_lookup_misses_refused_total"),
        1.0,
        "{metrics}"
    );
    stack.stop().await;
}

/// An IPv6 client is its /64 for the per-client limits (`MAPLE_CORE_CLIENT_IPV6_PREFIX`):
/// rotating addresses inside it, which any host on a /64 can do freely, gets no new allowance;
/// the next /64 is another client. Each address used to get its own bucket.
#[tokio::test(flavor = "multi_thread")]
async fn rotating_ipv6_addresses_inside_a_64_is_one_client() {
    let stack = Stack::start_with(with(&[
        ("MAPLE_CORE_TRUSTED_PROXIES", "127.0.0.1"),
        ("MAPLE_CORE_CLIENT_RATE", "0.1"),
        ("MAPLE_CORE_CLIENT_BURST", "3"),
    ]))
    .await;
    let from = |client: String| {
        let request = stack
            .http
            .get(stack.core("/v1/characters/no!name"))
            .header("x-forwarded-for", client);
        async move { request.send().await.expect("answers").status() }
    };
    for i in 1..=3 {
        assert_eq!(
            from(format!("2001:db8:7:7::{i:x}")).await,
            StatusCode::BAD_REQUEST
        );
    }
    for i in 4..=8 {
        assert_eq!(
            from(format!("2001:db8:7:7:{i:x}::{i:x}")).await,
            StatusCode::TOO_MANY_REQUESTS,
            "address {i} of the same /64"
        );
    }
    assert_eq!(
        from("2001:db8:7:8::1".to_owned()).await,
        StatusCode::BAD_REQUEST,
        "the next /64"
    );
    stack.stop().await;
}

/// Sends one `GET /health/live` on `socket` and reads the status line (bounded by `patience`):
/// `None` when no answer came in time.
async fn status_line(socket: &mut TcpStream, patience: Duration) -> Option<String> {
    socket
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: core\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0_u8; 512];
    let read = tokio::time::timeout(patience, socket.read(&mut buffer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let stack = Stack::start_with(with(&[
        ("MAPLE_CORE_MAX_CONNECTIONS", "2"),
        ("MAPLE_CORE_HEADER_READ_TIMEOUT_MS", "60000"),
    ]))
    .await;
    let addr = stack.core_addr;
    // Two kept-alive connections, each served once: the cap is reached.
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    for socket in [&mut first, &mut second] {
        let line = status_line(socket, Duration::from_secs(5)).await;
        assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    }
    // A third connects (the kernel's backlog takes it) but is not served while both are open.
    let mut third = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(
        status_line(&mut third, Duration::from_millis(1_500)).await,
        None
    );
    // One closes: the third is accepted and answered.
    drop(first);
    let mut response = [0_u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), third.read(&mut response))
        .await
        .expect("answered once a connection closed")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&response[..read]).starts_with("HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&response[..read])
    );
    // The kept-alive one still works.
    let line = status_line(&mut second, Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    stack.stop().await;
}
