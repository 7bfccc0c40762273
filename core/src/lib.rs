//! `maple-core`: the API MapleStory clients call: characters and their equipment, fetched
//! through the Nexon proxy and stored (gzip) in SQLite or MySQL, and what that gear is worth.
//!
//! # Layout
//! - [`admin`]: admin API keys (hashed, scoped, re-read when their file changes).
//! - [`config`]: typed configuration from `MAPLE_CORE_*` and `DATABASE_URL`.
//! - [`character`]: character-name validation.
//! - [`nexon`]: the client for the Nexon API (through the proxy), with error classification.
//! - [`engine`]: the expectation engine (potential, tier-up, star force, valuation), pure.
//! - [`store`]: persistence (SQLite / MySQL), migrations, snapshots.
//! - [`equipment`]: the equipment read path: L1 → L2 → database → Nexon, coalesced.
//! - [`redis_tier`]: L2 and the cross-instance latch in Redis, behind a breaker.
//! - [`likes`]: likes: sharded buffer → Redis → database (one leader), backup files.
//! - [`lock`]: named locks across instances (Redis, MySQL `GET_LOCK`, in-process) with fences.
//! - [`server`]: the HTTP/1 accept loop: header-read timeout, header bounds, drain.
//! - [`http`]: routes, handlers and the middleware stack.
//! - [`error`]: `ApiError`, the only place failures become HTTP responses.
//! - [`metrics`]: every metric, declared once.
#![forbid(unsafe_code)]

pub mod admin;
pub mod character;
pub mod config;
pub mod engine;
pub mod equipment;
pub mod error;
pub mod http;
pub mod likes;
pub mod lock;
pub mod metrics;
pub mod nexon;
pub mod redis_tier;
pub mod server;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::config::CoreConfig;
use crate::engine::Engine;
use crate::engine::tables::TableError;
use crate::engine::valuation::Options;
use crate::metrics::CoreMetrics;
use crate::nexon::NexonClient;
use crate::store::{Store, StoreError};

/// Name → ocid mappings kept in memory, and for how long (a rename changes the mapping;
/// the database copy is re-checked this often).
const OCID_CACHE_ENTRIES: u64 = 100_000;
const OCID_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Valuations kept in memory (one character serialises to ~11 KB of JSON).
const VALUATION_CACHE_ENTRIES: u64 = 2_000;

/// What handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub nexon: NexonClient,
    pub store: Store,
    /// The equipment tiers (L1, L2, database) in front of Nexon.
    pub equipment: equipment::EquipmentTiers,
    /// Recently decompressed equipment bodies by content hash, for clients that do not take
    /// gzip (bounded in bytes).
    pub bodies: moka::sync::Cache<[u8; 32], bytes::Bytes>,
    /// Name (lower case) → ocid, in front of the database's mapping.
    pub ocids: moka::sync::Cache<String, maple_common::nexon::Ocid>,
    pub metrics: CoreMetrics,
    pub engine: Arc<Engine>,
    /// Valuations by (equipment content hash, options): a character whose equipment has not
    /// changed is not priced twice; new equipment has a new hash, so nothing goes stale.
    pub valuations: moka::future::Cache<([u8; 32], Options), Arc<serde_json::Value>>,
    /// Cancelled when shutdown begins (readiness turns false).
    pub shutdown: CancellationToken,
    pub likes: likes::Likes,
    pub locks: lock::Locks,
    /// Per-client like rate limits.
    pub like_limits: http::ClientLimits,
    pub admin_keys: admin::AdminKeys,
    /// Requests handled at once (`limits.max_in_flight` permits).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Per-client request rate limits (all `/v1/` routes).
    pub client_limits: http::ClientLimits,
    /// The configuration, for the admin API's (redacted) dump.
    pub config: Arc<CoreConfig>,
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
    #[error("{0}")]
    Tables(#[from] TableError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("REDIS_URL: {0}")]
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
            .map(|redis| redis_tier::RedisTier::new(redis, metrics.clone()))
            .transpose()?;
        let locks = lock::Locks::new(
            redis.clone(),
            store.clone(),
            instance_name(),
            config.likes.lock_lease,
            metrics.clone(),
        );
        let likes = likes::Likes::new(
            config.likes.clone(),
            redis.clone(),
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
        let followers = CancellationToken::new();
        tokio::spawn(equipment.clone().follow_purges(followers.clone()));
        let state = AppState {
            nexon,
            store,
            equipment,
            bodies: moka::sync::Cache::builder()
                .max_capacity(config.tiers.raw_max_bytes)
                .weigher(|_: &[u8; 32], body: &bytes::Bytes| {
                    u32::try_from(body.len() + 64).unwrap_or(u32::MAX)
                })
                .build(),
            ocids: moka::sync::Cache::builder()
                .max_capacity(OCID_CACHE_ENTRIES)
                .time_to_live(OCID_CACHE_TTL)
                .build(),
            metrics,
            engine: Arc::new(engine),
            valuations: moka::future::Cache::builder()
                .max_capacity(VALUATION_CACHE_ENTRIES)
                .build(),
            shutdown: CancellationToken::new(),
            likes,
            locks,
            like_limits: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            admin_keys,
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight)),
            client_limits: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            config: Arc::new(config.clone()),
        };
        Ok(Self {
            config,
            state,
            followers: followers.drop_guard(),
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, gives in-flight requests the
    /// configured deadline, and closes the database pool.
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
        // When the drain began, for the rest of the shutdown's budget.
        let drain_began = Arc::new(std::sync::OnceLock::new());
        let metrics = state.metrics.clone();
        let signal = {
            let (draining, drain_began) = (draining.clone(), Arc::clone(&drain_began));
            async move {
                tokio::select! {
                    () = shutdown => draining.cancel(),
                    () = draining.cancelled() => {}
                }
                let _ = drain_began.set(std::time::Instant::now());
                metrics.shutdown_phase.set(1);
            }
        };
        let result = server::serve(
            listener,
            router,
            config.connections,
            signal,
            config.shutdown_deadline,
        )
        .await;
        // Likes: the buffer goes to Redis, else the database, else a backup file, within
        // what is left of the shutdown deadline (at least two seconds).
        let spent = drain_began
            .get()
            .map_or(std::time::Duration::ZERO, std::time::Instant::elapsed);
        let phases = &state.metrics;
        let mut phase_started = std::time::Instant::now();
        let mut end_phase = |name: &str, next: i64| {
            let took = if name == "drain" {
                spent
            } else {
                phase_started.elapsed()
            };
            phases
                .shutdown_phase_seconds
                .with_label_values(&[name])
                .set(took.as_secs_f64());
            phases.shutdown_phase.set(next);
            tracing::info!(
                phase = name,
                seconds = took.as_secs_f64(),
                "shutdown phase done"
            );
            phase_started = std::time::Instant::now();
        };
        end_phase("drain", 2);
        let budget = config
            .shutdown_deadline
            .saturating_sub(spent)
            .max(std::time::Duration::from_secs(2));
        // Equipment loads still running (a client may have hung up) store what they fetched.
        let stored = async {
            while state.equipment.in_flight() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(budget / 2, stored).await.is_err() {
            tracing::warn!(
                loads = state.equipment.in_flight(),
                "equipment loads still running at shutdown; leaving them"
            );
        }
        end_phase("equipment", 3);
        tracing::info!(?budget, "saving the like buffer");
        state.likes.shutdown(budget / 2).await;
        end_phase("likes", 4);
        state.store.close().await;
        end_phase("database", 5);
        tracing::info!("core stopped");
        result
    }
}
