//! core's API description (`/openapi.json`, generated from the code:
//! `maple_core::http::openapi`) against the running service: it lists exactly the routes and methods the router serves, and a client
//! nobody here wrote — schemathesis, generating requests from the description — finds no 5xx
//! and no response the description does not allow.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use maple_core::admin::{Scope, new_key};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::process::Command;

use crate::harness::{Options, Stack, free_port};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn description() -> Value {
    serde_json::to_value(maple_core::http::openapi::document()).expect("the description is JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_description_lists_exactly_the_routes_and_methods_served() {
    let stack = Stack::start().await;
    let response = stack.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    let served: Value = response.json().await.expect("JSON");
    let spec = description();
    assert_eq!(served, spec, "the served description is the generated one");
    assert_eq!(spec["openapi"], "3.1.0");

    let paths = spec["paths"].as_object().expect("paths");
    let described: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed: BTreeSet<&str> = maple_core::http::route_templates().into_iter().collect();
    assert_eq!(
        described, routed,
        "routes without a description, or descriptions without a route"
    );

    // Each method of each route: served exactly when described (405 otherwise).
    for (path, operations) in paths {
        let url = path.replace("{name}", "OpenApiFan");
        for method in METHODS {
            let documented = operations
                .get(method.as_str().to_ascii_lowercase())
                .is_some();
            let response = stack
                .http
                .request(method.clone(), stack.core(&url))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("core answers");
            let status = response.status();
            if documented {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}: routed");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
            let declared = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = response.bytes().await.expect("body");
            if status.is_client_error() || status.is_server_error() {
                assert!(declared.starts_with("application/json"), "{method} {path}");
                let error: Value = serde_json::from_slice(&body).expect("JSON error");
                assert!(
                    error["error"]["code"].is_string(),
                    "{method} {path}: {error}"
                );
            }
        }
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_code_the_service_emits_is_in_the_description() {
    let spec = description();
    let codes: BTreeSet<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("an ErrorCode enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in maple_core::error::ErrorCode::ALL {
        assert!(
            codes.contains(code.as_str()),
            "{code:?} is not in the description"
        );
    }
    assert_eq!(
        codes.len(),
        maple_core::error::ErrorCode::ALL.len(),
        "{codes:?}"
    );
}

/// `st` (schemathesis) from the PATH, or the Python module.
async fn schemathesis() -> Command {
    if Command::new("st")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
    {
        Command::new("st")
    } else {
        let mut command = Command::new("python3");
        command.args(["-m", "schemathesis.cli"]);
        command
    }
}

/// What schemathesis printed (both streams).
fn read(dir: &std::path::Path) -> String {
    let text = |file| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    format!("{}\n{}", text("stdout.txt"), text("stderr.txt"))
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_description() {
    let dir = std::env::temp_dir().join(format!(
        "maple-openapi-{}-{}",
        std::process::id(),
        free_port().port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    // A key with every scope, so the admin routes are exercised beyond 401.
    let (token, stored) = new_key("schemathesis", Scope::ALL.into_iter().collect());
    let keys = dir.join("admin-keys.json");
    std::fs::write(&keys, serde_json::json!({ "keys": [stored] }).to_string()).expect("keys");
    let stack = Stack::start_with(Options {
        core_env: vec![("MAPLE_CORE_ADMIN_KEYS_FILE", keys.display().to_string())],
        ..Options::default()
    })
    .await;
    let schema = stack.core("/openapi.json");
    let base = stack.core("");
    // A fixed number of generated cases per operation (MAPLE_SCHEMATHESIS_EXAMPLES), with the
    // seed fixed: the same run each time, sized by what it covers rather than by the clock.
    let examples = std::env::var("MAPLE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "40".into());
    let mut child = schemathesis()
        .await
        .kill_on_drop(true)
        .args([
            "run",
            schema.as_str(),
            "--url",
            base.trim_end_matches('/'),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            examples.as_str(),
            "--seed",
            "20261201",
            "--request-timeout",
            "10",
            // One worker: CPython 3.11.7's AST recursion counter is not thread-safe, and
            // hypothesis parses lambdas' source from each worker thread ("AST constructor
            // recursion depth mismatch", fixed in 3.11.8).
            "--workers",
            "1",
            "--no-color",
            "--header",
            &format!("Authorization: Bearer {token}"),
        ])
        .stdin(Stdio::null())
        // To files, not pipes: a long report must never block the run on a full pipe.
        .stdout(std::fs::File::create(dir.join("stdout.txt")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("stderr.txt")).expect("stderr file"))
        .spawn()
        .expect("schemathesis runs (scripts/services.sh installs it)");
    // Bounded: past five minutes it is stopped and fails.
    let Ok(status) = tokio::time::timeout(Duration::from_secs(300), child.wait()).await else {
        let _ = child.kill().await;
        panic!("schemathesis did not finish within 300 s:\n{}", read(&dir));
    };
    let status = status.expect("wait");
    let stdout = read(&dir);
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{stdout}"
    );
    // "No issues found" is printed only without warnings; a heuristic warning (e.g. "mostly
    // rejected generated data", for the strictly validated POST bodies) is no failure: every
    // generated case must have passed.
    let cases = stdout
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_default();
    let all_passed = cases
        .trim()
        .split_once(" generated, ")
        .is_some_and(|(generated, rest)| rest == format!("{generated} passed"));
    assert!(
        stdout.contains("Tested: 18") && (stdout.contains("No issues found") || all_passed),
        "schemathesis tested every operation, every case passing:\n{stdout}"
    );
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
