//! The HTTP request decoders fuzzed end to end: mutated probability and star-force bodies,
//! hostile query strings and names, and the admin routes (hostile targets, keys and queries),
//! sent to a running core. The property: every answer is a 2xx or a 4xx with a JSON error
//! body — never a 5xx, never a hang — and every admin attempt is audited. Deterministic
//! (`MAPLE_FUZZ_SEED`), bounded (`MAPLE_FUZZ_CASES`, default 1500 per target).

use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Options, Stack, fresh_name};

fn cases() -> usize {
    std::env::var("MAPLE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500)
}

fn seed() -> u64 {
    std::env::var("MAPLE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6675_7a7a)
}

fn hostile(rng: &mut StdRng) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(1e308),
        4 => json!(""),
        5 => json!("STR"),
        6 => json!("legendary"),
        7 => json!([1, 2, 3]),
        8 => json!({ "min": 4_294_967_295_u64 }),
        9 => json!("x".repeat(5_000)),
        10 => json!(true),
        _ => json!(300),
    }
}

fn mutate(rng: &mut StdRng, value: &mut Value, depth: u32) {
    match value {
        Value::Object(map) if !map.is_empty() && depth < 6 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.random_range(0..keys.len())].clone();
            match rng.random_range(0..6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(format!("{key}_x"), hostile(rng));
                }
                2 => {
                    map.insert(key, hostile(rng));
                }
                _ => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate(rng, child, depth + 1);
                    }
                }
            }
        }
        other => *other = hostile(rng),
    }
}

/// Sends every body; returns the statuses (panics on a 5xx or a non-JSON error).
async fn send_all(stack: &Stack, path: &str, bodies: Vec<Vec<u8>>) -> Vec<StatusCode> {
    let url = stack.core(path);
    let sends = bodies.into_iter().enumerate().map(|(case, body)| {
        let (http, url) = (stack.http.clone(), url.clone());
        async move {
            let response = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("answered");
            let status = response.status();
            let text = response.text().await.expect("body");
            assert!(
                !status.is_server_error(),
                "seed {} case {case}: {status} for {}: {text}",
                seed(),
                String::from_utf8_lossy(&body)
            );
            if status.is_client_error() {
                let error: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("case {case}: non-JSON {status}: {text}"));
                assert!(error["error"]["code"].is_string(), "case {case}: {text}");
            }
            status
        }
    });
    futures::stream::iter(sends)
        .buffer_unordered(16)
        .collect()
        .await
}

fn bodies(valid: &Value, rng: &mut StdRng) -> Vec<Vec<u8>> {
    let raw = serde_json::to_vec(valid).expect("json");
    (0..cases())
        .map(|case| {
            if case % 3 == 0 {
                // Bytes: flips and truncations of the valid body.
                let mut out = raw.clone();
                let at = rng.random_range(0..out.len());
                if rng.random_bool(0.5) {
                    out.truncate(at);
                } else {
                    out[at] ^= 1 << rng.random_range(0..8);
                }
                out
            } else {
                let mut value = valid.clone();
                for _ in 0..rng.random_range(1..=3) {
                    mutate(rng, &mut value, 0);
                }
                serde_json::to_vec(&value).expect("json")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mutated_requests_get_2xx_or_json_4xx_never_5xx() {
    let stack = Stack::start().await;
    let mut rng = StdRng::seed_from_u64(seed());

    let probability = json!({
        "item_type": "hat", "level": 150, "grade": "legendary", "cube": "red",
        "target": { "stat_pct": { "stat": "STR", "min": 21 }, "boss_lines": { "min": 1 } }
    });
    let statuses = send_all(
        &stack,
        "/v1/potential/probability",
        bodies(&probability, &mut rng),
    )
    .await;
    assert!(
        statuses.contains(&StatusCode::OK),
        "some mutations stay valid"
    );
    assert!(statuses.contains(&StatusCode::BAD_REQUEST));

    let starforce = json!({
        "level": 200, "from": 12, "to": 22, "star_catch": true, "safeguard": false,
        "discount_30": false, "destroy_reduction": false
    });
    let statuses = send_all(
        &stack,
        "/v1/starforce/expectation",
        bodies(&starforce, &mut rng),
    )
    .await;
    assert!(statuses.contains(&StatusCode::OK));
    assert!(statuses.contains(&StatusCode::BAD_REQUEST));

    // Query strings and names on GET routes.
    let pieces = [
        "method=red",
        "method=%00",
        "method=",
        "miracle_time=maybe",
        "star_catch=true",
        "safeguard=1",
        "x=1",
        "method=black&method=red",
        "%FF=%FE",
        "discount_30=false",
    ];
    let names = [
        "아델",
        "adel",
        "a",
        "%ED%95%9C",
        "..",
        "%2e%2e",
        "a%20b",
        "ａｄｅｌ",
        "🍁🍁",
    ];
    let gets = (0..cases() / 3).map(|case| {
        let name = names[rng.random_range(0..names.len())];
        let query: Vec<&str> = (0..rng.random_range(0..3))
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        let url = stack.core(&format!(
            "/v1/characters/{name}/expectation?{}",
            query.join("&")
        ));
        let http = stack.http.clone();
        async move {
            let response = http.get(&url).send().await.expect("answered");
            let status = response.status();
            assert!(!status.is_server_error(), "case {case}: {status} for {url}");
            status
        }
    });
    let statuses: Vec<StatusCode> = futures::stream::iter(gets)
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.contains(&StatusCode::OK));
    assert!(statuses.contains(&StatusCode::BAD_REQUEST));
    stack.stop().await;
}

/// A path parameter of 0 to 400 bytes from pieces that have broken decoders before: ASCII,
/// two-, three- and four-byte characters (so any byte cut can land inside one), percent
/// escapes (valid, invalid, of non-UTF-8 bytes), dots and separators.
fn hostile_target(rng: &mut StdRng) -> String {
    const PIECES: [&str; 16] = [
        "a", "Z", "7", "é", "아", "델", "🍁", "%20", "%2e", "%2F", "%FF", "%C3", "%", "..", ";",
        "~",
    ];
    let want = rng.random_range(0..=400);
    let mut out = String::new();
    while out.len() < want {
        // Runs of one piece, so lengths near any boundary come up often.
        let piece = PIECES[rng.random_range(0..PIECES.len())];
        for _ in 0..rng.random_range(1..=64) {
            out.push_str(piece);
        }
    }
    out
}

/// The admin routes under mutated keys, targets and queries: never a 5xx, every error a JSON
/// body, and each attempt that reached a route in the audit log.
#[tokio::test(flavor = "multi_thread")]
async fn admin_routes_fuzzed_get_json_answers_never_5xx_and_are_audited() {
    use maple_core::admin::{Scope, new_key};

    let dir = std::env::temp_dir().join(format!("maple-fuzz-admin-{}", fresh_name("d")));
    std::fs::create_dir_all(&dir).expect("dir");
    let (root, root_stored) = new_key("fuzz-root", Scope::ALL.into_iter().collect());
    let (reader, reader_stored) = new_key("fuzz-reader", [Scope::Read].into_iter().collect());
    let keys = dir.join("admin-keys.json");
    std::fs::write(
        &keys,
        json!({ "keys": [root_stored, reader_stored] }).to_string(),
    )
    .expect("keys");
    let stack = Stack::start_with(Options {
        core_env: vec![("MAPLE_CORE_ADMIN_KEYS_FILE", keys.display().to_string())],
        ..Options::default()
    })
    .await;
    // One character known locally, so some purges find what they name.
    assert_eq!(
        stack
            .get("/v1/characters/FuzzPurge/equipment")
            .await
            .status(),
        StatusCode::OK
    );
    let mut rng = StdRng::seed_from_u64(seed() ^ 0xad31);
    let authorizations = [
        None,
        Some(format!("Bearer {root}")),
        Some(format!("Bearer {root}")),
        Some(format!("Bearer {reader}")),
        Some("Bearer ".to_owned()),
        Some("Bearer not-a-key".to_owned()),
        Some(format!("Basic {root}")),
        Some(format!("Bearer {}", "k".repeat(5_000))),
        Some(format!("bearer {root}")),
    ];
    let queries = [
        "",
        "?limit=1",
        "?limit=0",
        "?limit=501",
        "?limit=-1",
        "?limit=4294967296",
        "?limit=%FF",
        "?limit=1&limit=2",
        "?other=1",
        "?limit=%E2%80%8B",
    ];
    // Sent (an audit row is expected for each: every request here reaches a route).
    let requests = (cases() / 4).clamp(40, 450);
    let sends = (0..requests).map(|case| {
        let (method, path) = match rng.random_range(0..7) {
            0 => (
                "POST",
                format!("/v1/admin/characters/{}/purge", hostile_target(&mut rng)),
            ),
            1 => ("POST", "/v1/admin/characters/FuzzPurge/purge".to_owned()),
            2 => ("GET", "/v1/admin/state".to_owned()),
            3 => (
                "GET",
                format!(
                    "/v1/admin/audit{}",
                    queries[rng.random_range(0..queries.len())]
                ),
            ),
            4 => ("GET", "/v1/admin/backups".to_owned()),
            5 => ("GET", "/v1/admin/config".to_owned()),
            _ => ("POST", "/v1/admin/likes/sync".to_owned()),
        };
        let authorization = authorizations[rng.random_range(0..authorizations.len())].clone();
        let url = stack.core(&path);
        let http = stack.http.clone();
        async move {
            let mut request = http.request(method.parse().expect("method"), &url);
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.expect("answered");
            let status = response.status();
            let text = response.text().await.expect("body");
            let shown: String = url.chars().take(120).collect();
            assert!(
                !status.is_server_error(),
                "seed {} case {case}: {status} for {method} {shown}: {text}",
                seed()
            );
            if status.is_client_error() {
                let error: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("case {case}: non-JSON {status}: {text}"));
                assert!(error["error"]["code"].is_string(), "case {case}: {text}");
            }
            status
        }
    });
    let statuses: Vec<StatusCode> = futures::stream::iter(sends)
        .buffer_unordered(16)
        .collect()
        .await;
    for expected in [
        StatusCode::OK,
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
    ] {
        assert!(
            statuses.contains(&expected),
            "some {expected}: {statuses:?}"
        );
    }
    // Every attempt audited (the read below is audited after it answers, so not listed).
    let response = stack
        .http
        .get(stack.core("/v1/admin/audit?limit=500"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("audit");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let entries = body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), requests, "one audit row per attempt");
    for entry in entries {
        let target = entry["target"].as_str().expect("target");
        assert!(
            target.len() <= 256,
            "target cut to 256 bytes: {}",
            target.len()
        );
    }
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
