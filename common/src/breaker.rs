//! A circuit breaker with resilience4j's count-based semantics: the proxy's in front of the
//! Nexon API, core's in front of each Redis use and of the database.
//!
//! Closed: the last `window` outcomes are kept; once at least `minimum_calls` are in, a failure
//! rate ≥ `failure_rate_pct` opens it. Open: nothing passes for `open_for`. Half-open: exactly
//! `probes` calls pass; if all succeed it closes with an empty window, any failure re-opens it.
//! Failures are timeouts, connection errors, 5xx and 429 (other 4xx are the caller's fault,
//! not the upstream's); with a slow-call threshold, slower successes count as failures too.
//!
//! Rule: time is a parameter (`now`), so every transition is tested without sleeping.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub window: usize,
    pub minimum_calls: usize,
    pub failure_rate_pct: u32,
    pub open_for: Duration,
    pub probes: u32,
    pub slow_call: Option<Duration>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 10,
            minimum_calls: 5,
            failure_rate_pct: 60,
            open_for: Duration::from_secs(30),
            probes: 3,
            slow_call: None,
        }
    }
}

/// The state, as the gauge and the admin API show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = BreakerState))]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    /// Gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// How one admitted call ended, from the breaker's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// Permission to call the upstream; give it back through [`Breaker::record`] or, when the
/// call said nothing about the upstream, [`Breaker::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    probe: bool,
    /// The state period it was issued in: results from an earlier period are ignored.
    epoch: u64,
}

/// The call was refused: the breaker is open (or half-open with its probes taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// How long until the breaker lets probes through.
    pub retry_after: Duration,
}

/// A transition, returned so the caller can count it and log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

#[derive(Debug)]
enum Inner {
    Closed {
        outcomes: VecDeque<bool>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        admitted: u32,
        succeeded: u32,
        since: Instant,
    },
}

/// What the admin API shows.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = BreakerSnapshot))]
pub struct Snapshot {
    pub state: State,
    pub calls_in_window: usize,
    pub failures_in_window: usize,
    pub failure_rate_pct: Option<f64>,
    pub open_for_ms: Option<u128>,
    pub probes_admitted: Option<u32>,
}

/// A circuit breaker for one upstream.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<(Inner, u64)>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new((
                Inner::Closed {
                    outcomes: VecDeque::with_capacity(config.window),
                },
                0,
            )),
        }
    }

    /// The state and its epoch (bumped on every transition).
    fn lock(&self) -> std::sync::MutexGuard<'_, (Inner, u64)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks to call the upstream at `now`.
    ///
    /// # Errors
    /// [`Rejected`] while open, or half-open with every probe already admitted.
    pub fn acquire(&self, now: Instant) -> Result<(Permit, Option<Transition>), Rejected> {
        let mut guard = self.lock();
        let (inner, epoch) = &mut *guard;
        let mut transition = None;
        // Half-open with every probe out and none back for a whole open period: the probes
        // were lost (cancelled, panicked); start a new half-open period instead of sticking.
        let stuck = matches!(
            inner,
            Inner::HalfOpen { admitted, since, .. }
                if *admitted >= self.config.probes && now >= *since + self.config.open_for
        );
        if let Inner::Open { until } = *inner {
            if now < until {
                return Err(Rejected {
                    retry_after: until - now,
                });
            }
            transition = Some(Transition {
                from: State::Open,
                to: State::HalfOpen,
            });
        }
        if transition.is_some() || stuck {
            *inner = Inner::HalfOpen {
                admitted: 0,
                succeeded: 0,
                since: now,
            };
            *epoch += 1;
        }
        match inner {
            Inner::Closed { .. } => Ok((
                Permit {
                    probe: false,
                    epoch: *epoch,
                },
                transition,
            )),
            Inner::HalfOpen { admitted, .. } if *admitted < self.config.probes => {
                *admitted += 1;
                Ok((
                    Permit {
                        probe: true,
                        epoch: *epoch,
                    },
                    transition,
                ))
            }
            Inner::HalfOpen { .. } | Inner::Open { .. } => Err(Rejected {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Returns a permit whose call said nothing about the upstream (the client went away
    /// first): in half-open its probe slot is freed for another caller.
    pub fn release(&self, permit: Permit) {
        let mut guard = self.lock();
        let (inner, epoch) = &mut *guard;
        if permit.probe
            && permit.epoch == *epoch
            && let Inner::HalfOpen { admitted, .. } = inner
        {
            *admitted = admitted.saturating_sub(1);
        }
    }

    /// Records how an admitted call ended, `elapsed` after it started.
    pub fn record(
        &self,
        permit: Permit,
        outcome: Outcome,
        elapsed: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let slow = self.config.slow_call.is_some_and(|limit| elapsed > limit);
        let failed = outcome == Outcome::Failure || slow;
        let mut guard = self.lock();
        let (inner, epoch) = &mut *guard;
        if permit.epoch != *epoch {
            // Admitted in an earlier period: it says nothing about the current one.
            return None;
        }
        let transition = match inner {
            Inner::Closed { outcomes } if !permit.probe => {
                if outcomes.len() == self.config.window {
                    outcomes.pop_front();
                }
                outcomes.push_back(failed);
                let failures = outcomes.iter().filter(|f| **f).count();
                let judged = outcomes.len() >= self.config.minimum_calls;
                let rate_pct = failures * 100 / outcomes.len().max(1);
                if judged && rate_pct >= self.config.failure_rate_pct as usize {
                    *inner = Inner::Open {
                        until: now + self.config.open_for,
                    };
                    Some(Transition {
                        from: State::Closed,
                        to: State::Open,
                    })
                } else {
                    None
                }
            }
            Inner::HalfOpen { succeeded, .. } if permit.probe => {
                if failed {
                    *inner = Inner::Open {
                        until: now + self.config.open_for,
                    };
                    Some(Transition {
                        from: State::HalfOpen,
                        to: State::Open,
                    })
                } else {
                    *succeeded += 1;
                    if *succeeded >= self.config.probes {
                        *inner = Inner::Closed {
                            outcomes: VecDeque::with_capacity(self.config.window),
                        };
                        Some(Transition {
                            from: State::HalfOpen,
                            to: State::Closed,
                        })
                    } else {
                        None
                    }
                }
            }
            _ => None,
        };
        if transition.is_some() {
            *epoch += 1;
        }
        transition
    }

    /// The state at `now` (an expired open state reads as half-open).
    pub fn state(&self, now: Instant) -> State {
        Self::state_of(&self.lock().0, now)
    }

    fn state_of(inner: &Inner, now: Instant) -> State {
        match inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { until } if now < *until => State::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Counts for the admin API, read under one lock.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let guard = self.lock();
        let inner = &guard.0;
        let state = Self::state_of(inner, now);
        let empty = Snapshot {
            state,
            calls_in_window: 0,
            failures_in_window: 0,
            failure_rate_pct: None,
            open_for_ms: None,
            probes_admitted: None,
        };
        match inner {
            Inner::Closed { outcomes } => {
                let failures = outcomes.iter().filter(|f| **f).count();
                Snapshot {
                    calls_in_window: outcomes.len(),
                    failures_in_window: failures,
                    failure_rate_pct: (!outcomes.is_empty())
                        .then(|| failures as f64 * 100.0 / outcomes.len() as f64),
                    ..empty
                }
            }
            Inner::Open { until } => Snapshot {
                open_for_ms: Some(until.saturating_duration_since(now).as_millis()),
                ..empty
            },
            Inner::HalfOpen { admitted, .. } => Snapshot {
                probes_admitted: Some(*admitted),
                ..empty
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A default breaker opened at `start` by five failures.
    fn tripped() -> (BreakerConfig, Breaker, Instant) {
        let config = BreakerConfig::default();
        let breaker = Breaker::new(config);
        let start = Instant::now();
        for _ in 0..5 {
            call(&breaker, Outcome::Failure, start);
        }
        (config, breaker, start)
    }

    fn call(breaker: &Breaker, outcome: Outcome, now: Instant) -> Option<Transition> {
        let (permit, _) = breaker.acquire(now).expect("admitted");
        breaker.record(permit, outcome, MS, now)
    }

    #[test]
    fn opens_at_the_failure_rate_once_enough_calls_are_in() {
        let breaker = Breaker::new(BreakerConfig::default());
        let now = Instant::now();
        // 4 failures: below the minimum of 5 calls, still closed.
        for _ in 0..4 {
            assert_eq!(call(&breaker, Outcome::Failure, now), None);
        }
        assert_eq!(breaker.state(now), State::Closed);
        // 5th call: 100% ≥ 60% → open.
        assert_eq!(
            call(&breaker, Outcome::Failure, now),
            Some(Transition {
                from: State::Closed,
                to: State::Open
            })
        );
        let rejected = breaker.acquire(now + MS).expect_err("open");
        assert!(rejected.retry_after <= Duration::from_secs(30));
    }

    #[test]
    fn stays_closed_below_the_threshold_over_a_sliding_window() {
        let breaker = Breaker::new(BreakerConfig::default());
        let now = Instant::now();
        // 5 failures in a window of 10 = 50% < 60%.
        for i in 0..20 {
            let outcome = if i % 2 == 1 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(call(&breaker, outcome, now), None, "call {i}");
        }
        assert_eq!(breaker.snapshot(now).calls_in_window, 10);
        // 6 of the last 10: opens.
        assert!(call(&breaker, Outcome::Failure, now).is_some());
    }

    #[test]
    fn half_open_admits_exactly_the_probes_and_closes_on_success() {
        let (config, breaker, start) = tripped();
        let later = start + config.open_for;
        let (first, transition) = breaker.acquire(later).expect("probe 1");
        assert_eq!(
            transition,
            Some(Transition {
                from: State::Open,
                to: State::HalfOpen
            })
        );
        let (second, _) = breaker.acquire(later).expect("probe 2");
        let (third, _) = breaker.acquire(later).expect("probe 3");
        assert!(breaker.acquire(later).is_err(), "only three probes");
        assert_eq!(breaker.record(first, Outcome::Success, MS, later), None);
        assert_eq!(breaker.record(second, Outcome::Success, MS, later), None);
        assert_eq!(
            breaker.record(third, Outcome::Success, MS, later),
            Some(Transition {
                from: State::HalfOpen,
                to: State::Closed
            })
        );
        assert_eq!(breaker.snapshot(later).calls_in_window, 0, "fresh window");
    }

    #[test]
    fn a_failed_probe_reopens() {
        let (config, breaker, start) = tripped();
        let later = start + config.open_for;
        let (probe, _) = breaker.acquire(later).expect("probe");
        assert_eq!(
            breaker.record(probe, Outcome::Failure, MS, later),
            Some(Transition {
                from: State::HalfOpen,
                to: State::Open
            })
        );
        assert!(breaker.acquire(later + MS).is_err());
        assert_eq!(breaker.state(later + config.open_for), State::HalfOpen);
    }

    #[test]
    fn slow_calls_count_as_failures_when_configured() {
        let breaker = Breaker::new(BreakerConfig {
            slow_call: Some(Duration::from_millis(500)),
            ..BreakerConfig::default()
        });
        let now = Instant::now();
        for _ in 0..5 {
            let (permit, _) = breaker.acquire(now).expect("admitted");
            breaker.record(permit, Outcome::Success, Duration::from_secs(1), now);
        }
        assert_eq!(breaker.state(now), State::Open);
    }

    #[test]
    fn a_probe_from_an_earlier_half_open_period_does_not_count() {
        let (config, breaker, start) = tripped();
        let first = start + config.open_for;
        let (a, _) = breaker.acquire(first).expect("probe a");
        let (b, _) = breaker.acquire(first).expect("probe b");
        breaker.record(a, Outcome::Failure, MS, first);
        let second = first + config.open_for;
        let (d, _) = breaker.acquire(second).expect("new probe");
        // b, from the first half-open period, ends now: ignored.
        assert_eq!(breaker.record(b, Outcome::Success, MS, second), None);
        assert_eq!(breaker.snapshot(second).probes_admitted, Some(1));
        assert_eq!(breaker.record(d, Outcome::Success, MS, second), None);
    }

    #[test]
    fn released_or_lost_probes_do_not_wedge_half_open() {
        let (config, breaker, start) = tripped();
        let half = start + config.open_for;
        let probes: Vec<Permit> = (0..3)
            .map(|_| breaker.acquire(half).expect("probe").0)
            .collect();
        assert!(breaker.acquire(half).is_err());
        // A client hung up: its slot is given back.
        breaker.release(probes[0]);
        assert!(breaker.acquire(half).is_ok());
        // The others never report: after a whole open period, probing starts over.
        assert!(breaker.acquire(half + MS).is_err());
        assert!(breaker.acquire(half + config.open_for).is_ok());
    }

    #[test]
    fn late_results_from_an_earlier_state_are_ignored() {
        let breaker = Breaker::new(BreakerConfig::default());
        let now = Instant::now();
        let (late, _) = breaker.acquire(now).expect("admitted while closed");
        for _ in 0..5 {
            call(&breaker, Outcome::Failure, now);
        }
        assert_eq!(breaker.record(late, Outcome::Success, MS, now), None);
        assert_eq!(breaker.state(now), State::Open);
    }
}
