//! Where a batch goes: Redis (with a copy kept until the database holds it), else the
//! database, else a backup file; the handlers' answer with the characters' new counts.
//!
//! Rule: the chain ends at the file, which is always tried (even past a deadline); if that
//! fails too the likes are refused, never silently dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::batch::{Batch, Target};
use super::queue;
use super::state::{FlushResult, Flushed, Likes, Unstored, gauge};
use crate::clock::now_ms;
use crate::metrics::{BackupFileState, BackupResult, CountRefresh, FlushOutcome};
use crate::redis_link::RedisLink;

/// Memory (estimated) for the copies of batches flushed to Redis and not yet in the database.
/// Beyond it new batches still go to Redis, without a copy (counted in
/// `maple_core_like_unkept_batches_total`): a long database outage under heavy load must not
/// turn the flusher into a writer of backup files.
const RETAIN_MAX_BYTES: usize = 256 * 1024 * 1024;

/// How long a flush with keyed likes waits for the database's record of keys before going
/// to Redis without it.
const KEY_CHECK_BUDGET: Duration = Duration::from_millis(100);

/// Characters one background count read takes at most.
const READ_AT_ONCE: usize = 256;

/// The background count reader's hold on `reading`: let go when dropped (a panic included).
struct Reader(Likes, bool);

impl Reader {
    fn release(&mut self) {
        self.0.inner.reading.store(false, Ordering::Release);
        self.1 = false;
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.1 {
            self.release();
        }
    }
}

impl Likes {
    /// Redis, else the database, else a backup file. `budget` bounds the first two (at
    /// shutdown); the file is always tried last.
    pub(super) async fn write(&self, batch: &Batch, budget: Option<Duration>) -> FlushResult {
        let inner = &self.inner;
        let targets = batch.targets();
        // Whether a write to Redis or the database may have happened though none confirmed:
        // set before each is sent, cleared when its failure shows nothing was.
        let (redis_maybe, db_maybe) = (AtomicBool::new(false), AtomicBool::new(false));
        let attempt = async {
            // Redis took the batch but too few replicas confirmed it.
            let mut unconfirmed = None;
            if let Some(redis) = &inner.redis {
                let started = Instant::now();
                redis_maybe.store(true, Ordering::Relaxed);
                let flushed = self.flush_to_redis(redis, batch).await;
                self.observe_flush(Target::Redis, started, flushed.is_ok());
                match flushed {
                    Ok(flushed) => {
                        if !flushed.applied {
                            tracing::info!(batch = %batch.id, "batch had been flushed before");
                        }
                        // A batch Redis had counted before adds nothing now.
                        let added = if flushed.applied {
                            batch
                        } else {
                            &Batch::default()
                        };
                        return Some(self.report(Target::Redis, flushed.duplicates, added));
                    }
                    Err(queue::FlushError::TooFewReplicas) => unconfirmed = Some(redis),
                    Err(error) => redis_maybe.store(error.may_have_written(), Ordering::Relaxed),
                }
            }
            let started = Instant::now();
            db_maybe.store(true, Ordering::Relaxed);
            let applied = inner.store.apply_like_batch(batch, now_ms()).await;
            self.observe_flush(Target::Db, started, applied.is_ok());
            match applied {
                Ok(applied) => {
                    if let Some(redis) = unconfirmed {
                        // The database holds it now: Redis's copy leaves the pending counts
                        // at once, not at the next sync, so reads do not count it twice.
                        if let Err(error) = inner.scripts.drop_copy(redis, &batch.id).await {
                            tracing::info!(batch = %batch.id, ?error, "likes: Redis's unconfirmed copy of a batch stays until the sync (reads may count it twice meanwhile)");
                        }
                    }
                    Some(self.report(Target::Db, applied.duplicates, batch))
                }
                Err(error) => {
                    db_maybe.store(error.may_have_written(), Ordering::Relaxed);
                    tracing::warn!(batch = %batch.id, %error, "likes: database refused the batch");
                    None
                }
            }
        };
        let reached = match budget {
            Some(budget) => tokio::time::timeout(budget, attempt).await.ok().flatten(),
            None => attempt.await,
        };
        if let Some(flushed) = reached {
            return Ok(Arc::new(flushed));
        }
        // Neither store took it: to disk, or the likes are refused.
        let started = Instant::now();
        let backups = inner.backups.clone();
        let owned = batch.clone();
        let written = tokio::task::spawn_blocking(move || backups.write(&owned))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        self.observe_flush(Target::Backup, started, written.is_ok());
        match written {
            Ok(path) => {
                inner.metrics.like_backups_total.inc(BackupResult::Written);
                inner
                    .metrics
                    .like_backup_files
                    .inc(BackupFileState::Pending);
                tracing::warn!(batch = %batch.id, path = %path.display(), likes = batch.total(), "likes written to a backup file");
                {
                    let mut spilled = inner.spilled.lock().unwrap_or_else(PoisonError::into_inner);
                    for (ocid, n) in batch.per_ocid() {
                        *spilled.entry(ocid.to_owned()).or_default() += n;
                    }
                }
                Ok(Arc::new(Flushed {
                    target: Target::Backup,
                    duplicates: HashSet::new(),
                    pairs: Vec::new(),
                    counts: self.remembered(&targets),
                    // From memory: what Redis holds pending was not read.
                    partial: true,
                }))
            }
            Err(error) => {
                inner.metrics.like_backups_total.inc(BackupResult::Failed);
                let outcome_unknown =
                    redis_maybe.load(Ordering::Relaxed) || db_maybe.load(Ordering::Relaxed);
                if outcome_unknown {
                    inner.metrics.like_outcome_unknown_total.inc();
                    tracing::error!(batch = %batch.id, %error, likes = batch.total(), "likes: no store confirmed the batch, but Redis or the database may hold it; answered outcome_unknown");
                } else {
                    tracing::error!(batch = %batch.id, %error, likes = batch.total(), "likes could not be stored anywhere; refused");
                }
                Err(Arc::new(Unstored {
                    reason: error,
                    outcome_unknown,
                }))
            }
        }
    }

    /// Flushes `batch` to Redis and keeps a copy of what Redis counted of it in memory until
    /// the database holds it (memory permitting). A batch Redis had seen before (a backup file
    /// whose first flush was in doubt) is kept whole: whether it is still there is what the
    /// checks find out.
    pub(super) async fn flush_to_redis(
        &self,
        redis: &RedisLink,
        batch: &Batch,
    ) -> Result<queue::Flushed, queue::FlushError> {
        // Keyed likes the database has counted (a retry of a like that took the database
        // path) are not counted in Redis again.
        let known = self.known_keys(batch).await;
        let unknown;
        let batch = if known.is_empty() {
            batch
        } else {
            unknown = Batch {
                id: batch.id.clone(),
                counts: batch.counts.clone(),
                keyed: batch
                    .keyed
                    .iter()
                    .filter(|pair| !known.contains(*pair))
                    .cloned()
                    .collect(),
            };
            &unknown
        };
        let mut flushed = self
            .inner
            .scripts
            .flush(redis, batch)
            .await
            .inspect_err(|error| {
                if *error == queue::FlushError::TooFewReplicas {
                    self.inner.metrics.like_replica_shortfalls_total.inc();
                    tracing::warn!(batch = %batch.id, replicas = redis.min_replicas(), "likes: too few Redis replicas confirmed the batch; it goes to the database");
                }
            })?;
        flushed.duplicates.extend(known);
        let repeats: HashSet<&(String, String)> = flushed.duplicates.iter().collect();
        let kept = Batch {
            id: batch.id.clone(),
            counts: batch.counts.clone(),
            keyed: batch
                .keyed
                .iter()
                .filter(|pair| !repeats.contains(pair))
                .cloned()
                .collect(),
        };
        if kept.is_empty() {
            return Ok(flushed);
        }
        let mut retained = self.retained();
        if retained.bytes + kept.approx_bytes() > RETAIN_MAX_BYTES {
            drop(retained);
            self.inner.metrics.like_unkept_batches_total.inc();
            if !self.inner.retention_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    bytes = RETAIN_MAX_BYTES,
                    "likes: the copies of batches not yet in the database are at their bound; new batches go to Redis without a copy until the sync catches up"
                );
            }
            return Ok(flushed);
        }
        retained.insert(kept);
        self.inner
            .metrics
            .like_retained_batches
            .set(gauge(retained.batches.len()));
        self.inner.retention_full.store(false, Ordering::Relaxed);
        Ok(flushed)
    }

    /// Which of `batch`'s keyed likes the database has recorded, asked within
    /// [`KEY_CHECK_BUDGET`]. Best effort: unanswered, none are known, and the sync (which
    /// records the keys of a batch from Redis in the database) still counts each key once;
    /// only the answer and reads until then are off by such a repeat.
    async fn known_keys(&self, batch: &Batch) -> HashSet<(String, String)> {
        if batch.keyed.is_empty() {
            return HashSet::new();
        }
        let asked = self.inner.store.known_like_keys(&batch.keyed);
        match tokio::time::timeout(KEY_CHECK_BUDGET, asked).await {
            Ok(Ok(known)) => known,
            Ok(Err(error)) => {
                tracing::debug!(%error, "likes: the database's idempotency keys could not be read; the sync settles repeats");
                HashSet::new()
            }
            Err(_) => HashSet::new(),
        }
    }

    /// A stored batch as its handlers see it, answered at once: each character's count as this
    /// instance knows it ([`super::state::Known`]: its last read plus the likes it
    /// acknowledged since, this batch's included), `partial` while no read has landed for one
    /// of them. A read of the batch's characters follows in the background and renews what is
    /// known; the acknowledgement never waits for it.
    fn report(&self, target: Target, duplicates: Vec<(String, String)>, batch: &Batch) -> Flushed {
        let mut added = batch.per_ocid();
        for (ocid, _) in &duplicates {
            if let Some(n) = added.get_mut(ocid.as_str()) {
                *n -= 1;
            }
        }
        let mut counts = HashMap::with_capacity(added.len());
        let mut partial = false;
        for (ocid, n) in &added {
            let known = self.inner.known.get_with((*ocid).to_owned(), || {
                Arc::new(std::sync::Mutex::new(super::state::Known {
                    at_read: self.remembered(&[ocid]).get(*ocid).copied().unwrap_or(0),
                    ..super::state::Known::default()
                }))
            });
            let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
            known.acked += n;
            counts.insert((*ocid).to_owned(), known.count());
            partial |= !known.read;
        }
        self.refresh_known(added.keys().map(|ocid| (*ocid).to_owned()));
        Flushed {
            target,
            duplicates: HashSet::new(),
            pairs: duplicates,
            counts,
            partial,
        }
    }

    /// Reads `ocids`' counts in the background so the next acknowledgements answer from a
    /// fresh count: one reader at a time, which takes every character flushed meanwhile (a few
    /// hundred per read) until none is left.
    fn refresh_known(&self, ocids: impl Iterator<Item = String>) {
        let inner = &self.inner;
        inner
            .to_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(ocids);
        if inner.reading.swap(true, Ordering::AcqRel) {
            inner
                .metrics
                .like_count_refreshes_total
                .inc(CountRefresh::Busy);
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            // Released however the task ends (a panic included), so reads never stop.
            let mut reader = Reader(this, true);
            loop {
                let batch: Vec<String> = {
                    let mut to_read = reader
                        .0
                        .inner
                        .to_read
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let batch: Vec<String> = to_read.iter().take(READ_AT_ONCE).cloned().collect();
                    for ocid in &batch {
                        to_read.remove(ocid);
                    }
                    batch
                };
                if batch.is_empty() {
                    reader.release();
                    // A flush that found the reader busy just before it let go: read on.
                    let waiting = !reader
                        .0
                        .inner
                        .to_read
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty();
                    if !waiting || reader.0.inner.reading.swap(true, Ordering::AcqRel) {
                        return;
                    }
                    reader.1 = true;
                    continue;
                }
                let ocids: Vec<&str> = batch.iter().map(String::as_str).collect();
                let result = match reader.0.read_and_learn(&ocids).await {
                    Ok((_, true)) => CountRefresh::Ok,
                    Ok((counts, false)) if !counts.partial => CountRefresh::Overtaken,
                    _ => CountRefresh::Failed,
                };
                reader
                    .0
                    .inner
                    .metrics
                    .like_count_refreshes_total
                    .inc(result);
            }
        });
    }

    /// The counts this instance remembers for `targets`: the database's last seen plus what
    /// it holds in backup files (not what Redis holds pending).
    fn remembered(&self, targets: &[&str]) -> HashMap<String, i64> {
        targets
            .iter()
            .map(|o| {
                let known = self.inner.stored.get(*o).unwrap_or(0);
                ((*o).to_owned(), known + self.spilled(o))
            })
            .collect()
    }

    fn observe_flush(&self, target: Target, started: Instant, ok: bool) {
        let metrics = &self.inner.metrics;
        let result = if ok {
            FlushOutcome::Ok
        } else {
            FlushOutcome::Error
        };
        metrics.like_flush(target, result);
        metrics
            .like_flush_duration_seconds
            .with_label_values(&[target.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
}
