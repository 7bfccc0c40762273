//! Every metric the proxy exports, declared in one place (names are `maple_proxy_*`).
//!
//! Rule: metrics are recorded once per request, in `logging()`; labels are route templates,
//! never raw paths or query strings.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds: 1 ms to 10 s, dense around the 3 s deadline.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// The proxy's metrics and the registry that exports them.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    registry: Registry,
    /// Requests answered, by route template and status code.
    pub requests_total: IntCounterVec,
    /// Time from request to the end of the response, by route template.
    pub request_duration_seconds: HistogramVec,
    /// Failures talking to the upstream, by kind (timeout, unreachable, protocol, …).
    pub upstream_errors_total: IntCounterVec,
    /// Circuit breaker state: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGauge,
    /// Circuit breaker transitions, by from and to state.
    pub breaker_transitions_total: IntCounterVec,
    /// Requests refused because the breaker was open.
    pub breaker_rejections_total: IntCounter,
}

impl ProxyMetrics {
    /// Creates and registers the metrics.
    ///
    /// # Errors
    /// Only if two metrics were declared with one name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(
                "maple_proxy_requests_total",
                "Requests answered, by route template and status code.",
            ),
            &["route", "status"],
        )?;
        let request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "maple_proxy_request_duration_seconds",
                "Time from request to the end of the response, by route template.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )?;
        let upstream_errors_total = IntCounterVec::new(
            Opts::new(
                "maple_proxy_upstream_errors_total",
                "Failures talking to the upstream, by kind.",
            ),
            &["kind"],
        )?;
        let breaker_state = IntGauge::new(
            "maple_proxy_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
        )?;
        let breaker_transitions_total = IntCounterVec::new(
            Opts::new(
                "maple_proxy_breaker_transitions_total",
                "Circuit breaker transitions, by from and to state.",
            ),
            &["from", "to"],
        )?;
        let breaker_rejections_total = IntCounter::new(
            "maple_proxy_breaker_rejections_total",
            "Requests refused because the breaker was open.",
        )?;
        registry.register(Box::new(breaker_state.clone()))?;
        registry.register(Box::new(breaker_transitions_total.clone()))?;
        registry.register(Box::new(breaker_rejections_total.clone()))?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_seconds.clone()))?;
        registry.register(Box::new(upstream_errors_total.clone()))?;
        Ok(Self {
            registry,
            requests_total,
            request_duration_seconds,
            upstream_errors_total,
            breaker_state,
            breaker_transitions_total,
            breaker_rejections_total,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on a malformed metric family, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_declared_names() {
        let metrics = ProxyMetrics::new().expect("unique names");
        metrics
            .requests_total
            .with_label_values(&["id", "200"])
            .inc();
        metrics
            .request_duration_seconds
            .with_label_values(&["id"])
            .observe(0.01);
        metrics
            .upstream_errors_total
            .with_label_values(&["timeout"])
            .inc();
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        for name in [
            "maple_proxy_requests_total",
            "maple_proxy_request_duration_seconds_bucket",
            "maple_proxy_upstream_errors_total",
            "maple_proxy_breaker_state",
            "maple_proxy_breaker_rejections_total",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
