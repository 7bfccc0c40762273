//! Traces: a W3C `traceparent` sent to core arrives at Nexon (the simulator) in the same
//! trace, through the proxy; without one, core starts a trace of its own; and with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported by OTLP over HTTP (a fake collector
//! receives them, carrying the trace id and the service name).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use maple_common::telemetry::{self, LogFormat};
use rand::Rng as _;
use reqwest::StatusCode;

use crate::harness::{Options, Stack, free_port, fresh_name};
use crate::processes::{Process, temp_sqlite};

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
        .collect()
}

/// (trace id, parent span id) of a `traceparent`.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[0], "00");
    (fields[1].to_owned(), fields[2].to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_runs_from_the_client_through_core_and_the_proxy_to_nexon() {
    // This test process's subscriber: spans become OpenTelemetry spans (nothing exported).
    let _telemetry = telemetry::init(
        LogFormat::Text,
        "warn,maple_core=info,maple_proxy=info",
        "e2e",
        None,
        false,
    )
    .expect("telemetry");
    let stack = Stack::start_with(Options::uncached()).await;
    let (trace, caller_span) = (random_hex(16), random_hex(8));
    let response = stack
        .http
        .get(stack.core(&format!("/v1/characters/{}/equipment", fresh_name("tr"))))
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .send()
        .await
        .expect("core answers");
    assert_eq!(response.status(), StatusCode::OK);
    let seen = stack.sim.stats().traceparents;
    let ours: Vec<(String, String)> = seen
        .iter()
        .map(|t| parts(t))
        .filter(|(t, _)| *t == trace)
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "the id lookup and the equipment call, in our trace: {seen:?}"
    );
    for (_, parent) in &ours {
        assert_ne!(
            parent, &caller_span,
            "the proxy's span is the parent, not the caller's"
        );
        assert_ne!(parent, "0000000000000000");
    }

    // No traceparent from the client: core starts a trace, and it still reaches Nexon.
    let before = stack.sim.stats().traceparents.len();
    let response = stack
        .get(&format!("/v1/characters/{}/equipment", fresh_name("tr")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = stack.sim.stats().traceparents;
    let fresh: Vec<(String, String)> = seen[before..].iter().map(|t| parts(t)).collect();
    assert_eq!(fresh.len(), 2, "{seen:?}");
    assert_eq!(fresh[0].0, fresh[1].0, "one trace for one client request");
    assert_ne!(fresh[0].0, trace);
    assert_ne!(fresh[0].0, "0".repeat(32));
    stack.stop().await;
}

/// A fake OTLP/HTTP collector: keeps every body POSTed to `/v1/traces`.
async fn collector() -> (SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(store): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move {
                    store.lock().expect("store").push(body);
                    StatusCode::OK
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (otlp, received) = collector().await;
    let (sim, proxy, admin, core) = (free_port(), free_port(), free_port(), free_port());
    let (dir, database_url) = temp_sqlite();
    let launcher = Process::spawn(
        "maple",
        &[
            ("MAPLE_SIM_LISTEN", sim.to_string()),
            ("MAPLE_PROXY_LISTEN", proxy.to_string()),
            ("MAPLE_PROXY_ADMIN_LISTEN", admin.to_string()),
            ("MAPLE_PROXY_UPSTREAM", format!("http://{sim}")),
            ("MAPLE_CORE_LISTEN", core.to_string()),
            ("MAPLE_PROXY_URL", format!("http://{proxy}")),
            ("DATABASE_URL", database_url),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        ],
    );
    let http = reqwest::Client::new();
    crate::harness::wait_until_healthy(&http, &format!("http://{core}/health/ready")).await;
    let trace = random_hex(16);
    let response = http
        .get(format!("http://{core}/v1/characters/OtlpFan/equipment"))
        .header("traceparent", format!("00-{trace}-{}-01", random_hex(8)))
        .send()
        .await
        .expect("core answers");
    assert_eq!(response.status(), StatusCode::OK);
    // Ctrl-C: the launcher drains and flushes the spans it still holds.
    assert!(launcher.stop("INT").await.success());
    let started = Instant::now();
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[i * 2..i * 2 + 2], 16).expect("hex"))
        .collect();
    loop {
        let bodies = received.lock().expect("store").clone();
        if bodies.iter().any(|b| contains(b, &trace_bytes)) {
            assert!(
                bodies.iter().any(|b| contains(b, b"maple")),
                "the service name is exported"
            );
            assert!(
                bodies.iter().any(|b| contains(b, b"equipment.get")),
                "core's tier span is exported"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exported span carries the trace ({} bodies received)",
            bodies.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
