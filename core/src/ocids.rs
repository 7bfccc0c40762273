//! Name → ocid: memory, then the database's mapping, then Nexon (`/maplestory/v1/id` through
//! the proxy), each answer remembered in the places before it.
//!
//! Rules: names compare case-insensitively (as the database's collation does); the database is
//! a cache for this mapping, so its outage costs a Nexon call, never the request. A name Nexon
//! does not know is remembered for a short while (404 without asking again), and a lookup that
//! must ask Nexon is first admitted by the caller (the per-client miss rate).
//!
//! Names change hands: a character is renamed, a freed name is taken by another character. A
//! stored mapping older than the re-check interval (`MAPLE_CORE_NAME_RECHECK_S`) is asked of
//! Nexon again in the background while the copy keeps answering: the same ocid renews it,
//! another ocid replaces it, "no such character" drops it (the name answers 404 from then on),
//! and a failed call keeps it (tried again a minute later). At most a few re-checks run at once
//! (a burst of due names waits for later requests), one per name. Likes and equipment are keyed by
//! ocid, so they stay with the character, not with the name: a renamed character keeps its
//! likes under its new name, and a name taken by another character shows that character's.
//! (Whether Nexon keeps a character's ocid across a rename is not stated in the sources we
//! have; if it issued a new one, the renamed character would start afresh under its new ocid.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use maple_common::nexon::Ocid;
use tokio::sync::Semaphore;

use crate::character::CharacterName;
use crate::clock::now_ms;
use crate::metrics::{CoreMetrics, RecheckOutcome, StoreOp};
use crate::nexon::{NexonClient, NexonError};
use crate::store::{KnownName, Store, StoreError};

/// After a re-check that failed, how long before the name is tried again.
const RECHECK_RETRY: Duration = Duration::from_secs(60);
/// Re-checks under way at once, over all names; a due name beyond them waits for a later
/// request (its copy answers meanwhile).
const RECHECKS_AT_ONCE: usize = 8;

/// A name's re-check under way: the name leaves the set when this is dropped.
struct UnderWay(Arc<Mutex<HashSet<String>>>, String);

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.1);
    }
}

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
    /// Name (lower case) → ocid and when Nexon last confirmed it.
    memory: moka::sync::Cache<String, KnownName>,
    /// Names (lower case) whose re-check is under way.
    rechecking: Arc<Mutex<HashSet<String>>>,
    /// Names (lower case) whose re-check failed within [`RECHECK_RETRY`].
    failed: moka::sync::Cache<String, ()>,
    /// Leave for a re-check ([`RECHECKS_AT_ONCE`]).
    recheck_permits: Arc<Semaphore>,
    /// A stored mapping older than this is asked of Nexon again.
    recheck_after: Duration,
    /// Names (lower case) Nexon said it does not know, for the not-found TTL.
    not_found: Option<moka::sync::Cache<String, ()>>,
    store: Store,
    nexon: NexonClient,
    metrics: CoreMetrics,
}

impl Ocids {
    /// At most `capacity` names in memory, each for `ttl`; as many unknown names, each for
    /// `not_found_ttl` (zero: not remembered); a mapping older than `recheck_after` is asked
    /// of Nexon again.
    pub fn new(
        store: Store,
        nexon: NexonClient,
        metrics: CoreMetrics,
        capacity: u64,
        ttl: Duration,
        not_found_ttl: Duration,
        recheck_after: Duration,
    ) -> Self {
        Self {
            memory: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            rechecking: Arc::default(),
            failed: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(RECHECK_RETRY.min(recheck_after))
                .build(),
            recheck_permits: Arc::new(Semaphore::new(RECHECKS_AT_ONCE)),
            recheck_after,
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
    /// Nexon's answer (remembered in both; "no such character" remembered for a while). A
    /// copy due for its re-check answers while the re-check runs in the background.
    ///
    /// # Errors
    /// [`ResolveError::Nexon`] when Nexon had to be asked and did not answer with an ocid
    /// (or said earlier that it does not know the name); [`ResolveError::NotAdmitted`] when
    /// `admit` refused the call.
    pub async fn resolve(
        &self,
        name: &CharacterName,
        admit: impl FnOnce() -> Result<(), Duration>,
    ) -> Result<Ocid, ResolveError> {
        let key = Self::key(name);
        if let Some(known) = self.memory.get(&key) {
            self.recheck_if_due(name, &key, &known);
            return Ok(known.ocid);
        }
        if self
            .not_found
            .as_ref()
            .is_some_and(|n| n.contains_key(&key))
        {
            self.metrics.not_found_remembered_total.inc();
            return Err(ResolveError::Nexon(NexonError::NotFound));
        }
        match self.store.find_name(name).await {
            Ok(Some(known)) => {
                self.recheck_if_due(name, &key, &known);
                self.memory.insert(key, known.clone());
                return Ok(known.ocid);
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
        self.remember(name, key, &ocid).await;
        Ok(ocid)
    }

    /// Stores `ocid` as Nexon's answer for `name` as of now, in the database and in memory.
    async fn remember(&self, name: &CharacterName, key: String, ocid: &Ocid) {
        let checked_at_ms = now_ms();
        if let Err(e) = self.store.upsert_character(name, ocid, checked_at_ms).await {
            self.metrics.store_error(StoreOp::UpsertCharacter, &e);
        }
        let known = KnownName {
            ocid: ocid.clone(),
            checked_at_ms,
        };
        self.memory.insert(key, known);
    }

    /// Starts a background re-check of `known` when it is older than the re-check interval,
    /// no re-check of the name is under way or failed a moment ago, and fewer than
    /// [`RECHECKS_AT_ONCE`] run.
    fn recheck_if_due(&self, name: &CharacterName, key: &str, known: &KnownName) {
        let age_ms = now_ms().saturating_sub(known.checked_at_ms);
        let due = u128::try_from(age_ms).unwrap_or(0) >= self.recheck_after.as_millis();
        if !due || self.failed.contains_key(key) {
            return;
        }
        let Ok(permit) = Arc::clone(&self.recheck_permits).try_acquire_owned() else {
            return;
        };
        if !self
            .rechecking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned())
        {
            return;
        }
        let (this, name, key, known) = (self.clone(), name.clone(), key.to_owned(), known.clone());
        tokio::spawn(async move {
            let _permit = permit;
            // The name leaves the set however the re-check ends (a panic included).
            let _under_way = UnderWay(Arc::clone(&this.rechecking), key.clone());
            let outcome = this.recheck(&name, key.clone(), &known).await;
            this.metrics.name_rechecks_total.inc(outcome);
            if outcome == RecheckOutcome::Failed {
                this.failed.insert(key, ());
            }
        });
    }

    /// Asks Nexon for `name` again and applies the answer (see the module's doc).
    async fn recheck(
        &self,
        name: &CharacterName,
        key: String,
        known: &KnownName,
    ) -> RecheckOutcome {
        match self.metrics.nexon_call("id", self.nexon.ocid(name)).await {
            Ok(ocid) => {
                let outcome = if ocid == known.ocid {
                    RecheckOutcome::Same
                } else {
                    tracing::info!(name = %name.as_str(), was = %known.ocid, now = %ocid, "a name now belongs to another ocid");
                    RecheckOutcome::Changed
                };
                self.remember(name, key, &ocid).await;
                outcome
            }
            Err(NexonError::NotFound) => {
                tracing::info!(name = %name.as_str(), was = %known.ocid, "Nexon no longer knows a stored name; forgotten");
                if let Err(e) = self.store.forget_name(name, &known.ocid).await {
                    self.metrics.store_error(StoreOp::ForgetName, &e);
                }
                self.memory.invalidate(&key);
                if let Some(not_found) = &self.not_found {
                    not_found.insert(key, ());
                }
                RecheckOutcome::Gone
            }
            Err(error) => {
                tracing::warn!(name = %name.as_str(), %error, "re-check of a stored name failed; the copy is kept");
                RecheckOutcome::Failed
            }
        }
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
            Some(known) => Some(known.ocid),
            None => self.store.find_ocid(name).await?,
        };
        self.memory.invalidate(&key);
        if let Some(not_found) = &self.not_found {
            not_found.invalidate(&key);
        }
        Ok(ocid)
    }

    /// Names kept in memory, and their bytes (name, ocid and the entry, roughly 96 B more).
    pub fn usage(&self) -> (u64, u64) {
        self.memory.run_pending_tasks();
        let entries = self.memory.entry_count();
        (entries, entries * (12 * 4 + 32 + 96))
    }

    fn key(name: &CharacterName) -> String {
        name.as_str().to_lowercase()
    }
}
