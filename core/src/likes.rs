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
pub mod queue;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use maple_common::nexon::Ocid;
use rand::Rng as _;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use self::backup::{BackupDir, BackupError, BackupFile, decode as decode_backup};
use crate::lock::{LockError, Locks};
use crate::metrics::CoreMetrics;
use crate::redis_tier::RedisTier;
use crate::store::{Store, StoreError, now_ms};

/// The lock that elects the sync leader.
pub const SYNC_LOCK: &str = "likes-sync";

/// Batch ids kept in the database to recognise a batch delivered again.
const BATCH_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Buffer shards (a power of two above the worker count).
const SHARDS: usize = 16;

/// Batches one sync transaction takes.
const SYNC_BATCHES: usize = 500;

/// How often backup files are looked for and applied.
const RECOVER_EVERY: Duration = Duration::from_secs(5);

/// Batches looked up per Redis / database round trip when checking.
const WATCH_CHUNK: usize = 500;

/// Memory (estimated) for the copies of batches flushed to Redis and not yet in the database.
/// Beyond it new batches still go to Redis, without a copy (counted in
/// `maple_core_like_unkept_batches_total`): a long database outage under heavy load must not
/// turn the flusher into a writer of backup files.
const RETAIN_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Settings.
#[derive(Debug, Clone)]
pub struct LikeConfig {
    /// Least time between the starts of two flushes (a like arriving when the flusher is idle
    /// is written at once).
    pub flush_every: Duration,
    /// How often the sync leader moves likes from Redis to the database.
    pub sync_every: Duration,
    /// How often this instance checks the batches it flushed to Redis against Redis and the
    /// database (forgets those synced, applies those Redis lost).
    pub watch_every: Duration,
    /// Likes per second one client may send (0: no limit).
    pub client_rate: f64,
    pub client_burst: f64,
    /// Where backup files are written and looked for.
    pub backup_dir: PathBuf,
    /// The lock names' prefix (the Redis namespace).
    pub namespace: String,
    /// Lease of the sync lock (renewed every third of it while held).
    pub lock_lease: Duration,
}

impl Default for LikeConfig {
    fn default() -> Self {
        Self {
            flush_every: Duration::from_millis(2),
            sync_every: Duration::from_secs(1),
            watch_every: Duration::from_secs(2),
            client_rate: 20.0,
            client_burst: 40.0,
            backup_dir: PathBuf::from("var/backup"),
            namespace: "maple".to_owned(),
            lock_lease: Duration::from_secs(10),
        }
    }
}

/// A batch of likes as flushed: counts per ocid, and keyed likes (each counts one if its
/// idempotency key is new for that character).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// `{created ms, 13 digits}-{16 hex}`: unique, and tells the batch's age.
    pub id: String,
    pub counts: BTreeMap<String, i64>,
    pub keyed: Vec<(String, String)>,
}

impl Batch {
    fn new() -> Self {
        let random: u64 = rand::rng().random();
        Self {
            id: format!("{:013}-{random:016x}", now_ms()),
            ..Self::default()
        }
    }

    /// Adds keyed likes, one per (ocid, key); returns the tickets of the repeats (a key sent
    /// twice within one batch counts once) and, per pair, the ticket that stands for it.
    fn add_keyed(&mut self, keyed: Vec<(String, String, u64)>) -> Repeats {
        let mut repeats = Repeats::default();
        for (ocid, key, ticket) in keyed {
            match repeats.first.entry((ocid, key)) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    repeats.tickets.insert(ticket);
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    self.keyed.push(slot.key().clone());
                    slot.insert(ticket);
                }
            }
        }
        repeats
    }

    /// Likes in the batch, keyed ones included (before duplicates are known).
    pub fn total(&self) -> i64 {
        self.counts.values().sum::<i64>() + i64::try_from(self.keyed.len()).unwrap_or(i64::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.keyed.is_empty()
    }

    /// Roughly the memory the batch takes (strings plus map and vector overhead).
    fn approx_bytes(&self) -> usize {
        let counts: usize = self.counts.keys().map(|o| o.len() + 64).sum();
        let keyed: usize = self.keyed.iter().map(|(o, k)| o.len() + k.len() + 64).sum();
        self.id.len() + 96 + counts + keyed
    }

    /// Likes per character, each keyed like counting one (before duplicates are known).
    pub fn per_ocid(&self) -> BTreeMap<&str, i64> {
        let mut likes: BTreeMap<&str, i64> =
            self.counts.iter().map(|(o, n)| (o.as_str(), *n)).collect();
        for (ocid, _) in &self.keyed {
            *likes.entry(ocid.as_str()).or_default() += 1;
        }
        likes
    }

    /// When the batch was made (from its id).
    pub fn created_at_ms(id: &str) -> Option<i64> {
        id.split_once('-')?.0.parse().ok()
    }

    fn targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = self
            .counts
            .keys()
            .map(String::as_str)
            .chain(self.keyed.iter().map(|(o, _)| o.as_str()))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    }
}

/// Idempotency keys: 1 to 128 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Where a flushed batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Redis,
    Db,
    Backup,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Db => "db",
            Self::Backup => "backup",
        }
    }
}

/// A flush's outcome, as every waiting handler sees it.
#[derive(Debug, Clone)]
struct Flushed {
    target: Target,
    /// Tickets of keyed likes that were not counted (their key had been counted before, or
    /// an earlier like in the same batch carried it).
    duplicates: HashSet<u64>,
    /// Keyed likes the store reported as counted before, as (ocid, key).
    pairs: Vec<(String, String)>,
    /// Counts after the flush, for the batch's characters.
    counts: HashMap<String, i64>,
}

type FlushResult = Result<Arc<Flushed>, Arc<String>>;

/// Keyed likes of one flush: which ticket stands for each (ocid, key), and the tickets of
/// repeats within the batch.
#[derive(Debug, Default)]
struct Repeats {
    first: HashMap<(String, String), u64>,
    tickets: HashSet<u64>,
}

impl Flushed {
    /// The flush as its handlers see it: duplicates reported by the store mapped to the
    /// tickets that carried them, plus the repeats within the batch.
    fn with_repeats(self: Arc<Self>, repeats: Repeats) -> Arc<Self> {
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
struct Shard {
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
struct Taken {
    batch: Batch,
    repeats: Repeats,
    waiting: Vec<watch::Sender<Option<FlushResult>>>,
    likes: usize,
}

/// A like accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// The character's count after this like's flush (stored + pending).
    pub likes: i64,
    /// False when the idempotency key had been counted before.
    pub counted: bool,
    pub target: Target,
}

/// A backup file, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupInfo {
    pub file: String,
    pub bytes: u64,
    /// Why it cannot be applied, when it cannot be read.
    pub problem: Option<String>,
}

/// A character's like count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeCount {
    pub likes: i64,
    /// Some source could not be read (Redis down, or the database's count is from memory):
    /// the true count may be higher.
    pub partial: bool,
}

/// Batches kept until the database holds them, by id (so oldest first).
#[derive(Debug, Default)]
struct Retained {
    batches: BTreeMap<String, Batch>,
    /// Their estimated size (the memory bound).
    bytes: usize,
}

impl Retained {
    fn insert(&mut self, batch: Batch) {
        self.bytes += batch.approx_bytes();
        if let Some(old) = self.batches.insert(batch.id.clone(), batch) {
            self.bytes -= old.approx_bytes();
        }
    }

    fn remove(&mut self, id: &str) -> Option<Batch> {
        let batch = self.batches.remove(id)?;
        self.bytes -= batch.approx_bytes();
        Some(batch)
    }
}

/// Counts of several characters.
#[derive(Debug, Clone, Default)]
struct Counts {
    likes: HashMap<String, i64>,
    partial: bool,
}

/// Why a like was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LikeError {
    #[error("likes cannot be stored right now: {0}")]
    Unavailable(String),
    #[error("this instance is shutting down")]
    ShuttingDown,
}

/// The like service of one instance. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Likes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Box<[Mutex<Shard>]>,
    wake: Notify,
    accepting: AtomicBool,
    buffered: AtomicUsize,
    config: LikeConfig,
    redis: Option<RedisTier>,
    scripts: queue::Scripts,
    store: Store,
    locks: Locks,
    backups: BackupDir,
    /// Likes held only in backup files this process wrote, by ocid (for reads).
    spilled: Mutex<HashMap<String, i64>>,
    /// Last database counts seen, for answers while the database is down.
    stored: moka::sync::Cache<String, i64>,
    /// Backup files already reported as unreadable (reported once).
    unreadable: Mutex<HashSet<PathBuf>>,
    /// Batches this instance flushed to Redis that the database does not hold yet: if Redis
    /// loses them (restarted without persistence, failed over to a replica that lacked them),
    /// they are applied to the database from here.
    retained: Mutex<Retained>,
    /// Whether the copies are at their bound (logged once per episode).
    retention_full: AtomicBool,
    metrics: CoreMetrics,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl Likes {
    pub fn new(
        config: LikeConfig,
        redis: Option<RedisTier>,
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
                unreadable: Mutex::new(HashSet::new()),
                retained: Mutex::new(Retained::default()),
                retention_full: AtomicBool::new(false),
                metrics,
                stop: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
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
    /// loop and (with Redis) the sync loop.
    pub async fn start(&self) {
        self.recover().await;
        let mut tasks = vec![
            tokio::spawn(self.clone().flush_loop()),
            tokio::spawn(self.clone().recover_loop()),
        ];
        if self.inner.redis.is_some() {
            tasks.push(tokio::spawn(self.clone().sync_loop()));
            tasks.push(tokio::spawn(self.clone().watch_loop()));
        }
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks);
    }

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

    /// The character's count: pending in Redis + stored + held in backup files. `partial`
    /// when Redis could not be asked or the database's count came from memory.
    ///
    /// # Errors
    /// [`StoreError`] when the database is down and no count for it was seen before.
    pub async fn count(&self, ocid: &Ocid) -> Result<LikeCount, StoreError> {
        let counts = self.counts(&[ocid.as_str()]).await?;
        let partial = counts.partial;
        Ok(LikeCount {
            likes: counts.likes.get(ocid.as_str()).copied().unwrap_or(0),
            partial,
        })
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

    async fn flush_loop(self) {
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
    fn take_buffer(&self) -> Taken {
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

    /// Redis, else the database, else a backup file. `budget` bounds the first two (at
    /// shutdown); the file is always tried last.
    async fn write(&self, batch: &Batch, budget: Option<Duration>) -> FlushResult {
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
                inner
                    .metrics
                    .like_backups_total
                    .with_label_values(&["written"])
                    .inc();
                inner
                    .metrics
                    .like_backup_files
                    .with_label_values(&["pending"])
                    .inc();
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
                inner
                    .metrics
                    .like_backups_total
                    .with_label_values(&["failed"])
                    .inc();
                Err(Arc::new(error))
            }
        }
    }

    /// Flushes `batch` to Redis and keeps a copy of what Redis counted of it in memory until
    /// the database holds it (memory permitting). A batch Redis had seen before (a backup file
    /// whose first flush was in doubt) is kept whole: whether it is still there is what the
    /// checks find out.
    async fn flush_to_redis(
        &self,
        redis: &RedisTier,
        batch: &Batch,
    ) -> Result<queue::Flushed, crate::redis_tier::Unavailable> {
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

    fn retained(&self) -> std::sync::MutexGuard<'_, Retained> {
        self.inner
            .retained
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn watch_loop(self) {
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
                    lost_total.with_label_values(&["batches"]).inc();
                    lost_total
                        .with_label_values(&["likes"])
                        .inc_by(u64::try_from(likes).unwrap_or(0));
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
        metrics
            .like_flushes_total
            .with_label_values(&[target.as_str(), if ok { "ok" } else { "error" }])
            .inc();
        metrics
            .like_flush_duration_seconds
            .with_label_values(&[target.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Waits `every`; false once the service is stopping (the background loops' pace).
    async fn tick(&self, every: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(every) => true,
            () = self.inner.stop.cancelled() => false,
        }
    }

    async fn recover_loop(self) {
        while self.tick(RECOVER_EVERY).await {
            self.recover().await;
        }
    }

    /// Applies every backup file it can (Redis, else the database), archiving each after.
    /// Returns how many were applied.
    pub async fn recover(&self) -> usize {
        let inner = &self.inner;
        let backups = inner.backups.clone();
        let files = tokio::task::spawn_blocking(move || backups.pending())
            .await
            .unwrap_or_default();
        let (mut applied, mut pending, mut unreadable) = (0, 0, 0);
        for path in files {
            let backups = inner.backups.clone();
            let file = path.clone();
            let read = tokio::task::spawn_blocking(move || backups.read(&file)).await;
            let batch = match read {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    unreadable += 1;
                    let mut reported = inner
                        .unreadable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if reported.insert(path.clone()) {
                        tracing::error!(%error, "backup file cannot be applied; kept for a human");
                    }
                    continue;
                }
                Err(_) => continue,
            };
            let stored = match &inner.redis {
                Some(redis) => self.flush_to_redis(redis, &batch).await.is_ok(),
                None => false,
            } || inner.store.apply_like_batch(&batch, now_ms()).await.is_ok();
            if !stored {
                pending += 1;
                continue;
            }
            let backups = inner.backups.clone();
            let file = path.clone();
            let archived = tokio::task::spawn_blocking(move || backups.archive(&file)).await;
            if !matches!(archived, Ok(Ok(()))) {
                tracing::warn!(path = %path.display(), "applied backup file could not be archived; it will be applied again (harmless)");
            }
            applied += 1;
            inner
                .metrics
                .like_backups_total
                .with_label_values(&["applied"])
                .inc();
            tracing::info!(path = %path.display(), batch = %batch.id, likes = batch.total(), "backup file applied");
            let mut spilled = inner.spilled.lock().unwrap_or_else(PoisonError::into_inner);
            for (ocid, n) in batch.per_ocid() {
                if let Some(held) = spilled.get_mut(ocid) {
                    *held -= n;
                    if *held <= 0 {
                        spilled.remove(ocid);
                    }
                }
            }
        }
        let files = &inner.metrics.like_backup_files;
        files.with_label_values(&["pending"]).set(pending);
        files.with_label_values(&["unreadable"]).set(unreadable);
        applied
    }

    async fn sync_loop(self) {
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
                inner
                    .metrics
                    .like_syncs_total
                    .with_label_values(&["busy"])
                    .inc();
                return Ok(SyncPass::Busy);
            }
            Err(error) => {
                inner
                    .metrics
                    .like_syncs_total
                    .with_label_values(&["error"])
                    .inc();
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
            match self.sync_batches(redis, guard.fence(), &ids).await {
                Ok(likes) => total += likes,
                Err(error) => break Err(error),
            }
        };
        guard.release().await;
        self.observe_lag(redis).await;
        let label = match &outcome {
            Ok(()) if total > 0 => "ok",
            Ok(()) => "idle",
            Err(SyncError::Fenced(_)) => "fenced",
            Err(_) => "error",
        };
        inner
            .metrics
            .like_syncs_total
            .with_label_values(&[label])
            .inc();
        outcome.map(|()| {
            if total > 0 {
                SyncPass::Synced(total)
            } else {
                SyncPass::Idle
            }
        })
    }

    /// Reads, commits and cleans up one set of claimed batches. Public for the tests that
    /// stop a leader between the steps.
    ///
    /// # Errors
    /// [`SyncError`] for the step that failed.
    pub async fn sync_batches(
        &self,
        redis: &RedisTier,
        fence: &crate::store::Fence,
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
            .filter(|(_, batch)| batch.is_empty())
            .map(|(id, _)| id.as_str())
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
                    other => SyncError::Database(other.to_string()),
                });
            }
        };
        let metrics = &inner.metrics;
        metrics
            .like_synced_total
            .with_label_values(&["likes"])
            .inc_by(u64::try_from(synced.likes).unwrap_or(0));
        metrics
            .like_synced_total
            .with_label_values(&["skipped_batches"])
            .inc_by(synced.skipped as u64);
        for (id, _) in read.iter().filter(|(_, batch)| !batch.is_empty()) {
            if let Some(created) = Batch::created_at_ms(id) {
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
                .with_label_values(&["missing_batches"])
                .inc_by(unknown.len() as u64);
            tracing::error!(batches = ?unknown, "like batches listed in Redis but their contents are gone (evicted or lost); the instances that flushed them re-apply them from memory if they still run and kept a copy");
        }
        Ok(())
    }

    async fn observe_lag(&self, redis: &RedisTier) {
        if let Ok(oldest) = self.inner.scripts.oldest(redis).await {
            let lag = oldest
                .as_deref()
                .and_then(Batch::created_at_ms)
                .map_or(0.0, |created| (now_ms() - created).max(0) as f64 / 1000.0);
            self.inner.metrics.like_sync_lag_seconds.set(lag);
        }
    }

    /// The Redis scripts and tier, for tests that drive a sync step by step.
    pub fn redis_parts(&self) -> Option<(&RedisTier, &queue::Scripts)> {
        Some((self.inner.redis.as_ref()?, &self.inner.scripts))
    }

    /// Stops taking likes, flushes what is buffered (Redis, else the database, else a backup
    /// file — the file is written even when the stores take the whole `deadline`), and stops
    /// the background loops (a sync pass in progress finishes and releases its lock).
    pub async fn shutdown(&self, deadline: Duration) {
        let inner = &self.inner;
        let started = Instant::now();
        inner.accepting.store(false, Ordering::Release);
        inner.stop.cancel();
        let tasks =
            std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let stopping = futures::future::join_all(tasks);
        if tokio::time::timeout(deadline / 2, stopping).await.is_err() {
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
            let result = self
                .write(&batch, Some(deadline / 2))
                .await
                .map(|f| f.with_repeats(repeats));
            if let Err(error) = &result {
                tracing::error!(%error, likes = batch.total(), "the like buffer could not be saved");
            }
            for done in waiting {
                done.send_replace(Some(result.clone()));
            }
        }
        inner.metrics.like_buffer.set(0);
        self.last_sync(deadline.saturating_sub(started.elapsed()))
            .await;
    }

    /// The copies of batches this instance flushed to Redis end with the process: a last sync
    /// pass (if no other instance is leading one) and check, within `budget`, leave as few
    /// as possible to Redis alone.
    async fn last_sync(&self, budget: Duration) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_sort_by_age_and_carry_it() {
        let a = Batch::new();
        let created = Batch::created_at_ms(&a.id).expect("ms");
        assert!((now_ms() - created).abs() < 60_000);
        assert!(backup::valid_batch_id(&a.id), "{}", a.id);
        assert_ne!(a.id, Batch::new().id);
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(valid_key("retry-7f3a"));
        assert!(!valid_key(""));
        assert!(!valid_key("with space"));
        assert!(!valid_key(&"k".repeat(129)));
        assert!(!valid_key("키"));
    }
}
