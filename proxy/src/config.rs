//! The proxy's configuration: one YAML file (optional, `MAPLE_PROXY_CONFIG`) under environment
//! overrides, read and validated once at start.
//!
//! Every setting has a file key and a variable, derived mechanically: the key `breaker.window`
//! is overridden by `MAPLE_PROXY_BREAKER_WINDOW` (prefix, dots to underscores, upper case). The
//! file is flattened into those names and layered under the environment, so one validation path
//! serves both, and an unknown key in the file is an error, not a silent no-op.
//!
//! Rule: every value is validated here; the rest of the crate trusts [`ProxyConfig`]. Secrets
//! (the API key, client and admin tokens) are held in [`Secret`], whose `Debug` never shows them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use maple_common::breaker::BreakerConfig;
pub use maple_common::config::Secret;
use maple_common::config::{ConfigError, Env};
use maple_common::nexon::NEXON_BASE_URL;

use crate::alerts::AlertConfig;
use crate::cache::CacheConfig;
use crate::limits::{BulkheadConfig, RateLimitConfig, RetryConfig};
use crate::routes::{RoutePolicy, RouteTable};

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

/// Every key the configuration file may hold.
pub const FILE_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "upstream",
    "api_key_file",
    "connect_timeout_ms",
    "read_timeout_ms",
    "threads",
    "grace_period_s",
    "max_body_bytes",
    "client_tokens",
    "admin_token",
    "breaker.window",
    "breaker.min_calls",
    "breaker.failure_rate_pct",
    "breaker.open_ms",
    "breaker.probes",
    "breaker.slow_call_ms",
    "cache.max_bytes",
    "cache.stale_s",
    "cache.revalidate_s",
    "retry.max_attempts",
    "retry.base_ms",
    "retry.max_backoff_ms",
    "retry.budget_pct",
    "retry.min_per_s",
    "ratelimit.rps",
    "ratelimit.burst",
    "ratelimit.max_wait_ms",
    "bulkhead.max_concurrent",
    "bulkhead.max_wait_ms",
    "alert.webhook_url",
    "alert.dedupe_s",
    "alert.per_minute",
    "routes.id.ttl_s",
    "routes.id.deadline_ms",
    "routes.basic.ttl_s",
    "routes.basic.deadline_ms",
    "routes.item_equipment.ttl_s",
    "routes.item_equipment.deadline_ms",
    "routes.other.ttl_s",
    "routes.other.deadline_ms",
];

/// The variable that overrides a file key: `breaker.window` → `MAPLE_PROXY_BREAKER_WINDOW`.
pub fn env_var(key: &str) -> String {
    format!("MAPLE_PROXY_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The simulator's upstream and key, used when no Nexon key is configured.
pub const SIMULATOR_UPSTREAM: &str = "http://127.0.0.1:8090";
pub const SIMULATOR_API_KEY: &str = "maple-sim-dev-key";

/// Everything the proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub upstream: Upstream,
    pub api_key: Secret,
    /// TCP (and TLS) connect timeout to the upstream.
    pub connect_timeout: Duration,
    /// Longest wait for each read from the upstream (headers or a body chunk).
    pub read_timeout: Duration,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// On graceful shutdown, how long in-flight requests may take before runtimes stop.
    pub grace_period: Duration,
    /// The circuit breaker in front of the upstream.
    pub breaker: BreakerConfig,
    /// Cache TTL and deadline per route.
    pub routes: RouteTable,
    pub cache: CacheConfig,
    pub retry: RetryConfig,
    pub rate_limit: RateLimitConfig,
    pub bulkhead: BulkheadConfig,
    /// Largest upstream body accepted.
    pub max_body_bytes: usize,
    pub alerts: AlertConfig,
    /// When non-empty, clients must send `Authorization: Bearer <one of these>`.
    pub client_tokens: Vec<Secret>,
    /// Guards `POST /cache/purge` on the admin port; without it, purging is refused.
    pub admin_token: Option<Secret>,
}

impl ProxyConfig {
    /// Reads the file named by `MAPLE_PROXY_CONFIG` (if set) under the environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, or the first invalid key or variable.
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let Some(path) = env.get_direct(CONFIG_FILE) else {
            return Self::from_env(env);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(CONFIG_FILE, path.clone(), e))?;
        let values = parse_file(&text)
            .map_err(|reason| ConfigError::new(CONFIG_FILE, path.clone(), reason))?;
        let layered = env.clone().over(values.clone());
        Self::from_env(&layered).map_err(|mut error| {
            // Name the file key when the bad value came from the file.
            if layered.get_direct(&error.var).is_none() && values.contains_key(&error.var) {
                let key = FILE_KEYS
                    .iter()
                    .find(|key| env_var(key) == error.var)
                    .copied()
                    .unwrap_or("?");
                error.var = format!("{key} in {path} ({})", error.var);
            }
            error
        })
    }

    /// Reads the `MAPLE_PROXY_*` variables and `NEXON_API_KEY`.
    ///
    /// Without `NEXON_API_KEY` the upstream defaults to the local simulator with its dev key;
    /// with it, to the real Nexon API.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let key = match (env.get(API_KEY), env.get(API_KEY_FILE)) {
            (Some(key), _) => Some(key),
            (None, Some(file)) => Some(read_secret_file(&file)?),
            (None, None) => None,
        };
        let default_upstream = if key.is_some() {
            NEXON_BASE_URL
        } else {
            SIMULATOR_UPSTREAM
        };
        let upstream_raw = env.string_or(UPSTREAM, default_upstream);
        let upstream = Upstream::parse(&upstream_raw)
            .map_err(|reason| ConfigError::new(UPSTREAM, upstream_raw.clone(), reason))?;
        if upstream.is_nexon() && !upstream.tls {
            return Err(ConfigError::new(
                UPSTREAM,
                upstream_raw,
                "the Nexon API must be reached over https:// (the key travels in a header)",
            ));
        }
        let api_key = match key {
            Some(key) => Secret::new(key)
                .map_err(|reason| ConfigError::new(API_KEY, "<redacted>", reason))?,
            None if upstream.is_nexon() => {
                return Err(ConfigError::new(
                    API_KEY,
                    "",
                    "the real Nexon API needs a key; unset MAPLE_PROXY_UPSTREAM to use the simulator",
                ));
            }
            None => Secret::new(SIMULATOR_API_KEY.to_owned())
                .map_err(|reason| ConfigError::new(API_KEY, "", reason))?,
        };
        let threads: usize = env.parse_within(THREADS, 2, 1..=256)?;
        Ok(Self {
            listen: env.parse_or(LISTEN, SocketAddr::from(([127, 0, 0, 1], 8081)))?,
            admin_listen: env.parse_or(ADMIN_LISTEN, SocketAddr::from(([127, 0, 0, 1], 9081)))?,
            upstream,
            api_key,
            connect_timeout: env.millis_or(CONNECT_TIMEOUT_MS, Duration::from_secs(1))?,
            read_timeout: env.millis_or(READ_TIMEOUT_MS, Duration::from_secs(3))?,
            threads,
            grace_period: Duration::from_secs(env.parse_or(GRACE_PERIOD_S, 3_u64)?),
            breaker: breaker_from_env(env)?,
            routes: routes_from_env(env)?,
            cache: cache_from_env(env)?,
            retry: retry_from_env(env)?,
            rate_limit: rate_limit_from_env(env)?,
            bulkhead: bulkhead_from_env(env)?,
            max_body_bytes: env.parse_within(MAX_BODY_BYTES, 8 << 20, 1024..=(256 << 20))?,
            alerts: alerts_from_env(env)?,
            client_tokens: tokens(env, CLIENT_TOKENS)?,
            admin_token: admin_token(env)?,
        })
    }
}

/// Flattens the YAML file into variable names: nested maps join their keys with dots, lists
/// become comma-separated values. Unknown keys are errors.
///
/// # Errors
/// A message naming the problem (syntax, an unknown key, a value of the wrong shape).
pub fn parse_file(text: &str) -> Result<HashMap<String, String>, String> {
    fn flatten(
        prefix: &str,
        value: &serde_yaml::Value,
        out: &mut HashMap<String, String>,
    ) -> Result<(), String> {
        use serde_yaml::Value;
        let scalar = |value: &Value| -> Option<String> {
            match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        match value {
            Value::Null => Ok(()),
            Value::Mapping(map) => {
                for (key, value) in map {
                    let Some(key) = key.as_str() else {
                        return Err(format!("a key under {prefix:?} is not a string"));
                    };
                    let path = if prefix.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&path, value, out)?;
                }
                Ok(())
            }
            Value::Sequence(items) => {
                let items: Option<Vec<String>> = items.iter().map(scalar).collect();
                let items =
                    items.ok_or_else(|| format!("{prefix}: list items must be plain values"))?;
                insert(prefix, items.join(","), out)
            }
            other => {
                let text = scalar(other).ok_or_else(|| format!("{prefix}: unsupported value"))?;
                insert(prefix, text, out)
            }
        }
    }
    fn insert(key: &str, value: String, out: &mut HashMap<String, String>) -> Result<(), String> {
        if !FILE_KEYS.contains(&key) {
            return Err(format!("unknown key {key:?}"));
        }
        out.insert(env_var(key), value);
        Ok(())
    }
    let document: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut out = HashMap::new();
    flatten("", &document, &mut out)?;
    Ok(out)
}

fn read_secret_file(path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|e| ConfigError::new(API_KEY_FILE, path, e))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(ConfigError::new(API_KEY_FILE, path, "the file is empty"));
    }
    Ok(key.to_owned())
}

/// A bearer token: at least 16 printable characters.
fn token(var: &str, raw: &str) -> Result<Secret, ConfigError> {
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
fn admin_token(env: &Env) -> Result<Option<Secret>, ConfigError> {
    env.get(ADMIN_TOKEN)
        .map(|raw| token(ADMIN_TOKEN, raw.trim()))
        .transpose()
}

/// Comma-separated client tokens.
fn tokens(env: &Env, var: &str) -> Result<Vec<Secret>, ConfigError> {
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

fn routes_from_env(env: &Env) -> Result<RouteTable, ConfigError> {
    let defaults = RouteTable::default();
    let policy = |name: &str, default: RoutePolicy| -> Result<RoutePolicy, ConfigError> {
        let ttl_s = env.parse_within(
            &env_var(&format!("routes.{name}.ttl_s")),
            default.ttl.as_secs(),
            0..=MAX_TTL_S,
        )?;
        let deadline = env.millis_or(
            &env_var(&format!("routes.{name}.deadline_ms")),
            default.deadline,
        )?;
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

fn cache_from_env(env: &Env) -> Result<CacheConfig, ConfigError> {
    let defaults = CacheConfig::default();
    let stale_s = env.parse_within(CACHE_STALE_S, defaults.stale_for.as_secs(), 0..=MAX_TTL_S)?;
    // Revalidation serves expired entries, which live only for the stale window.
    let revalidate_s = env.parse_within(
        CACHE_REVALIDATE_S,
        defaults.revalidate_for.as_secs().min(stale_s),
        0..=stale_s,
    )?;
    Ok(CacheConfig {
        max_bytes: env.parse_within(CACHE_MAX_BYTES, defaults.max_bytes, (1 << 20)..=(64 << 30))?,
        stale_for: Duration::from_secs(stale_s),
        revalidate_for: Duration::from_secs(revalidate_s),
    })
}

fn retry_from_env(env: &Env) -> Result<RetryConfig, ConfigError> {
    let defaults = RetryConfig::default();
    let base_backoff = env.millis_or(RETRY_BASE_MS, defaults.base_backoff)?;
    let max_backoff = env.millis_or(RETRY_MAX_BACKOFF_MS, defaults.max_backoff)?;
    if max_backoff < base_backoff {
        return Err(ConfigError::new(
            RETRY_MAX_BACKOFF_MS,
            max_backoff.as_millis().to_string(),
            "must not be below the base backoff",
        ));
    }
    Ok(RetryConfig {
        max_attempts: env.parse_within(RETRY_MAX_ATTEMPTS, defaults.max_attempts, 1..=10)?,
        base_backoff,
        max_backoff,
        budget_pct: env.parse_within(RETRY_BUDGET_PCT, defaults.budget_pct, 0..=100)?,
        min_per_sec: env.parse_within(RETRY_MIN_PER_S, defaults.min_per_sec, 0..=10_000)?,
    })
}

fn rate_limit_from_env(env: &Env) -> Result<RateLimitConfig, ConfigError> {
    let defaults = RateLimitConfig::default();
    let rps = env.parse_within(RATELIMIT_RPS, defaults.rps, 0.01..=1_000_000.0)?;
    Ok(RateLimitConfig {
        rps,
        burst: env.parse_within(RATELIMIT_BURST, rps.max(1.0), 1.0..=1_000_000.0)?,
        max_wait: Duration::from_millis(env.parse_within(
            RATELIMIT_MAX_WAIT_MS,
            u64::try_from(defaults.max_wait.as_millis()).unwrap_or(250),
            0..=60_000,
        )?),
    })
}

fn bulkhead_from_env(env: &Env) -> Result<BulkheadConfig, ConfigError> {
    let defaults = BulkheadConfig::default();
    Ok(BulkheadConfig {
        max_concurrent: env.parse_within(
            BULKHEAD_MAX_CONCURRENT,
            defaults.max_concurrent,
            1..=10_000,
        )?,
        max_wait: env.millis_or(BULKHEAD_MAX_WAIT_MS, defaults.max_wait)?,
    })
}

fn alerts_from_env(env: &Env) -> Result<AlertConfig, ConfigError> {
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
        )?),
        per_minute: env.parse_within(ALERT_PER_MINUTE, defaults.per_minute, 1..=600)?,
    })
}

fn breaker_from_env(env: &Env) -> Result<BreakerConfig, ConfigError> {
    let defaults = BreakerConfig::default();
    let window = env.parse_within(BREAKER_WINDOW, defaults.window, 1..=1000)?;
    // Judging needs no more calls than the window holds.
    let minimum_calls = env.parse_within(BREAKER_MIN_CALLS, defaults.minimum_calls, 1..=window)?;
    let failure_rate_pct =
        env.parse_within(BREAKER_FAILURE_RATE, defaults.failure_rate_pct, 1..=100)?;
    let probes = env.parse_within(BREAKER_PROBES, defaults.probes, 1..=100)?;
    let slow_call = match env.get(BREAKER_SLOW_CALL_MS) {
        None => None,
        Some(_) => Some(env.millis_or(BREAKER_SLOW_CALL_MS, Duration::from_secs(1))?),
    };
    Ok(BreakerConfig {
        window,
        minimum_calls,
        failure_rate_pct,
        open_for: env.millis_or(BREAKER_OPEN_MS, defaults.open_for)?,
        probes,
        slow_call,
    })
}

/// Where requests go: scheme, host and port of an `http://` or `https://` URL without a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Upstream {
    /// # Errors
    /// A message saying what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err("must be scheme://host[:port] with no path, query or credentials".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("port {port:?} is not a number"))?;
                (host, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() || port == 0 {
            return Err("host and a non-zero port are required".into());
        }
        Ok(Self {
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// Whether this is the real Nexon API (which needs a real key).
    pub fn is_nexon(&self) -> bool {
        self.host == "open.api.nexon.com"
    }

    /// The `Host` header value to send.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host_header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_target_the_simulator_without_a_key() {
        let config = ProxyConfig::from_env(&Env::from_pairs::<_, &str, &str>([])).expect("valid");
        assert_eq!(config.upstream.to_string(), SIMULATOR_UPSTREAM);
        assert_eq!(config.api_key.expose(), SIMULATOR_API_KEY);
        assert_eq!(config.listen.port(), 8081);
        assert_eq!(config.admin_listen.port(), 9081);
        assert_eq!(config.read_timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_key_switches_to_nexon() {
        let config =
            ProxyConfig::from_env(&Env::from_pairs([(API_KEY, "test_abc")])).expect("valid");
        assert_eq!(config.upstream.to_string(), "https://open.api.nexon.com");
        assert!(config.upstream.tls);
        assert_eq!(config.upstream.port, 443);
        assert!(!format!("{config:?}").contains("test_abc"), "key redacted");
    }

    #[test]
    fn nexon_without_a_key_is_refused() {
        let err = ProxyConfig::from_env(&Env::from_pairs([(UPSTREAM, NEXON_BASE_URL)]))
            .expect_err("needs a key");
        assert_eq!(err.var, API_KEY);
    }

    #[test]
    fn upstream_urls_are_validated() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:8090").expect("ok"),
            Upstream {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8090
            }
        );
        assert_eq!(
            Upstream::parse("https://[::1]:9443/").expect("ok").host,
            "::1"
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://host/path",
            "http://host:port",
            "http://u@host",
            "http://host:0",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
        let err =
            ProxyConfig::from_env(&Env::from_pairs([(UPSTREAM, "nope")])).expect_err("invalid");
        assert_eq!(err.var, UPSTREAM);
    }

    #[test]
    fn breaker_settings_are_validated() {
        let config = ProxyConfig::from_env(&Env::from_pairs([
            (BREAKER_OPEN_MS, "1500"),
            (BREAKER_SLOW_CALL_MS, "800"),
        ]))
        .expect("valid");
        assert_eq!(config.breaker.open_for, Duration::from_millis(1500));
        assert_eq!(config.breaker.slow_call, Some(Duration::from_millis(800)));
        assert_eq!(config.breaker.window, 10);
        for (var, value) in [
            (BREAKER_WINDOW, "0"),
            (BREAKER_MIN_CALLS, "11"),
            (BREAKER_FAILURE_RATE, "101"),
            (BREAKER_PROBES, "0"),
            (BREAKER_OPEN_MS, "0"),
        ] {
            let err = ProxyConfig::from_env(&Env::from_pairs([(var, value)])).expect_err(var);
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn every_variable_is_a_file_key() {
        for var in [
            LISTEN,
            ADMIN_LISTEN,
            UPSTREAM,
            CONNECT_TIMEOUT_MS,
            READ_TIMEOUT_MS,
            THREADS,
            GRACE_PERIOD_S,
            BREAKER_WINDOW,
            BREAKER_MIN_CALLS,
            BREAKER_FAILURE_RATE,
            BREAKER_OPEN_MS,
            BREAKER_PROBES,
            BREAKER_SLOW_CALL_MS,
            API_KEY_FILE,
            CLIENT_TOKENS,
            ADMIN_TOKEN,
            MAX_BODY_BYTES,
            CACHE_MAX_BYTES,
            CACHE_STALE_S,
            CACHE_REVALIDATE_S,
            RETRY_MAX_ATTEMPTS,
            RETRY_BASE_MS,
            RETRY_MAX_BACKOFF_MS,
            RETRY_BUDGET_PCT,
            RETRY_MIN_PER_S,
            RATELIMIT_RPS,
            RATELIMIT_BURST,
            RATELIMIT_MAX_WAIT_MS,
            BULKHEAD_MAX_CONCURRENT,
            BULKHEAD_MAX_WAIT_MS,
            ALERT_WEBHOOK_URL,
            ALERT_DEDUPE_S,
            ALERT_PER_MINUTE,
        ] {
            assert!(
                FILE_KEYS.iter().any(|key| env_var(key) == var),
                "{var} has no file key"
            );
        }
    }

    #[test]
    fn the_file_sits_under_the_environment() {
        let dir = std::env::temp_dir().join(format!("maple-proxy-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("proxy.yaml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:18081\nbreaker:\n  window: 20\n  min_calls: 8\nroutes:\n  id:\n    ttl_s: 60\n    deadline_ms: 1500\nclient_tokens: [aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb]\n",
        )
        .expect("write");
        let path_str = path.display().to_string();
        let config = ProxyConfig::load(&Env::from_pairs([
            (CONFIG_FILE, path_str.as_str()),
            (BREAKER_MIN_CALLS, "4"),
        ]))
        .expect("valid");
        assert_eq!(config.listen.port(), 18081);
        assert_eq!(config.breaker.window, 20);
        assert_eq!(config.breaker.minimum_calls, 4, "the variable wins");
        assert_eq!(config.routes.id.ttl, Duration::from_secs(60));
        assert_eq!(config.routes.id.deadline, Duration::from_millis(1500));
        assert_eq!(config.routes.basic, RouteTable::default().basic);
        assert_eq!(config.client_tokens.len(), 2);
        assert!(config.client_tokens[1].matches(b"bbbbbbbbbbbbbbbb"));

        std::fs::write(&path, "breaker:\n  windw: 3\n").expect("write");
        let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE, path_str.as_str())]))
            .expect_err("unknown key");
        assert!(err.reason.contains("breaker.windw"), "{err}");

        std::fs::write(&path, "breaker:\n  window: 0\n").expect("write");
        let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE, path_str.as_str())]))
            .expect_err("out of range");
        assert!(err.var.starts_with("breaker.window in "), "{err}");

        std::fs::write(&path, "listen: [unclosed\n").expect("write");
        let err = ProxyConfig::load(&Env::from_pairs([(CONFIG_FILE, path_str.as_str())]))
            .expect_err("bad yaml");
        assert_eq!(err.var, CONFIG_FILE);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_key_can_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("maple-proxy-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("nexon.key");
        std::fs::write(&path, "test_0123456789abcdef\n").expect("write");
        let path_str = path.display().to_string();
        let config = ProxyConfig::from_env(&Env::from_pairs([(API_KEY_FILE, path_str.as_str())]))
            .expect("valid");
        assert_eq!(config.api_key.expose(), "test_0123456789abcdef", "trimmed");
        assert!(config.upstream.is_nexon(), "a real key means the real API");
        std::fs::write(&path, "\n").expect("write");
        let err = ProxyConfig::from_env(&Env::from_pairs([(API_KEY_FILE, path_str.as_str())]))
            .expect_err("empty");
        assert_eq!(err.var, API_KEY_FILE);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn secrets_compare_exactly() {
        let secret = Secret::new("0123456789abcdef".into()).expect("valid");
        assert!(secret.matches(b"0123456789abcdef"));
        assert!(!secret.matches(b"0123456789abcdeF"));
        assert!(!secret.matches(b"0123456789abcde"));
        assert!(!secret.matches(b"0123456789abcdef0"));
        assert!(!secret.matches(b""));
        let err = ProxyConfig::from_env(&Env::from_pairs([(CLIENT_TOKENS, "short")]))
            .expect_err("too short");
        assert!(!err.to_string().contains("short\""), "{err}");
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        let err =
            ProxyConfig::from_env(&Env::from_pairs([(READ_TIMEOUT_MS, "0")])).expect_err("invalid");
        assert_eq!(err.var, READ_TIMEOUT_MS);
    }
}
