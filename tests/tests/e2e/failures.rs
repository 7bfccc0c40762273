//! Bad input and upstream failures: each gets a clear JSON error, quickly, and nothing hangs.

use maple_common::nexon::API_KEY_HEADER;
use maple_sim::characters;
use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::{Options, Stack, error_code};

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_are_rejected_before_reaching_upstream() {
    let stack = Stack::start().await;
    for path in [
        "/v1/characters/a/equipment",
        "/v1/characters/bad%20name/equipment",
        "/v1/characters/..%2F..%2Fadmin/equipment",
        "/v1/characters/abcdefghijklm/equipment",
        "/v1/characters/%EC%9D%BC%EA%B3%B1%EA%B8%80%EC%9E%90%EC%9D%B4%EB%A6%84%EC%9E%84",
        "/v1/characters/name%3Cscript%3E",
        "/v1/characters/%FF%FE",
    ] {
        let response = stack.get(path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let code = error_code(response).await;
        assert!(
            code == "invalid_character_name" || code == "invalid_path",
            "{path}: {code}"
        );
    }
    assert_eq!(stack.sim.stats().total, 0, "nothing reached the upstream");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_characters_and_routes_are_404_json() {
    let stack = Stack::start().await;
    let response = stack.get("/v1/characters/ghostly/equipment").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "character_not_found");

    let response = stack.get("/v1/nothing-here").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "not_found");

    let response = stack
        .http
        .delete(stack.core("/v1/characters/someone"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(response).await, "method_not_allowed");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_gone_gives_503_json_not_a_hang() {
    let mut stack = Stack::start().await;
    stack.stop_simulator().await;
    let response = stack.get("/v1/characters/nobodyhome/equipment").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "upstream_unavailable");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_upstream_is_cut_by_the_proxy_timeout_and_recovery_is_immediate() {
    let stack = Stack::start_with(Options {
        proxy_read_timeout_ms: 1_500,
        ..Options::uncached()
    })
    .await;
    // Warm the simulator's body cache (directly, so core has nothing stored), so the answer
    // after recovery is not slowed by generating 350 KB in a debug build on a busy machine.
    let warm = stack
        .http
        .get(format!(
            "http://{}/maplestory/v1/character/item-equipment",
            stack.sim_addr
        ))
        .query(&[("ocid", characters::ocid_for("hangtime").as_str())])
        .header(API_KEY_HEADER, maple_sim::DEFAULT_API_KEY)
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(warm.status(), StatusCode::OK);
    stack
        .sim
        .faults()
        .set(FaultSpec::hang())
        .await
        .expect("valid fault");
    let response = stack.get("/v1/characters/hangtime/equipment").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "upstream_unavailable");

    stack.sim.faults().clear().await;
    let response = stack.get("/v1/characters/hangtime/equipment").await;
    let status = response.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        response.text().await.unwrap_or_default()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_errors_resets_and_rate_limits_map_to_503() {
    // One attempt per request: this is about how core maps each failure, and retries would
    // add enough failures to open the breaker half-way through.
    let stack = Stack::start_with(Options::proxy(&[("MAPLE_PROXY_RETRY_MAX_ATTEMPTS", "1")])).await;
    let cases = [
        (FaultSpec::status(500), "upstream_unavailable"),
        (FaultSpec::connection_reset(), "upstream_unavailable"),
        (FaultSpec::rate_limit(7), "upstream_rate_limited"),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        stack.sim.faults().set(fault.clone()).await.expect("valid");
        let response = stack
            .get(&format!("/v1/characters/faulty{i}/equipment"))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}"
        );
        let retry_after = response.headers().get("retry-after").cloned();
        let body = response.text().await.expect("body");
        assert!(body.contains(expected), "{fault:?}: {body}");
        if expected == "upstream_rate_limited" {
            assert_eq!(
                retry_after.as_ref().map(|v| v.as_bytes()),
                Some(&b"7"[..]),
                "{body}"
            );
        }
    }
    stack.sim.faults().clear().await;
    assert_eq!(
        stack.get("/v1/characters/faulty0/equipment").await.status(),
        StatusCode::OK
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_api_key_is_our_fault_not_the_clients() {
    let stack = Stack::start_with(Options {
        proxy_api_key: Some("not-the-right-key".into()),
        ..Options::default()
    })
    .await;
    let response = stack.get("/v1/characters/keyless/equipment").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.expect("text");
    assert!(body.contains("upstream_rejected"), "{body}");
    assert!(
        !body.contains("not-the-right-key"),
        "the key never reaches a client"
    );
    stack.stop().await;
}

/// With the proxy unreachable the client reads a fixed sentence for the code: no URL, host,
/// port or library text (that detail is the log line's).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_proxy_leaks_nothing_internal_in_the_body() {
    let stack = Stack::start_with(Options {
        core_env: vec![("MAPLE_PROXY_URL", "http://127.0.0.1:1".to_owned())],
        ..Options::default()
    })
    .await;
    let response = stack.get("/v1/characters/leaky/equipment").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    let text = body.to_string();
    for leak in [
        "127.0.0.1",
        "http://",
        "error sending",
        "proxy_unreachable",
        "url",
        ":1",
    ] {
        assert!(!text.contains(leak), "`{leak}` in {text}");
    }
    assert_eq!(
        body["error"]["message"],
        "the Nexon API is unavailable; try again shortly"
    );
    stack.stop().await;
}

/// Broken data in the database (a stored equipment body that is not gzip, one that is gzip
/// but not JSON) is answered with a fixed sentence per error code: no decoder's text, path,
/// host or library name reaches the client (the detail stays in the log line).
#[tokio::test(flavor = "multi_thread")]
async fn broken_stored_data_leaks_nothing_internal_in_the_body() {
    let stack = Stack::start().await;
    let store = stack.store().await;
    let now = maple_core::clock::now_ms();
    let mut bodies = Vec::new();
    for (prefix, gzip) in [
        ("notgz", b"this is not gzip at all".to_vec()),
        (
            "notjs",
            maple_common::encoding::gzip(b"{\"item_equipment\": [oops"),
        ),
    ] {
        let name = crate::harness::fresh_name(prefix);
        let ocid = maple_sim::characters::ocid_for(&name);
        let character = maple_core::character::CharacterName::parse(&name).expect("name");
        store
            .upsert_character(&character, &ocid, now)
            .await
            .expect("mapping");
        let mut snapshot = maple_core::store::EquipmentSnapshot::compress(ocid, b"{}", now);
        snapshot.body_bytes = 4096;
        snapshot.body_gzip = gzip;
        store.save_equipment(&snapshot).await.expect("snapshot");
        for path in ["equipment", "expectation"] {
            let response = stack.get(&format!("/v1/characters/{name}/{path}")).await;
            let status = response.status();
            let text = response.text().await.expect("body");
            bodies.push((format!("{prefix} {path} {status}"), text));
        }
    }
    for (what, text) in &bodies {
        let lower = text.to_lowercase();
        for leak in [
            "gzip",
            "deflate",
            "invalid",
            "expected",
            "column",
            "line ",
            "serde",
            "sqlite",
            "sqlx",
            "/tmp",
            "127.0.0.1",
            "http://",
            "maple-e2e",
            "eof",
        ] {
            assert!(!lower.contains(leak), "{what}: `{leak}` in {text}");
        }
    }
    // Each failed cleanly: a JSON error with a code, or the data (a tier refetched it).
    for (what, text) in &bodies {
        let body: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        assert!(
            body["error"]["code"].is_string() || body.get("error").is_none(),
            "{what}: {text}"
        );
    }
    eprintln!("{bodies:#?}");
    stack.stop().await;
}
