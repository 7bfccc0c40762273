//! The likes' Redis layout and the scripts that keep it consistent.
//!
//! Keys (under the namespace, e.g. `maple:`):
//! - `likes:batch:{id}`: one flushed batch, ocid → likes. Created by [`FLUSH`], deleted by
//!   [`CLEANUP`] once the database holds it (or by [`DROP_COPY`] after a replica shortfall).
//! - `likes:keys:{id}`: the keyed likes that batch counted (`ocid:key`, a list): the sync
//!   records their keys in the database with the batch, and there a key the database path
//!   recorded first is not counted twice. Created and deleted with the batch.
//! - `likes:queue`: batch ids waiting for the sync, oldest first.
//! - `likes:inflight`: batch ids the sync leader has taken. A leader that dies leaves them
//!   there; the next leader takes them over before anything new ([`CLAIM`]).
//! - `likes:pending`: ocid → likes in Redis not yet in the database (for reads).
//! - `likes:counted:{id}`: this batch's likes are in `pending`. Whoever takes them out —
//!   [`CLEANUP`] after the sync, [`DROP_COPY`] after a replica shortfall, or [`RELEASE_LOST`]
//!   for a batch whose contents Redis lost —
//!   deletes the marker in the same script and subtracts only if it was there, so a batch
//!   leaves `pending` exactly once even when its hash is gone.
//! - `likes:seen:{id}`: this batch was flushed (24 h), so a retried flush adds nothing.
//! - `likes:idem:{ocid}:{key}`: an idempotency key already counted (24 h).
//! - `likes:epoch`, `likes:syncing`: the sync leader increments the epoch and sets
//!   `syncing` before its database commit, and clears `syncing` once Redis is cleaned up. A
//!   reader that sees the same epoch and no `syncing` before and after reading the database
//!   knows no batch was in both places during its read ([`Scripts::snapshot`]).
//!
//! The ids a batch carries end up in the database's `like_batches` in the transaction that adds
//! the batch's counts, so whichever way a batch arrives, and however often, it counts once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::batch::{Batch, Queued};
use crate::redis_link::{RedisLink, Unavailable};

/// How long a flushed batch id and an idempotency key are remembered in Redis.
pub const REMEMBER: Duration = Duration::from_secs(24 * 3600);

/// `ARGV`: namespace, batch id, remember ms, #counts, (ocid, n)…, #keyed, (ocid, key)….
/// Returns `{applied, duplicate keys…}` where the keys come as `ocid:key`; `applied` is 0 when
/// the batch had been flushed before. Adds the batch to the queue and its likes to `pending`.
const FLUSH: &str = r"
local ns, id, remember = ARGV[1], ARGV[2], ARGV[3]
local batch = ns .. ':likes:batch:' .. id
if redis.call('EXISTS', batch) == 1 then return {0} end
if not redis.call('SET', ns .. ':likes:seen:' .. id, '1', 'NX', 'PX', remember) then
  return {0}
end
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HINCRBY', batch, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local result = {1}
local keyed = tonumber(ARGV[i])
i = i + 1
for _ = 1, keyed do
  local ocid, key = ARGV[i], ARGV[i + 1]
  if redis.call('SET', ns .. ':likes:idem:' .. ocid .. ':' .. key, id, 'NX', 'PX', remember) then
    redis.call('HINCRBY', batch, ocid, 1)
    redis.call('RPUSH', ns .. ':likes:keys:' .. id, ocid .. ':' .. key)
  else
    result[#result + 1] = ocid .. ':' .. key
  end
  i = i + 2
end
local fields = redis.call('HGETALL', batch)
if #fields > 0 then
  for j = 1, #fields, 2 do
    redis.call('HINCRBY', ns .. ':likes:pending', fields[j], fields[j + 1])
  end
  redis.call('SET', ns .. ':likes:counted:' .. id, '1')
  redis.call('RPUSH', ns .. ':likes:queue', id)
end
return result
";

/// `ARGV`: namespace, max batches. The ids the leader is to sync: the in-flight ones a previous
/// leader left (all of them), else up to max moved from the queue.
const CLAIM: &str = r"
local ns, max = ARGV[1], tonumber(ARGV[2])
local inflight = ns .. ':likes:inflight'
local ids = redis.call('LRANGE', inflight, 0, -1)
if #ids > 0 then return ids end
for _ = 1, max do
  local id = redis.call('LMOVE', ns .. ':likes:queue', inflight, 'LEFT', 'RIGHT')
  if not id then break end
  ids[#ids + 1] = id
end
return ids
";

/// Takes `n` (ocid, likes) pairs from the list `pairs` at `i` (`ARGV`, or a hash's
/// `HGETALL`) out of `pending`.
const SUBTRACT: &str = r"
local function subtract(pending, pairs, i, n)
  for j = 0, n - 1 do
    local ocid = pairs[i + 2 * j]
    local left = redis.call('HINCRBY', pending, ocid, -tonumber(pairs[i + 2 * j + 1]))
    if left <= 0 then redis.call('HDEL', pending, ocid) end
  end
end
";

/// `ARGV`: namespace, then per batch: id, #pairs, (ocid, likes)… as the leader read it (no
/// pairs: its contents were gone). After the database committed these batches: takes their
/// likes out of `pending` once (see `likes:counted`), deletes them and unlists them. A batch
/// flushed before the counted-marker existed is subtracted by its hash's own counts.
const CLEANUP: &str = r"
local ns = ARGV[1]
local pending = ns .. ':likes:pending'
local i, done = 2, 0
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  local batch = ns .. ':likes:batch:' .. id
  if n > 0 then
    if redis.call('DEL', ns .. ':likes:counted:' .. id) == 1 then
      subtract(pending, ARGV, i + 2, n)
    else
      local fields = redis.call('HGETALL', batch)
      subtract(pending, fields, 1, #fields / 2)
    end
  end
  redis.call('DEL', batch, ns .. ':likes:keys:' .. id)
  redis.call('LREM', ns .. ':likes:inflight', 0, id)
  i = i + 2 + 2 * n
  done = done + 1
end
return done
";

/// `ARGV`: namespace, then per batch: id, #pairs, (ocid, likes)…. For batches whose hash is
/// gone from Redis (synced and cleaned up, or lost) as the instance that flushed them kept
/// them: takes their likes out of `pending` if they are still counted there (the hash lost
/// but `likes:counted` kept) — once, whoever comes first. Returns how many it took out.
const RELEASE_LOST: &str = r"
local ns = ARGV[1]
local pending = ns .. ':likes:pending'
local i, released = 2, 0
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('EXISTS', ns .. ':likes:batch:' .. id) == 0
    and redis.call('DEL', ns .. ':likes:counted:' .. id) == 1 then
    subtract(pending, ARGV, i + 2, n)
    redis.call('DEL', ns .. ':likes:keys:' .. id)
    released = released + 1
  end
  i = i + 2 + 2 * n
end
return released
";

/// `ARGV`: namespace, batch id. For a batch Redis took but too few replicas confirmed, once the
/// database holds it: takes its likes out of `pending` (once, see `likes:counted`) and deletes
/// it; its id stays queued, and the sync finds it gone and recorded.
const DROP_COPY: &str = r"
local ns, id = ARGV[1], ARGV[2]
local batch = ns .. ':likes:batch:' .. id
if redis.call('DEL', ns .. ':likes:counted:' .. id) == 1 then
  local fields = redis.call('HGETALL', batch)
  subtract(ns .. ':likes:pending', fields, 1, #fields / 2)
end
redis.call('DEL', batch, ns .. ':likes:keys:' .. id)
return 0
";

/// `ARGV`: namespace, fence token. Clears the commit mark if this leader set it.
const END_COMMIT: &str = r"
local key = ARGV[1] .. ':likes:syncing'
if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
return 0
";

/// `ARGV`: namespace, fence token, lease ms. Marks a commit as starting (see the module
/// documentation).
const BEGIN_COMMIT: &str = r"
redis.call('SET', ARGV[1] .. ':likes:syncing', ARGV[2], 'PX', ARGV[3])
return redis.call('INCR', ARGV[1] .. ':likes:epoch')
";

/// The scripts, loaded once.
#[derive(Debug)]
pub struct Scripts {
    flush: redis::Script,
    claim: redis::Script,
    cleanup: redis::Script,
    begin_commit: redis::Script,
    end_commit: redis::Script,
    release_lost: redis::Script,
    drop_copy: redis::Script,
}

/// The sync marks, read atomically with (or after) pending counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub epoch: i64,
    pub syncing: bool,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            flush: redis::Script::new(FLUSH),
            claim: redis::Script::new(CLAIM),
            cleanup: redis::Script::new(&format!("{SUBTRACT}{CLEANUP}")),
            begin_commit: redis::Script::new(BEGIN_COMMIT),
            end_commit: redis::Script::new(END_COMMIT),
            release_lost: redis::Script::new(&format!("{SUBTRACT}{RELEASE_LOST}")),
            drop_copy: redis::Script::new(&format!("{SUBTRACT}{DROP_COPY}")),
        }
    }
}

/// What a flush to Redis did.
#[derive(Debug, Clone, Default)]
pub struct Flushed {
    /// False when the batch id had been flushed before (a retry): nothing was added.
    pub applied: bool,
    /// Keyed likes whose idempotency key had been counted before (`(ocid, key)`).
    pub duplicates: Vec<(String, String)>,
}

/// Why a flush did not store a batch in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushError {
    /// Redis could not be asked (the batch may or may not have arrived).
    Unavailable(Unavailable),
    /// Redis took the batch, but fewer replicas than required confirmed it in time: it does
    /// not count as stored in Redis, and Redis is not failing either — the database takes it.
    TooFewReplicas,
}

impl FlushError {
    /// Whether the batch may be in Redis all the same: the call was sent and its answer lost
    /// (a timeout, a dropped connection), or it arrived and the replicas did not confirm it.
    /// An open breaker or a refused connection sent nothing.
    pub fn may_have_written(self) -> bool {
        !matches!(
            self,
            Self::Unavailable(Unavailable::BreakerOpen | Unavailable::Unreachable)
        )
    }
}

impl From<Unavailable> for FlushError {
    fn from(unavailable: Unavailable) -> Self {
        Self::Unavailable(unavailable)
    }
}

impl Scripts {
    /// Adds `batch` to Redis atomically (or nothing, if it was flushed before), then — when
    /// replicas are required — waits up to 100 ms for them, on the connection kept for such
    /// writes.
    ///
    /// # Errors
    /// [`FlushError::Unavailable`] when Redis cannot be asked (the batch may or may not have
    /// arrived: a retry with the same id is safe); [`FlushError::TooFewReplicas`] when the
    /// replicas did not confirm it.
    pub async fn flush(&self, redis: &RedisLink, batch: &Batch) -> Result<Flushed, FlushError> {
        let mut invocation = self.flush.prepare_invoke();
        invocation
            .arg(redis.namespace())
            .arg(&batch.id)
            .arg(u64::try_from(REMEMBER.as_millis()).unwrap_or(u64::MAX))
            .arg(batch.counts.len());
        for (ocid, n) in &batch.counts {
            invocation.arg(ocid).arg(*n);
        }
        invocation.arg(batch.keyed.len());
        for (ocid, key) in &batch.keyed {
            invocation.arg(ocid).arg(key);
        }
        let replicas = redis.min_replicas();
        let (reply, confirmed): (Vec<redis::Value>, u32) = redis
            .run_replicated("likes_flush", |mut c| async move {
                let reply = invocation.invoke_async(&mut c).await?;
                // Stored means stored on enough replicas to survive a failover. `WAIT` counts
                // this connection's writes, so it runs on the one the script ran on.
                let confirmed = if replicas > 0 {
                    redis::cmd("WAIT")
                        .arg(replicas)
                        .arg(100)
                        .query_async(&mut c)
                        .await?
                } else {
                    0
                };
                Ok((reply, confirmed))
            })
            .await?;
        if confirmed < replicas {
            // Not a Redis failure (it answered): the batch goes to the database (same id: a
            // batch that did reach Redis counts once anyway).
            return Err(FlushError::TooFewReplicas);
        }
        let mut values = reply.into_iter();
        let applied = matches!(values.next(), Some(redis::Value::Int(1)));
        let duplicates = values
            .filter_map(|v| redis::from_redis_value::<String>(v).ok())
            .filter_map(|pair| split_pair(&pair))
            .collect();
        Ok(Flushed {
            applied,
            duplicates,
        })
    }

    /// Pending counts of `ocids` and the sync marks, read atomically.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn snapshot(
        &self,
        redis: &RedisLink,
        ocids: &[&str],
    ) -> Result<(HashMap<String, i64>, Marks), Unavailable> {
        let (pending, epoch, syncing) = (
            redis.key("likes:pending"),
            redis.key("likes:epoch"),
            redis.key("likes:syncing"),
        );
        let (values, epoch, syncing): (Vec<Option<i64>>, Option<i64>, bool) = redis
            .run("likes_snapshot", |mut c| async move {
                let mut pipe = redis::pipe();
                pipe.atomic();
                if ocids.is_empty() {
                    // HMGET needs a field; this one never exists.
                    pipe.cmd("HMGET").arg(&pending).arg("-");
                } else {
                    pipe.cmd("HMGET").arg(&pending).arg(ocids);
                }
                pipe.cmd("GET")
                    .arg(&epoch)
                    .cmd("EXISTS")
                    .arg(&syncing)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let counts = ocids
            .iter()
            .zip(values)
            .filter_map(|(ocid, n)| Some(((*ocid).to_owned(), n?)))
            .collect();
        Ok((
            counts,
            Marks {
                epoch: epoch.unwrap_or(0),
                syncing,
            },
        ))
    }

    /// Marks a database commit by the holder of fence `token` as starting; `lease` bounds
    /// the mark if the leader dies.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked (then do not commit).
    pub async fn begin_commit(
        &self,
        redis: &RedisLink,
        token: i64,
        lease: Duration,
    ) -> Result<(), Unavailable> {
        let script = &self.begin_commit;
        let lease_ms = crate::redis_link::lease_millis(lease);
        redis
            .run("likes_begin_commit", |mut c| async move {
                script
                    .arg(redis.namespace())
                    .arg(token)
                    .arg(lease_ms)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(drop)
            })
            .await
    }

    /// Clears the commit mark of fence `token` (after its cleanup, or a failed commit); a
    /// newer leader's mark is left alone.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked (the mark then expires with its lease).
    pub async fn end_commit(&self, redis: &RedisLink, token: i64) -> Result<(), Unavailable> {
        let script = &self.end_commit;
        redis
            .run("likes_end_commit", |mut c| async move {
                script
                    .arg(redis.namespace())
                    .arg(token)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(drop)
            })
            .await
    }

    /// The batch ids the leader is to sync now (orphans of a dead leader first).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn claim(&self, redis: &RedisLink, max: usize) -> Result<Vec<String>, Unavailable> {
        let script = &self.claim;
        redis
            .run("likes_claim", |mut c| async move {
                script
                    .arg(redis.namespace())
                    .arg(max)
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    /// The contents of batches `ids`, with the keyed likes each counted (an id whose batch is
    /// gone maps to nothing).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn read(
        &self,
        redis: &RedisLink,
        ids: &[String],
    ) -> Result<Vec<Queued>, Unavailable> {
        let keys = batch_keys(redis, ids);
        let listed: Vec<String> = ids
            .iter()
            .map(|id| redis.key(&format!("likes:keys:{id}")))
            .collect();
        let (counts, keyed): (Vec<BTreeMap<String, i64>>, Vec<Vec<String>>) = redis
            .run("likes_read", |mut c| async move {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("HGETALL").arg(key);
                }
                for key in &listed {
                    pipe.cmd("LRANGE").arg(key).arg(0).arg(-1);
                }
                let mut values: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                let keyed = values.split_off(keys.len());
                Ok((
                    redis::from_redis_value(redis::Value::Array(values))?,
                    redis::from_redis_value(redis::Value::Array(keyed))?,
                ))
            })
            .await?;
        Ok(ids
            .iter()
            .zip(counts.into_iter().zip(keyed))
            .map(|(id, (counts, keyed))| Queued {
                id: id.clone(),
                counts,
                keyed: keyed.iter().filter_map(|pair| split_pair(pair)).collect(),
            })
            .collect())
    }

    /// Whether each of batches `ids` is still in Redis (not yet cleaned up after its sync, and
    /// not lost).
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn present(
        &self,
        redis: &RedisLink,
        ids: &[String],
    ) -> Result<Vec<bool>, Unavailable> {
        let keys = batch_keys(redis, ids);
        redis
            .run("likes_present", |mut c| async move {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("EXISTS").arg(key);
                }
                pipe.query_async(&mut c).await
            })
            .await
    }

    /// For `batches` this instance flushed and no longer finds in Redis: takes their likes out
    /// of `pending` if Redis still counts them there (see [`RELEASE_LOST`]); safe to repeat.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn release_lost(
        &self,
        redis: &RedisLink,
        batches: &[&Batch],
    ) -> Result<usize, Unavailable> {
        if batches.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.release_lost.prepare_invoke();
        invocation.arg(redis.namespace());
        for batch in batches {
            arg_counts(&mut invocation, &batch.id, batch.per_ocid());
        }
        redis
            .run("likes_release_lost", |mut c| async move {
                invocation.invoke_async::<usize>(&mut c).await
            })
            .await
    }

    /// Takes batch `id` — which Redis took, too few replicas confirmed, and the database now
    /// holds — out of Redis (see [`DROP_COPY`]); safe to repeat.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked (the sync then cleans it up).
    pub async fn drop_copy(&self, redis: &RedisLink, id: &str) -> Result<(), Unavailable> {
        let script = &self.drop_copy;
        redis
            .run("likes_drop_copy", |mut c| async move {
                script
                    .arg(redis.namespace())
                    .arg(id)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(drop)
            })
            .await
    }

    /// Takes committed batches — as the leader read them; an empty one's contents were gone —
    /// out of Redis.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked (the next leader repeats it harmlessly).
    pub async fn cleanup(&self, redis: &RedisLink, batches: &[Queued]) -> Result<(), Unavailable> {
        let mut invocation = self.cleanup.prepare_invoke();
        invocation.arg(redis.namespace());
        for batch in batches {
            arg_counts(
                &mut invocation,
                &batch.id,
                batch.counts.iter().map(|(o, n)| (o.as_str(), *n)),
            );
        }
        redis
            .run("likes_cleanup", |mut c| async move {
                invocation.invoke_async::<i64>(&mut c).await.map(drop)
            })
            .await
    }

    /// The id of the oldest batch not yet in the database, if any.
    ///
    /// # Errors
    /// [`Unavailable`] when Redis cannot be asked.
    pub async fn oldest(&self, redis: &RedisLink) -> Result<Option<String>, Unavailable> {
        let (inflight, queue) = (redis.key("likes:inflight"), redis.key("likes:queue"));
        let (a, b): (Option<String>, Option<String>) = redis
            .run("likes_oldest", |mut c| async move {
                redis::pipe()
                    .cmd("LINDEX")
                    .arg(&inflight)
                    .arg(0)
                    .cmd("LINDEX")
                    .arg(&queue)
                    .arg(0)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(a.or(b))
    }
}

/// `ocid:key` as the scripts list a keyed like (neither part holds a colon: an ocid is hex,
/// a key its digest).
fn split_pair(pair: &str) -> Option<(String, String)> {
    let (ocid, key) = pair.split_once(':')?;
    Some((ocid.to_owned(), key.to_owned()))
}

/// The hash keys of batches `ids`.
fn batch_keys(redis: &RedisLink, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| redis.key(&format!("likes:batch:{id}")))
        .collect()
}

/// One batch's part of [`CLEANUP`]'s and [`RELEASE_LOST`]'s `ARGV`: id, #pairs, (ocid, likes)….
fn arg_counts<'a>(
    invocation: &mut redis::ScriptInvocation<'_>,
    id: &str,
    counts: impl IntoIterator<Item = (&'a str, i64)>,
) {
    let counts: Vec<(&str, i64)> = counts.into_iter().collect();
    invocation.arg(id).arg(counts.len());
    for (ocid, n) in counts {
        invocation.arg(ocid).arg(n);
    }
}
