//! Small helpers both binaries' metric modules use: create-and-register in one call, and the
//! text exposition. The metrics themselves are declared in each binary's `metrics` module.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Registers a counter.
///
/// # Errors
/// When the name is already registered (a programming error caught by tests).
pub fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let metric = IntCounter::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a labelled counter.
///
/// # Errors
/// When the name is already registered.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a gauge.
///
/// # Errors
/// When the name is already registered.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let metric = IntGauge::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a labelled gauge.
///
/// # Errors
/// When the name is already registered.
pub fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a histogram with the given buckets.
///
/// # Errors
/// When the name is already registered.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Registers a labelled histogram with the given buckets (seconds).
///
/// # Errors
/// When the name is already registered.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let metric = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The Prometheus text exposition of everything in `registry`.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec only fails on a malformed metric family, which we never build.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    out
}
