//! Dashboards and alert rules cannot rot: after real traffic through the stack, every metric
//! name that `observability/alerts.yml` or a Grafana dashboard queries must be one the proxy or
//! core exports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use maple_sim::faults::FaultSpec;
use reqwest::StatusCode;

use crate::harness::{Options, Stack, fresh_name, redis_url};

fn observability_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../observability")
}

/// Every `maple_core_*` / `maple_proxy_*` name in `text`, histogram suffixes removed.
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = text[i..].find("maple_") {
        let start = i + offset;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let preceded_by_word =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded_by_word
            && (name.starts_with("maple_core_") || name.starts_with("maple_proxy_"))
        {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

/// Metric family names in a Prometheus text exposition (from its `# TYPE` lines).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_name_extraction_reads_promql() {
    let names = referenced_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(maple_core_http_request_duration_seconds_bucket[5m]))) / my_maple_x + maple_proxy_breaker_state"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "maple_core_http_request_duration_seconds",
            "maple_proxy_breaker_state"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboards_and_rules_use_is_exported() {
    let mut referenced = BTreeSet::new();
    let dir = observability_dir();
    let mut files = vec![dir.join("alerts.yml")];
    for entry in std::fs::read_dir(dir.join("grafana/dashboards")).expect("dashboards folder") {
        files.push(entry.expect("entry").path());
    }
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        if file.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        }
        referenced.extend(referenced_names(&text));
    }
    assert!(referenced.len() > 20, "found only {referenced:?}");

    // Traffic that touches every route-labelled series: core equipment (with Redis), proxy
    // misses, hits, a revalidation, and failures that are retried.
    let stack = Stack::start_with(Options {
        core_env: vec![("REDIS_URL", redis_url())],
        ..Options::proxy(&[("MAPLE_PROXY_ROUTES_ID_TTL_S", "1")])
    })
    .await;
    let path = format!("/v1/characters/{}/equipment", fresh_name("obs"));
    assert_eq!(stack.get(&path).await.status(), StatusCode::OK);
    assert_eq!(stack.get(&path).await.status(), StatusCode::OK);
    assert_eq!(stack.lookup("observed").await.status(), StatusCode::OK);
    // A like: the buffer, a flush to Redis; the sync pass within the next second takes the
    // lock (lock and sync series).
    let like = stack
        .http
        .post(stack.core(&format!("/v1/characters/{}/likes", fresh_name("obs"))))
        .send()
        .await
        .expect("core answers");
    assert_eq!(like.status(), StatusCode::ACCEPTED);
    assert_eq!(stack.lookup("observed").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(stack.lookup("observed").await.status(), StatusCode::OK);
    stack
        .sim
        .faults()
        .set(FaultSpec::status(500))
        .await
        .expect("valid fault");
    let failed = stack.lookup("failing").await;
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    stack.sim.faults().clear().await;

    let core_metrics = stack
        .http
        .get(stack.core("/metrics"))
        .send()
        .await
        .expect("core metrics")
        .text()
        .await
        .expect("text");
    let mut exported = exported_names(&core_metrics);
    exported.extend(exported_names(&stack.proxy_metrics().await));
    let missing: Vec<_> = referenced.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "queried by observability/ but not exported: {missing:?}\nexported: {exported:?}"
    );
    stack.stop().await;
}

/// The counters a dashboard reads with `rate()` exist at zero from the first scrape: a stale
/// answer or a retry is what an SRE looks for, and a series that appears only with the first
/// one reads nothing until then.
#[tokio::test(flavor = "multi_thread")]
async fn the_proxys_stale_and_retry_counters_exist_at_zero_before_any_traffic() {
    let stack = Stack::start().await;
    let text = stack.proxy_metrics().await;
    for sample in [
        r#"maple_proxy_stale_served_total{cause="breaker_open",route="/maplestory/v1/character/item-equipment"} 0"#,
        r#"maple_proxy_stale_served_total{cause="revalidating",route="/maplestory/v1/id"} 0"#,
        r#"maple_proxy_retries_total{reason="upstream_timeout",route="/maplestory/v1/character/basic"} 0"#,
        r#"maple_proxy_retries_total{reason="upstream_error",route="/maplestory/v1/id"} 0"#,
    ] {
        assert!(
            text.lines().any(|line| line == sample),
            "missing `{sample}` in:\n{}",
            text.lines()
                .filter(|l| l.contains("stale_served") || l.contains("retries_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    stack.stop().await;
}
