//! Core's configuration, read once from the environment.
//!
//! Rule: validated here, trusted everywhere else.

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

pub const LISTEN: &str = "MAPLE_CORE_LISTEN";
pub const PROXY_URL: &str = "MAPLE_PROXY_URL";
/// Bearer token core presents to the proxy when the proxy requires client tokens.
pub const PROXY_TOKEN: &str = "MAPLE_PROXY_TOKEN";
pub const DATABASE_URL: &str = "DATABASE_URL";
pub const UPSTREAM_TIMEOUT_MS: &str = "MAPLE_CORE_UPSTREAM_TIMEOUT_MS";
pub const REQUEST_TIMEOUT_MS: &str = "MAPLE_CORE_REQUEST_TIMEOUT_MS";
pub const SHUTDOWN_DEADLINE_MS: &str = "MAPLE_CORE_SHUTDOWN_DEADLINE_MS";
/// How long a draining instance keeps accepting (readiness 503) before it stops.
pub const DRAIN_DELAY_MS: &str = "MAPLE_CORE_DRAIN_DELAY_MS";
pub const DB_MAX_CONNECTIONS: &str = "MAPLE_DB_MAX_CONNECTIONS";
pub const POTENTIAL_TABLES: &str = "MAPLE_POTENTIAL_TABLES";
pub const PRICE_RED_CUBE: &str = "MAPLE_PRICE_RED_CUBE";
pub const PRICE_BLACK_CUBE: &str = "MAPLE_PRICE_BLACK_CUBE";
pub const VALUATION_METHOD: &str = "MAPLE_VALUATION_METHOD";
/// The 0–14★ star-force cost table: `kms` (default) or `calculator`.
pub const STARFORCE_COSTS: &str = "MAPLE_STARFORCE_COSTS";
/// Redis for the equipment L2 and latch, the likes and the locks; unset in embedded mode.
pub const REDIS_URL: &str = "REDIS_URL";
pub const REDIS_TIMEOUT_MS: &str = "MAPLE_CORE_REDIS_TIMEOUT_MS";
/// Sentinels (`host:port,…`) that name the Redis primary; instead of `REDIS_URL`.
pub const REDIS_SENTINELS: &str = "REDIS_SENTINELS";
pub const REDIS_SENTINEL_MASTER: &str = "REDIS_SENTINEL_MASTER";
/// Replicas that must hold a like batch (`WAIT`) before it is acknowledged.
pub const REDIS_MIN_REPLICAS: &str = "MAPLE_CORE_REDIS_MIN_REPLICAS";
pub const EQUIPMENT_FRESH_S: &str = "MAPLE_CORE_EQUIPMENT_FRESH_S";
pub const EQUIPMENT_KEEP_S: &str = "MAPLE_CORE_EQUIPMENT_KEEP_S";
pub const L1_MAX_BYTES: &str = "MAPLE_CORE_L1_MAX_BYTES";
pub const RAW_MAX_BYTES: &str = "MAPLE_CORE_RAW_MAX_BYTES";
/// Bound on the parsed equipment forms kept for pricing, in bytes.
pub const PARSED_MAX_BYTES: &str = "MAPLE_CORE_PARSED_MAX_BYTES";
/// Bound on the valuation answers kept ready to send, in bytes.
pub const VALUATION_MAX_BYTES: &str = "MAPLE_CORE_VALUATION_MAX_BYTES";
pub const LATCH_TTL_MS: &str = "MAPLE_CORE_LATCH_TTL_MS";
pub const LATCH_WAIT_MS: &str = "MAPLE_CORE_LATCH_WAIT_MS";
/// How long a request with a copy at hand waits for a refresh before the copy answers stale.
pub const STALE_AFTER_MS: &str = "MAPLE_CORE_STALE_AFTER_MS";
/// Prefix of every Redis key (instances of one deployment share it).
pub const REDIS_NAMESPACE: &str = "MAPLE_CORE_REDIS_NAMESPACE";
pub const LIKES_FLUSH_MS: &str = "MAPLE_CORE_LIKES_FLUSH_MS";
pub const LIKES_SYNC_MS: &str = "MAPLE_CORE_LIKES_SYNC_MS";
pub const LIKES_WATCH_MS: &str = "MAPLE_CORE_LIKES_WATCH_MS";
pub const LIKES_RATE: &str = "MAPLE_CORE_LIKES_RATE";
pub const LIKES_BURST: &str = "MAPLE_CORE_LIKES_BURST";
/// Keyed likes one client may send in 24 h.
pub const LIKES_KEYS_PER_CLIENT: &str = "MAPLE_CORE_LIKES_KEYS_PER_CLIENT";
pub const BACKUP_DIR: &str = "MAPLE_CORE_BACKUP_DIR";
pub const BACKUP_ARCHIVE_BYTES: &str = "MAPLE_CORE_BACKUP_ARCHIVE_BYTES";
pub const LOCK_LEASE_MS: &str = "MAPLE_CORE_LOCK_LEASE_MS";
/// The admin API keys file (JSON, hashed keys; re-read when it changes).
pub const ADMIN_KEYS_FILE: &str = "MAPLE_CORE_ADMIN_KEYS_FILE";
/// Refused admin attempts (401, 403) the audit log keeps; older ones are pruned.
pub const AUDIT_REFUSED_KEEP: &str = "MAPLE_CORE_AUDIT_REFUSED_KEEP";
pub const HEADER_READ_TIMEOUT_MS: &str = "MAPLE_CORE_HEADER_READ_TIMEOUT_MS";
/// Most connections open at once (beyond it, new ones wait in the backlog).
pub const MAX_CONNECTIONS: &str = "MAPLE_CORE_MAX_CONNECTIONS";
pub const MAX_IN_FLIGHT: &str = "MAPLE_CORE_MAX_IN_FLIGHT";
pub const CLIENT_RATE: &str = "MAPLE_CORE_CLIENT_RATE";
pub const CLIENT_BURST: &str = "MAPLE_CORE_CLIENT_BURST";
/// Name lookups per second per client that miss every cache (each costs a Nexon call).
pub const CLIENT_MISS_RATE: &str = "MAPLE_CORE_CLIENT_MISS_RATE";
pub const CLIENT_MISS_BURST: &str = "MAPLE_CORE_CLIENT_MISS_BURST";
/// IPv6 clients share a per-client limit per prefix of this length.
pub const CLIENT_IPV6_PREFIX: &str = "MAPLE_CORE_CLIENT_IPV6_PREFIX";
/// Pricing work no cache answers: computations at once, places in line, per client, the wait.
pub const PRICING_CONCURRENCY: &str = "MAPLE_CORE_PRICING_CONCURRENCY";
pub const PRICING_QUEUE: &str = "MAPLE_CORE_PRICING_QUEUE";
pub const PRICING_PER_CLIENT: &str = "MAPLE_CORE_PRICING_PER_CLIENT";
pub const PRICING_WAIT_MS: &str = "MAPLE_CORE_PRICING_WAIT_MS";
/// How long a name Nexon does not know is answered 404 without asking again.
pub const NOT_FOUND_TTL_S: &str = "MAPLE_CORE_NOT_FOUND_TTL_S";
/// How old a stored name → ocid may grow before Nexon is asked again (renames).
pub const NAME_RECHECK_S: &str = "MAPLE_CORE_NAME_RECHECK_S";
pub const MAX_BODY_BYTES: &str = "MAPLE_CORE_MAX_BODY_BYTES";
/// Addresses of load balancers whose `X-Forwarded-For` is believed (comma-separated).
pub const TRUSTED_PROXIES: &str = "MAPLE_CORE_TRUSTED_PROXIES";

/// The embedded default: a SQLite file under `var/`, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/maple.db";

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
            max_in_flight: 1024,
            client_rate: 200.0,
            client_burst: 400.0,
            client_miss_rate: 20.0,
            client_miss_burst: 40.0,
            client_ipv6_prefix: 64,
            not_found_ttl: Duration::from_secs(30),
            name_recheck: Duration::from_secs(6 * 3600),
            pricing: PricingBounds::default(),
            max_body_bytes: 64 * 1024,
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
            concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            queue: 64,
            per_client: 2,
            wait: Duration::from_secs(2),
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
            parsed_max_bytes: 128 << 20,
            valuation_max_bytes: 128 << 20,
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
        const DEFAULT_PROXY_URL: &str = "http://127.0.0.1:8081";
        let mut proxy_url = env.string_or(PROXY_URL, DEFAULT_PROXY_URL);
        if !(proxy_url.starts_with("http://") || proxy_url.starts_with("https://")) {
            env.reject(ConfigError::new(
                PROXY_URL,
                proxy_url,
                "must be an http:// or https:// URL",
            ));
            proxy_url = DEFAULT_PROXY_URL.to_owned();
        }
        let mut database_url = env.string_or(DATABASE_URL, DEFAULT_DATABASE_URL);
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("mysql://")) {
            env.reject(ConfigError::new(
                DATABASE_URL,
                redact_url(&database_url),
                "must be a sqlite: or mysql:// URL",
            ));
            database_url = DEFAULT_DATABASE_URL.to_owned();
        }
        let db_max_connections = env.parse_within(DB_MAX_CONNECTIONS, 10_u32, 1..=1000);
        let defaults = Prices::default();
        let config = Self {
            listen: env.parse_or(LISTEN, SocketAddr::from(([127, 0, 0, 1], 8080))),
            proxy_url: proxy_url.trim_end_matches('/').to_owned(),
            proxy_token: env
                .get(PROXY_TOKEN)
                .map(Secret::new)
                .transpose()
                .map_err(|reason| ConfigError::new(PROXY_TOKEN, "<redacted>", reason))?,
            database_url: Secret::new(database_url.clone()).map_err(|reason| {
                ConfigError::new(DATABASE_URL, redact_url(&database_url), reason)
            })?,
            upstream_timeout: env.millis_or(UPSTREAM_TIMEOUT_MS, Duration::from_secs(5)),
            request_timeout: env.millis_or(REQUEST_TIMEOUT_MS, Duration::from_secs(10)),
            shutdown_deadline: env.millis_or(SHUTDOWN_DEADLINE_MS, Duration::from_secs(15)),
            drain_delay: Duration::from_millis(env.parse_within(DRAIN_DELAY_MS, 0, 0..=600_000)),
            db_max_connections,
            potential_tables: env.get(POTENTIAL_TABLES).map(PathBuf::from),
            prices: Prices {
                red_cube: env.parse_or(PRICE_RED_CUBE, defaults.red_cube),
                black_cube: env.parse_or(PRICE_BLACK_CUBE, defaults.black_cube),
                ..defaults
            },
            valuation_method: env.parse_or(VALUATION_METHOD, Method::Meso),
            starforce_costs: env.parse_or(STARFORCE_COSTS, CostTable::default()),
            tiers: tiers_from_env(env)?,
            pricing: PricingCaches {
                parsed_max_bytes: env.parse_within(
                    PARSED_MAX_BYTES,
                    PricingCaches::default().parsed_max_bytes,
                    0..=(64 << 30),
                ),
                valuation_max_bytes: env.parse_within(
                    VALUATION_MAX_BYTES,
                    PricingCaches::default().valuation_max_bytes,
                    0..=(64 << 30),
                ),
            },
            redis: redis_from_env(env)?,
            likes: likes_from_env(env)?,
            admin_keys_file: env.get(ADMIN_KEYS_FILE).map(PathBuf::from),
            audit_refused_keep: env.parse_within(AUDIT_REFUSED_KEEP, 10_000_u64, 0..=100_000_000),
            connections: crate::server::ConnectionLimits {
                header_read_timeout: env.millis_or(
                    HEADER_READ_TIMEOUT_MS,
                    crate::server::ConnectionLimits::default().header_read_timeout,
                ),
                max_connections: env.parse_within(
                    MAX_CONNECTIONS,
                    crate::server::ConnectionLimits::default().max_connections,
                    1..=1_000_000,
                ),
                ..crate::server::ConnectionLimits::default()
            },
            limits: limits_from_env(env)?,
            trusted_proxies: env
                .get(TRUSTED_PROXIES)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse().map_err(|_| {
                                ConfigError::new(TRUSTED_PROXIES, s, "must list IP addresses")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
        };
        config.check_budgets()?;
        Ok(config)
    }

    /// The configuration as JSON for the admin API: every setting, secrets shown only as
    /// whether they are set, URLs with their passwords replaced.
    pub fn redacted(&self) -> serde_json::Value {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        serde_json::json!({
            "listen": self.listen.to_string(),
            "proxy_url": self.proxy_url,
            "proxy_token": if self.proxy_token.is_some() { "<set>" } else { "<unset>" },
            "database_url": redact_url(self.database_url.expose()),
            "db_max_connections": self.db_max_connections,
            "upstream_timeout_ms": millis(self.upstream_timeout),
            "request_timeout_ms": millis(self.request_timeout),
            "shutdown_deadline_ms": millis(self.shutdown_deadline),
            "drain_delay_ms": millis(self.drain_delay),
            "potential_tables": self.potential_tables.as_ref().map_or_else(
                || "built-in (data/potential_rates.csv)".to_owned(),
                |path| path.display().to_string(),
            ),
            "valuation_method": format!("{:?}", self.valuation_method),
            "starforce_costs": self.starforce_costs.as_str(),
            "prices": { "red_cube": self.prices.red_cube, "black_cube": self.prices.black_cube },
            "tiers": {
                "fresh_s": self.tiers.fresh_for.as_secs(),
                "l1_max_bytes": self.tiers.l1_max_bytes,
                "raw_max_bytes": self.tiers.raw_max_bytes,
                "latch_ttl_ms": millis(self.tiers.latch_ttl),
                "latch_wait_ms": millis(self.tiers.latch_wait),
                "stale_after_ms": millis(self.tiers.stale_after),
            },
            "pricing": {
                "parsed_max_bytes": self.pricing.parsed_max_bytes,
                "valuation_max_bytes": self.pricing.valuation_max_bytes,
            },
            "redis": self.redis.as_ref().map(|r| serde_json::json!({
                "url": redact_url(&r.url),
                "sentinels": r.sentinels,
                "master": r.master,
                "min_replicas": r.min_replicas,
                "op_timeout_ms": millis(r.op_timeout),
                "keep_s": r.keep_for.as_secs(),
                "namespace": r.namespace,
            })),
            "likes": {
                "flush_ms": millis(self.likes.flush_every),
                "sync_ms": millis(self.likes.sync_every),
                "watch_ms": millis(self.likes.watch_every),
                "client_rate": self.likes.client_rate,
                "client_burst": self.likes.client_burst,
                "keys_per_client": self.likes.keys_per_client,
                "backup_dir": self.likes.backup_dir.display().to_string(),
                "backup_archive_bytes": self.likes.archive_max_bytes,
                "lock_lease_ms": millis(self.likes.lock_lease),
            },
            "admin_keys_file": self.admin_keys_file.as_ref().map(|p| p.display().to_string()),
            "audit_refused_keep": self.audit_refused_keep,
            "connections": {
                "header_read_timeout_ms": millis(self.connections.header_read_timeout),
                "max_headers": self.connections.max_headers,
                "max_buf_size": self.connections.max_buf_size,
                "max_connections": self.connections.max_connections,
            },
            "trusted_proxies": self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "limits": {
                "max_in_flight": self.limits.max_in_flight,
                "client_rate": self.limits.client_rate,
                "client_burst": self.limits.client_burst,
                "client_miss_rate": self.limits.client_miss_rate,
                "client_miss_burst": self.limits.client_miss_burst,
                "client_ipv6_prefix": self.limits.client_ipv6_prefix,
                "not_found_ttl_s": self.limits.not_found_ttl.as_secs(),
                "name_recheck_s": self.limits.name_recheck.as_secs(),
                "pricing": {
                    "concurrency": self.limits.pricing.concurrency,
                    "queue": self.limits.pricing.queue,
                    "per_client": self.limits.pricing.per_client,
                    "wait_ms": millis(self.limits.pricing.wait),
                },
                "max_body_bytes": self.limits.max_body_bytes,
                "max_uri_bytes": self.limits.max_uri_bytes,
                "max_header_bytes": self.limits.max_header_bytes,
            },
        })
    }

    /// The timeouts must nest: a slow leader keeps its latch for the whole fetch, and a
    /// follower's wait plus its own fetch end before the request's deadline.
    fn check_budgets(&self) -> Result<(), ConfigError> {
        let millis = |d: Duration| d.as_millis().to_string();
        if self.tiers.latch_ttl <= self.upstream_timeout {
            return Err(ConfigError::new(
                LATCH_TTL_MS,
                millis(self.tiers.latch_ttl),
                format!(
                    "must exceed {UPSTREAM_TIMEOUT_MS} ({} ms)",
                    millis(self.upstream_timeout)
                ),
            ));
        }
        if self.tiers.latch_wait + self.upstream_timeout >= self.request_timeout {
            return Err(ConfigError::new(
                LATCH_WAIT_MS,
                millis(self.tiers.latch_wait),
                format!(
                    "plus {UPSTREAM_TIMEOUT_MS} must stay below {REQUEST_TIMEOUT_MS} ({} ms)",
                    millis(self.request_timeout)
                ),
            ));
        }
        if self.drain_delay * 2 >= self.shutdown_deadline {
            return Err(ConfigError::new(
                DRAIN_DELAY_MS,
                millis(self.drain_delay),
                format!(
                    "must be below half of {SHUTDOWN_DEADLINE_MS} ({} ms): in-flight requests have until half of it, and the rest saves likes",
                    millis(self.shutdown_deadline)
                ),
            ));
        }
        Ok(())
    }
}

fn tiers_from_env(env: &Env) -> Result<TierConfig, ConfigError> {
    let defaults = TierConfig::default();
    Ok(TierConfig {
        fresh_for: Duration::from_secs(env.parse_within(
            EQUIPMENT_FRESH_S,
            defaults.fresh_for.as_secs(),
            0..=7 * 24 * 3600,
        )),
        l1_max_bytes: env.parse_within(L1_MAX_BYTES, defaults.l1_max_bytes, (1 << 20)..=(64 << 30)),
        raw_max_bytes: env.parse_within(RAW_MAX_BYTES, defaults.raw_max_bytes, 0..=(64 << 30)),
        latch_ttl: env.millis_or(LATCH_TTL_MS, defaults.latch_ttl),
        latch_wait: env.millis_or(LATCH_WAIT_MS, defaults.latch_wait),
        stale_after: Duration::from_millis(env.parse_within(
            STALE_AFTER_MS,
            u64::try_from(defaults.stale_after.as_millis()).unwrap_or(u64::MAX),
            0..=60_000,
        )),
    })
}

fn redis_from_env(env: &Env) -> Result<Option<RedisConfig>, ConfigError> {
    let sentinels: Vec<String> = env
        .get(REDIS_SENTINELS)
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
                REDIS_SENTINELS,
                sentinel.clone(),
                "must list host:port pairs, comma-separated",
            ));
        }
    }
    let url = match env.get(REDIS_URL) {
        Some(url) => url,
        None if !sentinels.is_empty() => String::new(),
        None => return Ok(None),
    };
    if sentinels.is_empty() && !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::new(
            REDIS_URL,
            redact_url(&url),
            "must be a redis:// or rediss:// URL",
        ));
    }
    Ok(Some(RedisConfig {
        url,
        op_timeout: env.millis_or(REDIS_TIMEOUT_MS, Duration::from_millis(250)),
        keep_for: Duration::from_secs(env.parse_within(
            EQUIPMENT_KEEP_S,
            24 * 3600,
            60..=30 * 24 * 3600,
        )),
        namespace: namespace_from_env(env)?,
        master: env.string_or(REDIS_SENTINEL_MASTER, "maple"),
        sentinels,
        min_replicas: env.parse_within(REDIS_MIN_REPLICAS, 0, 0..=16),
    }))
}

fn namespace_from_env(env: &Env) -> Result<String, ConfigError> {
    let namespace = env.string_or(REDIS_NAMESPACE, "maple");
    let valid = !namespace.is_empty()
        && namespace.len() <= 48
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        return Err(ConfigError::new(
            REDIS_NAMESPACE,
            namespace,
            "must be 1-48 characters of A-Z a-z 0-9 _ - .",
        ));
    }
    Ok(namespace)
}

fn limits_from_env(env: &Env) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    Ok(Limits {
        max_in_flight: env.parse_within(MAX_IN_FLIGHT, defaults.max_in_flight, 1..=1_000_000),
        client_rate: env.parse_within(CLIENT_RATE, defaults.client_rate, 0.0..=1_000_000.0),
        client_burst: env.parse_within(CLIENT_BURST, defaults.client_burst, 1.0..=1_000_000.0),
        client_miss_rate: env.parse_within(
            CLIENT_MISS_RATE,
            defaults.client_miss_rate,
            0.0..=1_000_000.0,
        ),
        client_miss_burst: env.parse_within(
            CLIENT_MISS_BURST,
            defaults.client_miss_burst,
            1.0..=1_000_000.0,
        ),
        client_ipv6_prefix: env.parse_within(
            CLIENT_IPV6_PREFIX,
            defaults.client_ipv6_prefix,
            16..=128,
        ),
        not_found_ttl: Duration::from_secs(env.parse_within(
            NOT_FOUND_TTL_S,
            defaults.not_found_ttl.as_secs(),
            0..=3600,
        )),
        name_recheck: Duration::from_secs(env.parse_within(
            NAME_RECHECK_S,
            defaults.name_recheck.as_secs(),
            1..=30 * 24 * 3600,
        )),
        pricing: PricingBounds {
            concurrency: env.parse_within(
                PRICING_CONCURRENCY,
                defaults.pricing.concurrency,
                1..=1024,
            ),
            queue: env.parse_within(PRICING_QUEUE, defaults.pricing.queue, 0..=100_000),
            per_client: env.parse_within(
                PRICING_PER_CLIENT,
                defaults.pricing.per_client,
                0..=10_000,
            ),
            wait: Duration::from_millis(env.parse_within(
                PRICING_WAIT_MS,
                u64::try_from(defaults.pricing.wait.as_millis()).unwrap_or(u64::MAX),
                1..=600_000,
            )),
        },
        max_body_bytes: env.parse_within(
            MAX_BODY_BYTES,
            defaults.max_body_bytes,
            1024..=(16 << 20),
        ),
        ..defaults
    })
}

fn likes_from_env(env: &Env) -> Result<LikeConfig, ConfigError> {
    let defaults = LikeConfig::default();
    let flush_every = env.millis_or(LIKES_FLUSH_MS, defaults.flush_every);
    if flush_every > Duration::from_secs(1) {
        return Err(ConfigError::new(
            LIKES_FLUSH_MS,
            flush_every.as_millis().to_string(),
            "must be at most 1000 (a like is answered only after its flush)",
        ));
    }
    let lock_lease = env.millis_or(LOCK_LEASE_MS, defaults.lock_lease);
    if lock_lease < Duration::from_millis(300) {
        return Err(ConfigError::new(
            LOCK_LEASE_MS,
            lock_lease.as_millis().to_string(),
            "must be at least 300 (renewed every third of it)",
        ));
    }
    Ok(LikeConfig {
        flush_every,
        sync_every: env.millis_or(LIKES_SYNC_MS, defaults.sync_every),
        watch_every: env.millis_or(LIKES_WATCH_MS, defaults.watch_every),
        client_rate: env.parse_within(LIKES_RATE, defaults.client_rate, 0.0..=1_000_000.0),
        client_burst: env.parse_within(LIKES_BURST, defaults.client_burst, 1.0..=1_000_000.0),
        keys_per_client: env.parse_within(
            LIKES_KEYS_PER_CLIENT,
            defaults.keys_per_client,
            0..=100_000_000,
        ),
        backup_dir: PathBuf::from(
            env.string_or(BACKUP_DIR, &defaults.backup_dir.display().to_string()),
        ),
        archive_max_bytes: env.parse_within(
            BACKUP_ARCHIVE_BYTES,
            defaults.archive_max_bytes,
            0..=(1 << 40),
        ),
        namespace: namespace_from_env(env)?,
        lock_lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded() {
        let config = CoreConfig::from_env(&Env::from_pairs::<_, &str, &str>([])).expect("valid");
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.proxy_url, "http://127.0.0.1:8081");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            (DATABASE_URL, "postgres://x"),
            (PROXY_URL, "127.0.0.1:8081"),
            (LISTEN, "nowhere"),
            (REQUEST_TIMEOUT_MS, "0"),
            (DB_MAX_CONNECTIONS, "0"),
            (PRICE_RED_CUBE, "cheap"),
            (VALUATION_METHOD, "bogus"),
        ] {
            let errors = CoreConfig::from_env(&Env::from_pairs([(var, value)])).expect_err(var);
            assert_eq!(errors.0.len(), 1, "{errors}");
            assert_eq!(errors.0[0].var, var);
        }
    }

    #[test]
    fn every_invalid_variable_is_reported_at_once() {
        let bad = [
            (DATABASE_URL, "postgres://x"),
            (PROXY_URL, "127.0.0.1:8081"),
            (LISTEN, "nowhere"),
            (REQUEST_TIMEOUT_MS, "0"),
            (PRICE_RED_CUBE, "cheap"),
            (LIKES_RATE, "fast"),
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
            (DATABASE_URL, "mysql://maple:db-pass-123@db:3306/maple"),
            (REDIS_URL, "redis://default:redis-pass-456@redis:6379"),
            (PROXY_TOKEN, "proxy-token-7890123456"),
        ]))
        .expect("valid");
        let dump = config.redacted().to_string();
        for secret in ["db-pass-123", "redis-pass-456", "proxy-token-7890123456"] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
        assert!(dump.contains("mysql://maple:***@db:3306/maple"), "{dump}");
        assert!(dump.contains("\"proxy_token\":\"<set>\""), "{dump}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("mysql://maple:s3cret@db:3306/maple"),
            "mysql://maple:***@db:3306/maple"
        );
        assert_eq!(redact_url("sqlite://var/x.db"), "sqlite://var/x.db");
        let err = CoreConfig::from_env(&Env::from_pairs([(DATABASE_URL, "pg://u:pw@h/d")]))
            .expect_err("invalid");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
