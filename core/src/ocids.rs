//! Name → ocid: memory, then the database's mapping, then Nexon (`/maplestory/v1/id` through
//! the proxy), each answer remembered in the places before it.
//!
//! Rules: names compare case-insensitively (as the database's collation does); the database is
//! a cache for this mapping, so its outage costs a Nexon call, never the request.

use maple_common::nexon::Ocid;

use crate::character::CharacterName;
use crate::clock::now_ms;
use crate::metrics::{CoreMetrics, StoreOp};
use crate::nexon::{NexonClient, NexonError};
use crate::store::{Store, StoreError};

/// The mapping, in front of the database's.
#[derive(Debug, Clone)]
pub struct Ocids {
    /// Name (lower case) → ocid.
    memory: moka::sync::Cache<String, Ocid>,
    store: Store,
    nexon: NexonClient,
    metrics: CoreMetrics,
}

impl Ocids {
    /// At most `capacity` names in memory, each for `ttl`.
    pub fn new(
        store: Store,
        nexon: NexonClient,
        metrics: CoreMetrics,
        capacity: u64,
        ttl: std::time::Duration,
    ) -> Self {
        Self {
            memory: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            store,
            nexon,
            metrics,
        }
    }

    /// The character's ocid: memory, the database, else Nexon's answer (remembered in both).
    ///
    /// # Errors
    /// [`NexonError`] when Nexon had to be asked and did not answer with an ocid.
    pub async fn resolve(&self, name: &CharacterName) -> Result<Ocid, NexonError> {
        let key = Self::key(name);
        if let Some(ocid) = self.memory.get(&key) {
            return Ok(ocid);
        }
        match self.store.find_ocid(name).await {
            Ok(Some(ocid)) => {
                self.memory.insert(key, ocid.clone());
                return Ok(ocid);
            }
            Ok(None) => {}
            Err(e) => self.metrics.store_error(StoreOp::FindOcid, &e),
        }
        let ocid = self.metrics.nexon_call("id", self.nexon.ocid(name)).await?;
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
        Ok(ocid)
    }

    fn key(name: &CharacterName) -> String {
        name.as_str().to_lowercase()
    }
}
