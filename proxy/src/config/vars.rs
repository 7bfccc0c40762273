//! The names of the proxy's environment variables (the file's keys map onto them, see
//! [`env_var`](super::env_var)).

pub const LISTEN: &str = "MAPLE_PROXY_LISTEN";
pub const ADMIN_LISTEN: &str = "MAPLE_PROXY_ADMIN_LISTEN";
pub const UPSTREAM: &str = "MAPLE_PROXY_UPSTREAM";
pub const API_KEY: &str = "NEXON_API_KEY";
pub const CONNECT_TIMEOUT_MS: &str = "MAPLE_PROXY_CONNECT_TIMEOUT_MS";
pub const READ_TIMEOUT_MS: &str = "MAPLE_PROXY_READ_TIMEOUT_MS";
pub const THREADS: &str = "MAPLE_PROXY_THREADS";
pub const GRACE_PERIOD_S: &str = "MAPLE_PROXY_GRACE_PERIOD_S";
pub const BREAKER_WINDOW: &str = "MAPLE_PROXY_BREAKER_WINDOW";
pub const BREAKER_MIN_CALLS: &str = "MAPLE_PROXY_BREAKER_MIN_CALLS";
pub const BREAKER_FAILURE_RATE: &str = "MAPLE_PROXY_BREAKER_FAILURE_RATE_PCT";
pub const BREAKER_OPEN_MS: &str = "MAPLE_PROXY_BREAKER_OPEN_MS";
pub const BREAKER_PROBES: &str = "MAPLE_PROXY_BREAKER_PROBES";
pub const BREAKER_SLOW_CALL_MS: &str = "MAPLE_PROXY_BREAKER_SLOW_CALL_MS";
/// Path of the YAML configuration file.
pub const CONFIG_FILE: &str = "MAPLE_PROXY_CONFIG";
pub const API_KEY_FILE: &str = "MAPLE_PROXY_API_KEY_FILE";
pub const CLIENT_TOKENS: &str = "MAPLE_PROXY_CLIENT_TOKENS";
pub const ADMIN_TOKEN: &str = "MAPLE_PROXY_ADMIN_TOKEN";
pub const MAX_BODY_BYTES: &str = "MAPLE_PROXY_MAX_BODY_BYTES";
pub const CACHE_MAX_BYTES: &str = "MAPLE_PROXY_CACHE_MAX_BYTES";
pub const CACHE_STALE_S: &str = "MAPLE_PROXY_CACHE_STALE_S";
pub const CACHE_REVALIDATE_S: &str = "MAPLE_PROXY_CACHE_REVALIDATE_S";
/// How long Nexon's "no such character" is answered from the cache (0: not cached).
pub const CACHE_NOT_FOUND_S: &str = "MAPLE_PROXY_CACHE_NOT_FOUND_S";
pub const RETRY_MAX_ATTEMPTS: &str = "MAPLE_PROXY_RETRY_MAX_ATTEMPTS";
pub const RETRY_BASE_MS: &str = "MAPLE_PROXY_RETRY_BASE_MS";
pub const RETRY_MAX_BACKOFF_MS: &str = "MAPLE_PROXY_RETRY_MAX_BACKOFF_MS";
pub const RETRY_BUDGET_PCT: &str = "MAPLE_PROXY_RETRY_BUDGET_PCT";
pub const RETRY_MIN_PER_S: &str = "MAPLE_PROXY_RETRY_MIN_PER_S";
pub const RATELIMIT_RPS: &str = "MAPLE_PROXY_RATELIMIT_RPS";
pub const RATELIMIT_BURST: &str = "MAPLE_PROXY_RATELIMIT_BURST";
pub const RATELIMIT_MAX_WAIT_MS: &str = "MAPLE_PROXY_RATELIMIT_MAX_WAIT_MS";
pub const BULKHEAD_MAX_CONCURRENT: &str = "MAPLE_PROXY_BULKHEAD_MAX_CONCURRENT";
pub const BULKHEAD_MAX_WAIT_MS: &str = "MAPLE_PROXY_BULKHEAD_MAX_WAIT_MS";
pub const ALERT_WEBHOOK_URL: &str = "MAPLE_PROXY_ALERT_WEBHOOK_URL";
pub const ALERT_DEDUPE_S: &str = "MAPLE_PROXY_ALERT_DEDUPE_S";
pub const ALERT_PER_MINUTE: &str = "MAPLE_PROXY_ALERT_PER_MINUTE";

/// The routes with their own policy, as they appear in keys (`routes.<name>.ttl_s`).
pub const ROUTE_NAMES: [&str; 4] = ["id", "basic", "item_equipment", "other"];
