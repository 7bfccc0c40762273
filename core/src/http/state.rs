//! What handlers share ([`AppState`]), grouped by concern: reading characters, pricing, likes,
//! admission, administration, and what every part uses (the store, metrics, shutdown, the
//! configuration). Built once by [`App::build`](crate::App::build).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::client::ClientLimits;
use crate::admin::AdminKeys;
use crate::config::CoreConfig;
use crate::engine::Engine;
use crate::engine::options::Options;
use crate::equipment::EquipmentTiers;
use crate::likes::Likes;
use crate::lock::Locks;
use crate::metrics::CoreMetrics;
use crate::nexon::NexonClient;
use crate::ocids::Ocids;
use crate::store::Store;

/// What handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Reading characters: name → ocid, the equipment tiers, the decompressed bodies, Nexon.
    pub characters: Characters,
    /// Pricing: the engine and its cache of valuations.
    pub pricing: Pricing,
    pub likes: Likes,
    /// Named locks (the likes' sync leader).
    pub locks: Locks,
    /// What a request must pass before a handler runs.
    pub admission: Admission,
    pub admin_keys: AdminKeys,
    pub store: Store,
    pub metrics: CoreMetrics,
    /// Cancelled when shutdown begins (readiness turns false).
    pub shutdown: CancellationToken,
    /// The configuration, for the admin API's (redacted) dump.
    pub config: Arc<CoreConfig>,
}

/// Reading characters.
#[derive(Debug, Clone)]
pub struct Characters {
    pub nexon: NexonClient,
    /// Name → ocid, in front of the database's mapping.
    pub ocids: Ocids,
    /// The equipment tiers (L1, L2, database) in front of Nexon.
    pub equipment: EquipmentTiers,
    /// Recently decompressed equipment bodies by content hash, for clients that do not take
    /// gzip (bounded in bytes).
    pub bodies: moka::sync::Cache<[u8; 32], bytes::Bytes>,
}

/// Pricing.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub engine: Arc<Engine>,
    /// Valuations by (equipment content hash, options): a character whose equipment has not
    /// changed is not priced twice; new equipment has a new hash, so nothing goes stale.
    pub valuations: moka::future::Cache<([u8; 32], Options), Arc<serde_json::Value>>,
}

/// Admission.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Requests handled at once (`limits.max_in_flight` permits).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Per-client request rates (all `/v1/` routes).
    pub requests: ClientLimits,
    /// Per-client like rates.
    pub likes: ClientLimits,
}
