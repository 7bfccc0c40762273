//! Admission limits on upstream calls: the token bucket sized to the API key's quota, the
//! bulkhead's bounds on concurrent calls, and the retry budget that keeps retries from
//! multiplying an outage.
//!
//! Rule: time is a parameter (`now`), so both are tested without sleeping.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use maple_common::rate::{RateLimitConfig, TokenBucket};

/// Bulkhead settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Upstream calls in progress at once.
    pub max_concurrent: usize,
    /// Longest a call waits for a slot before the request fails (or is served stale).
    pub max_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        use crate::config::vars::*;
        Self {
            max_concurrent: BULKHEAD_MAX_CONCURRENT.default_value(),
            max_wait: Duration::from_millis(BULKHEAD_MAX_WAIT_MS.default_value()),
        }
    }
}

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per request, the first included (1 disables retries).
    pub max_attempts: u32,
    /// First backoff; each retry doubles it, up to `max_backoff`, with full jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Retries may be at most this percentage of requests…
    pub budget_pct: u32,
    /// …plus this many per second, so a quiet proxy can still retry.
    pub min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        use crate::config::vars::*;
        Self {
            max_attempts: RETRY_MAX_ATTEMPTS.default_value(),
            base_backoff: Duration::from_millis(RETRY_BASE_MS.default_value()),
            max_backoff: Duration::from_millis(RETRY_MAX_BACKOFF_MS.default_value()),
            budget_pct: RETRY_BUDGET_PCT.default_value(),
            min_per_sec: RETRY_MIN_PER_S.default_value(),
        }
    }
}

impl RetryConfig {
    /// The backoff before retry number `retry` (1-based): full jitter over an exponential
    /// ceiling; `unit` in `[0, 1)` is the random draw.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let ceiling = self
            .base_backoff
            .saturating_mul(1_u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// The retry budget (as in Finagle and Envoy): each request deposits `budget_pct / 100` of a
/// retry, the clock deposits `min_per_sec` per second, each retry withdraws one. The balance is
/// capped, so an idle period cannot save up a retry storm. Kept in thousandths of a retry, so
/// "20% of 100 requests" is exactly 20.
#[derive(Debug)]
pub struct RetryBudget {
    /// Thousandths deposited per request.
    per_request: u64,
    /// Thousandths deposited per millisecond (= retries per second).
    per_milli: u64,
    cap: u64,
    state: Mutex<(u64, Instant)>,
}

const ONE_RETRY: u64 = 1000;

impl RetryBudget {
    pub fn new(config: &RetryConfig, now: Instant) -> Self {
        let per_milli = u64::from(config.min_per_sec);
        let cap = (per_milli * ONE_RETRY).max(10 * ONE_RETRY);
        Self {
            per_request: u64::from(config.budget_pct) * ONE_RETRY / 100,
            per_milli,
            cap,
            state: Mutex::new(((per_milli * ONE_RETRY).min(cap), now)),
        }
    }

    fn refill(&self, state: &mut (u64, Instant), now: Instant) {
        let millis = now.saturating_duration_since(state.1).as_millis();
        let millis = u64::try_from(millis).unwrap_or(u64::MAX);
        state.0 = state
            .0
            .saturating_add(millis.saturating_mul(self.per_milli))
            .min(self.cap);
        // Advance by whole milliseconds only, so no fraction of a deposit is lost.
        state.1 += Duration::from_millis(millis);
    }

    /// A request started.
    pub fn deposit(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.refill(&mut state, now);
        state.0 = (state.0 + self.per_request).min(self.cap);
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.refill(&mut state, now);
        if state.0 >= ONE_RETRY {
            state.0 -= ONE_RETRY;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_limits_retries_to_a_share_of_requests() {
        let config = RetryConfig {
            budget_pct: 20,
            min_per_sec: 0,
            ..RetryConfig::default()
        };
        let t0 = Instant::now();
        let budget = RetryBudget::new(&config, t0);
        let mut retries = 0;
        for _ in 0..100 {
            budget.deposit(t0);
            // Every request fails and wants a retry.
            if budget.withdraw(t0) {
                retries += 1;
            }
        }
        assert_eq!(retries, 20);
    }

    #[test]
    fn the_budget_refills_with_time_but_is_capped() {
        let config = RetryConfig {
            budget_pct: 0,
            min_per_sec: 2,
            ..RetryConfig::default()
        };
        let t0 = Instant::now();
        let budget = RetryBudget::new(&config, t0);
        let later = t0 + Duration::from_secs(3600);
        let granted = (0..100).filter(|_| budget.withdraw(later)).count();
        assert_eq!(granted, 10, "an hour idle saves up only the cap");
    }

    #[test]
    fn backoff_is_exponential_jittered_and_capped() {
        let config = RetryConfig::default();
        assert_eq!(config.backoff(1, 1.0), Duration::from_millis(50));
        assert_eq!(config.backoff(2, 1.0), Duration::from_millis(100));
        assert_eq!(config.backoff(3, 0.5), Duration::from_millis(100));
        assert_eq!(config.backoff(30, 1.0), Duration::from_millis(1000));
        assert_eq!(config.backoff(2, 0.0), Duration::ZERO);
    }
}
