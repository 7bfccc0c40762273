//! The proxy's configuration: one YAML file (optional, `MAPLE_PROXY_CONFIG`) under environment
//! overrides, read and validated once at start.
//!
//! Every setting but the key itself (`NEXON_API_KEY`; the file takes `api_key_file`) has a
//! file key and a variable, derived mechanically: the key `breaker.window`
//! is overridden by `MAPLE_PROXY_BREAKER_WINDOW` (prefix, dots to underscores, upper case). The
//! file is flattened into those names and layered under the environment, so one validation path
//! serves both, and an unknown key in the file is an error, not a silent no-op.
//!
//! Rule: every value is validated here; the rest of the crate trusts [`ProxyConfig`]. Secrets
//! (the API key, client and admin tokens) are held in [`Secret`], whose `Debug` never shows them.

use std::net::SocketAddr;
use std::time::Duration;

use maple_common::breaker::BreakerConfig;
pub use maple_common::config::Secret;

use maple_common::config::{ConfigError, ConfigErrors, Env};
use maple_common::nexon::NEXON_BASE_URL;

mod file;
mod parts;
#[cfg(test)]
mod tests;
mod upstream;
pub mod vars;

pub use self::file::{FILE_KEYS, env_var, parse_file};
use self::parts::{
    admin_token, alerts_from_env, breaker_from_env, bulkhead_from_env, cache_from_env,
    rate_limit_from_env, read_secret_file, retry_from_env, routes_from_env, tokens,
};
pub use self::upstream::Upstream;
pub use self::vars::*;
use crate::alerts::AlertConfig;
use crate::cache::CacheConfig;
use crate::limits::{BulkheadConfig, RateLimitConfig, RetryConfig};
use crate::routes::RouteTable;

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
    /// [`ConfigErrors`]: the file's own trouble, or every invalid key or variable (a value
    /// from the file is named by its key and the file), with anything noted in `env` before.
    pub fn load(env: &Env) -> Result<Self, ConfigErrors> {
        let Some(path) = env.get_direct(CONFIG_FILE.var) else {
            return Self::from_env(env);
        };
        let values = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(CONFIG_FILE.var, path.clone(), e))
            .and_then(|text| {
                parse_file(&text)
                    .map_err(|reason| ConfigError::new(CONFIG_FILE.var, path.clone(), reason))
            });
        let values = match values {
            Ok(values) => values,
            Err(error) => return env.settle(Err(error)),
        };
        let layered = env.clone().over(values.clone());
        layered
            .settle(Self::read(&layered))
            .map_err(|ConfigErrors(errors)| {
                ConfigErrors(
                    errors
                        .into_iter()
                        .map(|mut error| {
                            // Name the file key when the bad value came from the file.
                            if layered.get_direct(&error.var).is_none()
                                && values.contains_key(&error.var)
                            {
                                let key = FILE_KEYS
                                    .iter()
                                    .find(|key| env_var(key) == error.var)
                                    .copied()
                                    .unwrap_or("?");
                                error.var = format!("{key} in {path} ({})", error.var);
                            }
                            error
                        })
                        .collect(),
                )
            })
    }

    /// Reads and checks the `MAPLE_PROXY_*` variables and `NEXON_API_KEY`.
    ///
    /// # Errors
    /// [`ConfigErrors`]: every invalid variable (and anything noted in `env` before).
    pub fn from_env(env: &Env) -> Result<Self, ConfigErrors> {
        env.settle(Self::read(env))
    }

    /// Reads the `MAPLE_PROXY_*` variables and `NEXON_API_KEY`, noting each bad value in
    /// `env` ([`Env::reject`]) and going on with its default; [`Env::settle`] reports them.
    ///
    /// Without `NEXON_API_KEY` the upstream defaults to the local simulator with its dev key;
    /// with it, to the real Nexon API.
    ///
    /// # Errors
    /// [`ConfigError`] for a value the others depend on (the key, the upstream) or a check
    /// across settings.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let key = match (env.optional(&API_KEY), env.optional(&API_KEY_FILE)) {
            (Some(key), _) => Some(key),
            (None, Some(file)) => Some(read_secret_file(&file)?),
            (None, None) => None,
        };
        let default_upstream = if key.is_some() {
            NEXON_BASE_URL
        } else {
            SIMULATOR_UPSTREAM
        };
        let upstream_raw = env.derived(&UPSTREAM, default_upstream.to_owned());
        let upstream = Upstream::parse(&upstream_raw)
            .map_err(|reason| ConfigError::new(UPSTREAM.var, upstream_raw.clone(), reason))?;
        if upstream.is_nexon() && !upstream.tls {
            return Err(ConfigError::new(
                UPSTREAM.var,
                upstream_raw,
                "the Nexon API must be reached over https:// (the key travels in a header)",
            ));
        }
        let api_key = match key {
            Some(key) => Secret::new(key)
                .map_err(|reason| ConfigError::new(API_KEY.var, "<redacted>", reason))?,
            None if upstream.is_nexon() => {
                return Err(ConfigError::new(
                    API_KEY.var,
                    "",
                    "the real Nexon API needs a key; unset MAPLE_PROXY_UPSTREAM to use the simulator",
                ));
            }
            None => Secret::new(SIMULATOR_API_KEY.to_owned())
                .map_err(|reason| ConfigError::new(API_KEY.var, "", reason))?,
        };
        Ok(Self {
            listen: env.setting(&LISTEN),
            admin_listen: env.setting(&ADMIN_LISTEN),
            upstream,
            api_key,
            connect_timeout: Duration::from_millis(env.setting(&CONNECT_TIMEOUT_MS)),
            read_timeout: Duration::from_millis(env.setting(&READ_TIMEOUT_MS)),
            threads: env.setting(&THREADS),
            grace_period: Duration::from_secs(env.setting(&GRACE_PERIOD_S)),
            breaker: breaker_from_env(env),
            routes: routes_from_env(env),
            cache: cache_from_env(env),
            retry: retry_from_env(env)?,
            rate_limit: rate_limit_from_env(env),
            bulkhead: bulkhead_from_env(env),
            max_body_bytes: env.setting(&MAX_BODY_BYTES),
            alerts: alerts_from_env(env)?,
            client_tokens: tokens(env)?,
            admin_token: admin_token(env)?,
        })
    }
}
