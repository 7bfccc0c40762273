//! The watch of retained batches: this instance's copies of the batches it flushed to
//! Redis, checked against Redis and the database; those Redis lost are applied from here.
//!
//! Rule: database first, then Redis's pending counts — a read in between may count a batch
//! twice for that instant, never miss it.

use std::sync::PoisonError;
use std::time::Duration;

use super::batch::Batch;
use super::state::{Likes, Retained, gauge};
use crate::clock::now_ms;
use crate::metrics::LostKind;

/// Batches looked up per Redis / database round trip when checking.
const WATCH_CHUNK: usize = 500;

impl Likes {
    pub(super) fn retained(&self) -> std::sync::MutexGuard<'_, Retained> {
        self.inner
            .retained
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn watch_loop(self) {
        let every = self
            .inner
            .config
            .watch_every
            .max(Duration::from_millis(100));
        while self.tick(every).await {
            self.watch_once().await;
        }
    }

    /// Checks the batches this instance flushed to Redis. Those still in Redis wait for the
    /// sync. Those gone from Redis were synced and cleaned up — or lost by Redis: the ones the
    /// database does not hold are applied to it now (same id, so a sync that raced this counts
    /// them once). Then every gone batch's likes leave `pending` if Redis still counts them
    /// there (its hash lost, its counted-marker kept), and it is forgotten. Database first,
    /// then `pending`: a read in between counts such a batch twice for that instant, never
    /// misses it. Stops early, keeping the rest for the next check, when Redis or the database
    /// cannot be asked. Returns the likes applied to the database.
    pub async fn watch_once(&self) -> i64 {
        let inner = &self.inner;
        let Some(redis) = &inner.redis else {
            return 0;
        };
        let ids: Vec<String> = self.retained().batches.keys().cloned().collect();
        let mut rescued = 0;
        'chunks: for chunk in ids.chunks(WATCH_CHUNK) {
            // Redis first: the sync deletes a batch from Redis only after its commit, so a
            // batch gone from Redis is in the database — unless Redis lost it.
            let Ok(present) = inner.scripts.present(redis, chunk).await else {
                break;
            };
            let gone: Vec<Batch> = {
                let retained = self.retained();
                chunk
                    .iter()
                    .zip(present)
                    .filter(|(_, present)| !present)
                    .filter_map(|(id, _)| retained.batches.get(id).cloned())
                    .collect()
            };
            if gone.is_empty() {
                continue;
            }
            let ids: Vec<&str> = gone.iter().map(|b| b.id.as_str()).collect();
            let Ok(recorded) = inner.store.recorded_batches(&ids).await else {
                break;
            };
            for batch in gone.iter().filter(|b| !recorded.contains(&b.id)) {
                let Ok(applied) = inner.store.apply_like_batch(batch, now_ms()).await else {
                    break 'chunks;
                };
                if applied.applied {
                    let likes =
                        batch.total() - i64::try_from(applied.duplicates.len()).unwrap_or(0);
                    rescued += likes;
                    let lost_total = &inner.metrics.like_redis_lost_total;
                    lost_total.inc(LostKind::Batches);
                    lost_total.inc_by(LostKind::Likes, u64::try_from(likes).unwrap_or(0));
                    tracing::warn!(batch = %batch.id, likes, "Redis lost a like batch before the sync; applied it to the database from memory");
                }
            }
            let batches: Vec<&Batch> = gone.iter().collect();
            if inner.scripts.release_lost(redis, &batches).await.is_err() {
                break;
            }
            let mut retained = self.retained();
            for batch in &gone {
                retained.remove(&batch.id);
            }
        }
        let left = self.retained().batches.len();
        inner.metrics.like_retained_batches.set(gauge(left));
        rescued
    }
}
