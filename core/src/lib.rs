//! `maple-core`: the API MapleStory clients call: characters and their equipment, fetched
//! through the Nexon proxy and stored (gzip) in SQLite or MySQL, and what that gear is worth.
//!
//! # Layout
//! - [`admin`]: admin API keys (hashed, scoped, re-read when their file changes).
//! - [`config`]: typed configuration from the environment (`MAPLE_CORE_*`, `MAPLE_*`,
//!   `DATABASE_URL`, `REDIS_*`).
//! - [`character`]: character-name validation.
//! - [`nexon`]: the client for the Nexon API (through the proxy), with error classification.
//! - [`ocids`]: name → ocid (memory, the database's mapping, Nexon).
//! - The expectation engine (potential, tier-up, star force, flames, valuation) is its own crate,
//!   `maple-engine`: pure, and the compiler holds that boundary.
//! - [`store`]: persistence (SQLite / MySQL), migrations, snapshots.
//! - [`clock`]: wall-clock milliseconds, as every part records time.
//! - [`equipment`]: the equipment read path: L1 → L2 → database → Nexon, coalesced.
//! - [`redis_link`]: the link to Redis (connection, a breaker per use, leases) that the
//!   equipment L2, the likes and the locks share.
//! - [`likes`]: likes: sharded buffer → Redis → database (one leader), backup files.
//! - [`lock`]: named locks across instances (Redis, MySQL `GET_LOCK`, in-process) with fences.
//! - [`server`]: the HTTP/1 accept loop: header-read timeout, header bounds, drain.
//! - [`supervise`]: background loops restarted after a panic, counted.
//! - [`http`]: routes, handlers and the middleware stack.
//! - [`error`]: `ApiError`, the only place failures become HTTP responses.
//! - [`metrics`]: every metric, declared once.
//!
//! # What is public
//! The crate's API is what this file re-exports: [`App`] (build, then serve), [`CoreConfig`],
//! [`StartError`], the admin-key helpers the `admin-key` subcommand uses and [`redact_url`]. The modules are private. The end-to-end tests, benches and the footprint
//! test reach inside through the `test-hooks` feature, which makes the modules public (and
//! compiles the few functions that exist only for them); no release build enables it.
#![forbid(unsafe_code)]

// Each module is private, or public (hidden from the docs) with `test-hooks`. Written out,
// not through a macro, so that rustfmt sees every module.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod admin;
#[cfg(not(feature = "test-hooks"))]
mod admin;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod character;
#[cfg(not(feature = "test-hooks"))]
mod character;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod clock;
#[cfg(not(feature = "test-hooks"))]
mod clock;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod config;
#[cfg(not(feature = "test-hooks"))]
mod config;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod equipment;
#[cfg(not(feature = "test-hooks"))]
mod equipment;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod error;
#[cfg(not(feature = "test-hooks"))]
mod error;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod http;
#[cfg(not(feature = "test-hooks"))]
mod http;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod likes;
#[cfg(not(feature = "test-hooks"))]
mod likes;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod lock;
#[cfg(not(feature = "test-hooks"))]
mod lock;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod metrics;
#[cfg(not(feature = "test-hooks"))]
mod metrics;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod nexon;
#[cfg(not(feature = "test-hooks"))]
mod nexon;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod ocids;
#[cfg(not(feature = "test-hooks"))]
mod ocids;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod redis_link;
#[cfg(not(feature = "test-hooks"))]
mod redis_link;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod server;
#[cfg(not(feature = "test-hooks"))]
mod server;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod store;
#[cfg(not(feature = "test-hooks"))]
mod store;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod supervise;
#[cfg(not(feature = "test-hooks"))]
mod supervise;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use maple_common::metrics::Label as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::admin::{Scope, StoredKey, new_key};
pub use crate::config::{CoreConfig, redact_url};
#[cfg(feature = "test-hooks")]
pub use crate::http::AppState;
#[cfg(not(feature = "test-hooks"))]
use crate::http::AppState;
use crate::metrics::{CoreMetrics, ShutdownPhase};
use crate::nexon::NexonClient;
use crate::ocids::Ocids;
use crate::redis_link::{RedisLink, RedisUse};
use crate::store::{Store, StoreError};
use crate::supervise::{Task, supervised};
use maple_engine::Engine;
use maple_engine::options::Options;
use maple_engine::tables::TableError;
use maple_engine::valuation::Gear;

/// Name → ocid mappings kept in memory, and for how long (an instance re-reads the database's
/// copy this often; the copy's own re-check with Nexon is `Limits::name_recheck`).
const OCID_CACHE_ENTRIES: u64 = 100_000;
const OCID_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// A cache weigher's figure for `bytes` (moka counts in `u32`).
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// How often Redis's memory is read for `maple_core_redis_memory_bytes`.
const REDIS_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads Redis's memory use and limit into `maple_core_redis_memory_bytes` every
/// [`REDIS_MEMORY_EVERY`] until `stop` (a Redis that does not answer leaves the last values).
/// With `noeviction` a full Redis refuses writes: the alert `MapleRedisMemoryHigh` warns first.
async fn watch_redis_memory(redis: RedisLink, metrics: CoreMetrics, stop: CancellationToken) {
    loop {
        if let Ok((used, max)) = redis.memory().await {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            metrics
                .redis_memory_bytes
                .set(metrics::RedisMemory::Used, gauge(used));
            metrics
                .redis_memory_bytes
                .set(metrics::RedisMemory::Max, gauge(max));
        }
        tokio::select! {
            () = tokio::time::sleep(REDIS_MEMORY_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// This instance's name in lock records: host, process and a random suffix.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "core".to_owned());
    let suffix: u32 = rand::random();
    format!("{host}:{}:{suffix:08x}", std::process::id())
}

/// Core could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tables(#[from] TableError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
    #[error("metrics registry")]
    Metrics(#[from] prometheus::Error),
    #[error("REDIS_URL")]
    Redis(#[from] redis::RedisError),
    #[error("MAPLE_CORE_ADMIN_KEYS_FILE: {0}")]
    AdminKeys(String),
}

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    config: CoreConfig,
    state: AppState,
    /// Stops the purge-log follower when dropped: once nothing is served any more (after the
    /// drain), or with an app that never served.
    followers: tokio_util::sync::DropGuard,
}

impl App {
    /// Connects the database (applying migrations) and builds the clients.
    ///
    /// # Errors
    /// [`StartError`] when the database is unreachable or a migration fails.
    pub async fn build(config: CoreConfig) -> Result<Self, StartError> {
        let engine = Engine::load(
            config.potential_tables.as_deref(),
            config.prices.clone(),
            Options {
                method: config.valuation_method,
                ..Options::default()
            },
            config.starforce_costs,
        )?;
        let admin_keys = admin::AdminKeys::load(config.admin_keys_file.clone())
            .map_err(StartError::AdminKeys)?;
        let store = Store::connect(config.database_url.expose(), config.db_max_connections).await?;
        let metrics = CoreMetrics::new()?.with_lock(lock::LIKES_SYNC);
        let nexon = NexonClient::new(
            &config.proxy_url,
            config.proxy_token.as_ref(),
            config.upstream_timeout,
        )?;
        let redis = config
            .redis
            .clone()
            .map(|redis| RedisLink::new(redis, metrics.clone(), RedisUse::Equipment))
            .transpose()?;
        // Stops the background readers of Redis (purges followed, memory) with the app.
        let followers = CancellationToken::new();
        if let Some(redis) = &redis {
            let (redis, metrics, stop) = (
                redis.for_use(RedisUse::Memory),
                metrics.clone(),
                followers.clone(),
            );
            let restarts = metrics.task_restarts_total.clone();
            tokio::spawn(supervised(
                Task::RedisMemory,
                restarts,
                stop.clone(),
                move || watch_redis_memory(redis.clone(), metrics.clone(), stop.clone()),
            ));
        }
        let locks = lock::Locks::new(
            redis.as_ref().map(|r| r.for_use(RedisUse::Locks)),
            store.clone(),
            instance_name(),
            config.likes.lock_lease,
            metrics.clone(),
        );
        let likes = likes::Likes::new(
            config.likes.clone(),
            redis.as_ref().map(|r| r.for_use(RedisUse::Likes)),
            store.clone(),
            locks.clone(),
            metrics.clone(),
        );
        likes.start().await;
        let equipment = equipment::EquipmentTiers::new(
            config.tiers,
            redis,
            store.clone(),
            nexon.clone(),
            metrics.clone(),
        );
        tokio::spawn(supervised(
            Task::PurgeFollower,
            metrics.task_restarts_total.clone(),
            followers.clone(),
            {
                let (equipment, followers) = (equipment.clone(), followers.clone());
                move || equipment.clone().follow_purges(followers.clone())
            },
        ));
        let state = AppState::new(http::state::Shared {
            characters: http::state::Characters {
                ocids: Ocids::new(
                    store.clone(),
                    nexon.clone(),
                    metrics.clone(),
                    OCID_CACHE_ENTRIES,
                    OCID_CACHE_TTL,
                    config.limits.not_found_ttl,
                    config.limits.name_recheck,
                ),
                nexon,
                equipment,
                bodies: moka::sync::Cache::builder()
                    .max_capacity(config.tiers.raw_max_bytes)
                    .weigher(|_: &[u8; 32], body: &bytes::Bytes| weight(body.len() + 64))
                    .build(),
            },
            pricing: http::state::Pricing {
                engine: Arc::new(engine),
                gear: moka::sync::Cache::builder()
                    .max_capacity(config.pricing.parsed_max_bytes)
                    .weigher(|_: &[u8; 32], gear: &Arc<Gear>| weight(gear.weight()))
                    .build(),
                valuations: moka::sync::Cache::builder()
                    .max_capacity(config.pricing.valuation_max_bytes)
                    .weigher(
                        |_: &([u8; 32], Options), valued: &Arc<http::ready::Valued>| {
                            weight(valued.weight())
                        },
                    )
                    .build(),
            },
            likes,
            locks,
            admission: http::state::Admission {
                in_flight: Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight)),
                requests: http::ClientLimits::new(config.limits.client_ipv6_prefix),
                likes: http::ClientLimits::new(config.limits.client_ipv6_prefix),
                misses: http::ClientLimits::new(config.limits.client_ipv6_prefix),
                keys: http::KeyAllowance::new(likes::KEY_MEMORY, config.limits.client_ipv6_prefix),
                pricing: http::gate::PricingGate::new(
                    config.limits.pricing,
                    config.limits.client_ipv6_prefix,
                    metrics.clone(),
                ),
            },
            admin: http::state::Admin {
                keys: admin_keys,
                tasks: tokio_util::task::TaskTracker::new(),
                retention: Arc::new(admin::AuditRetention::new(config.audit_refused_keep)),
            },
            store,
            metrics,
            shutdown: CancellationToken::new(),
            config: Arc::new(config.clone()),
        });
        Ok(Self {
            config,
            state,
            followers: followers.drop_guard(),
        })
    }

    /// What the handlers share: the tests' way into a running instance.
    #[cfg(feature = "test-hooks")]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then everything ends within the shutdown deadline
    /// `D`, counted from that moment. Readiness answers 503 at once and the listener keeps
    /// accepting for the drain delay; in-flight requests have until `D/2` (connections still
    /// open then are aborted), equipment loads until `5D/8`, saving the like buffer until
    /// `7D/8` (its backup-file write included), admin actions and closing the database pool
    /// until `D`. A phase that ends early leaves its time to the next.
    ///
    /// # Errors
    /// Only if the listener fails irrecoverably.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            config,
            state,
            followers,
        } = self;
        // Dropped (the follower stopped) when serving ends, however it ends.
        let _followers = followers;
        let draining = state.shutdown.clone();
        let router = http::router(state.clone(), config.request_timeout);
        let deadline = config.shutdown_deadline;
        // When the shutdown began: every phase's end is counted from it.
        let began = Arc::new(std::sync::OnceLock::new());
        let metrics = state.metrics.clone();
        let drain_delay = config.drain_delay;
        let signal = {
            let (draining, began) = (draining.clone(), Arc::clone(&began));
            async move {
                tokio::select! {
                    () = shutdown => draining.cancel(),
                    () = draining.cancelled() => {}
                }
                let now = Instant::now();
                let _ = began.set(now);
                metrics.shutdown_phase.set(1);
                // Readiness answers 503 from now on; keep accepting while the load balancer
                // notices, then stop.
                tokio::time::sleep(drain_delay).await;
                now + deadline / 2
            }
        };
        let result = server::serve(listener, router, config.connections, signal).await;
        // The listener failed before any signal: the shutdown begins now.
        let began = *began.get_or_init(Instant::now);
        let by = |eighths: u32| began + deadline * eighths / 8;
        let left = |until: Instant| until.saturating_duration_since(Instant::now());
        let phases = &state.metrics;
        let mut phase_started = began;
        let mut end_phase = |phase: ShutdownPhase, next: i64| {
            let took = phase_started.elapsed();
            phases.shutdown_phase_took(phase, took.as_secs_f64());
            phases.shutdown_phase.set(next);
            tracing::info!(
                phase = phase.as_str(),
                seconds = took.as_secs_f64(),
                "shutdown phase done"
            );
            phase_started = Instant::now();
        };
        end_phase(ShutdownPhase::Drain, 2);
        // Equipment loads still running (a client may have hung up) store what they fetched.
        let stored = state.characters.equipment.drained();
        if tokio::time::timeout(left(by(5)), stored).await.is_err() {
            tracing::warn!(
                loads = state.characters.equipment.in_flight(),
                "equipment loads still running at shutdown; leaving them"
            );
        }
        end_phase(ShutdownPhase::Equipment, 3);
        let budget = left(by(7));
        tracing::info!(?budget, "saving the like buffer");
        state.likes.shutdown(budget).await;
        end_phase(ShutdownPhase::Likes, 4);
        // Admin actions whose clients hung up still write their audit rows.
        state.admin.tasks.close();
        let end = began + deadline;
        if tokio::time::timeout(left(end) / 2, state.admin.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = state.admin.tasks.len(),
                "admin actions still running at shutdown; their audit rows may be missing"
            );
        }
        if tokio::time::timeout(left(end), state.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the database pool did not close by the shutdown deadline");
        }
        end_phase(ShutdownPhase::Database, 5);
        tracing::info!("core stopped");
        result
    }
}
