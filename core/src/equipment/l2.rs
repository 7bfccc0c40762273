//! L2: equipment entries in Redis (gzip body, hash, fetch time), shared by core instances;
//! the latch that elects one fetcher per character across instances; the purge log every
//! instance follows to drop its L1 copies.
//!
//! Rule: a write never replaces a newer entry (compared in a Lua script on the server). Every
//! call goes through the equipment use's [`RedisLink`] (its timeout and its breaker).

use std::collections::HashMap;
use std::time::Duration;

use maple_common::nexon::Ocid;

use super::entry::Entry;
use crate::redis_link::{RedisLink, Unavailable};

/// Stores an entry unless a newer one is there: `KEYS[1]` the hash; `ARGV` fetched-at ms,
/// sha256, raw length, gzip body, TTL ms.
const PUT_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'at')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'sha', ARGV[2], 'len', ARGV[3], 'gz', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// The stream of purged ocids (under the namespace), which every instance follows to drop
/// its L1 copies.
const PURGE_LOG: &str = "equipment:purged";

/// Entries the purge log keeps (approximately): an instance that could not read it for longer
/// than it takes to purge this many misses some (its L1 copies then expire by age).
const PURGE_LOG_MAX: usize = 10_000;

/// Purges read from the log at a time.
pub const PURGE_PAGE: usize = 1_000;

/// One logged purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub id: String,
    pub ocid: String,
    /// When it was logged (Redis's clock).
    pub at_ms: i64,
}

/// A read of the purge log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeLog {
    pub purged: Vec<Purge>,
    /// The newest id in the log; `None` when there is no log.
    pub newest: Option<String>,
}

/// A stream id's (milliseconds, sequence), for ordering.
pub fn purge_id_order(id: &str) -> Option<(i64, i64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn purge_id_ms(id: &str) -> Option<i64> {
    purge_id_order(id).map(|(ms, _)| ms)
}

/// The equipment's use of Redis.
#[derive(Debug, Clone)]
pub struct L2 {
    redis: RedisLink,
    put_script: redis::Script,
}

impl L2 {
    pub fn new(redis: RedisLink) -> Self {
        Self {
            redis,
            put_script: redis::Script::new(PUT_IF_NEWER),
        }
    }

    /// The equipment use's breaker, for the admin API.
    pub fn breaker(&self) -> maple_common::breaker::Snapshot {
        self.redis.breaker()
    }

    /// Deletes the cached equipment of `ocid` (the admin purge).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn purge(&self, ocid: &Ocid) -> Result<(), Unavailable> {
        let key = self.entry_key(ocid);
        let log = self.redis.key(PURGE_LOG);
        self.redis
            .run("purge", |mut c| async move {
                // The entry goes, and the purge is logged for the other instances' L1.
                redis::pipe()
                    .atomic()
                    .cmd("DEL")
                    .arg(&key)
                    .ignore()
                    .cmd("XADD")
                    .arg(&log)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(PURGE_LOG_MAX)
                    .arg("*")
                    .arg("ocid")
                    .arg(ocid.as_str())
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Purges logged after `after` (a purge log id; `None`: none, only where the log ends), at
    /// most [`PURGE_PAGE`], each with its time (the id's milliseconds, Redis's clock), and the
    /// newest id in the log (`None`: no log).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn purged_since(&self, after: Option<&str>) -> Result<PurgeLog, Unavailable> {
        type Entries = Vec<(String, HashMap<String, String>)>;
        let log = self.redis.key(PURGE_LOG);
        let (entries, newest): (Entries, Entries) = self
            .redis
            .run("purge_log", |mut c| async move {
                let mut pipe = redis::pipe();
                match after {
                    Some(after) => pipe
                        .cmd("XRANGE")
                        .arg(&log)
                        .arg(format!("({after}"))
                        .arg("+")
                        .arg("COUNT")
                        .arg(PURGE_PAGE),
                    // The same shape of answer, empty.
                    None => pipe.cmd("XRANGE").arg(&log).arg("+").arg("-"),
                };
                pipe.cmd("XREVRANGE")
                    .arg(&log)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let purged = entries
            .into_iter()
            .filter_map(|(id, mut fields)| {
                let at_ms = purge_id_ms(&id)?;
                Some(Purge {
                    ocid: fields.remove("ocid")?,
                    at_ms,
                    id,
                })
            })
            .collect();
        Ok(PurgeLog {
            purged,
            newest: newest.into_iter().next().map(|(id, _)| id),
        })
    }

    fn entry_key(&self, ocid: &Ocid) -> String {
        self.redis.key(&format!("equipment:{}", ocid.as_str()))
    }

    fn latch_key(&self, ocid: &Ocid) -> String {
        self.redis
            .key(&format!("latch:equipment:{}", ocid.as_str()))
    }

    /// The entry for `ocid`, if Redis has one.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn get(&self, ocid: &Ocid) -> Result<Option<Entry>, Unavailable> {
        let key = self.entry_key(ocid);
        type Row = (Option<i64>, Option<Vec<u8>>, Option<u32>, Option<Vec<u8>>);
        let row: Row = self
            .redis
            .run("get", |mut c| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&["at", "sha", "len", "gz"])
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(match row {
            (Some(at), Some(sha), Some(len), Some(gz)) if sha.len() == 32 => {
                let mut sha256 = [0_u8; 32];
                sha256.copy_from_slice(&sha);
                Some(Entry {
                    gzip: gz.into(),
                    sha256,
                    raw_len: len,
                    fetched_at_ms: at,
                })
            }
            _ => None,
        })
    }

    /// When the entry for `ocid` was fetched, without reading its body.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn fetched_at(&self, ocid: &Ocid) -> Result<Option<i64>, Unavailable> {
        let key = self.entry_key(ocid);
        self.redis
            .run("fetched_at", |mut c| async move {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg("at")
                    .query_async(&mut c)
                    .await
            })
            .await
    }

    /// Whether some instance holds the fetch latch for `ocid`.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn latch_held(&self, ocid: &Ocid) -> Result<bool, Unavailable> {
        let key = self.latch_key(ocid);
        self.redis
            .run("latch_held", |mut c| async move {
                redis::cmd("EXISTS").arg(&key).query_async(&mut c).await
            })
            .await
    }

    /// Stores `entry` unless Redis holds a newer one.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn put(&self, ocid: &Ocid, entry: &Entry) -> Result<(), Unavailable> {
        let key = self.entry_key(ocid);
        let keep_ms = u64::try_from(self.redis.keep_for().as_millis()).unwrap_or(u64::MAX);
        let script = &self.put_script;
        self.redis
            .run("put", |mut c| async move {
                script
                    .key(&key)
                    .arg(entry.fetched_at_ms)
                    .arg(entry.sha256.as_slice())
                    .arg(entry.raw_len)
                    .arg(entry.gzip.as_ref())
                    .arg(keep_ms)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(drop)
            })
            .await
    }

    /// Tries to become the one instance fetching `ocid`: `SET NX PX` with `token`. The latch
    /// expires by itself after `ttl`, so a crashed leader cannot block the others.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn try_latch(
        &self,
        ocid: &Ocid,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        self.redis
            .set_nx_px("latch", &self.latch_key(ocid), token, ttl)
            .await
    }

    /// Releases the latch if this instance still holds it.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn release_latch(&self, ocid: &Ocid, token: &str) -> Result<(), Unavailable> {
        self.redis
            .delete_if_held("release", &self.latch_key(ocid), token)
            .await
            .map(drop)
    }
}
