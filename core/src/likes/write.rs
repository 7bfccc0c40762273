//! Where a batch goes: Redis (with a copy kept until the database holds it), else the
//! database, else a backup file; the handlers' answer with the characters' new counts.
//!
//! Rule: the chain ends at the file, which is always tried (even past a deadline); if that
//! fails too the likes are refused, never silently dropped.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::batch::{Batch, Target};
use super::queue;
use super::state::{FlushResult, Flushed, Likes, gauge};
use crate::clock::now_ms;
use crate::metrics::{BackupFileState, BackupResult, FlushResult as FlushLabel};
use crate::redis_link::RedisLink;

/// Memory (estimated) for the copies of batches flushed to Redis and not yet in the database.
/// Beyond it new batches still go to Redis, without a copy (counted in
/// `maple_core_like_unkept_batches_total`): a long database outage under heavy load must not
/// turn the flusher into a writer of backup files.
const RETAIN_MAX_BYTES: usize = 256 * 1024 * 1024;

impl Likes {
    /// Redis, else the database, else a backup file. `budget` bounds the first two (at
    /// shutdown); the file is always tried last.
    pub(super) async fn write(&self, batch: &Batch, budget: Option<Duration>) -> FlushResult {
        let inner = &self.inner;
        let targets = batch.targets();
        let attempt = async {
            if let Some(redis) = &inner.redis {
                let started = Instant::now();
                let flushed = self.flush_to_redis(redis, batch).await;
                self.observe_flush(Target::Redis, started, flushed.is_ok());
                if let Ok(flushed) = flushed {
                    if !flushed.applied {
                        tracing::info!(batch = %batch.id, "batch had been flushed before");
                    }
                    return Some(
                        self.report(Target::Redis, flushed.duplicates, &targets)
                            .await,
                    );
                }
            }
            let started = Instant::now();
            let applied = inner.store.apply_like_batch(batch, now_ms()).await;
            self.observe_flush(Target::Db, started, applied.is_ok());
            match applied {
                Ok(applied) => Some(self.report(Target::Db, applied.duplicates, &targets).await),
                Err(error) => {
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
                let mut spilled = inner.spilled.lock().unwrap_or_else(PoisonError::into_inner);
                for (ocid, n) in batch.per_ocid() {
                    *spilled.entry(ocid.to_owned()).or_default() += n;
                }
                let counts = targets
                    .iter()
                    .map(|o| {
                        let known = inner.stored.get(*o).unwrap_or(0);
                        (
                            (*o).to_owned(),
                            known + spilled.get(*o).copied().unwrap_or(0),
                        )
                    })
                    .collect();
                Ok(Arc::new(Flushed {
                    target: Target::Backup,
                    duplicates: HashSet::new(),
                    pairs: Vec::new(),
                    counts,
                }))
            }
            Err(error) => {
                tracing::error!(batch = %batch.id, %error, likes = batch.total(), "likes could not be stored anywhere; refused");
                inner.metrics.like_backups_total.inc(BackupResult::Failed);
                Err(Arc::new(error))
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
    ) -> Result<queue::Flushed, crate::redis_link::Unavailable> {
        let flushed = self.inner.scripts.flush(redis, batch).await?;
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

    /// A stored batch as its handlers see it, with the new counts of its characters (those
    /// remembered, if the database cannot be read now).
    async fn report(
        &self,
        target: Target,
        duplicates: Vec<(String, String)>,
        targets: &[&str],
    ) -> Flushed {
        let counts = match self.counts(targets).await {
            Ok(counts) => counts.likes,
            Err(_) => targets
                .iter()
                .map(|o| {
                    let known = self.inner.stored.get(*o).unwrap_or(0);
                    ((*o).to_owned(), known + self.spilled(o))
                })
                .collect(),
        };
        Flushed {
            target,
            duplicates: HashSet::new(),
            pairs: duplicates,
            counts,
        }
    }

    fn observe_flush(&self, target: Target, started: Instant, ok: bool) {
        let metrics = &self.inner.metrics;
        let result = if ok {
            FlushLabel::Ok
        } else {
            FlushLabel::Error
        };
        metrics.like_flush(target, result);
        metrics
            .like_flush_duration_seconds
            .with_label_values(&[target.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
}
