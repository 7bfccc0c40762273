//! Wall-clock time as core records it (fetch times, batch ids, audit rows, lock expiry): whole
//! milliseconds since the Unix epoch. A leaf, so the store, the likes and the locks share it
//! without importing each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it, `i64::MAX` past 292 million
/// years).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
