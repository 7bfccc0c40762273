//! The sync leader: one instance at a time (the `likes-sync` lock with a fencing token)
//! moves batches from Redis to the database; the last pass at shutdown.
//!
//! Rule: a batch leaves Redis only after the transaction that records its id and adds its
//! counts committed under the newest fence.

use std::time::{Duration, Instant};

use super::batch::Batch;
use super::queue;
use super::state::Likes;
use crate::clock::now_ms;
use crate::lock::LIKES_SYNC as SYNC_LOCK;
use crate::lock::LockError;
use crate::metrics::{SyncResult, SyncedKind};
use crate::redis_link::RedisLink;
use crate::store::StoreError;

/// Batch ids kept in the database to recognise a batch delivered again.
const BATCH_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Batches one sync transaction takes.
const SYNC_BATCHES: usize = 500;

impl Likes {
    pub(super) async fn sync_loop(self) {
        let mut pruned_at: Option<Instant> = None;
        while self.tick(self.inner.config.sync_every).await {
            let result = self.sync_once().await;
            if matches!(result, Ok(SyncPass::Synced(_) | SyncPass::Idle))
                && pruned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(600))
            {
                pruned_at = Some(Instant::now());
                let now = now_ms();
                let horizon = i64::try_from(BATCH_MEMORY.as_millis()).unwrap_or(i64::MAX);
                let keys = i64::try_from(queue::REMEMBER.as_millis()).unwrap_or(i64::MAX);
                if let Err(error) = self
                    .inner
                    .store
                    .prune_likes(now - horizon, now - keys)
                    .await
                {
                    tracing::warn!(%error, "pruning like batch ids failed");
                }
            }
        }
    }

    /// One sync pass, if this instance wins the lock: batches from Redis into the database
    /// until none are left or half the lease is used.
    ///
    /// # Errors
    /// [`SyncError`] saying why the pass stopped early (nothing is lost: the next pass, here
    /// or on another instance, continues from Redis).
    #[tracing::instrument(level = "info", name = "likes.sync", skip_all)]
    pub async fn sync_once(&self) -> Result<SyncPass, SyncError> {
        let inner = &self.inner;
        let Some(redis) = &inner.redis else {
            return Ok(SyncPass::Idle);
        };
        self.observe_lag(redis).await;
        let guard = match inner.locks.acquire(SYNC_LOCK, Duration::ZERO).await {
            Ok(guard) => guard,
            Err(LockError::Busy(_)) => {
                inner.metrics.like_syncs_total.inc(SyncResult::Busy);
                return Ok(SyncPass::Busy);
            }
            Err(error) => {
                inner.metrics.like_syncs_total.inc(SyncResult::Error);
                return Err(SyncError::Lock(error.to_string()));
            }
        };
        let started = Instant::now();
        let mut total = 0_i64;
        let outcome = loop {
            if guard.is_lost() || started.elapsed() > inner.config.lock_lease / 2 {
                break Ok(());
            }
            let ids = match inner.scripts.claim(redis, SYNC_BATCHES).await {
                Ok(ids) if ids.is_empty() => break Ok(()),
                Ok(ids) => ids,
                Err(_) => break Err(SyncError::Redis),
            };
            let until = started + inner.config.lock_lease / 2;
            match self.sync_claimed(redis, guard.fence(), &ids, until).await {
                Ok(likes) => total += likes,
                Err(error) => break Err(error),
            }
        };
        guard.release().await;
        self.observe_lag(redis).await;
        let label = match &outcome {
            Ok(()) if total > 0 => SyncResult::Ok,
            Ok(()) => SyncResult::Idle,
            Err(SyncError::Fenced(_)) => SyncResult::Fenced,
            Err(_) => SyncResult::Error,
        };
        inner.metrics.like_syncs_total.inc(label);
        outcome.map(|()| {
            if total > 0 {
                SyncPass::Synced(total)
            } else {
                SyncPass::Idle
            }
        })
    }

    /// Syncs the claimed `ids`; a set whose commit runs out of time is split in halves, each
    /// tried in turn (down to one batch, and no new part after `until`), so a backlog of any
    /// size drains — the claim stays in flight until each part is cleaned up. Returns the
    /// likes added. Public for the test that slows the database down mid-sync.
    ///
    /// # Errors
    /// [`SyncError`] for the step that failed ([`SyncError::TimedOut`]: a single batch's
    /// commit, or a part when `until` had passed).
    pub async fn sync_claimed(
        &self,
        redis: &RedisLink,
        fence: &crate::store::likes::Fence,
        ids: &[String],
        until: Instant,
    ) -> Result<i64, SyncError> {
        let mut parts = vec![ids];
        let mut total = 0;
        while let Some(part) = parts.pop() {
            match self.sync_batches(redis, fence, part).await {
                Ok(likes) => total += likes,
                Err(SyncError::TimedOut) if part.len() > 1 && Instant::now() < until => {
                    self.inner.metrics.like_sync_splits_total.inc();
                    let (first, second) = part.split_at(part.len() / 2);
                    tracing::warn!(
                        batches = part.len(),
                        "like sync commit timed out; trying it in two halves"
                    );
                    parts.push(second);
                    parts.push(first);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(total)
    }

    /// Reads, commits and cleans up one set of claimed batches (the tests that stop a leader
    /// between the steps call it through `test-hooks`).
    ///
    /// # Errors
    /// [`SyncError`] for the step that failed.
    pub async fn sync_batches(
        &self,
        redis: &RedisLink,
        fence: &crate::store::likes::Fence,
        ids: &[String],
    ) -> Result<i64, SyncError> {
        let inner = &self.inner;
        let read = inner
            .scripts
            .read(redis, ids)
            .await
            .map_err(|_| SyncError::Redis)?;
        let missing: Vec<&str> = read
            .iter()
            .filter(|batch| batch.is_empty())
            .map(|batch| batch.id.as_str())
            .collect();
        if !missing.is_empty() {
            self.report_missing(&missing).await?;
        }
        let now = now_ms();
        // Readers retry while a commit is marked (the batches may be in both places).
        inner
            .scripts
            .begin_commit(redis, fence.token, inner.config.lock_lease)
            .await
            .map_err(|_| SyncError::Redis)?;
        let synced = match inner.store.apply_synced_batches(fence, &read, now).await {
            Ok(synced) => synced,
            Err(error) => {
                let _ = inner.scripts.end_commit(redis, fence.token).await;
                return Err(match error {
                    StoreError::Fenced { token, current, .. } => {
                        tracing::warn!(token, current, "sync fenced out: a newer leader exists");
                        SyncError::Fenced(current)
                    }
                    other if other.is_timeout() => SyncError::TimedOut,
                    other => SyncError::Database(other.to_string()),
                });
            }
        };
        let metrics = &inner.metrics;
        metrics
            .like_synced_total
            .inc_by(SyncedKind::Likes, u64::try_from(synced.likes).unwrap_or(0));
        metrics
            .like_synced_total
            .inc_by(SyncedKind::SkippedBatches, synced.skipped as u64);
        metrics
            .like_synced_total
            .inc_by(SyncedKind::DuplicateKeys, synced.duplicates as u64);
        for batch in read.iter().filter(|batch| !batch.is_empty()) {
            if let Some(created) = Batch::created_at_ms(&batch.id) {
                metrics
                    .like_sync_delay_seconds
                    .observe((now - created).max(0) as f64 / 1000.0);
            }
        }
        // After the commit: if this fails, the next leader finds the ids in flight, the
        // database skips them as applied, and the cleanup is repeated.
        inner
            .scripts
            .cleanup(redis, &read)
            .await
            .map_err(|_| SyncError::Redis)?;
        let _ = inner.scripts.end_commit(redis, fence.token).await;
        Ok(synced.likes)
    }

    /// Batches listed in Redis whose contents are gone: cleaned up by a leader that raced
    /// this one (then the database has them), or lost by Redis (evicted — Redis must not
    /// evict these keys — or a partial restart). The sync does not record them
    /// ([`Store::apply_synced_batches`] skips empty batches), so the instance that flushed
    /// them can still apply them from its memory.
    async fn report_missing(&self, missing: &[&str]) -> Result<(), SyncError> {
        let recorded = self
            .inner
            .store
            .recorded_batches(missing)
            .await
            .map_err(|e| SyncError::Database(e.to_string()))?;
        let unknown: Vec<&str> = missing
            .iter()
            .copied()
            .filter(|id| !recorded.contains(*id))
            .collect();
        if !unknown.is_empty() {
            self.inner
                .metrics
                .like_synced_total
                .inc_by(SyncedKind::MissingBatches, unknown.len() as u64);
            tracing::error!(batches = ?unknown, "like batches listed in Redis but their contents are gone (evicted or lost); the instances that flushed them re-apply them from memory if they still run and kept a copy");
        }
        Ok(())
    }

    async fn observe_lag(&self, redis: &RedisLink) {
        if let Ok(oldest) = self.inner.scripts.oldest(redis).await {
            let lag = oldest
                .as_deref()
                .and_then(Batch::created_at_ms)
                .map_or(0.0, |created| (now_ms() - created).max(0) as f64 / 1000.0);
            self.inner.metrics.like_sync_lag_seconds.set(lag);
        }
    }

    /// The copies of batches this instance flushed to Redis end with the process: a last sync
    /// pass (if no other instance is leading one) and check, within `budget`, leave as few
    /// as possible to Redis alone.
    pub(super) async fn last_sync(&self, budget: Duration) {
        if self.inner.redis.is_none() || self.retained().batches.is_empty() {
            return;
        }
        let last = async {
            if let Err(error) = self.sync_once().await {
                tracing::info!(%error, "last like sync before exit did not finish");
            }
            self.watch_once().await;
        };
        if tokio::time::timeout(budget, last).await.is_err() {
            tracing::info!("last like sync before exit ran out of time");
        }
        let left = self.retained().batches.len();
        if left > 0 {
            tracing::info!(
                batches = left,
                "like batches not yet in the database are left to Redis alone"
            );
        }
    }
}

/// What a sync pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPass {
    Synced(i64),
    Idle,
    Busy,
}

/// Why a sync pass stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("lock: {0}")]
    Lock(String),
    #[error("Redis unavailable")]
    Redis,
    #[error("database: {0}")]
    Database(String),
    #[error("fenced out (newest fence {0})")]
    Fenced(i64),
    #[error("the database commit of one batch ran out of time")]
    TimedOut,
}
