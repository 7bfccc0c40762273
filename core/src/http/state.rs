//! What handlers share ([`AppState`]), grouped by concern: reading characters, pricing, likes,
//! admission, administration, and what every part uses (the store, metrics, shutdown, the
//! configuration). Built once by [`App::build`](crate::App::build).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::client::{ClientLimits, KeyAllowance};
use super::ready::Valued;
use crate::admin::{AdminKeys, AuditRetention};
use crate::config::CoreConfig;
use crate::equipment::EquipmentTiers;
use crate::likes::Likes;
use crate::lock::Locks;
use crate::metrics::CoreMetrics;
use crate::nexon::NexonClient;
use crate::ocids::Ocids;
use crate::store::Store;
use maple_engine::Engine;
use maple_engine::options::Options;
use maple_engine::valuation::Gear;

/// What handlers share: one reference to [`Shared`]. Every request clones it several times
/// (each `from_fn_with_state` layer, the route, each `State` extractor), so a clone is one
/// atomic increment rather than one per cache, metric family and pool inside (a profile of
/// likes over HTTP found those clones and drops at a fifth of a like's instructions).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] refers to.
#[derive(Debug)]
pub struct Shared {
    /// Reading characters: name → ocid, the equipment tiers, the decompressed bodies, Nexon.
    pub characters: Characters,
    /// Pricing: the engine and its cache of valuations.
    pub pricing: Pricing,
    pub likes: Likes,
    /// Named locks (the likes' sync leader).
    pub locks: Locks,
    /// What a request must pass before a handler runs.
    pub admission: Admission,
    /// The admin API: its keys, its detached attempts, the audit's retention.
    pub admin: Admin,
    pub store: Store,
    pub metrics: CoreMetrics,
    /// Cancelled when shutdown begins (readiness turns false).
    pub shutdown: CancellationToken,
    /// The configuration, for the admin API's (redacted) dump.
    pub config: Arc<CoreConfig>,
}

/// The admin API's parts.
#[derive(Debug, Clone)]
pub struct Admin {
    pub keys: AdminKeys,
    /// Admin attempts (the action and its audit row), each run on its own task so that a
    /// client hanging up, or the request timeout, cancels neither; shutdown waits for them.
    pub tasks: tokio_util::task::TaskTracker,
    /// How many refused attempts the audit log keeps.
    pub retention: Arc<AuditRetention>,
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
    /// The equipment bodies' parsed forms by content hash: a new option set for a body seen
    /// before is priced without decoding the body again (bounded in bytes).
    pub gear: moka::sync::Cache<[u8; 32], Arc<Gear>>,
    /// Valuation answers, ready to send, by (equipment content hash, options): a character
    /// whose equipment has not changed is not priced twice; new equipment has a new hash, so
    /// nothing goes stale (bounded in bytes).
    pub valuations: moka::sync::Cache<([u8; 32], Options), Arc<Valued>>,
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
    /// Per-client rates of name lookups that miss every cache (each asks Nexon).
    pub misses: ClientLimits,
    /// Per-client idempotency keys in the current 24 h.
    pub keys: KeyAllowance,
    /// Pricing work no cache answers: bounded per client and overall.
    pub pricing: super::gate::PricingGate,
}
