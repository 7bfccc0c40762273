//! Every metric the proxy exports, declared in one place (names are `maple_proxy_*`).
//!
//! Rule: client-facing metrics are recorded once per request, in `logging()`; upstream metrics
//! once per attempt, by the fetcher. Labels are route templates, never raw paths, query strings
//! or keys.

use maple_common::metric_labels;
use maple_common::metrics::{Counters, counter, counter_vec, gauge};
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    maple_common::metrics::histogram_vec(registry, name, help, labels, DURATION_BUCKETS)
}

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

/// The proxy's metrics and the registry that exports them.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    registry: Registry,
    /// Requests answered, by route template and status code.
    pub requests_total: IntCounterVec,
    /// Time from request to the end of the response, by route template.
    pub request_duration_seconds: HistogramVec,
    /// How each request was served from the cache's point of view: hit, miss, stale, coalesced.
    pub cache_requests_total: IntCounterVec,
    /// Stale entries served, by the failure (or revalidation) that made them necessary.
    pub stale_served_total: IntCounterVec,
    /// Entries in the response cache (set at scrape time).
    pub cache_entries: IntGauge,
    /// Bytes held by the response cache, keys and bodies (set at scrape time).
    pub cache_bytes: IntGauge,
    /// Upstream attempts, by route template and outcome (status class or failure kind).
    pub upstream_requests_total: IntCounterVec,
    /// Time of one upstream attempt, by route template.
    pub upstream_duration_seconds: HistogramVec,
    /// Upstream body bytes received as sent (before inflating), by content coding.
    pub upstream_body_bytes_total: Counters<BodyCoding>,
    /// Retries made, by route template and the failure retried.
    pub retries_total: IntCounterVec,
    /// Retries not made, by why: the budget was spent, or the deadline was too close.
    pub retries_denied_total: Counters<RetryDenied>,
    /// Upstream calls that waited for a rate-limit token.
    pub ratelimit_waits_total: IntCounter,
    /// Requests refused by the rate limiter (429 unless a stale copy could be served).
    pub ratelimit_rejections_total: IntCounter,
    /// Upstream calls in progress (bounded by the bulkhead).
    pub bulkhead_in_flight: IntGauge,
    /// Upstream calls refused because the bulkhead stayed full.
    pub bulkhead_rejections_total: IntCounter,
    /// Circuit breaker state: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGauge,
    /// Circuit breaker transitions, by from and to state.
    pub breaker_transitions_total: IntCounterVec,
    /// Upstream calls refused because the breaker was open.
    pub breaker_rejections_total: IntCounter,
    /// Alerts, by result: sent, suppressed (duplicate or over the rate), failed.
    pub alerts_total: Counters<AlertResult>,
}

impl ProxyMetrics {
    /// Creates and registers the metrics.
    ///
    /// # Errors
    /// Only if two metrics were declared with one name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Self {
            requests_total: counter_vec(
                &r,
                "maple_proxy_requests_total",
                "Requests answered, by route template and status code.",
                &["route", "status"],
            )?,
            request_duration_seconds: histogram_vec(
                &r,
                "maple_proxy_request_duration_seconds",
                "Time from request to the end of the response, by route template.",
                &["route"],
            )?,
            cache_requests_total: counter_vec(
                &r,
                "maple_proxy_cache_requests_total",
                "Cacheable requests by how they were served: hit, miss, stale, coalesced.",
                &["route", "result"],
            )?,
            stale_served_total: counter_vec(
                &r,
                "maple_proxy_stale_served_total",
                "Stale entries served, by the upstream failure or revalidation behind them.",
                &["route", "cause"],
            )?,
            cache_entries: gauge(
                &r,
                "maple_proxy_cache_entries",
                "Entries in the response cache.",
            )?,
            cache_bytes: gauge(
                &r,
                "maple_proxy_cache_bytes",
                "Bytes held by the response cache (keys and bodies).",
            )?,
            upstream_requests_total: counter_vec(
                &r,
                "maple_proxy_upstream_requests_total",
                "Upstream attempts by route template and outcome.",
                &["route", "outcome"],
            )?,
            upstream_duration_seconds: histogram_vec(
                &r,
                "maple_proxy_upstream_duration_seconds",
                "Time of one upstream attempt, by route template.",
                &["route"],
            )?,
            upstream_body_bytes_total: Counters::register(
                &r,
                "maple_proxy_upstream_body_bytes_total",
                "Upstream body bytes received as sent (before inflating), by content coding.",
                "coding",
            )?,
            retries_total: counter_vec(
                &r,
                "maple_proxy_retries_total",
                "Retries made, by route template and the failure retried.",
                &["route", "reason"],
            )?,
            retries_denied_total: Counters::register(
                &r,
                "maple_proxy_retries_denied_total",
                "Retries not made: budget spent or deadline too close.",
                "reason",
            )?,
            ratelimit_waits_total: counter(
                &r,
                "maple_proxy_ratelimit_waits_total",
                "Upstream calls that waited for a rate-limit token.",
            )?,
            ratelimit_rejections_total: counter(
                &r,
                "maple_proxy_ratelimit_rejections_total",
                "Upstream calls refused by the rate limiter.",
            )?,
            bulkhead_in_flight: gauge(
                &r,
                "maple_proxy_bulkhead_in_flight",
                "Upstream calls in progress.",
            )?,
            bulkhead_rejections_total: counter(
                &r,
                "maple_proxy_bulkhead_rejections_total",
                "Upstream calls refused because the bulkhead stayed full.",
            )?,
            breaker_state: gauge(
                &r,
                "maple_proxy_breaker_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            )?,
            breaker_transitions_total: counter_vec(
                &r,
                "maple_proxy_breaker_transitions_total",
                "Circuit breaker transitions, by from and to state.",
                &["from", "to"],
            )?,
            breaker_rejections_total: counter(
                &r,
                "maple_proxy_breaker_rejections_total",
                "Upstream calls refused because the breaker was open.",
            )?,
            alerts_total: Counters::register(
                &r,
                "maple_proxy_alerts_total",
                "Webhook alerts by result: sent, suppressed, failed.",
                "result",
            )?,
            registry: r,
        }
        .with_known_series())
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
