//! The state every part of the likes works on: the service handle ([`Likes`]) and its shared
//! fields, the settings, the buffer's shards and what a flush tells their handlers, and the
//! retained copies of batches flushed to Redis.
//!
//! Rule: a leaf of `likes`. The parts (`buffer`, `write`, `watch`, `recover`, `sync`) import
//! it and each other's leaves, never `likes.rs`, so the module has no import loop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backup::BackupDir;
use super::batch::{Batch, Repeats, Target};
use super::queue;
use crate::lock::Locks;
use crate::metrics::CoreMetrics;
use crate::redis_link::RedisLink;
use crate::store::Store;

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
    /// Likes with an idempotency key one client may send in 24 h (each key is remembered that
    /// long; 0: no cap).
    pub keys_per_client: u64,
    /// Where backup files are written and looked for.
    pub backup_dir: PathBuf,
    /// Most bytes of applied backup files kept in `archive/` (newest first; 0 keeps none).
    pub archive_max_bytes: u64,
    /// The lock names' prefix (the Redis namespace).
    pub namespace: String,
    /// Lease of the sync lock (renewed every third of it while held).
    pub lock_lease: Duration,
}

impl Default for LikeConfig {
    fn default() -> Self {
        // The declared defaults (`config::settings`).
        use crate::config::settings;
        let millis =
            |setting: &settings::Setting<u64>| Duration::from_millis(setting.default_value());
        Self {
            flush_every: millis(&settings::LIKES_FLUSH_MS),
            sync_every: millis(&settings::LIKES_SYNC_MS),
            watch_every: millis(&settings::LIKES_WATCH_MS),
            client_rate: settings::LIKES_RATE.default_value(),
            client_burst: settings::LIKES_BURST.default_value(),
            keys_per_client: settings::LIKES_KEYS_PER_CLIENT.default_value(),
            backup_dir: settings::BACKUP_DIR.default_value(),
            archive_max_bytes: settings::BACKUP_ARCHIVE_BYTES.default_value(),
            namespace: settings::REDIS_NAMESPACE.default_value(),
            lock_lease: millis(&settings::LOCK_LEASE_MS),
        }
    }
}

/// A like accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// The character's count after this like's flush (stored + pending).
    pub likes: i64,
    /// False when the idempotency key had been counted before.
    pub counted: bool,
    pub target: Target,
    /// `likes` is not from a full read (see [`LikeCount::partial`]): it may be low.
    pub partial: bool,
}

/// A backup file, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = BackupFile)]
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

/// Counts of several characters.
#[derive(Debug, Clone, Default)]
pub(super) struct Counts {
    pub(super) likes: HashMap<String, i64>,
    pub(super) partial: bool,
}

/// Why a like was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LikeError {
    /// Nothing stored it: not counted.
    #[error("likes cannot be stored right now: {0}")]
    Unavailable(String),
    /// No store confirmed it, but one may hold it (a write was sent and its answer lost):
    /// it may be counted; a retry with the same idempotency key counts it at most once.
    #[error("the like may have been stored: {0}")]
    OutcomeUnknown(String),
    #[error("this instance is shutting down")]
    ShuttingDown,
}

/// The like service of one instance. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Likes {
    pub(super) inner: Arc<Inner>,
}

/// A character's count as this instance knows it: its last learned read (pending in Redis +
/// stored + in backup files) plus the likes it acknowledged since. A like's 202 answers from
/// it at once; a read after each flush, in the background, renews it. A read is learned from
/// only if no like was acknowledged for the character while it ran (it may or may not hold
/// such a like) and no later-started read was learned first.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) at_read: i64,
    /// Likes this instance acknowledged for the character, ever (only grows).
    pub(super) acked: i64,
    /// `acked` when the learned read began.
    pub(super) acked_at_read: i64,
    /// Which read was learned (reads are numbered as they begin).
    pub(super) learned: u64,
    /// Whether a full read has been learned (else `at_read` is what was remembered: partial).
    pub(super) read: bool,
}

impl Known {
    pub(super) fn count(&self) -> i64 {
        self.at_read + (self.acked - self.acked_at_read)
    }
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) shards: Box<[Mutex<Shard>]>,
    pub(super) wake: Notify,
    pub(super) accepting: AtomicBool,
    pub(super) buffered: AtomicUsize,
    pub(super) config: LikeConfig,
    pub(super) redis: Option<RedisLink>,
    pub(super) scripts: queue::Scripts,
    pub(super) store: Store,
    pub(super) locks: Locks,
    pub(super) backups: BackupDir,
    /// Likes held only in backup files this process wrote, by ocid (for reads).
    pub(super) spilled: Mutex<HashMap<String, i64>>,
    /// Last database counts seen, for answers while the database is down.
    pub(super) stored: moka::sync::Cache<String, i64>,
    /// Each character's count as this instance knows it, for the acknowledgements (which do
    /// not wait for a read): see [`Known`].
    pub(super) known: moka::sync::Cache<String, Arc<Mutex<Known>>>,
    /// Whether a background count read is under way (one at a time), and the characters it
    /// is still to read.
    pub(super) reading: AtomicBool,
    pub(super) to_read: Mutex<HashSet<String>>,
    /// Numbers the count reads as they begin.
    pub(super) reads: AtomicU64,
    /// Backup files already reported as unreadable (reported once).
    pub(super) unreadable: Mutex<HashSet<PathBuf>>,
    /// Batches this instance flushed to Redis that the database does not hold yet: if Redis
    /// loses them (restarted without persistence, failed over to a replica that lacked them),
    /// they are applied to the database from here.
    pub(super) retained: Mutex<Retained>,
    /// Whether the copies are at their bound (logged once per episode).
    pub(super) retention_full: AtomicBool,
    pub(super) metrics: CoreMetrics,
    pub(super) stop: CancellationToken,
    pub(super) tasks: TaskTracker,
    /// Flushes still to panic before they take the buffer ([`Likes::panic_next_flushes`]).
    pub(super) panics_to_inject: AtomicUsize,
}

pub(super) fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

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
    /// The counts are not a full read (it took too long, or a store could not be read): they
    /// may be low.
    pub(super) partial: bool,
}

pub(super) type FlushResult = Result<Arc<Flushed>, Arc<Unstored>>;

/// Why a batch is not known to be stored anywhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", if *.outcome_unknown { " (Redis or the database may hold it)" } else { "" })]
pub(super) struct Unstored {
    /// What failed last (the backup file).
    pub(super) reason: String,
    /// A write to Redis or the database may have happened (a timeout after sending, a
    /// replica shortfall): the likes may be counted, so the client is told so.
    pub(super) outcome_unknown: bool,
}

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
    pub(super) counts: HashMap<String, i64>,
    /// Keyed likes: ocid, idempotency key, ticket.
    pub(super) keyed: Vec<(String, String, u64)>,
    pub(super) done: watch::Sender<Option<FlushResult>>,
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

/// Batches kept until the database holds them, by id (so oldest first).
#[derive(Debug, Default)]
pub(super) struct Retained {
    pub(super) batches: BTreeMap<String, Batch>,
    /// Their estimated size (the memory bound).
    pub(super) bytes: usize,
}

impl Retained {
    pub(super) fn insert(&mut self, batch: Batch) {
        self.bytes += batch.approx_bytes();
        if let Some(old) = self.batches.insert(batch.id.clone(), batch) {
            self.bytes -= old.approx_bytes();
        }
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Batch> {
        let batch = self.batches.remove(id)?;
        self.bytes -= batch.approx_bytes();
        Some(batch)
    }
}
