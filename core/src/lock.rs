//! Named locks across core instances, for the like-sync leader and any check-then-act.
//!
//! Backends, in order: Redis (`SET NX PX` with a random token, released by compare-and-delete,
//! the lease renewed while held), then — when Redis is unreachable or its breaker is open —
//! MySQL's `GET_LOCK` on a dedicated connection (released with the connection if we die), and
//! in embedded mode (SQLite, no Redis) an in-process mutex. Waiting is bounded: jittered
//! backoff up to the caller's wait.
//!
//! A lock alone cannot stop a holder that paused past its lease (GC, a stalled VM, a partition)
//! from acting as if it still held it. So every acquisition also takes a **fencing token** from
//! the database (`lock_fences`, one increasing number per lock name), and a write guarded by
//! the lock checks in its own transaction that its token is still the newest
//! ([`crate::store::Store::apply_synced_batches`]). Two holders at once — Redis partitioned
//! from one instance only, so one holds it in Redis and the other through MySQL — are harmless
//! for the same reason: only the later fence can write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng as _;
use sqlx::Connection as _;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::metrics::CoreMetrics;
use crate::redis_link::{RedisLink, Unavailable};
use crate::store::likes::Fence;
use crate::store::{Store, StoreError};

/// The lock that elects the like-sync leader (one name per lock the service takes lives
/// here; `CoreMetrics::with_lock` creates each one's series at start).
pub const LIKES_SYNC: &str = "likes-sync";

/// Longest single `GET_LOCK` wait (the statement itself is bounded at 3 s).
const MYSQL_WAIT_CAP: Duration = Duration::from_secs(2);

/// Where a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Redis,
    MySql,
    Local,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::MySql => "mysql",
            Self::Local => "local",
        }
    }
}

/// Why a lock was not acquired.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {0} is held by another instance")]
    Busy(String),
    #[error("lock {name}: no backend is reachable ({reason})")]
    Unavailable { name: String, reason: String },
    #[error("lock {name}: could not issue a fencing token: {cause}")]
    Fence { name: String, cause: StoreError },
}

/// The lock service of one instance. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Locks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    redis: Option<RedisLink>,
    store: Store,
    /// This instance, as recorded with each fence (for the SRE asking "who holds it").
    holder: String,
    lease: Duration,
    local: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: CoreMetrics,
}

/// A held lock. Release it with [`Guard::release`]; dropped without that, a Redis lease
/// expires by itself and a MySQL lock goes with its connection.
#[derive(Debug)]
pub struct Guard {
    name: String,
    backend: Backend,
    token: String,
    fence: Fence,
    acquired: Instant,
    /// Cancelled when the lease could not be renewed (another instance may hold it now).
    lost: CancellationToken,
    renewal: Option<tokio::task::JoinHandle<()>>,
    mysql: Option<sqlx::MySqlConnection>,
    local: Option<OwnedMutexGuard<()>>,
    locks: Locks,
}

impl Guard {
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the lease was lost while held (act no further; the fence stops writes anyway).
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Releases the lock (only if still ours).
    pub async fn release(mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let inner = &self.locks.inner;
        match self.backend {
            Backend::Redis => {
                if let Some(redis) = &inner.redis {
                    let key = redis.key(&format!("lock:{}", self.name));
                    if let Ok(false) = redis.unlease(&key, &self.token).await {
                        tracing::warn!(lock = %self.name, "lock had expired before release");
                    }
                }
            }
            Backend::MySql => {
                if let Some(mut conn) = self.mysql.take() {
                    let released = sqlx::query("DO RELEASE_LOCK(?)")
                        .bind(mysql_lock_name(&self.name, inner))
                        .execute(&mut conn);
                    let _ = tokio::time::timeout(Duration::from_secs(1), released).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
                }
            }
            Backend::Local => drop(self.local.take()),
        }
        inner
            .metrics
            .lock_held_seconds
            .with_label_values(&[self.name.as_str()])
            .observe(self.acquired.elapsed().as_secs_f64());
        inner
            .metrics
            .locks_held
            .with_label_values(&[self.name.as_str(), self.backend.as_str()])
            .dec();
        self.backend = Backend::Local; // Drop: nothing left to undo.
        self.name.clear();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if !self.name.is_empty() {
            self.locks
                .inner
                .metrics
                .locks_held
                .with_label_values(&[self.name.as_str(), self.backend.as_str()])
                .dec();
        }
    }
}

/// MySQL lock names are server-wide and at most 64 characters.
fn mysql_lock_name(name: &str, inner: &Inner) -> String {
    let namespace = inner.redis.as_ref().map_or("maple", RedisLink::namespace);
    let mut full = format!("{namespace}:{name}");
    // Cut between characters: the namespace is the operator's text.
    full.truncate(full.floor_char_boundary(64));
    full
}

fn random_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

impl Locks {
    /// The locks' Redis breaker, when Redis is configured.
    pub fn redis_breaker(&self) -> Option<maple_common::breaker::Snapshot> {
        self.inner.redis.as_ref().map(RedisLink::breaker)
    }

    pub fn new(
        redis: Option<RedisLink>,
        store: Store,
        holder: String,
        lease: Duration,
        metrics: CoreMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                store,
                holder,
                lease,
                local: Mutex::new(HashMap::new()),
                metrics,
            }),
        }
    }

    /// Acquires `name`, waiting at most `wait` (zero: one try).
    ///
    /// # Errors
    /// [`LockError::Busy`] when another holder kept it for the whole wait; `Unavailable` when
    /// no backend answered; `Fence` when the database could not issue a token.
    #[tracing::instrument(level = "info", name = "lock.acquire", skip(self))]
    pub async fn acquire(&self, name: &str, wait: Duration) -> Result<Guard, LockError> {
        let started = Instant::now();
        let deadline = started + wait;
        let token = random_token();
        let inner = &self.inner;
        let acquired = match &inner.redis {
            Some(redis) => match self.via_redis(redis, name, &token, deadline).await {
                Err(Unavailable::BreakerOpen | Unavailable::Failed | Unavailable::Unreachable) => {
                    inner
                        .metrics
                        .lock_fallbacks_total
                        .with_label_values(&[name])
                        .inc();
                    tracing::warn!(lock = name, "Redis unavailable; falling back for the lock");
                    self.without_redis(name, deadline).await
                }
                Ok(held) => held.map(|()| Held::Redis),
            },
            None => self.without_redis(name, deadline).await,
        };
        let outcome = match &acquired {
            Ok(held) => held.backend().as_str(),
            Err(LockError::Busy(_)) => "busy",
            Err(_) => "unavailable",
        };
        inner
            .metrics
            .lock_acquisitions_total
            .with_label_values(&[name, outcome])
            .inc();
        inner
            .metrics
            .lock_wait_seconds
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        let held = acquired?;
        let backend = held.backend();
        let mut guard = Guard {
            name: name.to_owned(),
            backend,
            token,
            fence: Fence {
                name: name.to_owned(),
                token: 0,
            },
            acquired: Instant::now(),
            lost: CancellationToken::new(),
            renewal: None,
            mysql: None,
            local: None,
            locks: self.clone(),
        };
        inner
            .metrics
            .locks_held
            .with_label_values(&[name, backend.as_str()])
            .inc();
        match held {
            Held::Redis => guard.renewal = Some(self.renew_in_background(&guard)),
            Held::MySql(conn) => guard.mysql = Some(conn),
            Held::Local(local) => guard.local = Some(local),
        }
        match inner.store.issue_fence(name, &inner.holder, now_ms()).await {
            Ok(fence) => {
                guard.fence = fence;
                tracing::debug!(
                    lock = name,
                    backend = backend.as_str(),
                    fence = guard.fence.token,
                    "lock acquired"
                );
                Ok(guard)
            }
            Err(cause) => {
                guard.release().await;
                Err(LockError::Fence {
                    name: name.to_owned(),
                    cause,
                })
            }
        }
    }

    /// Tries Redis until `deadline`: `Ok(Ok)` held, `Ok(Err(Busy))` someone else kept it,
    /// `Err` Redis cannot be asked.
    async fn via_redis(
        &self,
        redis: &RedisLink,
        name: &str,
        token: &str,
        deadline: Instant,
    ) -> Result<Result<(), LockError>, Unavailable> {
        let key = redis.key(&format!("lock:{name}"));
        let mut backoff = Duration::from_millis(5);
        loop {
            if redis.lease(&key, token, self.inner.lease).await? {
                return Ok(Ok(()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Err(LockError::Busy(name.to_owned())));
            }
            let jittered = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
            tokio::time::sleep(jittered.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// MySQL's named lock, or the in-process mutex when the database is SQLite.
    async fn without_redis(&self, name: &str, deadline: Instant) -> Result<Held, LockError> {
        let inner = &self.inner;
        let Some(pool) = inner.store.mysql_pool() else {
            let mutex = {
                let mut local = inner.local.lock().unwrap_or_else(PoisonError::into_inner);
                Arc::clone(local.entry(name.to_owned()).or_default())
            };
            let left = deadline.saturating_duration_since(Instant::now());
            return match tokio::time::timeout(left, mutex.lock_owned()).await {
                Ok(guard) => Ok(Held::Local(guard)),
                Err(_) => Err(LockError::Busy(name.to_owned())),
            };
        };
        let unavailable = |reason: String| LockError::Unavailable {
            name: name.to_owned(),
            reason,
        };
        let lock_name = mysql_lock_name(name, inner);
        let mut conn = inner
            .store
            .guarded(async { pool.acquire().await.map(sqlx::pool::PoolConnection::detach) })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(MYSQL_WAIT_CAP);
            let got: Option<i64> = inner
                .store
                .guarded(async {
                    sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                        .bind(&lock_name)
                        .bind(wait.as_secs_f64())
                        .fetch_one(&mut conn)
                        .await
                })
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            match got {
                Some(1) => return Ok(Held::MySql(conn)),
                Some(_) if left > wait => {}
                Some(_) => return Err(LockError::Busy(name.to_owned())),
                None => return Err(unavailable("GET_LOCK returned NULL".into())),
            }
        }
    }

    /// Renews the Redis lease every third of it; when a renewal finds the lease gone (or
    /// Redis unreachable until the lease has surely run out), marks the guard lost.
    fn renew_in_background(&self, guard: &Guard) -> tokio::task::JoinHandle<()> {
        let locks = self.clone();
        let (name, token, lost) = (guard.name.clone(), guard.token.clone(), guard.lost.clone());
        tokio::spawn(async move {
            let Some(redis) = locks.inner.redis.clone() else {
                return;
            };
            let lease = locks.inner.lease;
            let key = redis.key(&format!("lock:{name}"));
            let mut renewed_at = Instant::now();
            loop {
                tokio::time::sleep(lease / 3).await;
                match redis.renew(&key, &token, lease).await {
                    Ok(true) => renewed_at = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(lock = %name, "lock lease lost (expired and taken?)");
                        lost.cancel();
                        return;
                    }
                    Err(_) if renewed_at.elapsed() >= lease => {
                        tracing::warn!(lock = %name, "lock lease could not be renewed in time");
                        lost.cancel();
                        return;
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

/// What a backend handed over.
enum Held {
    Redis,
    MySql(sqlx::MySqlConnection),
    Local(OwnedMutexGuard<()>),
}

impl Held {
    fn backend(&self) -> Backend {
        match self {
            Self::Redis => Backend::Redis,
            Self::MySql(_) => Backend::MySql,
            Self::Local(_) => Backend::Local,
        }
    }
}
