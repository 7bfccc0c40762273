//! Call counters per API path, read by tests and the benchmark through `GET /-/stats`.
//!
//! Rule: counted on arrival, before authentication and faults, so "exactly one upstream call"
//! means exactly one request reached the simulator.

use std::collections::BTreeMap;
use std::sync::Mutex;

use maple_common::nexon::{PATH_BASIC, PATH_ID, PATH_ITEM_EQUIPMENT};
use serde::{Deserialize, Serialize};

/// Paths outside the known three are counted under this key, so the map stays bounded.
pub const OTHER_PATH: &str = "other";

/// Counters, cheap to bump from many tasks.
#[derive(Debug, Default)]
pub struct Stats {
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// The W3C `traceparent` of the latest requests that carried one (newest last).
    traceparents: Mutex<std::collections::VecDeque<String>>,
}

/// `traceparent` values kept.
const TRACEPARENTS_KEPT: usize = 256;

/// What `GET /-/stats` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
    /// The `traceparent` headers of the latest requests that carried one, oldest first.
    #[serde(default)]
    pub traceparents: Vec<String>,
}

impl StatsSnapshot {
    /// Calls seen on `path` (0 if none).
    pub fn calls(&self, path: &str) -> u64 {
        self.paths.get(path).copied().unwrap_or(0)
    }
}

impl Stats {
    pub fn record(&self, path: &str) {
        let key = [PATH_ID, PATH_BASIC, PATH_ITEM_EQUIPMENT]
            .into_iter()
            .find(|known| *known == path)
            .unwrap_or(OTHER_PATH);
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        *calls.entry(key).or_default() += 1;
    }

    pub fn record_traceparent(&self, value: &str) {
        let mut kept = self.traceparents.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == TRACEPARENTS_KEPT {
            kept.pop_front();
        }
        kept.push_back(value.chars().take(64).collect());
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let traceparents = self.traceparents.lock().unwrap_or_else(|e| e.into_inner());
        StatsSnapshot {
            total: calls.values().sum(),
            paths: calls.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            traceparents: traceparents.iter().cloned().collect(),
        }
    }

    pub fn reset(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.traceparents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_paths_and_lumps_the_rest() {
        let stats = Stats::default();
        stats.record(PATH_ID);
        stats.record(PATH_ID);
        stats.record("/maplestory/v1/whatever");
        let snap = stats.snapshot();
        assert_eq!(snap.total, 3);
        assert_eq!(snap.calls(PATH_ID), 2);
        assert_eq!(snap.calls(OTHER_PATH), 1);
        stats.reset();
        assert_eq!(stats.snapshot().total, 0);
    }
}
