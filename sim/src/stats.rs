//! Call counters per API path, read by tests and the benchmark through `GET /-/stats`.
//!
//! Rule: counted on arrival, before authentication and faults, so "exactly one upstream call"
//! means exactly one request reached the simulator.
//!
//! Equipment calls are also kept per character (`GET /-/stats/equipment`: each `ocid` with the
//! times of its calls), so a test spanning several proxies can check that Nexon saw at most one
//! call per character per freshness period.

use std::collections::{BTreeMap, HashMap};
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
    /// Equipment calls per `ocid`: when each arrived (Unix ms), oldest first.
    equipment: Mutex<HashMap<String, Vec<u64>>>,
}

/// Characters whose equipment calls are timed; calls for more are counted by path only.
const TIMED_CHARACTERS: usize = 100_000;
/// Call times kept per character (the latest).
const TIMES_KEPT: usize = 64;

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

    /// Notes an equipment call for `ocid` at `at_ms` (Unix ms).
    pub fn record_equipment(&self, ocid: &str, at_ms: u64) {
        let mut calls = self.equipment.lock().unwrap_or_else(|e| e.into_inner());
        if calls.len() >= TIMED_CHARACTERS && !calls.contains_key(ocid) {
            return;
        }
        let times = calls.entry(ocid.to_owned()).or_default();
        if times.len() == TIMES_KEPT {
            times.remove(0);
        }
        times.push(at_ms);
    }

    /// Each character's equipment call times (Unix ms, oldest first).
    pub fn equipment_calls(&self) -> BTreeMap<String, Vec<u64>> {
        let calls = self.equipment.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
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
        self.equipment
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

    #[test]
    fn equipment_calls_are_timed_per_character() {
        let stats = Stats::default();
        stats.record_equipment("a", 1);
        stats.record_equipment("b", 2);
        stats.record_equipment("a", 3);
        let calls = stats.equipment_calls();
        assert_eq!(calls["a"], [1, 3]);
        assert_eq!(calls["b"], [2]);
        for at in 0..100 {
            stats.record_equipment("c", at);
        }
        let kept = &stats.equipment_calls()["c"];
        assert_eq!(kept.len(), TIMES_KEPT);
        assert_eq!(kept.last(), Some(&99));
        stats.reset();
        assert!(stats.equipment_calls().is_empty());
    }
}
