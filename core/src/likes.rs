//! Likes: accepted fast, counted exactly, never lost once acknowledged.
//!
//! # The path of a like
//! 1. The handler adds it to one of this instance's sharded buffers (a short mutex per shard,
//!    chosen by worker thread, so there is no global lock on the hot path) and waits.
//! 2. The flusher wakes on the first like, swaps every shard's buffer out and writes them as
//!    one **batch** with a fresh id (group commit: at most one write in flight, the next one
//!    at least `flush_every` after the last began, carrying everything that arrived meanwhile):
//!    to Redis (one Lua script: the batch hash, the queue, the pending counts, the
//!    idempotency keys), else straight to the database (one transaction), else to a backup
//!    file (fsync + rename). Only then are the waiting handlers answered 202; if all three
//!    fail they get 503 and nothing was stored. So an acknowledged like is in Redis, the
//!    database or a file on disk: `kill -9` loses none.
//! 3. A batch in Redis is also kept in the memory of the instance that flushed it until the
//!    database holds it (checked every `watch_every`). If Redis loses it first — restarted
//!    without persistence, failed over to a replica that lacked it — that instance applies it
//!    to the database itself. Losing a like then takes Redis losing its data *and* that
//!    instance dying before its next check (a graceful stop runs a last sync and check
//!    first), or its copies being at their memory bound; Redis with AOF and no eviction (the
//!    compose stack) closes that too.
//! 4. In distributed mode one instance at a time (the `likes-sync` lock, with a fencing
//!    token) moves batches from Redis to the database: claim ids (a dead leader's in-flight
//!    ids first), read them, add their counts in one transaction that records each batch id
//!    and checks the fence, then take them out of Redis. An id whose batch is gone from
//!    Redis is not recorded (so the instance holding it can still apply it).
//!
//! Every path records the batch id in `like_batches` in the transaction that adds its counts,
//! so a batch that arrives twice — a retried flush, a leader killed between commit and
//! cleanup, a backup file applied again — counts once.
//!
//! # Reads
//! `count` = pending in Redis (read first) + the database + likes held only in backup files.
//! Reading Redis first means a concurrent sync can only make a read count a batch twice for
//! that instant, never miss one.

mod backup;
pub mod batch;
mod buffer;
pub mod queue;
mod recover;
mod state;
mod sync;
mod watch;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use maple_common::nexon::Ocid;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::backup::BackupDir;
pub use self::batch::valid_key;
/// How long an idempotency key (and a flushed batch id) is remembered.
pub use self::queue::REMEMBER as KEY_MEMORY;
pub use self::state::{BackupInfo, LikeConfig, LikeCount, LikeError, Likes};
use self::state::{Counts, Inner, Retained, SHARDS, Shard, Taken};
pub use self::sync::SyncPass;
// For the end-to-end tests, the fuzz test and the benches.
#[cfg(feature = "test-hooks")]
pub use self::{
    backup::{BackupError, BackupFile, decode as decode_backup},
    batch::{Batch, Queued, Target},
    state::Added,
    sync::SyncError,
};
use crate::lock::Locks;
use crate::metrics::CoreMetrics;
use crate::redis_link::RedisLink;
use crate::store::{Store, StoreError};
use crate::supervise::{Task, supervised};

/// The lock that elects the sync leader.
#[cfg(feature = "test-hooks")]
pub use crate::lock::LIKES_SYNC as SYNC_LOCK;

impl Likes {
    pub fn new(
        config: LikeConfig,
        redis: Option<RedisLink>,
        store: Store,
        locks: Locks,
        metrics: CoreMetrics,
    ) -> Self {
        let backups = BackupDir::new(config.backup_dir.clone());
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                wake: Notify::new(),
                accepting: AtomicBool::new(true),
                buffered: AtomicUsize::new(0),
                config,
                redis,
                scripts: queue::Scripts::default(),
                store,
                locks,
                backups,
                spilled: Mutex::new(HashMap::new()),
                stored: moka::sync::Cache::builder().max_capacity(100_000).build(),
                known: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
                reading: AtomicBool::new(false),
                to_read: Mutex::default(),
                reads: AtomicU64::new(0),
                unreadable: Mutex::new(HashSet::new()),
                retained: Mutex::new(Retained::default()),
                retention_full: AtomicBool::new(false),
                metrics,
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                panics_to_inject: AtomicUsize::new(0),
            }),
        }
    }

    pub fn config(&self) -> &LikeConfig {
        &self.inner.config
    }

    /// Likes waiting for their flush.
    pub fn buffered(&self) -> usize {
        self.inner.buffered.load(Ordering::Relaxed)
    }

    /// Backup files waiting to be applied, each with its size and whether it can be read.
    pub async fn backup_files(&self) -> Vec<BackupInfo> {
        let backups = self.inner.backups.clone();
        tokio::task::spawn_blocking(move || {
            backups
                .pending()
                .into_iter()
                .map(|path| BackupInfo {
                    bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    problem: backups.read(&path).err().map(|e| e.to_string()),
                    file: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Applies backup files left by an earlier run, then starts the flusher, the recovery
    /// loop and (with Redis) the sync and watch loops, each restarted after a panic.
    pub async fn start(&self) {
        self.recover().await;
        self.supervise(Task::LikesFlush, Self::flush_loop);
        self.supervise(Task::LikesRecover, Self::recover_loop);
        if self.inner.redis.is_some() {
            self.supervise(Task::LikesSync, Self::sync_loop);
            self.supervise(Task::LikesWatch, Self::watch_loop);
        }
    }

    /// Runs the loop `run` on the likes' task tracker, restarted after a panic.
    fn supervise<F, Fut>(&self, task: Task, run: F)
    where
        F: Fn(Self) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let this = self.clone();
        let restarts = this.inner.metrics.task_restarts_total.clone();
        let stop = this.inner.stop.clone();
        self.inner
            .tasks
            .spawn(supervised(task, restarts, stop, move || run(this.clone())));
    }

    /// The character's count: pending in Redis + stored + held in backup files. `partial`
    /// when Redis could not be asked or the database's count came from memory.
    ///
    /// # Errors
    /// [`StoreError`] when the database is down and no count for it was seen before.
    pub async fn count(&self, ocid: &Ocid) -> Result<LikeCount, StoreError> {
        let (counts, _) = self.read_and_learn(&[ocid.as_str()]).await?;
        let partial = counts.partial;
        Ok(LikeCount {
            likes: counts.likes.get(ocid.as_str()).copied().unwrap_or(0),
            partial,
        })
    }

    /// [`Self::counts`]; what a full read found becomes the known count of each character for
    /// which this instance acknowledged no like while the read ran, unless a read that began
    /// later was learned first (see [`state::Known`]). Whether every character was learned.
    async fn read_and_learn(&self, ocids: &[&str]) -> Result<(Counts, bool), StoreError> {
        let read = self.inner.reads.fetch_add(1, Ordering::AcqRel) + 1;
        let before: Vec<Option<i64>> = ocids
            .iter()
            .map(|ocid| {
                let known = self.inner.known.get(*ocid)?;
                let acked = known.lock().unwrap_or_else(PoisonError::into_inner).acked;
                Some(acked)
            })
            .collect();
        let counts = self.counts(ocids).await?;
        if counts.partial {
            return Ok((counts, false));
        }
        let mut learned = true;
        for (ocid, acked_before) in ocids.iter().zip(before) {
            let found = counts.likes.get(*ocid).copied().unwrap_or(0);
            let fresh = state::Known {
                at_read: found,
                learned: read,
                read: true,
                ..state::Known::default()
            };
            let entry = self
                .inner
                .known
                .entry((*ocid).to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(fresh)));
            if entry.is_fresh() {
                // Unknown before and after: what was read is the count.
                if acked_before.is_some() {
                    learned = false;
                }
                continue;
            }
            let mut known = entry.value().lock().unwrap_or_else(PoisonError::into_inner);
            if acked_before != Some(known.acked) || known.learned > read {
                learned = false;
                continue;
            }
            known.at_read = found;
            known.acked_at_read = known.acked;
            known.learned = read;
            known.read = true;
        }
        Ok((counts, learned))
    }

    /// Counts of `ocids`, consistent with the sync: pending and the sync marks are read
    /// together, then the database, then the marks again; if a commit started or ran in
    /// between, a batch may have been in both reads, so the read is repeated (a few times,
    /// then answered as `partial`).
    async fn counts(&self, ocids: &[&str]) -> Result<Counts, StoreError> {
        let inner = &self.inner;
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            let before = match &inner.redis {
                Some(redis) => inner.scripts.snapshot(redis, ocids).await.ok(),
                None => None,
            };
            let (stored, db_ok) = match inner.store.like_counts(ocids).await {
                Ok(found) => {
                    for ocid in ocids {
                        let n = found.get(*ocid).copied().unwrap_or(0);
                        inner.stored.insert((*ocid).to_owned(), n);
                    }
                    (found, true)
                }
                Err(error) => {
                    let mut known = HashMap::new();
                    for ocid in ocids {
                        match inner.stored.get(*ocid) {
                            Some(n) => known.insert((*ocid).to_owned(), n),
                            None => return Err(error),
                        };
                    }
                    (known, false)
                }
            };
            let (pending, consistent) = match (&inner.redis, before) {
                (None, _) => (HashMap::new(), true),
                (Some(_), None) => (HashMap::new(), false),
                (Some(redis), Some((pending, marks))) => {
                    let after = inner
                        .scripts
                        .snapshot(redis, &[])
                        .await
                        .ok()
                        .map(|(_, m)| m);
                    let quiet = !marks.syncing && after == Some(marks);
                    if !quiet && attempt < 5 {
                        tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt))).await;
                        continue;
                    }
                    (pending, quiet)
                }
            };
            let likes = ocids
                .iter()
                .map(|o| {
                    let n = stored.get(*o).copied().unwrap_or(0)
                        + pending.get(*o).copied().unwrap_or(0)
                        + self.spilled(o);
                    ((*o).to_owned(), n)
                })
                .collect();
            return Ok(Counts {
                likes,
                partial: !(db_ok && consistent),
            });
        }
    }

    fn spilled(&self, ocid: &str) -> i64 {
        self.inner
            .spilled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ocid)
            .copied()
            .unwrap_or(0)
    }

    /// Waits `every`; false once the service is stopping (the background loops' pace).
    async fn tick(&self, every: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(every) => true,
            () = self.inner.stop.cancelled() => false,
        }
    }

    /// The likes' Redis breaker, when Redis is configured.
    pub fn redis_breaker(&self) -> Option<maple_common::breaker::Snapshot> {
        self.inner.redis.as_ref().map(RedisLink::breaker)
    }

    /// Whether the likes' Redis answers a `PING` (`None`: no Redis configured).
    pub async fn redis_answers(&self) -> Option<bool> {
        Some(self.inner.redis.as_ref()?.ping().await.is_ok())
    }

    /// The Redis scripts and link, for tests that drive a sync step by step.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn redis_parts(&self) -> Option<(&RedisLink, &queue::Scripts)> {
        Some((self.inner.redis.as_ref()?, &self.inner.scripts))
    }

    /// Stops taking likes, flushes what is buffered (Redis, else the database, else a backup
    /// file: the stores get half the time left, the file the rest), and stops the background
    /// loops (a sync pass in progress finishes and releases its lock) — all within
    /// `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let inner = &self.inner;
        let end = Instant::now() + deadline;
        let left = || end.saturating_duration_since(Instant::now());
        inner.accepting.store(false, Ordering::Release);
        inner.stop.cancel();
        inner.tasks.close();
        if tokio::time::timeout(deadline / 4, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("like loops did not stop in time");
        }
        // Whatever handlers added after the flusher's last round.
        let Taken {
            batch,
            repeats,
            waiting,
            ..
        } = self.take_buffer();
        if !batch.is_empty() {
            tracing::info!(
                likes = batch.total(),
                "flushing the like buffer before exit"
            );
            // The stores get half of what is left; the backup file the rest, and no more: a
            // disk that hangs does not hold the exit past the deadline.
            let result =
                match tokio::time::timeout(left(), self.write(&batch, Some(left() / 2))).await {
                    Ok(result) => result.map(|f| f.with_repeats(repeats)),
                    Err(_) => Err(Arc::new(state::Unstored {
                        reason: "the shutdown deadline passed while the backup file was written"
                            .to_owned(),
                        outcome_unknown: true,
                    })),
                };
            if let Err(error) = &result {
                tracing::error!(%error, likes = batch.total(), "the like buffer could not be saved");
            }
            for done in waiting {
                done.send_replace(Some(result.clone()));
            }
        }
        inner.metrics.like_buffer.set(0);
        self.last_sync(left()).await;
    }
}
