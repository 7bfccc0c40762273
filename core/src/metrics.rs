//! Every metric core exports, declared in one place (names are `maple_core_*`).
//!
//! Rule: HTTP metrics are labelled by route template (`/v1/characters/{name}`), never the raw
//! path, so a flood of names cannot blow up the series count.

use maple_common::metrics::{counter_vec, gauge, histogram_vec, render};
use prometheus::{HistogramVec, IntCounterVec, IntGauge, Registry};

/// Latency buckets in seconds: 1 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Core's metrics and their registry.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    registry: Registry,
    /// Requests answered, by route template, method and status.
    pub http_requests_total: IntCounterVec,
    /// Request latency, by route template and method.
    pub http_request_duration_seconds: HistogramVec,
    /// Calls to the Nexon API through the proxy, by endpoint and outcome.
    pub nexon_calls_total: IntCounterVec,
    /// Database operations that failed, by operation.
    pub store_errors_total: IntCounterVec,
    /// Equipment answers by the tier that served them: l1, l2, db, upstream, stale.
    pub equipment_source_total: IntCounterVec,
    /// Equipment loads by role: leader (this request loaded), follower (joined one in
    /// progress in this instance).
    pub singleflight_total: IntCounterVec,
    /// The cross-instance latch: acquired, followed (another instance fetched), waited_out
    /// (the leader took too long; fetched anyway), unavailable (Redis down).
    pub latch_total: IntCounterVec,
    /// Redis operations by operation and result (ok, error, breaker_open).
    pub redis_ops_total: IntCounterVec,
    /// Redis circuit breaker state: 0 closed, 1 open, 2 half-open.
    pub redis_breaker_state: IntGauge,
}

impl CoreMetrics {
    /// # Errors
    /// Only if two metrics share a name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Self {
            http_requests_total: counter_vec(
                &r,
                "maple_core_http_requests_total",
                "Requests answered, by route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_request_duration_seconds: histogram_vec(
                &r,
                "maple_core_http_request_duration_seconds",
                "Request latency, by route template and method.",
                &["route", "method"],
                DURATION_BUCKETS,
            )?,
            nexon_calls_total: counter_vec(
                &r,
                "maple_core_nexon_calls_total",
                "Calls to the Nexon API through the proxy, by endpoint and outcome.",
                &["endpoint", "outcome"],
            )?,
            store_errors_total: counter_vec(
                &r,
                "maple_core_store_errors_total",
                "Database operations that failed, by operation.",
                &["operation"],
            )?,
            equipment_source_total: counter_vec(
                &r,
                "maple_core_equipment_source_total",
                "Equipment answers by the tier that served them.",
                &["source"],
            )?,
            singleflight_total: counter_vec(
                &r,
                "maple_core_singleflight_total",
                "Equipment loads by role in this instance: leader or follower.",
                &["role"],
            )?,
            latch_total: counter_vec(
                &r,
                "maple_core_latch_total",
                "Cross-instance fetch latch outcomes.",
                &["result"],
            )?,
            redis_ops_total: counter_vec(
                &r,
                "maple_core_redis_ops_total",
                "Redis operations by operation and result.",
                &["operation", "result"],
            )?,
            redis_breaker_state: gauge(
                &r,
                "maple_core_redis_breaker_state",
                "Redis circuit breaker state: 0 closed, 1 open, 2 half-open.",
            )?,
            registry: r,
        }
        .with_known_series())
    }

    /// Creates the series whose labels are a fixed set, at zero, so rules and dashboards see
    /// them (and `rate()` works) before the first event.
    fn with_known_series(self) -> Self {
        for operation in [
            "find_ocid",
            "upsert_character",
            "load_equipment",
            "save_equipment",
        ] {
            self.store_errors_total.with_label_values(&[operation]);
        }
        for source in ["l1", "l2", "db", "upstream", "stale"] {
            self.equipment_source_total.with_label_values(&[source]);
        }
        for role in ["leader", "follower"] {
            self.singleflight_total.with_label_values(&[role]);
        }
        for result in ["acquired", "followed", "waited_out", "unavailable"] {
            self.latch_total.with_label_values(&[result]);
        }
        self
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Vec<u8> {
        render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rendered() {
        let metrics = CoreMetrics::new().expect("unique names");
        metrics
            .http_requests_total
            .with_label_values(&["/health/live", "GET", "200"])
            .inc();
        metrics
            .http_request_duration_seconds
            .with_label_values(&["/health/live", "GET"])
            .observe(0.001);
        metrics
            .nexon_calls_total
            .with_label_values(&["id", "ok"])
            .inc();
        metrics
            .store_errors_total
            .with_label_values(&["find_ocid"])
            .inc();
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        for name in [
            "maple_core_http_requests_total",
            "maple_core_http_request_duration_seconds_bucket",
            "maple_core_nexon_calls_total",
            "maple_core_store_errors_total",
        ] {
            assert!(text.contains(name), "{name}");
        }
    }
}
