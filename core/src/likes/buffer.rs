//! The buffer: sharded by worker thread (a short mutex per shard, no global lock on the hot
//! path), swapped out whole by the flusher (group commit), each handler answered from its
//! shard's channel when its batch is stored.
//!
//! Rule: a like is answered only after the batch that carries it was written somewhere that
//! survives the process ([`Likes::write`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use maple_common::nexon::Ocid;
use tokio::sync::watch;

use super::batch::{Batch, Repeats, Target};
use super::{Added, LikeError, Likes, gauge};

/// Buffer shards (a power of two above the worker count).
pub(super) const SHARDS: usize = 16;

/// A flush's outcome, as every waiting handler sees it.
#[derive(Debug, Clone)]
pub(super) struct Flushed {
    pub(super) target: Target,
    /// Tickets of keyed likes that were not counted (their key had been counted before, or
    /// an earlier like in the same batch carried it).
    pub(super) duplicates: HashSet<u64>,
    /// Keyed likes the store reported as counted before, as (ocid, key).
    pub(super) pairs: Vec<(String, String)>,
    /// Counts after the flush, for the batch's characters.
    pub(super) counts: HashMap<String, i64>,
}

pub(super) type FlushResult = Result<Arc<Flushed>, Arc<String>>;

impl Flushed {
    /// The flush as its handlers see it: duplicates reported by the store mapped to the
    /// tickets that carried them, plus the repeats within the batch.
    pub(super) fn with_repeats(self: Arc<Self>, repeats: Repeats) -> Arc<Self> {
        let mut flushed = Arc::unwrap_or_clone(self);
        flushed.duplicates.extend(repeats.tickets);
        let stored: Vec<(String, String)> = std::mem::take(&mut flushed.pairs);
        for pair in stored {
            if let Some(ticket) = repeats.first.get(&pair) {
                flushed.duplicates.insert(*ticket);
            }
        }
        Arc::new(flushed)
    }
}

/// One shard of the buffer: the likes since the last flush and the channel their handlers
/// wait on.
#[derive(Debug)]
pub(super) struct Shard {
    counts: HashMap<String, i64>,
    /// Keyed likes: ocid, idempotency key, ticket.
    keyed: Vec<(String, String, u64)>,
    done: watch::Sender<Option<FlushResult>>,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            counts: HashMap::new(),
            keyed: Vec::new(),
            done: watch::Sender::new(None),
        }
    }
}

/// What [`Likes::take_buffer`] took.
#[derive(Debug)]
pub(super) struct Taken {
    pub(super) batch: Batch,
    pub(super) repeats: Repeats,
    pub(super) waiting: Vec<watch::Sender<Option<FlushResult>>>,
    pub(super) likes: usize,
}

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
        let mut done = {
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
            shard.done.subscribe()
        };
        let buffered = inner.buffered.fetch_add(1, Ordering::Relaxed) + 1;
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
                })
            }
            Some(Err(reason)) => Err(LikeError::Unavailable(reason.to_string())),
            None => Err(LikeError::Unavailable("the flusher stopped".into())),
        };
        let label = match &result {
            Ok(added) if added.counted => "accepted",
            Ok(_) => "duplicate",
            Err(_) => "failed",
        };
        inner.metrics.likes_total.with_label_values(&[label]).inc();
        result
    }

    pub(super) async fn flush_loop(self) {
        let inner = &self.inner;
        loop {
            tokio::select! {
                () = inner.wake.notified() => {}
                () = inner.stop.cancelled() => return,
            }
            // Group commit: the first like after a quiet spell is written at once; likes that
            // arrive while a write is in flight form the next batch. `flush_every` spaces the
            // writes, so under load each carries everything that came in meanwhile.
            let started = tokio::time::Instant::now();
            self.flush_once().await;
            tokio::time::sleep_until(started + inner.config.flush_every).await;
        }
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
        let result = self
            .write(&batch, None)
            .await
            .map(|f| f.with_repeats(repeats));
        for done in waiting {
            done.send_replace(Some(result.clone()));
        }
    }
}
