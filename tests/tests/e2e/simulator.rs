//! The simulator over HTTP, as the proxy and the benchmark see it.

use std::time::Duration;

use maple_common::nexon::{API_KEY_HEADER, PATH_ID, PATH_ITEM_EQUIPMENT};
use maple_sim::{DEFAULT_API_KEY, characters};
use reqwest::StatusCode;

use crate::harness::Stack;

fn sim_url(stack: &Stack, path: &str) -> String {
    format!("http://{}{path}", stack.sim_addr)
}

async fn nexon_error_name(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON");
    body["error"]["name"]
        .as_str()
        .expect("error.name")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn speaks_nexon_errors() {
    let stack = Stack::start().await;
    let get = |path: &str, key: Option<&str>| {
        let mut request = stack.http.get(sim_url(&stack, path));
        if let Some(key) = key {
            request = request.header(API_KEY_HEADER, key);
        }
        request.send()
    };
    let key = Some(DEFAULT_API_KEY);
    let ocid = characters::ocid_for("simuser");
    let cases = [
        (
            format!("{PATH_ID}?character_name=simuser"),
            None,
            400,
            "OPENAPI00005",
        ),
        (
            format!("{PATH_ID}?character_name=simuser"),
            Some("wrong"),
            400,
            "OPENAPI00005",
        ),
        (PATH_ID.to_owned(), key, 400, "OPENAPI00004"),
        (
            format!("{PATH_ID}?character_name=ghost1"),
            key,
            400,
            "OPENAPI00004",
        ),
        (
            format!("{PATH_ITEM_EQUIPMENT}?ocid=nothex"),
            key,
            400,
            "OPENAPI00003",
        ),
        (
            format!("{PATH_ITEM_EQUIPMENT}?ocid={ocid}&date=2020-01-01"),
            key,
            400,
            "OPENAPI00004",
        ),
        ("/maplestory/v1/nope".to_owned(), key, 400, "OPENAPI00006"),
    ];
    for (path, key, status, name) in cases {
        let response = get(&path, key).await.expect("sim answers");
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(nexon_error_name(response).await, name, "{path}");
    }
    let dated = get(
        &format!("{PATH_ITEM_EQUIPMENT}?ocid={ocid}&date=2024-06-01"),
        key,
    )
    .await
    .expect("answers");
    assert_eq!(dated.status(), StatusCode::OK);
    let body: serde_json::Value = dated.json().await.expect("JSON");
    assert_eq!(body["date"], "2024-06-01T00:00+09:00");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_api_sets_faults_and_reports_stats() {
    let stack = Stack::start().await;
    let set = stack
        .http
        .post(sim_url(&stack, "/-/faults"))
        .json(&serde_json::json!({
            "rate_limit_retry_after_s": 3,
            "ratio": 0.5,
            "duration_ms": 60_000,
            "path_prefix": PATH_ID,
        }))
        .send()
        .await
        .expect("answers");
    assert_eq!(set.status(), StatusCode::CREATED);
    let mut limited = 0;
    for _ in 0..4 {
        let response = stack
            .http
            .get(sim_url(&stack, PATH_ID))
            .query(&[("character_name", "statsuser")])
            .header(API_KEY_HEADER, DEFAULT_API_KEY)
            .send()
            .await
            .expect("answers");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "3");
            assert_eq!(nexon_error_name(response).await, "OPENAPI00007");
            limited += 1;
        }
    }
    assert_eq!(limited, 2, "ratio 0.5 of 4 calls");

    let invalid = stack
        .http
        .post(sim_url(&stack, "/-/faults"))
        .json(&serde_json::json!({ "hang": true, "reset": true }))
        .send()
        .await
        .expect("answers");
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);

    let cleared = stack
        .http
        .delete(sim_url(&stack, "/-/faults"))
        .send()
        .await
        .expect("answers");
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);

    let stats: serde_json::Value = stack
        .http
        .get(sim_url(&stack, "/-/stats"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stats["paths"][PATH_ID], 4);
    assert_eq!(stats["total"], 4);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_fault_aborts_the_connection() {
    let stack = Stack::start().await;
    stack
        .sim
        .faults()
        .set(maple_sim::faults::FaultSpec::connection_reset())
        .await
        .expect("valid");
    let result = stack
        .http
        .get(sim_url(&stack, PATH_ID))
        .query(&[("character_name", "resetme")])
        .header(API_KEY_HEADER, DEFAULT_API_KEY)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let error = result.expect_err("no response on a reset connection");
    assert!(!error.is_timeout(), "reset, not hung: {error:?}");
    stack.stop().await;
}
