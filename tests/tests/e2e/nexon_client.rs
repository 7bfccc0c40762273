//! A published Nexon client (PyPI `maplestory-openapi`, installed by `scripts/services.sh`)
//! pointed at the proxy, as other services use it: data comes through, and every refusal the
//! proxy makes itself reaches the client as Nexon's error document — its API exception with
//! the closest Nexon code — not as a validation error.

use std::process::Stdio;
use std::time::Duration;

use maple_sim::faults::FaultSpec;
use serde_json::Value;
use tokio::process::Command;

use crate::harness::{Options, Stack};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nexon_client.py");

/// One call of the client against the proxy at `base`: what the script printed.
async fn client(base: &str, call: &str, arg: &str) -> Value {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("python3")
            .args([SCRIPT, base, "any-key", call, arg])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finishes")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the client printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_nexon_client_reads_data_and_every_proxy_refusal() {
    let stack = Stack::start_with(Options::uncached()).await;
    let base = format!("http://{}/", stack.proxy_addr);

    let data = client(&base, "id", "nexonclient").await;
    let ocid = data["ok"]
        .as_str()
        .unwrap_or_else(|| panic!("data: {data}"));
    assert_eq!(ocid.len(), 32, "{data}");

    // The proxy's own refusal of a bad query: Nexon's invalid-parameter code.
    let refused = client(&base, "basic", "not-an-ocid").await;
    assert_eq!(refused["error_code"], "OPENAPI00004", "{refused}");

    // Nexon rate limiting: Nexon's rate-limit code.
    let faults = stack.sim.faults();
    faults
        .set(FaultSpec::status(429))
        .await
        .expect("valid fault");
    let limited = client(&base, "basic", ocid).await;
    assert_eq!(limited["error_code"], "OPENAPI00007", "{limited}");
    faults.clear().await;
    // (`id` and not `basic` for data: this client version requires the field
    // `liberation_quest_clear_flag`, which Nexon's basic response has since replaced with
    // `liberation_quest_clear` — as the real response the simulator serves has it; the 3.x
    // clients that read the new field do not import.)
    let data = client(&base, "id", "nexonclient2").await;
    assert!(data["ok"].is_string(), "{data}");

    // Nexon failing: the proxy's 503 reads as Nexon's internal error, the one clients retry;
    // so does the breaker it opens.
    faults
        .set(FaultSpec::status(500))
        .await
        .expect("valid fault");
    let failing = client(&base, "basic", ocid).await;
    assert_eq!(failing["error_code"], "OPENAPI00001", "{failing}");
    let paused = client(&base, "basic", ocid).await;
    assert_eq!(paused["error_code"], "OPENAPI00001", "{paused}");
    faults.clear().await;
    stack.stop().await;
}

/// A proxy that takes client tokens: the client sends none, and reads Nexon's invalid-key code.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_client_token_reads_as_an_invalid_key() {
    let stack = Stack::start_with(Options::proxy(&[(
        "MAPLE_PROXY_CLIENT_TOKENS",
        "a-token-the-client-lacks",
    )]))
    .await;
    let base = format!("http://{}/", stack.proxy_addr);
    let refused = client(&base, "id", "notoken").await;
    assert_eq!(refused["error_code"], "OPENAPI00005", "{refused}");
    stack.stop().await;
}
