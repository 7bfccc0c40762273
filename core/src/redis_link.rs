//! The link to Redis that the equipment L2, the likes and the locks share: the connection
//! (one URL, or the primary found through Sentinel), a circuit breaker **per use**, and the
//! leases (`SET NX PX`, renew and release only while held) that latches and locks are made of.
//!
//! Rules: every operation has a timeout and sits behind its use's breaker, so a slow or dead
//! Redis costs a request at most one timeout before that use stops asking; after the open
//! period a probe finds out whether Redis is back. The uses do not share a breaker: slow
//! 350 KB equipment reads cannot push likes onto the database or cost the sync leader its
//! lock. The connection manager connects lazily and reconnects by itself, so core starts
//! without Redis and picks it up when it appears. Writes that must wait for replicas (`WAIT`,
//! which blocks its connection) run on a connection of their own ([`RedisLink::run_replicated`]),
//! so the wait holds up no read, latch poll or lease renewal. A leaf: it knows no caller's data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maple_common::breaker::{Breaker, BreakerConfig, Outcome};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::sentinel::{SentinelClient, SentinelServerType};

use crate::metrics::CoreMetrics;

/// Deletes a lease (a latch, a lock) only if this holder still has it: `KEYS[1]`; `ARGV` token.
const RELEASE_IF_HELD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Redis settings.
#[derive(Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Per-operation timeout.
    pub op_timeout: Duration,
    /// How long entries are kept (the stale window: older entries are useless even as stale).
    pub keep_for: Duration,
    /// Prefix of every key (`maple`): deployments (or tests) sharing one Redis stay apart.
    pub namespace: String,
    /// Sentinels (`host:port`) to ask for the primary of `master`; empty: `url` directly.
    pub sentinels: Vec<String>,
    pub master: String,
    /// Replicas that must hold a like batch before it counts as stored (`WAIT`); 0: the
    /// primary alone (a failover may then lose the last acknowledged likes).
    pub min_replicas: u32,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &maple_common::config::redact_url(&self.url))
            .field("op_timeout", &self.op_timeout)
            .field("keep_for", &self.keep_for)
            .field("namespace", &self.namespace)
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("min_replicas", &self.min_replicas)
            .finish()
    }
}

/// How core reaches Redis: one URL (the connection manager reconnects by itself), or through
/// Sentinel (the primary is looked up, and looked up again after any failure).
enum Link {
    Direct(ConnectionManager),
    Sentinel(Box<SentinelLink>),
}

struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    current: std::sync::Mutex<Option<MultiplexedConnection>>,
    config: redis::AsyncConnectionConfig,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct(_) => "Link::Direct",
            Self::Sentinel(_) => "Link::Sentinel",
        })
    }
}

impl Link {
    /// A link to the primary described by `config` (nothing is connected yet).
    fn open(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        if config.sentinels.is_empty() {
            let client = redis::Client::open(config.url.as_str())?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.op_timeout.saturating_mul(4)))
                .set_response_timeout(Some(config.op_timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            return Ok(Self::Direct(ConnectionManager::new_lazy_with_config(
                client, manager,
            )?));
        }
        let sentinels: Vec<String> = config
            .sentinels
            .iter()
            .map(|s| format!("redis://{s}"))
            .collect();
        let client = SentinelClient::build(
            sentinels,
            config.master.clone(),
            None,
            SentinelServerType::Master,
        )?;
        Ok(Self::Sentinel(Box::new(SentinelLink {
            client: tokio::sync::Mutex::new(client),
            current: std::sync::Mutex::new(None),
            config: redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.op_timeout))
                .set_response_timeout(Some(config.op_timeout)),
        })))
    }

    async fn connection(&self) -> Result<Conn, redis::RedisError> {
        match self {
            Self::Direct(manager) => Ok(Conn::Manager(manager.clone())),
            Self::Sentinel(link) => {
                let cached = link
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Some(connection) = cached {
                    return Ok(Conn::Multiplexed(connection));
                }
                let mut client = link.client.lock().await;
                let connection = client
                    .async_get_client()
                    .await?
                    .get_multiplexed_async_connection_with_config(&link.config)
                    .await?;
                drop(client);
                tracing::info!("redis primary resolved through sentinel");
                *link
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(connection.clone());
                Ok(Conn::Multiplexed(connection))
            }
        }
    }

    fn forget(&self) {
        if let Self::Sentinel(link) = self {
            *link
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
}

/// A connection to the primary, whichever way it was reached.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "the connections have no Debug"
)]
pub enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Multiplexed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Multiplexed(c) => c.get_db(),
        }
    }
}

/// What a [`RedisLink`] handle is used for: each use has its own breaker and its own labels
/// on `maple_core_redis_ops_total` and `maple_core_redis_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedisUse {
    /// The equipment L2 and the fetch latch.
    Equipment,
    /// Like batches, their queue and the sync.
    Likes,
    /// Named locks' leases and their renewal.
    Locks,
    /// Reading Redis's own state (its memory, for the metrics).
    Memory,
}

impl RedisUse {
    /// The `use` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Equipment => "equipment",
            Self::Likes => "likes",
            Self::Locks => "locks",
            Self::Memory => "memory",
        }
    }
}

/// A handle on Redis for one [`RedisUse`]: the shared connection, this use's breaker. Cheap to
/// clone (clones share the breaker).
#[derive(Debug, Clone)]
pub struct RedisLink {
    shared: Arc<Shared>,
    breaker: Arc<Breaker>,
    purpose: RedisUse,
}

/// What every use shares: the connection and the lease scripts.
#[derive(Debug)]
struct Shared {
    link: Link,
    /// The connection for writes followed by `WAIT` (only when replicas are awaited).
    replicated: Option<Link>,
    config: RedisConfig,
    metrics: CoreMetrics,
    release_script: redis::Script,
    renew_script: redis::Script,
}

/// Each use's breaker: opens when half of the last 10 calls (at least 3) failed, probes after
/// 5 s.
fn use_breaker() -> Breaker {
    Breaker::new(BreakerConfig {
        window: 10,
        minimum_calls: 3,
        failure_rate_pct: 50,
        open_for: Duration::from_secs(5),
        probes: 1,
        slow_call: None,
    })
}

/// Why an operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The breaker is open: Redis was failing recently.
    BreakerOpen,
    /// This call failed or timed out (it may have been carried out: its answer was lost).
    Failed,
    /// No connection could be made: nothing was sent.
    Unreachable,
}

/// Extends a lease only if this holder still has it: `KEYS[1]`; `ARGV` token, TTL ms.
const RENEW_IF_HELD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// A lease's length in whole milliseconds, at least one (PX 0 is an error).
pub fn lease_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisLink {
    /// `{namespace}:{suffix}`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.shared.config.namespace)
    }

    /// This use's breaker, for the admin API.
    pub fn breaker(&self) -> maple_common::breaker::Snapshot {
        self.breaker.snapshot(Instant::now())
    }

    /// A handle for another use on the same connection, with a breaker of its own.
    #[must_use]
    pub fn for_use(&self, purpose: RedisUse) -> Self {
        Self::handle(Arc::clone(&self.shared), purpose)
    }

    /// A handle for `purpose` on `shared`, with a fresh (closed) breaker.
    fn handle(shared: Arc<Shared>, purpose: RedisUse) -> Self {
        shared
            .metrics
            .redis_breaker_state
            .with_label_values(&[purpose.as_str()])
            .set(0);
        Self {
            shared,
            breaker: Arc::new(use_breaker()),
            purpose,
        }
    }

    /// How long entries are kept (the equipment L2's expiry).
    pub fn keep_for(&self) -> Duration {
        self.shared.config.keep_for
    }

    /// Replicas a like batch must reach before it counts as stored.
    pub fn min_replicas(&self) -> u32 {
        self.shared.config.min_replicas
    }

    pub fn namespace(&self) -> &str {
        &self.shared.config.namespace
    }

    /// The link, as a handle for `purpose`; [`RedisLink::for_use`] makes the others. Must be
    /// called inside the tokio runtime (the manager's reconnects run on it).
    ///
    /// # Errors
    /// When the URL is not a Redis URL (nothing is connected yet).
    pub fn new(
        config: RedisConfig,
        metrics: CoreMetrics,
        purpose: RedisUse,
    ) -> Result<Self, redis::RedisError> {
        let link = Link::open(&config)?;
        let replicated = if config.min_replicas > 0 {
            Some(Link::open(&config)?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            link,
            replicated,
            config,
            metrics,
            release_script: redis::Script::new(RELEASE_IF_HELD),
            renew_script: redis::Script::new(RENEW_IF_HELD),
        });
        Ok(Self::handle(shared, purpose))
    }

    /// Runs `op` behind this use's breaker and the timeout.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        op: F,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        self.run_on(&self.shared.link, operation, op).await
    }

    /// Runs `op` as [`run`](Self::run) does, on the connection kept for writes followed by
    /// `WAIT` (the shared one when no replicas are awaited): the wait blocks only that one.
    pub(crate) async fn run_replicated<T, F, Fut>(
        &self,
        operation: &'static str,
        op: F,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let link = self.shared.replicated.as_ref().unwrap_or(&self.shared.link);
        self.run_on(link, operation, op).await
    }

    async fn run_on<T, F, Fut>(
        &self,
        link: &Link,
        operation: &'static str,
        op: F,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let shared = &self.shared;
        let purpose = self.purpose.as_str();
        let Ok((permit, transition)) = self.breaker.acquire(Instant::now()) else {
            shared
                .metrics
                .redis_ops_total
                .with_label_values(&[purpose, operation, "breaker_open"])
                .inc();
            return Err(Unavailable::BreakerOpen);
        };
        self.observe(transition);
        let started = Instant::now();
        let result = tokio::time::timeout(
            shared.config.op_timeout,
            tracing::Instrument::instrument(
                async {
                    let connection = link.connection().await?;
                    op(connection).await
                },
                tracing::info_span!("redis", purpose, operation),
            ),
        )
        .await;
        if !matches!(result, Ok(Ok(_))) {
            // With Sentinel, the next operation asks again who the primary is (a failover
            // turns the old primary's answers into READONLY errors or silence).
            link.forget();
        }
        let (outcome, value) = match result {
            Ok(Ok(value)) => (Outcome::Success, Ok(value)),
            Ok(Err(error)) => {
                tracing::warn!(purpose, operation, %error, "redis operation failed");
                let unavailable = if error.is_connection_refusal() {
                    Unavailable::Unreachable
                } else {
                    Unavailable::Failed
                };
                (Outcome::Failure, Err(unavailable))
            }
            Err(_) => {
                tracing::warn!(purpose, operation, "redis operation timed out");
                (Outcome::Failure, Err(Unavailable::Failed))
            }
        };
        let transition = self
            .breaker
            .record(permit, outcome, started.elapsed(), Instant::now());
        self.observe(transition);
        let label = if value.is_ok() { "ok" } else { "error" };
        shared
            .metrics
            .redis_ops_total
            .with_label_values(&[purpose, operation, label])
            .inc();
        value
    }

    /// A round trip (`PING`).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn ping(&self) -> Result<(), Unavailable> {
        self.run("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(drop)
    }

    /// Redis's memory use and its `maxmemory` (0: no limit), from `INFO memory`.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn memory(&self) -> Result<(u64, u64), Unavailable> {
        let info: String = self
            .run("info_memory", |mut c| async move {
                redis::cmd("INFO").arg("memory").query_async(&mut c).await
            })
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("used_memory"), field("maxmemory")))
    }

    fn observe(&self, transition: Option<maple_common::breaker::Transition>) {
        if let Some(transition) = transition {
            tracing::warn!(
                purpose = self.purpose.as_str(),
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                "redis circuit breaker transition"
            );
            self.shared
                .metrics
                .redis_breaker_state
                .with_label_values(&[self.purpose.as_str()])
                .set(transition.to.gauge());
        }
    }

    /// `SET key token NX PX ttl`: whether this caller now holds `key`.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        self.set_nx_px("lock_acquire", key, token, ttl).await
    }

    /// `SET key token NX PX ttl` (counted under `operation`): whether it was set.
    pub(crate) async fn set_nx_px(
        &self,
        operation: &'static str,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let ttl_ms = lease_millis(ttl);
        self.run(operation, |mut c| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut c)
                .await?;
            Ok(set.is_some())
        })
        .await
    }

    /// Extends the lease on `key` if `token` still holds it: false when it was lost.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        let ttl_ms = lease_millis(ttl);
        let script = &self.shared.renew_script;
        self.run("lock_renew", |mut c| async move {
            let renewed: i64 = script
                .key(key)
                .arg(token)
                .arg(ttl_ms)
                .invoke_async(&mut c)
                .await?;
            Ok(renewed == 1)
        })
        .await
    }

    /// Deletes `key` if `token` still holds it: false when it had been lost already.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn unlease(&self, key: &str, token: &str) -> Result<bool, Unavailable> {
        self.delete_if_held("lock_release", key, token).await
    }

    /// Deletes `key` if `token` holds it (compare-and-delete, counted under `operation`).
    pub(crate) async fn delete_if_held(
        &self,
        operation: &'static str,
        key: &str,
        token: &str,
    ) -> Result<bool, Unavailable> {
        let script = &self.shared.release_script;
        self.run(operation, |mut c| async move {
            let deleted: i64 = script.key(key).arg(token).invoke_async(&mut c).await?;
            Ok(deleted == 1)
        })
        .await
    }
}
