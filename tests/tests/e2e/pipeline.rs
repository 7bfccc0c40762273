//! The happy path through every part, and what each part records on the way.

use maple_common::nexon::{PATH_BASIC, PATH_ID, PATH_ITEM_EQUIPMENT};
use maple_sim::characters;
use reqwest::StatusCode;

use crate::harness::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn equipment_goes_through_proxy_and_simulator_and_is_stored() {
    let stack = Stack::start().await;
    let response = stack.get("/v1/characters/MapleHero/equipment").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let body = response.bytes().await.expect("body");
    assert!(
        body.len() > 300_000,
        "a realistic ~350 KB body, got {}",
        body.len()
    );
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["item_equipment"].as_array().expect("items").len(), 24);

    let stats = stack.sim.stats();
    assert_eq!(stats.calls(PATH_ID), 1);
    assert_eq!(stats.calls(PATH_ITEM_EQUIPMENT), 1);

    // The name → ocid mapping is stored, and the proxy's cache holds the equipment: a second
    // request reaches Nexon for neither.
    let again = stack.get("/v1/characters/MapleHero/equipment").await;
    assert_eq!(again.status(), StatusCode::OK);
    let stats = stack.sim.stats();
    assert_eq!(stats.calls(PATH_ID), 1, "ocid came from the database");
    assert_eq!(
        stats.calls(PATH_ITEM_EQUIPMENT),
        1,
        "equipment came from the proxy's cache"
    );

    let ocid = characters::ocid_for("MapleHero");
    let snapshot = stack
        .store()
        .await
        .load_equipment(&ocid)
        .await
        .expect("query")
        .expect("snapshot stored");
    assert_eq!(snapshot.decompress().expect("intact"), body.to_vec());
    assert!(
        snapshot.body_gzip.len() * 5 < body.len(),
        "stored compressed"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn character_returns_ocid_and_basic_info() {
    let stack = Stack::start().await;
    // "아델", percent-encoded as a browser sends it.
    let response = stack.get("/v1/characters/%EC%95%84%EB%8D%B8").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["name"], "아델");
    assert_eq!(body["ocid"], characters::ocid_for("아델").as_str());
    assert_eq!(body["basic"]["character_name"], "아델");
    assert!(body["basic"]["character_level"].as_u64().is_some());
    assert_eq!(stack.sim.stats().calls(PATH_BASIC), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_report_real_traffic() {
    let stack = Stack::start().await;
    assert_eq!(stack.get("/health/live").await.status(), StatusCode::OK);
    let ready = stack.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(ready["checks"]["database"], "ok");

    assert_eq!(
        stack
            .get("/v1/characters/metricsfan/equipment")
            .await
            .status(),
        StatusCode::OK
    );
    let core_metrics = stack.get("/metrics").await.text().await.expect("text");
    assert!(
        core_metrics.contains(
            r#"maple_core_http_requests_total{method="GET",route="/v1/characters/{name}/equipment",status="200"} 1"#
        ),
        "{core_metrics}"
    );
    assert!(
        core_metrics
            .contains(r#"maple_core_nexon_calls_total{endpoint="item-equipment",outcome="ok"} 1"#)
    );

    let proxy_metrics = stack.proxy_metrics().await;
    assert!(
        proxy_metrics.contains(
            r#"maple_proxy_requests_total{route="/maplestory/v1/character/item-equipment",status="200"} 1"#
        ),
        "{proxy_metrics}"
    );
    assert!(
        !proxy_metrics.contains("metricsfan"),
        "no raw values in labels"
    );
    stack.stop().await;
}
