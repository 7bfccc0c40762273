//! Reading each part of the configuration from the (layered) environment: tokens and secret
//! files, the route table, cache, retries, rate limit, bulkhead, alerts and breaker. Every value
//! is checked here, with the variable it came from in the error.

use std::path::Path;
use std::time::Duration;

use maple_common::breaker::BreakerConfig;
use maple_common::config::{ConfigError, Env, Secret};

use super::file::env_var;
use super::vars::*;
use crate::alerts::AlertConfig;
use crate::cache::CacheConfig;
use crate::limits::{BulkheadConfig, RateLimitConfig, RetryConfig};
use crate::routes::{RoutePolicy, RouteTable};

pub(super) fn read_secret_file(path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|e| ConfigError::new(API_KEY_FILE, path, e))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(ConfigError::new(API_KEY_FILE, path, "the file is empty"));
    }
    Ok(key.to_owned())
}

/// A bearer token: at least 16 printable characters.
pub(super) fn token(var: &str, raw: &str) -> Result<Secret, ConfigError> {
    if raw.len() < 16 {
        return Err(ConfigError::new(
            var,
            "<redacted>",
            "tokens must be at least 16 characters",
        ));
    }
    Secret::new(raw.to_owned()).map_err(|reason| ConfigError::new(var, "<redacted>", reason))
}

/// The one admin token (commas are part of it, not separators).
pub(super) fn admin_token(env: &Env) -> Result<Option<Secret>, ConfigError> {
    env.get(ADMIN_TOKEN)
        .map(|raw| token(ADMIN_TOKEN, raw.trim()))
        .transpose()
}

/// Comma-separated client tokens.
pub(super) fn tokens(env: &Env, var: &str) -> Result<Vec<Secret>, ConfigError> {
    let Some(raw) = env.get(var) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| token(var, t))
        .collect()
}

const MAX_TTL_S: u64 = 30 * 24 * 3600;

pub(super) fn routes_from_env(env: &Env) -> Result<RouteTable, ConfigError> {
    let defaults = RouteTable::default();
    let policy = |name: &str, default: RoutePolicy| -> Result<RoutePolicy, ConfigError> {
        let ttl_s = env.parse_within(
            &env_var(&format!("routes.{name}.ttl_s")),
            default.ttl.as_secs(),
            0..=MAX_TTL_S,
        );
        let deadline = env.millis_or(
            &env_var(&format!("routes.{name}.deadline_ms")),
            default.deadline,
        );
        Ok(RoutePolicy {
            ttl: Duration::from_secs(ttl_s),
            deadline,
        })
    };
    let [id, basic, item_equipment, other] = ROUTE_NAMES;
    Ok(RouteTable {
        id: policy(id, defaults.id)?,
        basic: policy(basic, defaults.basic)?,
        item_equipment: policy(item_equipment, defaults.item_equipment)?,
        other: policy(other, defaults.other)?,
    })
}

pub(super) fn cache_from_env(env: &Env) -> Result<CacheConfig, ConfigError> {
    let defaults = CacheConfig::default();
    let stale_s = env.parse_within(CACHE_STALE_S, defaults.stale_for.as_secs(), 0..=MAX_TTL_S);
    // Revalidation serves expired entries, which live only for the stale window.
    let revalidate_s = env.parse_within(
        CACHE_REVALIDATE_S,
        defaults.revalidate_for.as_secs().min(stale_s),
        0..=stale_s,
    );
    Ok(CacheConfig {
        max_bytes: env.parse_within(CACHE_MAX_BYTES, defaults.max_bytes, (1 << 20)..=(64 << 30)),
        stale_for: Duration::from_secs(stale_s),
        revalidate_for: Duration::from_secs(revalidate_s),
        not_found_for: Duration::from_secs(env.parse_within(
            CACHE_NOT_FOUND_S,
            defaults.not_found_for.as_secs(),
            0..=3600,
        )),
    })
}

pub(super) fn retry_from_env(env: &Env) -> Result<RetryConfig, ConfigError> {
    let defaults = RetryConfig::default();
    let base_backoff = env.millis_or(RETRY_BASE_MS, defaults.base_backoff);
    let max_backoff = env.millis_or(RETRY_MAX_BACKOFF_MS, defaults.max_backoff);
    if max_backoff < base_backoff {
        return Err(ConfigError::new(
            RETRY_MAX_BACKOFF_MS,
            max_backoff.as_millis().to_string(),
            "must not be below the base backoff",
        ));
    }
    Ok(RetryConfig {
        max_attempts: env.parse_within(RETRY_MAX_ATTEMPTS, defaults.max_attempts, 1..=10),
        base_backoff,
        max_backoff,
        budget_pct: env.parse_within(RETRY_BUDGET_PCT, defaults.budget_pct, 0..=100),
        min_per_sec: env.parse_within(RETRY_MIN_PER_S, defaults.min_per_sec, 0..=10_000),
    })
}

pub(super) fn rate_limit_from_env(env: &Env) -> Result<RateLimitConfig, ConfigError> {
    let defaults = RateLimitConfig::default();
    let rps = env.parse_within(RATELIMIT_RPS, defaults.rps, 0.01..=1_000_000.0);
    Ok(RateLimitConfig {
        rps,
        burst: env.parse_within(RATELIMIT_BURST, rps.max(1.0), 1.0..=1_000_000.0),
        max_wait: Duration::from_millis(env.parse_within(
            RATELIMIT_MAX_WAIT_MS,
            u64::try_from(defaults.max_wait.as_millis()).unwrap_or(250),
            0..=60_000,
        )),
    })
}

pub(super) fn bulkhead_from_env(env: &Env) -> Result<BulkheadConfig, ConfigError> {
    let defaults = BulkheadConfig::default();
    Ok(BulkheadConfig {
        max_concurrent: env.parse_within(
            BULKHEAD_MAX_CONCURRENT,
            defaults.max_concurrent,
            1..=10_000,
        ),
        max_wait: env.millis_or(BULKHEAD_MAX_WAIT_MS, defaults.max_wait),
    })
}

pub(super) fn alerts_from_env(env: &Env) -> Result<AlertConfig, ConfigError> {
    let defaults = AlertConfig::default();
    let webhook = env.get(ALERT_WEBHOOK_URL);
    if let Some(url) = &webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::new(
            ALERT_WEBHOOK_URL,
            "<redacted>",
            "must be an http:// or https:// URL",
        ));
    }
    // A webhook URL carries its own credential: held as a secret.
    let webhook = webhook
        .map(Secret::new)
        .transpose()
        .map_err(|reason| ConfigError::new(ALERT_WEBHOOK_URL, "<redacted>", reason))?;
    Ok(AlertConfig {
        webhook,
        dedupe_for: Duration::from_secs(env.parse_within(
            ALERT_DEDUPE_S,
            defaults.dedupe_for.as_secs(),
            0..=86_400,
        )),
        per_minute: env.parse_within(ALERT_PER_MINUTE, defaults.per_minute, 1..=600),
    })
}

pub(super) fn breaker_from_env(env: &Env) -> Result<BreakerConfig, ConfigError> {
    let defaults = BreakerConfig::default();
    let window = env.parse_within(BREAKER_WINDOW, defaults.window, 1..=1000);
    // Judging needs no more calls than the window holds.
    let minimum_calls = env.parse_within(BREAKER_MIN_CALLS, defaults.minimum_calls, 1..=window);
    let failure_rate_pct =
        env.parse_within(BREAKER_FAILURE_RATE, defaults.failure_rate_pct, 1..=100);
    let probes = env.parse_within(BREAKER_PROBES, defaults.probes, 1..=100);
    let slow_call = env
        .get(BREAKER_SLOW_CALL_MS)
        .map(|_| env.millis_or(BREAKER_SLOW_CALL_MS, Duration::from_secs(1)));
    Ok(BreakerConfig {
        window,
        minimum_calls,
        failure_rate_pct,
        open_for: env.millis_or(BREAKER_OPEN_MS, defaults.open_for),
        probes,
        slow_call,
    })
}
