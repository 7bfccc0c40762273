//! Reading each part of the configuration from the (layered) environment: tokens and secret
//! files, the route table, cache, retries, rate limit, bulkhead, alerts and breaker. Every value
//! is checked here, with the variable it came from in the error.

use std::path::Path;
use std::time::Duration;

use maple_common::breaker::BreakerConfig;
use maple_common::config::{ConfigError, Env, Secret};

use maple_common::setting::Setting;

use super::vars::*;
use crate::alerts::AlertConfig;
use crate::cache::CacheConfig;
use crate::limits::{BulkheadConfig, RateLimitConfig, RetryConfig};
use crate::routes::{RoutePolicy, RouteTable};

pub(super) fn read_secret_file(path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|e| ConfigError::new(API_KEY_FILE.var, path, e))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(ConfigError::new(
            API_KEY_FILE.var,
            path,
            "the file is empty",
        ));
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
    env.optional(&ADMIN_TOKEN)
        .map(|raw| token(ADMIN_TOKEN.var, raw.trim()))
        .transpose()
}

/// Comma-separated client tokens.
pub(super) fn tokens(env: &Env) -> Result<Vec<Secret>, ConfigError> {
    let Some(raw) = env.optional(&CLIENT_TOKENS) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| token(CLIENT_TOKENS.var, t))
        .collect()
}

pub(super) fn routes_from_env(env: &Env) -> RouteTable {
    let policy = |ttl: &Setting<u64>, deadline: &Setting<u64>| RoutePolicy {
        ttl: Duration::from_secs(env.setting(ttl)),
        deadline: Duration::from_millis(env.setting(deadline)),
    };
    RouteTable {
        id: policy(&ROUTE_ID_TTL_S, &ROUTE_ID_DEADLINE_MS),
        basic: policy(&ROUTE_BASIC_TTL_S, &ROUTE_BASIC_DEADLINE_MS),
        item_equipment: policy(
            &ROUTE_ITEM_EQUIPMENT_TTL_S,
            &ROUTE_ITEM_EQUIPMENT_DEADLINE_MS,
        ),
        other: policy(&ROUTE_OTHER_TTL_S, &ROUTE_OTHER_DEADLINE_MS),
    }
}

pub(super) fn cache_from_env(env: &Env) -> CacheConfig {
    let stale_s = env.setting(&CACHE_STALE_S);
    // Revalidation serves expired entries, which live only for the stale window.
    let mut revalidate_s = env.setting(&CACHE_REVALIDATE_S);
    // Unset, the default gives way to a shorter stale window; set, it must fit in it.
    if revalidate_s > stale_s && env.get(CACHE_REVALIDATE_S.var).is_none() {
        revalidate_s = stale_s;
    } else if revalidate_s > stale_s {
        env.reject(ConfigError::new(
            CACHE_REVALIDATE_S.var,
            revalidate_s.to_string(),
            format!("must be at most {} ({stale_s})", CACHE_STALE_S.var),
        ));
        revalidate_s = stale_s;
    }
    CacheConfig {
        max_bytes: env.setting(&CACHE_MAX_BYTES),
        stale_for: Duration::from_secs(stale_s),
        revalidate_for: Duration::from_secs(revalidate_s),
        not_found_for: Duration::from_secs(env.setting(&CACHE_NOT_FOUND_S)),
    }
}

pub(super) fn retry_from_env(env: &Env) -> Result<RetryConfig, ConfigError> {
    let base_backoff = Duration::from_millis(env.setting(&RETRY_BASE_MS));
    let max_backoff = Duration::from_millis(env.setting(&RETRY_MAX_BACKOFF_MS));
    if max_backoff < base_backoff {
        return Err(ConfigError::new(
            RETRY_MAX_BACKOFF_MS.var,
            max_backoff.as_millis().to_string(),
            "must not be below the base backoff",
        ));
    }
    Ok(RetryConfig {
        max_attempts: env.setting(&RETRY_MAX_ATTEMPTS),
        base_backoff,
        max_backoff,
        budget_pct: env.setting(&RETRY_BUDGET_PCT),
        min_per_sec: env.setting(&RETRY_MIN_PER_S),
    })
}

pub(super) fn rate_limit_from_env(env: &Env) -> RateLimitConfig {
    let rps = env.setting(&RATELIMIT_RPS);
    RateLimitConfig {
        rps,
        burst: env.derived(&RATELIMIT_BURST, rps.max(1.0)),
        max_wait: Duration::from_millis(env.setting(&RATELIMIT_MAX_WAIT_MS)),
    }
}

pub(super) fn bulkhead_from_env(env: &Env) -> BulkheadConfig {
    BulkheadConfig {
        max_concurrent: env.setting(&BULKHEAD_MAX_CONCURRENT),
        max_wait: Duration::from_millis(env.setting(&BULKHEAD_MAX_WAIT_MS)),
    }
}

pub(super) fn alerts_from_env(env: &Env) -> Result<AlertConfig, ConfigError> {
    let webhook = env.optional(&ALERT_WEBHOOK_URL);
    if let Some(url) = &webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::new(
            ALERT_WEBHOOK_URL.var,
            "<redacted>",
            "must be an http:// or https:// URL",
        ));
    }
    // A webhook URL carries its own credential: held as a secret.
    let webhook = webhook
        .map(Secret::new)
        .transpose()
        .map_err(|reason| ConfigError::new(ALERT_WEBHOOK_URL.var, "<redacted>", reason))?;
    Ok(AlertConfig {
        webhook,
        dedupe_for: Duration::from_secs(env.setting(&ALERT_DEDUPE_S)),
        per_minute: env.setting(&ALERT_PER_MINUTE),
    })
}

pub(super) fn breaker_from_env(env: &Env) -> BreakerConfig {
    let window = env.setting(&BREAKER_WINDOW);
    // Judging needs no more calls than the window holds.
    let mut minimum_calls = env.setting(&BREAKER_MIN_CALLS);
    if minimum_calls > window {
        env.reject(ConfigError::new(
            BREAKER_MIN_CALLS.var,
            minimum_calls.to_string(),
            format!("must be at most {} ({window})", BREAKER_WINDOW.var),
        ));
        minimum_calls = window;
    }
    let slow_call = env.optional(&BREAKER_SLOW_CALL_MS).and_then(|millis| {
        if millis == 0 {
            env.reject(ConfigError::new(
                BREAKER_SLOW_CALL_MS.var,
                "0",
                "must be greater than zero",
            ));
            return None;
        }
        Some(Duration::from_millis(millis))
    });
    BreakerConfig {
        window,
        minimum_calls,
        failure_rate_pct: env.setting(&BREAKER_FAILURE_RATE),
        open_for: Duration::from_millis(env.setting(&BREAKER_OPEN_MS)),
        probes: env.setting(&BREAKER_PROBES),
        slow_call,
    }
}
