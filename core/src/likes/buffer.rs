//! The buffer: sharded by worker thread (a short mutex per shard, no global lock on the hot
//! path), swapped out whole by the flusher (group commit), each handler answered from its
//! shard's channel when its batch is stored.
//!
//! Rule: a like is answered only after the batch that carries it was written somewhere that
//! survives the process ([`Likes::write`]).

use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use maple_common::nexon::Ocid;

use super::batch::Batch;
use super::state::{Added, LikeError, Likes, SHARDS, Taken, gauge};
use crate::metrics::LikeResult;

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl Likes {
    /// Counts one like for `ocid` (once per `key`, when given) and returns after it is stored
    /// somewhere that survives this process.
    ///
    /// # Errors
    /// [`LikeError`] when it could not be stored (then it was not counted) or shutdown began.
    pub async fn add(&self, ocid: &Ocid, key: Option<String>) -> Result<Added, LikeError> {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::Acquire) {
            return Err(LikeError::ShuttingDown);
        }
        static TICKETS: AtomicU64 = AtomicU64::new(0);
        let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
        let (mut done, buffered) = {
            let mut shard = inner.shards[shard_index()]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Checked under the shard's lock: shutdown takes every shard after clearing the
            // flag, so no like can land in a shard nobody will flush.
            if !inner.accepting.load(Ordering::Acquire) {
                return Err(LikeError::ShuttingDown);
            }
            match &key {
                Some(key) => shard
                    .keyed
                    .push((ocid.as_str().to_owned(), key.clone(), ticket)),
                None => *shard.counts.entry(ocid.as_str().to_owned()).or_default() += 1,
            }
            // Counted under the shard's lock too: a flush takes the shard under this lock and
            // then subtracts what it took, so it never subtracts a like not yet counted here.
            // (Counted after the lock, a flush on another thread could subtract first: the
            // counter wrapped below zero and the next like's `+ 1` overflowed — a panic in
            // debug builds, with the like buffered but answered 500.)
            let buffered = inner.buffered.fetch_add(1, Ordering::Relaxed) + 1;
            (shard.done.subscribe(), buffered)
        };
        inner.metrics.like_buffer.set(gauge(buffered));
        inner.wake.notify_one();
        let flushed = match done.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        };
        let result = match flushed {
            Some(Ok(flushed)) => {
                let counted = key.is_none() || !flushed.duplicates.contains(&ticket);
                Ok(Added {
                    likes: flushed.counts.get(ocid.as_str()).copied().unwrap_or(0),
                    counted,
                    target: flushed.target,
                    partial: flushed.partial,
                })
            }
            Some(Err(unstored)) if unstored.outcome_unknown => {
                Err(LikeError::OutcomeUnknown(unstored.reason.clone()))
            }
            Some(Err(unstored)) => Err(LikeError::Unavailable(unstored.reason.clone())),
            None => Err(LikeError::Unavailable("the flusher stopped".into())),
        };
        let label = match &result {
            Ok(added) if added.counted => LikeResult::Accepted,
            Ok(_) => LikeResult::Duplicate,
            Err(_) => LikeResult::Failed,
        };
        inner.metrics.likes_total.inc(label);
        result
    }

    pub(super) async fn flush_loop(self) {
        let inner = &self.inner;
        // Started, or restarted after a panic that consumed a wake-up: what is buffered goes
        // now, not with the next like.
        let mut woken = true;
        loop {
            if !woken {
                tokio::select! {
                    () = inner.wake.notified() => {}
                    () = inner.stop.cancelled() => return,
                }
            }
            woken = false;
            if inner.panics_to_inject.load(Ordering::Relaxed) > 0 {
                inner.panics_to_inject.fetch_sub(1, Ordering::Relaxed);
                panic!("injected flusher panic");
            }
            // Group commit: the first like after a quiet spell is written at once; likes that
            // arrive while a write is in flight form the next batch. `flush_every` spaces the
            // writes, so under load each carries everything that came in meanwhile.
            let started = tokio::time::Instant::now();
            self.flush_once().await;
            tokio::time::sleep_until(started + inner.config.flush_every).await;
        }
    }

    /// Makes the next `n` flushes panic before they take the buffer, as a bug would: the
    /// supervision test's fault injection (the flusher is restarted, nothing is lost).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn panic_next_flushes(&self, n: usize) {
        self.inner.panics_to_inject.store(n, Ordering::Relaxed);
        self.inner.wake.notify_one();
    }

    /// Swaps every non-empty shard's buffer out, merged into one batch.
    pub(super) fn take_buffer(&self) -> Taken {
        let mut batch = Batch::new();
        let mut keyed = Vec::new();
        let mut waiting = Vec::new();
        let mut likes = 0_usize;
        for shard in &self.inner.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if shard.counts.is_empty() && shard.keyed.is_empty() {
                continue;
            }
            let taken = std::mem::take(&mut *shard);
            drop(shard);
            for (ocid, n) in taken.counts {
                likes += usize::try_from(n).unwrap_or(0);
                *batch.counts.entry(ocid).or_default() += n;
            }
            likes += taken.keyed.len();
            keyed.extend(taken.keyed);
            waiting.push(taken.done);
        }
        let repeats = batch.add_keyed(keyed);
        Taken {
            batch,
            repeats,
            waiting,
            likes,
        }
    }

    /// Swaps every shard's buffer out, writes them as one batch and answers their handlers.
    #[tracing::instrument(level = "info", name = "likes.flush", skip_all)]
    async fn flush_once(&self) {
        let inner = &self.inner;
        let Taken {
            batch,
            repeats,
            waiting,
            likes: taken,
        } = self.take_buffer();
        if batch.is_empty() {
            return;
        }
        let left = inner
            .buffered
            .fetch_sub(taken, Ordering::Relaxed)
            .saturating_sub(taken);
        inner.metrics.like_buffer.set(gauge(left));
        inner.metrics.like_flush_size.observe(batch.total() as f64);
        // Should the write panic (or be dropped) before answering, the handlers hear that
        // their likes may be stored: never "not counted" for a batch that may be in a store.
        let mut answer = Answer(waiting);
        let result = self
            .write(&batch, None)
            .await
            .map(|f| f.with_repeats(repeats));
        for done in std::mem::take(&mut answer.0) {
            done.send_replace(Some(result.clone()));
        }
    }
}

/// The handlers of a batch being written; dropped before they were answered (a panic in the
/// write), they are answered `outcome_unknown`.
struct Answer(Vec<tokio::sync::watch::Sender<Option<super::state::FlushResult>>>);

impl Drop for Answer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let unknown: super::state::FlushResult = Err(std::sync::Arc::new(super::state::Unstored {
            reason: "the flush stopped before a store confirmed the batch".to_owned(),
            outcome_unknown: true,
        }));
        for done in self.0.drain(..) {
            done.send_replace(Some(unknown.clone()));
        }
    }
}
