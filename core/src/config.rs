//! Core's configuration, read once from the environment.
//!
//! Rule: validated here, trusted everywhere else. Each setting is declared once in
//! [`settings`] (variable, default, bounds, doc); the names below are those declarations'.

pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use maple_common::config::redact_url;
use maple_common::config::{ConfigError, ConfigErrors, Env, Secret};

use crate::equipment::TierConfig;
use crate::likes::LikeConfig;
use crate::redis_link::RedisConfig;
use maple_engine::model::Method;
use maple_engine::prices::Prices;
use maple_engine::starforce::CostTable;

/// Request-level limits: everything reachable from the network assumes a hostile client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests handled at once; beyond it requests are shed at once with 503 `overloaded`
    /// (before latency collapses) — health checks and metrics excepted.
    pub max_in_flight: usize,
    /// Requests per second per client address on `/v1/` (0: no limit), and the burst.
    pub client_rate: f64,
    pub client_burst: f64,
    /// Name lookups per second per client that miss every cache and so ask Nexon (0: no
    /// limit), and the burst: below the API key's quota, so one client cannot spend it.
    pub client_miss_rate: f64,
    pub client_miss_burst: f64,
    /// IPv6 clients are one client per prefix of this many bits (a host usually gets a /64).
    pub client_ipv6_prefix: u8,
    /// How long a name Nexon does not know is answered 404 without asking again (0: never
    /// remembered).
    pub not_found_ttl: Duration,
    /// How old a stored name → ocid may grow before Nexon is asked again in the background
    /// (the copy answers meanwhile): a rename or a freed name's new owner shows after at most
    /// this plus the proxy's id TTL.
    pub name_recheck: Duration,
    /// The gate in front of pricing work no cache answers (`http::gate`).
    pub pricing: PricingBounds,
    /// Largest request body (413 beyond it).
    pub max_body_bytes: usize,
    /// Longest request target, path and query (414 beyond it).
    pub max_uri_bytes: usize,
    /// Largest total of header names and values, and most header fields (431 beyond).
    pub max_header_bytes: usize,
    pub max_header_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: settings::MAX_IN_FLIGHT.default_value(),
            client_rate: settings::CLIENT_RATE.default_value(),
            client_burst: settings::CLIENT_BURST.default_value(),
            client_miss_rate: settings::CLIENT_MISS_RATE.default_value(),
            client_miss_burst: settings::CLIENT_MISS_BURST.default_value(),
            client_ipv6_prefix: settings::CLIENT_IPV6_PREFIX.default_value(),
            not_found_ttl: Duration::from_secs(settings::NOT_FOUND_TTL_S.default_value()),
            name_recheck: Duration::from_secs(settings::NAME_RECHECK_S.default_value()),
            pricing: PricingBounds::default(),
            max_body_bytes: settings::MAX_BODY_BYTES.default_value(),
            max_uri_bytes: 2048,
            max_header_bytes: 16 * 1024,
            max_header_fields: 64,
        }
    }
}

/// The bounds on pricing work no cache answers (`http::gate`): computations at once, places
/// in line behind them, per client in line or running (0: no bound), the longest wait in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricingBounds {
    pub concurrency: usize,
    pub queue: usize,
    /// 0: no per-client bound.
    pub per_client: usize,
    pub wait: Duration,
}

impl Default for PricingBounds {
    fn default() -> Self {
        Self {
            // `settings::PRICING_CONCURRENCY`'s default: the machine's cores.
            concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            queue: settings::PRICING_QUEUE.default_value(),
            per_client: settings::PRICING_PER_CLIENT.default_value(),
            wait: Duration::from_millis(settings::PRICING_WAIT_MS.default_value()),
        }
    }
}

/// Bounds on the pricing caches (both keyed by equipment content hash, so never stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricingCaches {
    /// The parsed equipment forms (about 40 KB a character with presets).
    pub parsed_max_bytes: u64,
    /// The valuation answers ready to send (about 30 KB each: JSON and gzip).
    pub valuation_max_bytes: u64,
}

impl Default for PricingCaches {
    fn default() -> Self {
        Self {
            parsed_max_bytes: settings::PARSED_MAX_BYTES.default_value(),
            valuation_max_bytes: settings::VALUATION_MAX_BYTES.default_value(),
        }
    }
}

/// Everything core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub listen: SocketAddr,
    /// Base URL of the Nexon proxy, e.g. `http://127.0.0.1:8081`.
    pub proxy_url: String,
    /// Sent as `Authorization: Bearer …` to the proxy (which may require client tokens).
    pub proxy_token: Option<Secret>,
    /// May hold a password: `Debug` shows it redacted.
    pub database_url: Secret,
    /// Longest wait for one call through the proxy (above the proxy's own 3 s deadline).
    pub upstream_timeout: Duration,
    /// Longest any request may take before it is answered 503.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_deadline: Duration,
    /// After the signal, how long the instance keeps accepting while readiness answers 503,
    /// so a load balancer takes it out of rotation before connections are refused (set it
    /// above the balancer's check interval × failures; part of the shutdown deadline).
    pub drain_delay: Duration,
    pub db_max_connections: u32,
    /// The potential rate CSV; `None`: the table built into the binary (`data/potential_rates.csv`).
    pub potential_tables: Option<PathBuf>,
    pub prices: Prices,
    /// Reset method used to price characters unless a request names one.
    pub valuation_method: Method,
    /// Which 0–14★ cost table prices star force (the sources disagree; DOMAIN.md §6).
    pub starforce_costs: CostTable,
    /// The equipment tiers' freshness and bounds.
    pub tiers: TierConfig,
    /// Bounds on the pricing caches.
    pub pricing: PricingCaches,
    /// Redis (the equipment L2 and latch, likes, locks), when configured.
    pub redis: Option<RedisConfig>,
    /// The like buffer, its sync and the locks.
    pub likes: LikeConfig,
    /// Where the admin keys are read from (no file: the admin API refuses everyone).
    pub admin_keys_file: Option<PathBuf>,
    /// Refused admin attempts the audit log keeps (anyone can make them).
    pub audit_refused_keep: u64,
    /// Connection-level limits (header-read timeout, header bounds).
    pub connections: crate::server::ConnectionLimits,
    /// Request-level limits (in flight, per client, sizes).
    pub limits: Limits,
    /// Load balancers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Every declared setting as it was read, for the dump ([`Self::redacted`]).
    pub settings: Vec<(String, String)>,
}

impl CoreConfig {
    /// Reads and checks every setting.
    ///
    /// # Errors
    /// [`ConfigErrors`]: every invalid variable (and anything noted in `env` before).
    pub fn from_env(env: &Env) -> Result<Self, ConfigErrors> {
        env.settle(Self::read(env))
    }

    /// Reads every setting, noting each bad value in `env` ([`Env::reject`]) and going on with
    /// its default; [`Env::settle`] reports them. [`Self::from_env`] does both.
    ///
    /// # Errors
    /// [`ConfigError`] when a check across settings fails (it needs the others right).
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        // What this reads, for the dump (the `Env` may have read other binaries' settings).
        let before = env.effective().len();
        let mut proxy_url = env.setting(&settings::PROXY_URL);
        if !(proxy_url.starts_with("http://") || proxy_url.starts_with("https://")) {
            env.reject(ConfigError::new(
                settings::PROXY_URL.var,
                proxy_url,
                "must be an http:// or https:// URL",
            ));
            proxy_url = settings::PROXY_URL.default_value();
        }
        let mut database_url = env.setting(&settings::DATABASE_URL);
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("mysql://")) {
            env.reject(ConfigError::new(
                settings::DATABASE_URL.var,
                redact_url(&database_url),
                "must be a sqlite: or mysql:// URL",
            ));
            database_url = settings::DATABASE_URL.default_value();
        }
        let millis = |setting| Duration::from_millis(env.setting(setting));
        let mut config = Self {
            listen: env.setting(&settings::LISTEN),
            proxy_url: proxy_url.trim_end_matches('/').to_owned(),
            proxy_token: env
                .optional(&settings::PROXY_TOKEN)
                .map(Secret::new)
                .transpose()
                .map_err(|reason| {
                    ConfigError::new(settings::PROXY_TOKEN.var, "<redacted>", reason)
                })?,
            database_url: Secret::new(database_url.clone()).map_err(|reason| {
                ConfigError::new(
                    settings::DATABASE_URL.var,
                    redact_url(&database_url),
                    reason,
                )
            })?,
            upstream_timeout: millis(&settings::UPSTREAM_TIMEOUT_MS),
            request_timeout: millis(&settings::REQUEST_TIMEOUT_MS),
            shutdown_deadline: millis(&settings::SHUTDOWN_DEADLINE_MS),
            drain_delay: millis(&settings::DRAIN_DELAY_MS),
            db_max_connections: env.setting(&settings::DB_MAX_CONNECTIONS),
            potential_tables: env.optional(&settings::POTENTIAL_TABLES),
            prices: Prices {
                red_cube: env.setting(&settings::PRICE_RED_CUBE),
                black_cube: env.setting(&settings::PRICE_BLACK_CUBE),
                ..Prices::default()
            },
            valuation_method: env.setting(&settings::VALUATION_METHOD),
            starforce_costs: env.setting(&settings::STARFORCE_COSTS),
            tiers: tiers_from_env(env),
            pricing: PricingCaches {
                parsed_max_bytes: env.setting(&settings::PARSED_MAX_BYTES),
                valuation_max_bytes: env.setting(&settings::VALUATION_MAX_BYTES),
            },
            redis: redis_from_env(env)?,
            likes: likes_from_env(env)?,
            admin_keys_file: env.optional(&settings::ADMIN_KEYS_FILE),
            audit_refused_keep: env.setting(&settings::AUDIT_REFUSED_KEEP),
            connections: crate::server::ConnectionLimits {
                header_read_timeout: millis(&settings::HEADER_READ_TIMEOUT_MS),
                max_connections: env.setting(&settings::MAX_CONNECTIONS),
                ..crate::server::ConnectionLimits::default()
            },
            limits: limits_from_env(env),
            trusted_proxies: env
                .optional(&settings::TRUSTED_PROXIES)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse().map_err(|_| {
                                ConfigError::new(
                                    settings::TRUSTED_PROXIES.var,
                                    s,
                                    "must list IP addresses",
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
            settings: Vec::new(),
        };
        config.settings = env.effective().split_off(before);
        // The checks across settings would judge a refused value's default: only when every
        // value was good.
        if !env.noted() {
            config.check_budgets()?;
        }
        Ok(config)
    }

    /// The configuration as JSON for the admin API: every declared setting by its variable,
    /// as it was read (the default when unset), secrets shown only as whether they are set,
    /// URLs with their passwords replaced.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.settings
                .iter()
                .map(|(var, value)| (var.clone(), serde_json::Value::from(value.as_str())))
                .collect(),
        )
    }

    /// The timeouts must nest: a slow leader keeps its latch for the whole fetch, and a
    /// follower's wait plus its own fetch end before the request's deadline.
    fn check_budgets(&self) -> Result<(), ConfigError> {
        let millis = |d: Duration| d.as_millis().to_string();
        if self.tiers.latch_ttl <= self.upstream_timeout {
            return Err(ConfigError::new(
                settings::LATCH_TTL_MS.var,
                millis(self.tiers.latch_ttl),
                format!(
                    "must exceed {} ({} ms)",
                    settings::UPSTREAM_TIMEOUT_MS.var,
                    millis(self.upstream_timeout)
                ),
            ));
        }
        if self.tiers.latch_wait + self.upstream_timeout >= self.request_timeout {
            return Err(ConfigError::new(
                settings::LATCH_WAIT_MS.var,
                millis(self.tiers.latch_wait),
                format!(
                    "plus {} must stay below {} ({} ms)",
                    settings::UPSTREAM_TIMEOUT_MS.var,
                    settings::REQUEST_TIMEOUT_MS.var,
                    millis(self.request_timeout)
                ),
            ));
        }
        if self.drain_delay * 2 >= self.shutdown_deadline {
            return Err(ConfigError::new(
                settings::DRAIN_DELAY_MS.var,
                millis(self.drain_delay),
                format!(
                    "must be below half of {} ({} ms): in-flight requests have until half of \
                     it, and the rest saves likes",
                    settings::SHUTDOWN_DEADLINE_MS.var,
                    millis(self.shutdown_deadline)
                ),
            ));
        }
        Ok(())
    }
}

fn tiers_from_env(env: &Env) -> TierConfig {
    TierConfig {
        fresh_for: Duration::from_secs(env.setting(&settings::EQUIPMENT_FRESH_S)),
        l1_max_bytes: env.setting(&settings::L1_MAX_BYTES),
        raw_max_bytes: env.setting(&settings::RAW_MAX_BYTES),
        latch_ttl: Duration::from_millis(env.setting(&settings::LATCH_TTL_MS)),
        latch_wait: Duration::from_millis(env.setting(&settings::LATCH_WAIT_MS)),
        stale_after: Duration::from_millis(env.setting(&settings::STALE_AFTER_MS)),
    }
}

fn redis_from_env(env: &Env) -> Result<Option<RedisConfig>, ConfigError> {
    let sentinels: Vec<String> = env
        .optional(&settings::REDIS_SENTINELS)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for sentinel in &sentinels {
        let valid = sentinel
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(ConfigError::new(
                settings::REDIS_SENTINELS.var,
                sentinel.clone(),
                "must list host:port pairs, comma-separated",
            ));
        }
    }
    let url = match env.optional(&settings::REDIS_URL) {
        Some(url) => url,
        None if !sentinels.is_empty() => String::new(),
        None => return Ok(None),
    };
    if sentinels.is_empty() && !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::new(
            settings::REDIS_URL.var,
            redact_url(&url),
            "must be a redis:// or rediss:// URL",
        ));
    }
    Ok(Some(RedisConfig {
        url,
        op_timeout: Duration::from_millis(env.setting(&settings::REDIS_TIMEOUT_MS)),
        keep_for: Duration::from_secs(env.setting(&settings::EQUIPMENT_KEEP_S)),
        namespace: namespace_from_env(env)?,
        master: env.setting(&settings::REDIS_SENTINEL_MASTER),
        sentinels,
        min_replicas: env.setting(&settings::REDIS_MIN_REPLICAS),
    }))
}

fn namespace_from_env(env: &Env) -> Result<String, ConfigError> {
    let namespace = env.setting(&settings::REDIS_NAMESPACE);
    let valid = !namespace.is_empty()
        && namespace.len() <= 48
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        return Err(ConfigError::new(
            settings::REDIS_NAMESPACE.var,
            namespace,
            "must be 1-48 characters of A-Z a-z 0-9 _ - .",
        ));
    }
    Ok(namespace)
}

fn limits_from_env(env: &Env) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_in_flight: env.setting(&settings::MAX_IN_FLIGHT),
        client_rate: env.setting(&settings::CLIENT_RATE),
        client_burst: env.setting(&settings::CLIENT_BURST),
        client_miss_rate: env.setting(&settings::CLIENT_MISS_RATE),
        client_miss_burst: env.setting(&settings::CLIENT_MISS_BURST),
        client_ipv6_prefix: env.setting(&settings::CLIENT_IPV6_PREFIX),
        not_found_ttl: Duration::from_secs(env.setting(&settings::NOT_FOUND_TTL_S)),
        name_recheck: Duration::from_secs(env.setting(&settings::NAME_RECHECK_S)),
        pricing: PricingBounds {
            concurrency: env.derived(&settings::PRICING_CONCURRENCY, defaults.pricing.concurrency),
            queue: env.setting(&settings::PRICING_QUEUE),
            per_client: env.setting(&settings::PRICING_PER_CLIENT),
            wait: Duration::from_millis(env.setting(&settings::PRICING_WAIT_MS)),
        },
        max_body_bytes: env.setting(&settings::MAX_BODY_BYTES),
        ..defaults
    }
}

fn likes_from_env(env: &Env) -> Result<LikeConfig, ConfigError> {
    let millis = |setting| Duration::from_millis(env.setting(setting));
    Ok(LikeConfig {
        flush_every: millis(&settings::LIKES_FLUSH_MS),
        sync_every: millis(&settings::LIKES_SYNC_MS),
        watch_every: millis(&settings::LIKES_WATCH_MS),
        client_rate: env.setting(&settings::LIKES_RATE),
        client_burst: env.setting(&settings::LIKES_BURST),
        keys_per_client: env.setting(&settings::LIKES_KEYS_PER_CLIENT),
        backup_dir: env.setting(&settings::BACKUP_DIR),
        archive_max_bytes: env.setting(&settings::BACKUP_ARCHIVE_BYTES),
        namespace: namespace_from_env(env)?,
        lock_lease: millis(&settings::LOCK_LEASE_MS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded() {
        let config = CoreConfig::from_env(&Env::from_pairs::<_, &str, &str>([])).expect("valid");
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.database_url.expose(), settings::DATABASE_URL.default);
        assert_eq!(config.proxy_url, "http://127.0.0.1:8081");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            (settings::DATABASE_URL.var, "postgres://x"),
            (settings::PROXY_URL.var, "127.0.0.1:8081"),
            (settings::LISTEN.var, "nowhere"),
            (settings::REQUEST_TIMEOUT_MS.var, "0"),
            (settings::DB_MAX_CONNECTIONS.var, "0"),
            (settings::PRICE_RED_CUBE.var, "cheap"),
            (settings::VALUATION_METHOD.var, "bogus"),
        ] {
            let errors = CoreConfig::from_env(&Env::from_pairs([(var, value)])).expect_err(var);
            assert_eq!(errors.0.len(), 1, "{errors}");
            assert_eq!(errors.0[0].var, var);
        }
    }

    #[test]
    fn every_invalid_variable_is_reported_at_once() {
        let bad = [
            (settings::DATABASE_URL.var, "postgres://x"),
            (settings::PROXY_URL.var, "127.0.0.1:8081"),
            (settings::LISTEN.var, "nowhere"),
            (settings::REQUEST_TIMEOUT_MS.var, "0"),
            (settings::PRICE_RED_CUBE.var, "cheap"),
            (settings::LIKES_RATE.var, "fast"),
        ];
        let errors = CoreConfig::from_env(&Env::from_pairs(bad)).expect_err("six bad values");
        let mut vars: Vec<&str> = errors.0.iter().map(|e| e.var.as_str()).collect();
        vars.sort_unstable();
        let mut expected: Vec<&str> = bad.iter().map(|(var, _)| *var).collect();
        expected.sort_unstable();
        assert_eq!(vars, expected, "{errors}");
    }

    #[test]
    fn the_config_dump_shows_no_secret() {
        let config = CoreConfig::from_env(&Env::from_pairs([
            (
                settings::DATABASE_URL.var,
                "mysql://maple:db-pass-123@db:3306/maple",
            ),
            (
                settings::REDIS_URL.var,
                "redis://default:redis-pass-456@redis:6379",
            ),
            (settings::PROXY_TOKEN.var, "proxy-token-7890123456"),
        ]))
        .expect("valid");
        let dump = config.redacted().to_string();
        for secret in ["db-pass-123", "redis-pass-456", "proxy-token-7890123456"] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
        assert!(dump.contains("mysql://maple:***@db:3306/maple"), "{dump}");
        assert!(dump.contains("\"MAPLE_PROXY_TOKEN\":\"<set>\""), "{dump}");
        assert!(
            dump.contains("\"MAPLE_CORE_LISTEN\":\"127.0.0.1:8080\""),
            "{dump}"
        );
    }

    /// The dump is core's settings only, though the same `Env` read others first (the
    /// telemetry's, in the launcher the proxy's); and a refused value's default is not judged by
    /// the checks across settings.
    #[test]
    fn the_dump_holds_cores_settings_only_and_checks_wait_for_good_values() {
        let env = Env::from_pairs([("MAPLE_LOG_FORMAT", "text")]);
        maple_common::telemetry::TelemetryConfig::from_env(
            &env,
            maple_common::telemetry::LogFormat::Json,
        );
        let dump = CoreConfig::from_env(&env).expect("valid").redacted();
        assert!(dump.get("MAPLE_LOG_FORMAT").is_none(), "{dump}");
        assert_eq!(dump["MAPLE_CORE_LISTEN"], "127.0.0.1:8080");
        let errors = CoreConfig::from_env(&Env::from_pairs([
            (settings::REQUEST_TIMEOUT_MS.var, "abc"),
            (settings::UPSTREAM_TIMEOUT_MS.var, "8000"),
        ]))
        .expect_err("a bad value");
        let vars: Vec<&str> = errors.0.iter().map(|e| e.var.as_str()).collect();
        assert_eq!(vars, [settings::REQUEST_TIMEOUT_MS.var], "{errors}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("mysql://maple:s3cret@db:3306/maple"),
            "mysql://maple:***@db:3306/maple"
        );
        assert_eq!(redact_url("sqlite://var/x.db"), "sqlite://var/x.db");
        let err = CoreConfig::from_env(&Env::from_pairs([(
            settings::DATABASE_URL.var,
            "pg://u:pw@h/d",
        )]))
        .expect_err("invalid");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
