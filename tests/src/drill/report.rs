//! What the drill saw: per window, requests, failures by status and latency; at the end, the
//! likes' ledger against the database and Nexon's calls against the freshness period.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::Upstream;
use super::load::Sample;
use crate::load::percentile;

/// A stretch of the drill with one fault in it.
#[derive(Debug, Clone)]
pub struct Window {
    pub label: String,
    pub start: Duration,
    pub end: Duration,
}

/// When the balancer took the killed core out.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BalancerWatch {
    /// From the kill to the balancer's `DOWN`, if it came.
    pub down_after_ms: Option<u64>,
    /// Failed requests sent after the balancer showed `DOWN` (it routes around: none).
    pub failures_after_down: u64,
    /// Failed requests sent between the kill and `DOWN`.
    pub failures_before_down: u64,
    #[serde(skip)]
    killed_at: Duration,
    #[serde(skip)]
    down_at: Option<Duration>,
    /// The end of the kill's window: later failures belong to other faults.
    #[serde(skip)]
    until: Duration,
}

impl BalancerWatch {
    /// The host was killed at `killed_at`, shown `DOWN` at `down_at`, and its window ended
    /// at `until` (all on the load's clock).
    pub fn new(killed_at: Duration, down_at: Option<Duration>, until: Duration) -> Self {
        Self {
            down_after_ms: down_at.map(|d| millis(d.saturating_sub(killed_at))),
            failures_after_down: 0,
            failures_before_down: 0,
            killed_at,
            down_at,
            until,
        }
    }
}

/// One window's figures.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub label: String,
    pub seconds: f64,
    pub requests: u64,
    pub failed: u64,
    /// Failures by status (`0`: no answer).
    pub failed_by_status: BTreeMap<u16, u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The drill's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub requests: u64,
    pub failed: u64,
    pub failed_by_status: BTreeMap<u16, u64>,
    pub windows: Vec<WindowReport>,
    pub likes_acknowledged: u64,
    pub likes_counted: u64,
    /// Acknowledged likes the database does not hold.
    pub lost: u64,
    /// Likes the database holds beyond those acknowledged.
    pub double: u64,
    /// Likes never acknowledged, even when sent again after the load (their outcome is
    /// unknown, so they may be in `likes_counted`).
    pub unresolved: u64,
    pub upstream_calls: u64,
    pub characters: usize,
    /// Equipment calls for a character that came sooner than the freshness period after the
    /// one before.
    pub upstream_repeats: u64,
    pub fresh_s: u64,
    pub balancer: Option<BalancerWatch>,
}

/// An answer the users count as served.
fn served(status: u16) -> bool {
    matches!(status, 200 | 202 | 304)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn tally(samples: &[&Sample], label: &str, seconds: f64) -> WindowReport {
    let mut failed_by_status = BTreeMap::new();
    for sample in samples.iter().filter(|s| !served(s.status)) {
        *failed_by_status.entry(sample.status).or_default() += 1;
    }
    let mut latencies: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    WindowReport {
        label: label.to_owned(),
        seconds,
        requests: samples.len() as u64,
        failed: failed_by_status.values().sum(),
        failed_by_status,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
    }
}

/// One window's figures from the samples sent within it.
pub fn tally_window(samples: &[Sample], window: &Window) -> WindowReport {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= window.start && s.at < window.end)
        .collect();
    tally(
        &inside,
        &window.label,
        (window.end - window.start).as_secs_f64(),
    )
}

impl Report {
    #[allow(
        clippy::too_many_arguments,
        reason = "the drill's parts, assembled once"
    )]
    pub fn build(
        samples: &[Sample],
        windows: &[Window],
        acknowledged: &HashMap<String, u64>,
        counted: &BTreeMap<String, u64>,
        unresolved: usize,
        upstream: &Upstream,
        characters: usize,
        fresh_s: u64,
        watch: Option<BalancerWatch>,
    ) -> Self {
        let all: Vec<&Sample> = samples.iter().collect();
        let whole = tally(&all, "all", 0.0);
        let windows = windows.iter().map(|w| tally_window(samples, w)).collect();
        let (mut lost, mut double) = (0, 0);
        for (name, &acked) in acknowledged {
            let held = counted.get(name).copied().unwrap_or(0);
            lost += acked.saturating_sub(held);
            double += held.saturating_sub(acked);
        }
        let fresh_ms = fresh_s * 1000;
        let upstream_repeats = upstream
            .equipment
            .values()
            .map(|times| {
                let mut times = times.clone();
                times.sort_unstable();
                times.windows(2).filter(|p| p[1] - p[0] < fresh_ms).count() as u64
            })
            .sum();
        let balancer = watch.map(|mut watch| {
            let inside = samples.iter().filter(|s| s.at < watch.until);
            for sample in inside.filter(|s| !served(s.status)) {
                match watch.down_at {
                    Some(down) if sample.at >= down => watch.failures_after_down += 1,
                    _ if sample.at + sample.latency >= watch.killed_at => {
                        watch.failures_before_down += 1;
                    }
                    _ => {}
                }
            }
            watch
        });
        Self {
            requests: whole.requests,
            failed: whole.failed,
            failed_by_status: whole.failed_by_status,
            windows,
            likes_acknowledged: acknowledged.values().sum(),
            likes_counted: counted.values().sum(),
            lost,
            double,
            unresolved: unresolved as u64,
            upstream_calls: upstream.total,
            characters,
            upstream_repeats,
            fresh_s,
            balancer,
        }
    }

    /// Whether the drill passed: nothing lost, nothing counted twice, every like settled, and
    /// Nexon never asked twice for one character within a freshness period.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.double == 0 && self.unresolved == 0 && self.upstream_repeats == 0
    }

    /// The per-window table (Markdown).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| window | s | requests | failed | p50 ms | p99 ms |\n\
             |---|---|---|---|---|---|\n",
        );
        for w in &self.windows {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {:.1} | {:.1} |",
                w.label,
                w.seconds,
                w.requests,
                failures(w.failed, &w.failed_by_status),
                w.p50_ms,
                w.p99_ms
            );
        }
        out
    }

    /// The closing line.
    pub fn summary(&self) -> String {
        format!(
            "drill: {} requests, {}, likes acknowledged {}, counted {}, lost {}, double {}, \
             upstream calls {} for {} characters",
            self.requests,
            failures(self.failed, &self.failed_by_status),
            self.likes_acknowledged,
            self.likes_counted,
            self.lost,
            self.double,
            self.upstream_calls,
            self.characters
        )
    }
}

/// `F failed (503: n, no answer: m)`.
fn failures(failed: u64, by_status: &BTreeMap<u16, u64>) -> String {
    if by_status.is_empty() {
        return format!("{failed} failed");
    }
    let parts: Vec<String> = by_status
        .iter()
        .map(|(status, n)| match status {
            0 => format!("no answer: {n}"),
            status => format!("{status}: {n}"),
        })
        .collect();
    format!("{failed} failed ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::load::Kind;

    fn sample(at_ms: u64, status: u16) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            kind: Kind::Equipment,
            status,
            latency: Duration::from_millis(10),
        }
    }

    #[test]
    fn the_ledger_finds_lost_and_double_likes_per_character() {
        let acknowledged = HashMap::from([("a".to_owned(), 3), ("b".to_owned(), 2)]);
        let counted = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 3)]);
        let upstream = Upstream {
            total: 4,
            equipment: BTreeMap::from([
                ("x".to_owned(), vec![0, 300_000]),
                ("y".to_owned(), vec![1_000, 2_000]),
            ]),
        };
        let samples = [sample(0, 200), sample(5, 503), sample(10, 0)];
        let windows = [Window {
            label: "w".into(),
            start: Duration::ZERO,
            end: Duration::from_millis(6),
        }];
        let report = Report::build(
            &samples,
            &windows,
            &acknowledged,
            &counted,
            0,
            &upstream,
            2,
            300,
            None,
        );
        assert_eq!((report.lost, report.double), (1, 1));
        assert_eq!(report.upstream_repeats, 1, "y's second call came too soon");
        assert_eq!(report.windows[0].requests, 2);
        assert_eq!(
            report.windows[0].failed_by_status,
            BTreeMap::from([(503, 1)])
        );
        assert_eq!(report.failed, 2);
        assert!(!report.passed());
        assert!(
            report.summary().starts_with(
                "drill: 3 requests, 2 failed (no answer: 1, 503: 1), likes acknowledged 5, \
                 counted 5, lost 1, double 1, upstream calls 4 for 2 characters"
            ),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn failures_after_the_balancer_took_the_host_out_are_counted_apart() {
        let samples = [
            sample(100, 502),
            sample(2_500, 200),
            sample(3_000, 503),
            sample(9_000, 504),
        ];
        let watch = BalancerWatch::new(
            Duration::from_millis(50),
            Some(Duration::from_millis(2_050)),
            Duration::from_millis(5_000),
        );
        let upstream = Upstream {
            total: 0,
            equipment: BTreeMap::new(),
        };
        let report = Report::build(
            &samples,
            &[],
            &HashMap::new(),
            &BTreeMap::new(),
            0,
            &upstream,
            0,
            300,
            Some(watch),
        );
        let watch = report.balancer.expect("watched");
        assert_eq!(watch.down_after_ms, Some(2_000));
        assert_eq!(watch.failures_before_down, 1);
        assert_eq!(watch.failures_after_down, 1);
    }
}
