//! Fault injection: one active fault at a time, set and cleared through the control API
//! (`POST /-/faults`, `DELETE /-/faults`) or directly by a test holding the simulator.
//!
//! Rule: a fault is deterministic. `ratio` picks exactly that share of calls in arrival order
//! (0.5 fails every second call), so tests can count outcomes instead of hoping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, watch};
use tokio::time::Instant;

/// Longest latency or duration a fault may ask for: ten minutes.
const MAX_MILLIS: u64 = 600_000;

/// What a client posts to `/-/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Delay before every matching call is handled.
    #[serde(default)]
    pub latency_ms: u64,
    /// Answer with this status and the matching Nexon error body.
    #[serde(default)]
    pub error_status: Option<u16>,
    /// Answer 429 (`OPENAPI00007`) with this `Retry-After`, in seconds.
    #[serde(default)]
    pub rate_limit_retry_after_s: Option<u64>,
    /// Never answer (until the fault is cleared or expires).
    #[serde(default)]
    pub hang: bool,
    /// Reset the TCP connection (RST) without answering.
    #[serde(default)]
    pub reset: bool,
    /// Send the answer's body gzip-compressed and cut in half, labelled `Content-Encoding:
    /// gzip`, with the answer's status (a broken compressor, or a cut transfer behind a server
    /// that still said 200).
    #[serde(default)]
    pub corrupt_gzip: bool,
    /// Share of matching calls that get the failure (default 1: all of them).
    #[serde(default)]
    pub ratio: Option<f64>,
    /// How long the fault lasts; absent means until cleared.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Only calls whose path starts with this are affected; absent means all API paths.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

/// A spec that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFault(String);

impl FaultSpec {
    /// Answer every call with `status` (and the matching Nexon error body).
    pub fn status(status: u16) -> Self {
        Self {
            error_status: Some(status),
            ..Self::default()
        }
    }

    /// Never answer.
    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::default()
        }
    }

    /// Reset the connection (RST) without answering.
    pub fn connection_reset() -> Self {
        Self {
            reset: true,
            ..Self::default()
        }
    }

    /// Answer a cut gzip body under a 200.
    pub fn corrupt_gzip() -> Self {
        Self {
            corrupt_gzip: true,
            ..Self::default()
        }
    }

    /// Delay every call by `millis`.
    pub fn latency(millis: u64) -> Self {
        Self {
            latency_ms: millis,
            ..Self::default()
        }
    }

    /// Answer 429 with `Retry-After: seconds`.
    pub fn rate_limit(seconds: u64) -> Self {
        Self {
            rate_limit_retry_after_s: Some(seconds),
            ..Self::default()
        }
    }

    /// Only this share of calls (in arrival order) gets the fault.
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = Some(ratio);
        self
    }

    /// Only calls whose path starts with `prefix` are affected.
    #[must_use]
    pub fn on_path(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    /// Checks ranges and that at most one failure action is asked for.
    ///
    /// # Errors
    /// [`InvalidFault`] saying which field is wrong.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        let actions = [
            self.error_status.is_some(),
            self.rate_limit_retry_after_s.is_some(),
            self.hang,
            self.reset,
            self.corrupt_gzip,
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if actions > 1 {
            return Err(InvalidFault(
                "choose at most one of error_status, rate_limit_retry_after_s, hang, reset, \
                 corrupt_gzip"
                    .into(),
            ));
        }
        if let Some(status) = self.error_status
            && !(400..=599).contains(&status)
        {
            return Err(InvalidFault("error_status must be within 400..=599".into()));
        }
        if let Some(ratio) = self.ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(InvalidFault("ratio must be within 0..=1".into()));
        }
        if self.latency_ms > MAX_MILLIS || self.duration_ms.is_some_and(|d| d > MAX_MILLIS) {
            return Err(InvalidFault(format!(
                "latency_ms and duration_ms must be at most {MAX_MILLIS}"
            )));
        }
        if self.rate_limit_retry_after_s.is_some_and(|s| s > 3600) {
            return Err(InvalidFault(
                "rate_limit_retry_after_s must be at most 3600".into(),
            ));
        }
        Ok(())
    }
}

/// What happens to one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Error(u16),
    RateLimit { retry_after_s: u64 },
    Hang(Hang),
    Reset,
    CorruptGzip,
}

/// Which fault a hung call belongs to: it ends when that fault is cleared, replaced or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hang {
    generation: u64,
    until: Option<Instant>,
}

/// The decision for one call: a delay, then maybe a failure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub latency: Duration,
    pub action: Option<Action>,
}

#[derive(Debug)]
struct Active {
    spec: FaultSpec,
    until: Option<Instant>,
    matched: AtomicU64,
}

/// The simulator's fault switchboard.
#[derive(Debug)]
pub struct Faults {
    active: RwLock<Option<Arc<Active>>>,
    /// Bumped on every set/clear so hung calls wake up.
    generation: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            active: RwLock::new(None),
            generation: watch::Sender::new(0),
        }
    }
}

impl Faults {
    /// Replaces the active fault.
    ///
    /// # Errors
    /// [`InvalidFault`] when the spec does not validate; the active fault is then unchanged.
    pub async fn set(&self, spec: FaultSpec) -> Result<(), InvalidFault> {
        spec.validate()?;
        let until = spec
            .duration_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let mut active = self.active.write().await;
        *active = Some(Arc::new(Active {
            spec,
            until,
            matched: AtomicU64::new(0),
        }));
        // Bumped under the lock, so a reader sees a fault and its generation together.
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Removes the active fault; hung calls return (with a 503).
    pub async fn clear(&self) {
        let mut active = self.active.write().await;
        *active = None;
        self.generation.send_modify(|g| *g += 1);
    }

    /// The active fault's spec, if it has not expired.
    pub async fn current(&self) -> Option<FaultSpec> {
        self.live().await.map(|(a, _)| a.spec.clone())
    }

    /// The active, unexpired fault and the generation it belongs to.
    async fn live(&self) -> Option<(Arc<Active>, u64)> {
        let guard = self.active.read().await;
        let generation = *self.generation.borrow();
        let active = guard.clone()?;
        match active.until {
            Some(until) if Instant::now() >= until => None,
            _ => Some((active, generation)),
        }
    }

    /// Decides what happens to a call on `path`.
    pub async fn decide(&self, path: &str) -> Decision {
        let Some((active, generation)) = self.live().await else {
            return Decision::default();
        };
        let spec = &active.spec;
        if spec
            .path_prefix
            .as_deref()
            .is_some_and(|prefix| !path.starts_with(prefix))
        {
            return Decision::default();
        }
        let n = active.matched.fetch_add(1, Ordering::Relaxed);
        let ratio = spec.ratio.unwrap_or(1.0);
        // Exactly `ratio` of the calls so far were hit: the floor of the running total steps.
        let hit = ((n + 1) as f64 * ratio).floor() > (n as f64 * ratio).floor();
        let action = if !hit {
            None
        } else if let Some(status) = spec.error_status {
            Some(Action::Error(status))
        } else if let Some(retry_after_s) = spec.rate_limit_retry_after_s {
            Some(Action::RateLimit { retry_after_s })
        } else if spec.hang {
            Some(Action::Hang(Hang {
                generation,
                until: active.until,
            }))
        } else if spec.reset {
            Some(Action::Reset)
        } else if spec.corrupt_gzip {
            Some(Action::CorruptGzip)
        } else {
            None
        };
        Decision {
            latency: Duration::from_millis(spec.latency_ms),
            action,
        }
    }

    /// Resolves when the fault that made a call hang is cleared, replaced, or expires.
    pub async fn hang(&self, hang: Hang) {
        let mut generation = self.generation.subscribe();
        let changed = generation.wait_for(|g| *g != hang.generation);
        match hang.until {
            Some(until) => {
                let _ = tokio::time::timeout_at(until, changed).await;
            }
            None => {
                let _ = changed.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ratio_hits_exactly_that_share() {
        let faults = Faults::default();
        faults
            .set(FaultSpec::status(500).ratio(0.25))
            .await
            .expect("valid");
        let mut hits = 0;
        for _ in 0..100 {
            if faults.decide("/maplestory/v1/id").await.action.is_some() {
                hits += 1;
            }
        }
        assert_eq!(hits, 25);
    }

    #[tokio::test]
    async fn path_prefix_limits_the_fault() {
        let faults = Faults::default();
        faults
            .set(FaultSpec::connection_reset().on_path("/maplestory/v1/character/"))
            .await
            .expect("valid");
        assert_eq!(faults.decide("/maplestory/v1/id").await.action, None);
        assert_eq!(
            faults.decide("/maplestory/v1/character/basic").await.action,
            Some(Action::Reset)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn faults_expire_and_release_hung_calls() {
        let faults = Arc::new(Faults::default());
        faults
            .set(FaultSpec {
                hang: true,
                duration_ms: Some(1_000),
                ..FaultSpec::default()
            })
            .await
            .expect("valid");
        let Some(Action::Hang(hang)) = faults.decide("/x").await.action else {
            panic!("a hang");
        };
        let waiter = tokio::spawn({
            let faults = Arc::clone(&faults);
            async move { faults.hang(hang).await }
        });
        tokio::time::advance(Duration::from_millis(1_001)).await;
        waiter.await.expect("hang ends at expiry");
        assert_eq!(faults.decide("/x").await, Decision::default());
    }

    #[tokio::test]
    async fn clearing_wakes_hung_calls() {
        let faults = Arc::new(Faults::default());
        faults.set(FaultSpec::hang()).await.expect("valid");
        let Some(Action::Hang(hang)) = faults.decide("/x").await.action else {
            panic!("a hang");
        };
        // Replaced before the call starts waiting: it must still end, not wait for the next.
        faults.set(FaultSpec::hang()).await.expect("valid");
        faults.hang(hang).await;
        let Some(Action::Hang(hang)) = faults.decide("/x").await.action else {
            panic!("a hang");
        };
        let waiter = tokio::spawn({
            let faults = Arc::clone(&faults);
            async move { faults.hang(hang).await }
        });
        tokio::task::yield_now().await;
        faults.clear().await;
        waiter.await.expect("hang ends when cleared");
        assert_eq!(faults.current().await, None);
    }

    #[test]
    fn nonsense_specs_are_rejected() {
        for spec in [
            FaultSpec {
                hang: true,
                reset: true,
                ..FaultSpec::default()
            },
            FaultSpec::status(200),
            FaultSpec {
                ratio: Some(1.5),
                ..FaultSpec::default()
            },
            FaultSpec::latency(MAX_MILLIS + 1),
        ] {
            assert!(spec.validate().is_err(), "{spec:?}");
        }
    }
}
