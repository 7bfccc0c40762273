//! Name → ocid: memory, then the database's mapping, then Nexon (`/maplestory/v1/id` through
//! the proxy), each answer remembered in the places before it.
//!
//! Rules: names compare case-insensitively (as the database's collation does); the database is
//! a cache for this mapping, so its outage costs a Nexon call, never the request. A name Nexon
//! does not know is remembered for a short while (404 without asking again), and a lookup that
//! must ask Nexon is first admitted by the caller (the per-client miss rate).

use maple_common::nexon::Ocid;

use crate::character::CharacterName;
use crate::clock::now_ms;
use crate::metrics::{CoreMetrics, StoreOp};
use crate::nexon::{NexonClient, NexonError};
use crate::store::{Store, StoreError};

/// Why [`Ocids::resolve`] gave no ocid.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Nexon(#[from] NexonError),
    /// The caller's admission refused a call to Nexon (the client's miss rate).
    #[error("too many lookups of unknown names; retry later")]
    NotAdmitted { retry_after: std::time::Duration },
}

/// The mapping, in front of the database's.
#[derive(Debug, Clone)]
pub struct Ocids {
    /// Name (lower case) → ocid.
    memory: moka::sync::Cache<String, Ocid>,
    /// Names (lower case) Nexon said it does not know, for the not-found TTL.
    not_found: Option<moka::sync::Cache<String, ()>>,
    store: Store,
    nexon: NexonClient,
    metrics: CoreMetrics,
}

impl Ocids {
    /// At most `capacity` names in memory, each for `ttl`; as many unknown names, each for
    /// `not_found_ttl` (zero: not remembered).
    pub fn new(
        store: Store,
        nexon: NexonClient,
        metrics: CoreMetrics,
        capacity: u64,
        ttl: std::time::Duration,
        not_found_ttl: std::time::Duration,
    ) -> Self {
        Self {
            memory: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            not_found: (!not_found_ttl.is_zero()).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(not_found_ttl)
                    .build()
            }),
            store,
            nexon,
            metrics,
        }
    }

    /// The character's ocid: memory, the database, else — once `admit` allows a call —
    /// Nexon's answer (remembered in both; "no such character" remembered for a while).
    ///
    /// # Errors
    /// [`ResolveError::Nexon`] when Nexon had to be asked and did not answer with an ocid
    /// (or said earlier that it does not know the name); [`ResolveError::NotAdmitted`] when
    /// `admit` refused the call.
    pub async fn resolve(
        &self,
        name: &CharacterName,
        admit: impl FnOnce() -> Result<(), std::time::Duration>,
    ) -> Result<Ocid, ResolveError> {
        let key = Self::key(name);
        if let Some(ocid) = self.memory.get(&key) {
            return Ok(ocid);
        }
        if self
            .not_found
            .as_ref()
            .is_some_and(|n| n.contains_key(&key))
        {
            self.metrics.not_found_remembered_total.inc();
            return Err(ResolveError::Nexon(NexonError::NotFound));
        }
        match self.store.find_ocid(name).await {
            Ok(Some(ocid)) => {
                self.memory.insert(key, ocid.clone());
                return Ok(ocid);
            }
            Ok(None) => {}
            Err(e) => self.metrics.store_error(StoreOp::FindOcid, &e),
        }
        admit().map_err(|retry_after| ResolveError::NotAdmitted { retry_after })?;
        let ocid = match self.metrics.nexon_call("id", self.nexon.ocid(name)).await {
            Ok(ocid) => ocid,
            Err(NexonError::NotFound) => {
                if let Some(not_found) = &self.not_found {
                    not_found.insert(key, ());
                }
                return Err(ResolveError::Nexon(NexonError::NotFound));
            }
            Err(error) => return Err(ResolveError::Nexon(error)),
        };
        if let Err(e) = self.store.upsert_character(name, &ocid, now_ms()).await {
            self.metrics.store_error(StoreOp::UpsertCharacter, &e);
        }
        self.memory.insert(key, ocid.clone());
        Ok(ocid)
    }

    /// The ocid this service knows for `name` (memory, then the database), without asking
    /// Nexon; the memory's entry is dropped (the admin purge: the next read asks again).
    ///
    /// # Errors
    /// [`StoreError`] when the name is not in memory and the database cannot be read.
    pub async fn known_then_forget(
        &self,
        name: &CharacterName,
    ) -> Result<Option<Ocid>, StoreError> {
        let key = Self::key(name);
        let ocid = match self.memory.get(&key) {
            Some(ocid) => Some(ocid),
            None => self.store.find_ocid(name).await?,
        };
        self.memory.invalidate(&key);
        if let Some(not_found) = &self.not_found {
            not_found.invalidate(&key);
        }
        Ok(ocid)
    }

    fn key(name: &CharacterName) -> String {
        name.as_str().to_lowercase()
    }
}
