//! Every metric core exports, declared in one place (names are `maple_core_*`).
//!
//! Rule: HTTP metrics are labelled by route template (`/v1/characters/{name}`), never the raw
//! path, so a flood of names cannot blow up the series count.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

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
}

impl CoreMetrics {
    /// # Errors
    /// Only if two metrics share a name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests_total = IntCounterVec::new(
            Opts::new(
                "maple_core_http_requests_total",
                "Requests answered, by route template, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "maple_core_http_request_duration_seconds",
                "Request latency, by route template and method.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let nexon_calls_total = IntCounterVec::new(
            Opts::new(
                "maple_core_nexon_calls_total",
                "Calls to the Nexon API through the proxy, by endpoint and outcome.",
            ),
            &["endpoint", "outcome"],
        )?;
        let store_errors_total = IntCounterVec::new(
            Opts::new(
                "maple_core_store_errors_total",
                "Database operations that failed, by operation.",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(http_requests_total.clone()))?;
        registry.register(Box::new(http_request_duration_seconds.clone()))?;
        registry.register(Box::new(nexon_calls_total.clone()))?;
        registry.register(Box::new(store_errors_total.clone()))?;
        Ok(Self {
            registry,
            http_requests_total,
            http_request_duration_seconds,
            nexon_calls_total,
            store_errors_total,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
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
