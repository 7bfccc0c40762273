//! The proxy's configuration, read once from the environment.
//!
//! Rule: every value is validated here; the rest of the crate trusts [`ProxyConfig`]. The API key
//! is held in [`ApiKey`], whose `Debug` never shows it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use maple_common::config::{ConfigError, Env};
use maple_common::nexon::NEXON_BASE_URL;

use crate::breaker::BreakerConfig;

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

/// The simulator's upstream and key, used when no Nexon key is configured.
pub const SIMULATOR_UPSTREAM: &str = "http://127.0.0.1:8090";
pub const SIMULATOR_API_KEY: &str = "maple-sim-dev-key";

/// Everything the proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub upstream: Upstream,
    pub api_key: ApiKey,
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
}

impl ProxyConfig {
    /// Reads the `MAPLE_PROXY_*` variables and `NEXON_API_KEY`.
    ///
    /// Without `NEXON_API_KEY` the upstream defaults to the local simulator with its dev key;
    /// with it, to the real Nexon API.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let key = env.get(API_KEY);
        let default_upstream = if key.is_some() {
            NEXON_BASE_URL
        } else {
            SIMULATOR_UPSTREAM
        };
        let upstream_raw = env.string_or(UPSTREAM, default_upstream);
        let upstream = Upstream::parse(&upstream_raw)
            .map_err(|reason| ConfigError::new(UPSTREAM, upstream_raw.clone(), reason))?;
        let api_key = match key {
            Some(key) => ApiKey::new(key)
                .map_err(|reason| ConfigError::new(API_KEY, "<redacted>", reason))?,
            None if upstream.is_nexon() => {
                return Err(ConfigError::new(
                    API_KEY,
                    "",
                    "the real Nexon API needs a key; unset MAPLE_PROXY_UPSTREAM to use the simulator",
                ));
            }
            None => ApiKey(SIMULATOR_API_KEY.to_owned()),
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
        })
    }
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

/// The Nexon API key. Its `Debug` and `Display` are redacted so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// # Errors
    /// When the key has characters a header value cannot carry.
    pub fn new(key: String) -> Result<Self, &'static str> {
        if key.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(key))
        } else {
            Err("the key must be printable ASCII without spaces")
        }
    }

    /// The key itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
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
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
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
    fn zero_timeouts_are_rejected() {
        let err =
            ProxyConfig::from_env(&Env::from_pairs([(READ_TIMEOUT_MS, "0")])).expect_err("invalid");
        assert_eq!(err.var, READ_TIMEOUT_MS);
    }
}
