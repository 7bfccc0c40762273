//! L2: Redis, shared by core instances: equipment entries (gzip body, hash, fetch time) and the
//! leader latch that elects one fetcher per character across instances.
//!
//! Rules: every operation has a timeout and sits behind a circuit breaker, so a slow or dead
//! Redis costs a request at most one timeout before core stops asking (and serves from L1/L3);
//! after the open period a probe finds out whether Redis is back. A write never replaces a newer
//! entry (compared in a Lua script on the server). The connection manager connects lazily and
//! reconnects by itself, so core starts without Redis and picks it up when it appears.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maple_common::breaker::{Breaker, BreakerConfig, Outcome};
use maple_common::nexon::Ocid;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::sentinel::{SentinelClient, SentinelServerType};

use crate::equipment::Entry;
use crate::metrics::CoreMetrics;

/// Stores an entry unless a newer one is there: `KEYS[1]` the hash; `ARGV` fetched-at ms,
/// sha256, raw length, gzip body, TTL ms.
const PUT_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'at')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'sha', ARGV[2], 'len', ARGV[3], 'gz', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Deletes the latch only if this instance still holds it.
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

/// The stream of purged ocids (under the namespace), which every instance follows to drop
/// its L1 copies.
const PURGE_LOG: &str = "equipment:purged";

/// Entries the purge log keeps (approximately): an instance that could not read it for longer
/// than it takes to purge this many misses some (its L1 copies then expire by age).
const PURGE_LOG_MAX: usize = 10_000;

/// Purges read from the log at a time.
pub const PURGE_PAGE: usize = 1_000;

/// One logged purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub id: String,
    pub ocid: String,
    /// When it was logged (Redis's clock).
    pub at_ms: i64,
}

/// A read of the purge log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeLog {
    pub purged: Vec<Purge>,
    /// The newest id in the log; `None` when there is no log.
    pub newest: Option<String>,
}

/// A stream id's (milliseconds, sequence), for ordering.
pub fn purge_id_order(id: &str) -> Option<(i64, i64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn purge_id_ms(id: &str) -> Option<i64> {
    purge_id_order(id).map(|(ms, _)| ms)
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

/// The Redis tier.
#[derive(Debug, Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    link: Link,
    config: RedisConfig,
    breaker: Breaker,
    metrics: CoreMetrics,
    put_script: redis::Script,
    release_script: redis::Script,
    renew_script: redis::Script,
}

/// Why an operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The breaker is open: Redis was failing recently.
    BreakerOpen,
    /// This call failed or timed out.
    Failed,
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

impl RedisTier {
    /// `{namespace}:{suffix}`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.inner.config.namespace)
    }

    /// The breaker's state, for the admin API.
    pub fn breaker(&self) -> maple_common::breaker::Snapshot {
        self.inner.breaker.snapshot(Instant::now())
    }

    /// Deletes the cached equipment of `ocid` (the admin purge).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn purge(&self, ocid: &Ocid) -> Result<(), Unavailable> {
        let key = self.entry_key(ocid);
        let log = self.key(PURGE_LOG);
        self.run("purge", |mut c| async move {
            // The entry goes, and the purge is logged for the other instances' L1.
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("XADD")
                .arg(&log)
                .arg("MAXLEN")
                .arg("~")
                .arg(PURGE_LOG_MAX)
                .arg("*")
                .arg("ocid")
                .arg(ocid.as_str())
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Purges logged after `after` (a purge log id; `None`: none, only where the log ends), at
    /// most [`PURGE_PAGE`], each with its time (the id's milliseconds, Redis's clock), and the
    /// newest id in the log (`None`: no log).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn purged_since(&self, after: Option<&str>) -> Result<PurgeLog, Unavailable> {
        type Entries = Vec<(String, HashMap<String, String>)>;
        let log = self.key(PURGE_LOG);
        let (entries, newest): (Entries, Entries) = self
            .run("purge_log", |mut c| async move {
                let mut pipe = redis::pipe();
                match after {
                    Some(after) => pipe
                        .cmd("XRANGE")
                        .arg(&log)
                        .arg(format!("({after}"))
                        .arg("+")
                        .arg("COUNT")
                        .arg(PURGE_PAGE),
                    // The same shape of answer, empty.
                    None => pipe.cmd("XRANGE").arg(&log).arg("+").arg("-"),
                };
                pipe.cmd("XREVRANGE")
                    .arg(&log)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let purged = entries
            .into_iter()
            .filter_map(|(id, mut fields)| {
                let at_ms = purge_id_ms(&id)?;
                Some(Purge {
                    ocid: fields.remove("ocid")?,
                    at_ms,
                    id,
                })
            })
            .collect();
        Ok(PurgeLog {
            purged,
            newest: newest.into_iter().next().map(|(id, _)| id),
        })
    }

    /// Replicas a like batch must reach before it counts as stored.
    pub fn min_replicas(&self) -> u32 {
        self.inner.config.min_replicas
    }

    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    fn entry_key(&self, ocid: &Ocid) -> String {
        self.key(&format!("equipment:{}", ocid.as_str()))
    }

    fn latch_key(&self, ocid: &Ocid) -> String {
        self.key(&format!("latch:equipment:{}", ocid.as_str()))
    }

    /// Must be called inside the tokio runtime (the manager's reconnects run on it).
    ///
    /// # Errors
    /// When the URL is not a Redis URL (nothing is connected yet).
    pub fn new(config: RedisConfig, metrics: CoreMetrics) -> Result<Self, redis::RedisError> {
        let link = if config.sentinels.is_empty() {
            let client = redis::Client::open(config.url.as_str())?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.op_timeout.saturating_mul(4)))
                .set_response_timeout(Some(config.op_timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            Link::Direct(ConnectionManager::new_lazy_with_config(client, manager)?)
        } else {
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
            Link::Sentinel(Box::new(SentinelLink {
                client: tokio::sync::Mutex::new(client),
                current: std::sync::Mutex::new(None),
                config: redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.op_timeout))
                    .set_response_timeout(Some(config.op_timeout)),
            }))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                link,
                breaker: Breaker::new(BreakerConfig {
                    window: 10,
                    minimum_calls: 3,
                    failure_rate_pct: 50,
                    open_for: Duration::from_secs(5),
                    probes: 1,
                    slow_call: None,
                }),
                config,
                metrics,
                put_script: redis::Script::new(PUT_IF_NEWER),
                release_script: redis::Script::new(RELEASE_IF_HELD),
                renew_script: redis::Script::new(RENEW_IF_HELD),
            }),
        })
    }

    /// Runs `op` behind the breaker and the timeout (also for the likes and lock modules).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        op: F,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let inner = &self.inner;
        let Ok((permit, transition)) = inner.breaker.acquire(Instant::now()) else {
            inner
                .metrics
                .redis_ops_total
                .with_label_values(&[operation, "breaker_open"])
                .inc();
            return Err(Unavailable::BreakerOpen);
        };
        self.observe(transition);
        let started = Instant::now();
        let result = tokio::time::timeout(
            inner.config.op_timeout,
            tracing::Instrument::instrument(
                async {
                    let connection = inner.link.connection().await?;
                    op(connection).await
                },
                tracing::info_span!("redis", operation),
            ),
        )
        .await;
        if !matches!(result, Ok(Ok(_))) {
            // With Sentinel, the next operation asks again who the primary is (a failover
            // turns the old primary's answers into READONLY errors or silence).
            inner.link.forget();
        }
        let (outcome, value) = match result {
            Ok(Ok(value)) => (Outcome::Success, Ok(value)),
            Ok(Err(error)) => {
                tracing::warn!(operation, %error, "redis operation failed");
                (Outcome::Failure, Err(Unavailable::Failed))
            }
            Err(_) => {
                tracing::warn!(operation, "redis operation timed out");
                (Outcome::Failure, Err(Unavailable::Failed))
            }
        };
        let transition = inner
            .breaker
            .record(permit, outcome, started.elapsed(), Instant::now());
        self.observe(transition);
        let label = if value.is_ok() { "ok" } else { "error" };
        inner
            .metrics
            .redis_ops_total
            .with_label_values(&[operation, label])
            .inc();
        value
    }

    fn observe(&self, transition: Option<maple_common::breaker::Transition>) {
        if let Some(transition) = transition {
            tracing::warn!(
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                "redis circuit breaker transition"
            );
            self.inner
                .metrics
                .redis_breaker_state
                .set(transition.to.gauge());
        }
    }

    /// The entry for `ocid`, if Redis has one.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn get(&self, ocid: &Ocid) -> Result<Option<Entry>, Unavailable> {
        let key = self.entry_key(ocid);
        type Row = (Option<i64>, Option<Vec<u8>>, Option<u32>, Option<Vec<u8>>);
        let row: Row = self
            .run("get", |mut c| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&["at", "sha", "len", "gz"])
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(match row {
            (Some(at), Some(sha), Some(len), Some(gz)) if sha.len() == 32 => {
                let mut sha256 = [0_u8; 32];
                sha256.copy_from_slice(&sha);
                Some(Entry {
                    gzip: gz.into(),
                    sha256,
                    raw_len: len,
                    fetched_at_ms: at,
                })
            }
            _ => None,
        })
    }

    /// When the entry for `ocid` was fetched, without reading its body.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn fetched_at(&self, ocid: &Ocid) -> Result<Option<i64>, Unavailable> {
        let key = self.entry_key(ocid);
        self.run("fetched_at", |mut c| async move {
            redis::cmd("HGET")
                .arg(&key)
                .arg("at")
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Whether some instance holds the fetch latch for `ocid`.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn latch_held(&self, ocid: &Ocid) -> Result<bool, Unavailable> {
        let key = self.latch_key(ocid);
        self.run("latch_held", |mut c| async move {
            redis::cmd("EXISTS").arg(&key).query_async(&mut c).await
        })
        .await
    }

    /// Stores `entry` unless Redis holds a newer one.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn put(&self, ocid: &Ocid, entry: &Entry) -> Result<(), Unavailable> {
        let key = self.entry_key(ocid);
        let keep_ms = u64::try_from(self.inner.config.keep_for.as_millis()).unwrap_or(u64::MAX);
        let script = &self.inner.put_script;
        self.run("put", |mut c| async move {
            script
                .key(&key)
                .arg(entry.fetched_at_ms)
                .arg(entry.sha256.as_slice())
                .arg(entry.raw_len)
                .arg(entry.gzip.as_ref())
                .arg(keep_ms)
                .invoke_async::<i64>(&mut c)
                .await
                .map(drop)
        })
        .await
    }

    /// Tries to become the one instance fetching `ocid`: `SET NX PX` with `token`. The latch
    /// expires by itself after `ttl`, so a crashed leader cannot block the others.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn try_latch(
        &self,
        ocid: &Ocid,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        self.set_nx_px("latch", &self.latch_key(ocid), token, ttl)
            .await
    }

    /// Releases the latch if this instance still holds it.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn release_latch(&self, ocid: &Ocid, token: &str) -> Result<(), Unavailable> {
        self.delete_if_held("release", &self.latch_key(ocid), token)
            .await
            .map(drop)
    }

    /// `SET key token NX PX ttl`: whether this caller now holds `key`.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn lease(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        self.set_nx_px("lock_acquire", key, token, ttl).await
    }

    /// `SET key token NX PX ttl` (counted under `operation`): whether it was set.
    async fn set_nx_px(
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
        let script = &self.inner.renew_script;
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
    async fn delete_if_held(
        &self,
        operation: &'static str,
        key: &str,
        token: &str,
    ) -> Result<bool, Unavailable> {
        let script = &self.inner.release_script;
        self.run(operation, |mut c| async move {
            let deleted: i64 = script.key(key).arg(token).invoke_async(&mut c).await?;
            Ok(deleted == 1)
        })
        .await
    }
}
