//! End-to-end tests: client → core → proxy → simulator and back, on real sockets, with real
//! databases (SQLite and the machine's MariaDB) and real processes.

// The in-process stack's futures (core, the proxy, the simulator) nest deeply: computing their
// layouts from a cold build needs more than the default query depth of 128.
#![recursion_limit = "256"]

mod admin;
mod harness;
mod private;

mod balancer;
mod breaker;
mod chaos;
mod compose;
mod drill;
mod expectation;
mod failures;
mod fresh;
mod fuzz;
mod hardening;
mod likes;
mod nexon_client;
mod observability;
mod openapi;
mod pipeline;
mod processes;
mod prometheus;
mod proxy;
mod renames;
mod resilience;
mod secrets;
mod shutdown;
mod simulator;
mod storage;
mod tiers;
mod traces;
mod valuation;

/// The harness never freezes what it tests: a test's runtime also serves the simulator, the
/// TCP fault proxies and in-process core and proxy, so every async test runs on a
/// multi-thread runtime (a task that blocks a moment does not stop the others), and no test
/// code waits by blocking (`tests/clippy.toml` refuses `std::thread::sleep`, std's child
/// processes and blocking sockets in this crate; `.ci/run` runs clippy with `-D warnings`).
#[test]
fn every_async_test_runs_on_a_multi_thread_runtime() {
    fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("tests folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
        &mut files,
    );
    assert!(files.len() > 20, "the e2e sources were found: {files:?}");
    let attribute = ["#[tokio", "::test"].concat();
    let mut offending = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with(&attribute) && !line.contains("flavor = \"multi_thread\"") {
                offending.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "async tests on a current-thread runtime:\n{}",
        offending.join("\n")
    );
}
