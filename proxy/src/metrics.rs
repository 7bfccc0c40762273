//! Every metric the proxy exports, each declared once (`declare_metrics!`): the field's name is
//! the metric's after `maple_proxy_`, its doc comment the help text.
//!
//! Rule: client-facing metrics are recorded once per request, in `logging()`; upstream metrics
//! once per attempt, by the fetcher. Labels are route templates, never raw paths, query strings
//! or keys.

use maple_common::metric_labels;
use maple_common::metrics::Counters;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge};

/// Latency buckets in seconds: 1 ms to 10 s, dense around the 3 s deadline.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

metric_labels! {
    /// `maple_proxy_alerts_total{result}`.
    pub enum AlertResult { Sent => "sent", Suppressed => "suppressed", Failed => "failed" }
}

metric_labels! {
    /// `maple_proxy_retries_denied_total{reason}`: why a retry did not start.
    pub enum RetryDenied { Budget => "budget", Deadline => "deadline" }
}

metric_labels! {
    /// `maple_proxy_upstream_body_bytes_total{coding}`: how upstream bodies crossed the wire.
    pub enum BodyCoding { Gzip => "gzip", Identity => "identity" }
}

maple_common::declare_metrics! {
    /// The proxy's metrics and the registry that exports them: each metric's name is
    /// `maple_proxy_` and its field's name, its help text the field's doc.
    #[derive(Debug, Clone)]
    pub struct ProxyMetrics, names "maple_proxy_" {
        /// Requests answered, by route template and status code.
        pub requests_total: IntCounterVec = &["route", "status"],
        /// Time from request to the end of the response, by route template.
        pub request_duration_seconds: HistogramVec = (&["route"], DURATION_BUCKETS),
        /// Cacheable requests by route template and how they were served: hit, miss, stale, coalesced.
        pub cache_requests_total: IntCounterVec = &["route", "result"],
        /// Stale entries served, by route template and the upstream failure (or revalidation) behind
        /// them.
        pub stale_served_total: IntCounterVec = &["route", "cause"],
        /// Entries in the response cache (set at scrape time).
        pub cache_entries: IntGauge,
        /// Bytes held by the response cache, keys and bodies (set at scrape time).
        pub cache_bytes: IntGauge,
        /// Upstream attempts, by route template and outcome (status class or failure kind).
        pub upstream_requests_total: IntCounterVec = &["route", "outcome"],
        /// Time of one upstream attempt, by route template.
        pub upstream_duration_seconds: HistogramVec = (&["route"], DURATION_BUCKETS),
        /// Upstream body bytes received as sent (before inflating), by content coding.
        pub upstream_body_bytes_total: Counters<BodyCoding> = "coding",
        /// Retries made, by route template and the failure retried.
        pub retries_total: IntCounterVec = &["route", "reason"],
        /// Retries not made, by why: the budget was spent, or the deadline was too close.
        pub retries_denied_total: Counters<RetryDenied> = "reason",
        /// Upstream calls that waited for a rate-limit token.
        pub ratelimit_waits_total: IntCounter,
        /// Upstream calls refused by the rate limiter (the request then gets 429 unless a stale copy
        /// can be served).
        pub ratelimit_rejections_total: IntCounter,
        /// Upstream calls in progress (bounded by the bulkhead).
        pub bulkhead_in_flight: IntGauge,
        /// Upstream calls refused because the bulkhead stayed full.
        pub bulkhead_rejections_total: IntCounter,
        /// Circuit breaker state: 0 closed, 1 open, 2 half-open.
        pub breaker_state: IntGauge,
        /// Circuit breaker transitions, by from and to state.
        pub breaker_transitions_total: IntCounterVec = &["from", "to"],
        /// Upstream calls refused because the breaker was open.
        pub breaker_rejections_total: IntCounter,
        /// Webhook alerts by result: sent, suppressed (duplicate or over the rate), failed.
        pub alerts_total: Counters<AlertResult> = "result",

    }
}

impl ProxyMetrics {
    /// Creates and registers the metrics.
    ///
    /// # Errors
    /// Only if two metrics were declared with one name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self::register()?.with_known_series())
    }

    /// Creates the breaker's transitions at zero, so rules and dashboards see them (and
    /// `rate()` works) before the first event; the one-label families ([`Counters`]) do this
    /// when registered.
    fn with_known_series(self) -> Self {
        for (from, to) in [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
            ("half_open", "open"),
        ] {
            self.breaker_transitions_total
                .with_label_values(&[from, to]);
        }
        self
    }

    /// Starts the labelled counters a dashboard or alert reads with `rate()` at zero for every
    /// route that reaches Nexon and every cause, so their series exist from the first scrape,
    /// not from the first stale answer or retry — the very moments someone looks.
    #[must_use]
    pub fn start_at_zero(self, routes: &[&str], causes: &[&str]) -> Self {
        for route in routes {
            for cause in causes.iter().chain(&["revalidating"]) {
                self.stale_served_total.with_label_values(&[route, cause]);
            }
            for reason in causes {
                self.retries_total.with_label_values(&[route, reason]);
            }
        }
        self
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        maple_common::metrics::render(&self.registry)
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
            .cache_requests_total
            .with_label_values(&["id", "hit"])
            .inc();
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        for name in [
            "maple_proxy_requests_total",
            "maple_proxy_request_duration_seconds_bucket",
            "maple_proxy_cache_requests_total",
            "maple_proxy_breaker_state",
            "maple_proxy_breaker_rejections_total",
            "maple_proxy_cache_bytes",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
