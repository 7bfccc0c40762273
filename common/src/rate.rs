//! A token bucket (GCRA), for pacing calls to a quota and for per-client rate limits.
//!
//! Rule: time is a parameter (`now`), so it is tested without sleeping.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Rate-limit settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained upstream calls per second (the key's quota).
    pub rps: f64,
    /// Calls allowed at once before pacing starts.
    pub burst: f64,
    /// Longest a call may wait for a token; beyond it the client gets 429 + Retry-After.
    pub max_wait: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            rps: 100.0,
            burst: 100.0,
            max_wait: Duration::from_millis(250),
        }
    }
}

/// A token bucket, kept as GCRA's "theoretical arrival time" so it is exact integer
/// arithmetic: callers reserve a slot and wait for it. Waits are bounded by `max_wait`, and
/// reservations queue fairly in arrival order.
#[derive(Debug)]
pub struct TokenBucket {
    /// Time between tokens.
    interval: Duration,
    /// How far ahead of the sustained rate a burst may run.
    burst_span: Duration,
    max_wait: Duration,
    /// When the next token would be due if calls came exactly at the sustained rate.
    tat: Mutex<Instant>,
}

impl TokenBucket {
    pub fn new(config: RateLimitConfig, now: Instant) -> Self {
        // Nanosecond precision, rounded: 10 rps is exactly 100 ms.
        let nanos = (1e9 / config.rps.max(1e-6)).round();
        let interval = Duration::from_nanos(if nanos >= 1.0 { nanos as u64 } else { 1 });
        let burst = config.burst.max(1.0).round() as u32;
        Self {
            interval,
            burst_span: interval.saturating_mul(burst),
            max_wait: config.max_wait,
            tat: Mutex::new(now),
        }
    }

    /// Reserves one call: `Ok(wait)` to go after `wait` (zero when a token is at hand), or
    /// `Err(retry_after)` when the wait would exceed `max_wait` (nothing is reserved then).
    ///
    /// # Errors
    /// The time until a token would be free, for `Retry-After`.
    pub fn reserve(&self, now: Instant) -> Result<Duration, Duration> {
        self.reserve_within(now, self.max_wait)
    }

    /// Like [`Self::reserve`], with the wait also bounded by `limit` (what is left of a
    /// request's deadline): a slot is only taken when the caller can wait for it.
    ///
    /// # Errors
    /// The time until a token would be free, for `Retry-After`.
    pub fn reserve_within(&self, now: Instant, limit: Duration) -> Result<Duration, Duration> {
        let limit = limit.min(self.max_wait);
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let next = (*tat).max(now) + self.interval;
        let wait = next
            .saturating_duration_since(now)
            .saturating_sub(self.burst_span);
        if wait <= limit {
            *tat = next;
            Ok(wait)
        } else {
            Err(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_burst_then_paces_then_refuses() {
        let t0 = Instant::now();
        let bucket = TokenBucket::new(
            RateLimitConfig {
                rps: 10.0,
                burst: 2.0,
                max_wait: Duration::from_millis(250),
            },
            t0,
        );
        assert_eq!(bucket.reserve(t0), Ok(Duration::ZERO));
        assert_eq!(bucket.reserve(t0), Ok(Duration::ZERO));
        // Empty: the next tokens come every 100 ms; waits up to 250 ms are reserved in order.
        assert_eq!(bucket.reserve(t0), Ok(Duration::from_millis(100)));
        assert_eq!(bucket.reserve(t0), Ok(Duration::from_millis(200)));
        let refused = bucket.reserve(t0).expect_err("over max_wait");
        assert_eq!(refused, Duration::from_millis(300));
        // A refusal reserves nothing; time refills.
        assert_eq!(
            bucket.reserve(t0 + Duration::from_millis(200)),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(
            bucket.reserve(t0 + Duration::from_secs(10)),
            Ok(Duration::ZERO)
        );
        // A caller with less time left than the wait takes nothing.
        let later = t0 + Duration::from_secs(20);
        let bucket = TokenBucket::new(
            RateLimitConfig {
                rps: 10.0,
                burst: 1.0,
                max_wait: Duration::from_secs(1),
            },
            later,
        );
        assert_eq!(bucket.reserve(later), Ok(Duration::ZERO));
        assert!(
            bucket
                .reserve_within(later, Duration::from_millis(50))
                .is_err()
        );
        assert_eq!(bucket.reserve(later), Ok(Duration::from_millis(100)));
    }
}
