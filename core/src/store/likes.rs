//! The database's part of likes and locks: batches applied exactly once (their ids are
//! recorded in the transaction that adds their counts), idempotency keys, and fencing tokens.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Pool, Store, StoreError};
use crate::likes::batch::{Batch, Queued};

/// What applying a batch straight to the database did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// False when the batch id was already recorded (nothing was counted again).
    pub applied: bool,
    /// Keyed likes whose (character, key) had been counted before.
    pub duplicates: Vec<(String, String)>,
}

/// What one sync transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Batches whose counts were added.
    pub applied: usize,
    /// Batches already recorded (applied earlier; their counts were not added again).
    pub skipped: usize,
    /// Likes added.
    pub likes: i64,
    /// Keyed likes not added: their key had been recorded by the database path first.
    pub duplicates: usize,
}

/// A fencing token: the number the database issued for one acquisition of a named lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub name: String,
    pub token: i64,
}

/// Rows one statement carries (three placeholders each at most: far below either database's
/// limit, and a backlog of thousands of characters takes a few statements, not thousands).
const ROWS_PER_STATEMENT: usize = 300;

/// How often a transaction is tried again when a concurrent writer recorded one of its
/// batches or keys between its read and its insert (it wrote nothing then).
const RACE_ATTEMPTS: usize = 3;

/// SQL for the two dialects.
struct Sql {
    /// Starts a transaction that writes: SQLite's takes the write lock at once (a deferred one
    /// that reads first fails when another connection wrote meanwhile, with no wait).
    begin_write: &'static str,
    insert_ignore: &'static str,
    add_likes_tail: &'static str,
    insert_fence: &'static str,
    read_fence: &'static str,
}

const SQLITE: Sql = Sql {
    begin_write: "BEGIN IMMEDIATE",
    insert_ignore: "INSERT OR IGNORE",
    add_likes_tail: " ON CONFLICT (ocid) DO UPDATE SET likes = character_likes.likes + excluded.likes, \
                     updated_at_ms = excluded.updated_at_ms",
    insert_fence: "INSERT OR IGNORE INTO lock_fences (name, issued, holder, issued_at_ms) \
                   VALUES (?, 0, '', 0)",
    read_fence: "SELECT issued FROM lock_fences WHERE name = ?",
};

const MYSQL: Sql = Sql {
    begin_write: "BEGIN",
    insert_ignore: "INSERT IGNORE",
    add_likes_tail: " ON DUPLICATE KEY UPDATE likes = likes + VALUES(likes), \
                     updated_at_ms = VALUES(updated_at_ms)",
    insert_fence: "INSERT IGNORE INTO lock_fences (name, issued, holder, issued_at_ms) \
                   VALUES (?, 0, '', 0)",
    // The row lock orders this transaction after any fence issued concurrently.
    read_fence: "SELECT issued FROM lock_fences WHERE name = ? FOR UPDATE",
};

/// `?, ?, ?`: `n` placeholders.
fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?, ?), (?, ?, ?)…`: `rows` groups of `columns` placeholders.
fn rows(rows: usize, columns: usize) -> String {
    let row = format!("({})", list(columns));
    vec![row.as_str(); rows].join(", ")
}

/// One batch as a transaction records it: its id, the likes it carries (for the record),
/// its likes per character without the keyed ones, and its keyed likes.
#[derive(Debug)]
struct Entry<'a> {
    id: &'a str,
    likes: i64,
    plain: BTreeMap<&'a str, i64>,
    keyed: &'a [(String, String)],
}

impl<'a> Entry<'a> {
    fn of_batch(batch: &'a Batch) -> Self {
        Self {
            id: &batch.id,
            likes: batch.total(),
            plain: batch.counts.iter().map(|(o, n)| (o.as_str(), *n)).collect(),
            keyed: &batch.keyed,
        }
    }

    /// A batch as read back from Redis, whose counts include each keyed like it lists.
    fn of_queued(batch: &'a Queued) -> Self {
        let mut plain: BTreeMap<&str, i64> =
            batch.counts.iter().map(|(o, n)| (o.as_str(), *n)).collect();
        for (ocid, _) in &batch.keyed {
            if let Some(n) = plain.get_mut(ocid.as_str()) {
                *n -= 1;
            }
        }
        plain.retain(|_, n| *n > 0);
        Self {
            id: &batch.id,
            likes: batch.total(),
            plain,
            keyed: &batch.keyed,
        }
    }
}

/// What recording new batches adds: likes per character (each keyed like counted unless its
/// key is `known`, or came earlier in these batches), the keys to record, and the keyed
/// likes not counted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally<'a> {
    counts: BTreeMap<&'a str, i64>,
    fresh: Vec<&'a (String, String)>,
    duplicates: Vec<(String, String)>,
    likes: i64,
}

fn tally<'a>(entries: &[&Entry<'a>], known: &HashSet<(String, String)>) -> Tally<'a> {
    let mut tally = Tally::default();
    let mut seen: HashSet<&(String, String)> = HashSet::new();
    for entry in entries {
        for (ocid, n) in &entry.plain {
            *tally.counts.entry(ocid).or_default() += n;
            tally.likes += n;
        }
        for pair in entry.keyed {
            if known.contains(pair) || !seen.insert(pair) {
                tally.duplicates.push(pair.clone());
            } else {
                *tally.counts.entry(pair.0.as_str()).or_default() += 1;
                tally.likes += 1;
                tally.fresh.push(pair);
            }
        }
    }
    tally
}

/// What a transaction recorded: batches applied and skipped (recorded before), likes added,
/// keyed likes not counted (their key was recorded before).
#[derive(Debug, Default)]
struct Recorded {
    applied: usize,
    skipped: usize,
    likes: i64,
    duplicates: Vec<(String, String)>,
}

/// The keyed likes of `$pairs` (`&[&(ocid, key)]`) recorded in `like_idempotency`, read
/// through `$executor` a few hundred at a time.
macro_rules! known_keys {
    ($executor:expr, $pairs:expr) => {{
        let pairs: &[&(String, String)] = $pairs;
        let mut known: HashSet<(String, String)> = HashSet::new();
        for chunk in pairs.chunks(ROWS_PER_STATEMENT / 2) {
            let query = format!(
                "SELECT ocid, ikey FROM like_idempotency WHERE {}",
                vec!["(ocid = ? AND ikey = ?)"; chunk.len()].join(" OR ")
            );
            // Bytes: MySQL reports the binary-collated columns as BINARY (they are ASCII).
            let mut select = sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(&query);
            for (ocid, key) in chunk {
                select = select.bind(ocid.as_str()).bind(key.as_str());
            }
            for (ocid, key) in select.fetch_all($executor).await? {
                known.insert((
                    String::from_utf8_lossy(&ocid).into_owned(),
                    String::from_utf8_lossy(&key).into_owned(),
                ));
            }
        }
        known
    }};
}

/// Records `entries` in transaction `$tx` with a few multi-row statements: the batch ids not
/// recorded before, their keys not recorded before, and the likes they add per character.
/// `Ok(None)` when a concurrent writer recorded one of the same ids or keys meanwhile (the
/// inserts then affect fewer rows than read): roll back and try again.
macro_rules! record {
    ($tx:ident, $sql:expr, $entries:expr, $now:expr) => {{
        let (sql, entries, now): (&Sql, &[Entry<'_>], i64) = ($sql, $entries, $now);
        let mut before: HashSet<String> = HashSet::new();
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let query = format!(
                "SELECT id FROM like_batches WHERE id IN ({})",
                list(chunk.len())
            );
            // Bytes: MySQL stores the ids as VARBINARY (they are ASCII).
            let mut select = sqlx::query_scalar::<_, Vec<u8>>(&query);
            for entry in chunk {
                select = select.bind(entry.id);
            }
            for id in select.fetch_all(&mut *$tx).await? {
                before.insert(String::from_utf8_lossy(&id).into_owned());
            }
        }
        let new: Vec<&Entry<'_>> = entries.iter().filter(|e| !before.contains(e.id)).collect();
        let mut inserted = 0;
        for chunk in new.chunks(ROWS_PER_STATEMENT) {
            let query = format!(
                "{} INTO like_batches (id, likes, applied_at_ms) VALUES {}",
                sql.insert_ignore,
                rows(chunk.len(), 3)
            );
            let mut insert = sqlx::query(&query);
            for entry in chunk {
                insert = insert.bind(entry.id).bind(entry.likes).bind(now);
            }
            inserted += insert.execute(&mut *$tx).await?.rows_affected();
        }
        let pairs: Vec<&(String, String)> = new.iter().flat_map(|e| e.keyed.iter()).collect();
        let known = known_keys!(&mut *$tx, &pairs);
        let tally = tally(&new, &known);
        let mut keys_inserted = 0;
        for chunk in tally.fresh.chunks(ROWS_PER_STATEMENT) {
            let query = format!(
                "{} INTO like_idempotency (ocid, ikey, created_at_ms) VALUES {}",
                sql.insert_ignore,
                rows(chunk.len(), 3)
            );
            let mut insert = sqlx::query(&query);
            for (ocid, key) in chunk {
                insert = insert.bind(ocid.as_str()).bind(key.as_str()).bind(now);
            }
            keys_inserted += insert.execute(&mut *$tx).await?.rows_affected();
        }
        if inserted != new.len() as u64 || keys_inserted != tally.fresh.len() as u64 {
            None
        } else {
            let counts: Vec<(&str, i64)> = tally.counts.into_iter().collect();
            for chunk in counts.chunks(ROWS_PER_STATEMENT) {
                let query = format!(
                    "INSERT INTO character_likes (ocid, likes, updated_at_ms) VALUES {}{}",
                    rows(chunk.len(), 3),
                    sql.add_likes_tail
                );
                let mut upsert = sqlx::query(&query);
                for (ocid, likes) in chunk {
                    upsert = upsert.bind(*ocid).bind(*likes).bind(now);
                }
                upsert.execute(&mut *$tx).await?;
            }
            Some(Recorded {
                applied: new.len(),
                skipped: entries.len() - new.len(),
                likes: tally.likes,
                duplicates: tally.duplicates,
            })
        }
    }};
}

impl Store {
    fn sql(&self) -> &'static Sql {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE,
            Pool::MySql(_) => &MYSQL,
        }
    }

    /// Applies a batch of likes in one transaction, exactly once: the batch id is recorded
    /// with the counts, so applying it again changes nothing; a keyed like counts only if its
    /// key was not recorded before (by this path or by a sync of a batch from Redis).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure (then nothing was applied).
    #[tracing::instrument(level = "info", name = "db.apply_like_batch", skip_all)]
    pub async fn apply_like_batch(
        &self,
        batch: &Batch,
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        let sql = self.sql();
        let entries = [Entry::of_batch(batch)];
        for _ in 0..RACE_ATTEMPTS {
            let recorded = self
                .guarded(async {
                    on_pool!(self, pool => {
                        let mut tx = pool.begin_with(sql.begin_write).await?;
                        let recorded = record!(tx, sql, &entries, now_ms);
                        if recorded.is_some() {
                            tx.commit().await?;
                        } else {
                            tx.rollback().await?;
                        }
                        Ok(recorded)
                    })
                })
                .await?;
            if let Some(recorded) = recorded {
                return Ok(Applied {
                    applied: recorded.applied > 0,
                    duplicates: recorded.duplicates,
                });
            }
        }
        Err(StoreError::Raced)
    }

    /// Adds the counts of batches taken from Redis, in one transaction that first checks the
    /// fence: only the newest holder of the lock may write. Batches recorded before are
    /// skipped, so a sync repeated by a new leader counts nothing twice; the keys of their
    /// keyed likes are recorded with them, and a keyed like whose key was recorded before (a
    /// retry that took the database path) is not counted again. Empty batches (their
    /// contents were gone from Redis) are not recorded.
    ///
    /// A timeout does not count against the database breaker (a large backlog is slow, not
    /// an outage): the caller splits the set and tries again.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] when a newer fence was issued (nothing was written), or a
    /// database failure.
    #[tracing::instrument(level = "info", name = "db.apply_synced_batches", skip_all)]
    pub async fn apply_synced_batches(
        &self,
        fence: &Fence,
        batches: &[Queued],
        now_ms: i64,
    ) -> Result<Synced, StoreError> {
        let sql = self.sql();
        // Its contents were gone from Redis: recording the id would keep the instance that
        // flushed it from applying it (see `Likes::watch_once`).
        let entries: Vec<Entry<'_>> = batches
            .iter()
            .filter(|b| !b.is_empty())
            .map(Entry::of_queued)
            .collect();
        for _ in 0..RACE_ATTEMPTS {
            let result = self
                .guarded_bulk(async {
                    on_pool!(self, pool => {
                        let mut tx = pool.begin_with(sql.begin_write).await?;
                        let current: Option<(i64,)> = sqlx::query_as(sql.read_fence)
                            .bind(fence.name.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                        let current = current.map_or(0, |(issued,)| issued);
                        if current != fence.token {
                            tx.rollback().await?;
                            return Ok(Err(current));
                        }
                        let recorded = record!(tx, sql, &entries, now_ms);
                        if recorded.is_some() {
                            tx.commit().await?;
                        } else {
                            tx.rollback().await?;
                        }
                        Ok(Ok(recorded))
                    })
                })
                .await?;
            match result {
                Ok(Some(recorded)) => {
                    return Ok(Synced {
                        applied: recorded.applied,
                        skipped: recorded.skipped,
                        likes: recorded.likes,
                        duplicates: recorded.duplicates.len(),
                    });
                }
                Ok(None) => {}
                Err(current) => {
                    return Err(StoreError::Fenced {
                        name: fence.name.clone(),
                        token: fence.token,
                        current,
                    });
                }
            }
        }
        Err(StoreError::Raced)
    }

    /// Which of the keyed likes `pairs` (character, key digest) the database has recorded:
    /// counted before, by the database path or a sync.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.known_like_keys", skip_all)]
    pub async fn known_like_keys(
        &self,
        pairs: &[(String, String)],
    ) -> Result<HashSet<(String, String)>, StoreError> {
        if pairs.is_empty() {
            return Ok(HashSet::new());
        }
        let pairs: Vec<&(String, String)> = pairs.iter().collect();
        self.guarded(async { on_pool!(self, pool => Ok(known_keys!(pool, &pairs))) })
            .await
    }

    /// Issues the next fencing token for lock `name` to `holder`.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.issue_fence", skip_all)]
    pub async fn issue_fence(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
    ) -> Result<Fence, StoreError> {
        let sql = self.sql();
        let result = self.guarded(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                sqlx::query(sql.insert_fence).bind(name).execute(&mut *tx).await?;
                sqlx::query(
                    "UPDATE lock_fences SET issued = issued + 1, holder = ?, issued_at_ms = ? \
                     WHERE name = ?",
                )
                .bind(holder)
                .bind(now_ms)
                .bind(name)
                .execute(&mut *tx)
                .await?;
                let (token,): (i64,) = sqlx::query_as("SELECT issued FROM lock_fences WHERE name = ?")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(token)
            })
        })
        .await;
        let token = result?;
        Ok(Fence {
            name: name.to_owned(),
            token,
        })
    }

    /// The synced like counts of `ocids` (absent: none yet).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.like_counts", skip_all)]
    pub async fn like_counts(&self, ocids: &[&str]) -> Result<HashMap<String, i64>, StoreError> {
        if ocids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders = vec!["?"; ocids.len()].join(", ");
        let query =
            format!("SELECT ocid, likes FROM character_likes WHERE ocid IN ({placeholders})");
        let result: Result<Vec<(String, i64)>, StoreError> = self
            .guarded(async {
                on_pool!(self, pool => {
                    let mut q = sqlx::query_as(&query);
                    for ocid in ocids {
                        q = q.bind(*ocid);
                    }
                    q.fetch_all(pool).await
                })
            })
            .await;
        Ok(result?.into_iter().collect())
    }

    /// Forgets batch ids and idempotency keys older than `before_ms` (a batch re-delivered
    /// after that would count again: the horizon is documented as a week).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    pub async fn prune_likes(
        &self,
        batches_before_ms: i64,
        keys_before_ms: i64,
    ) -> Result<u64, StoreError> {
        self.guarded(async {
            on_pool!(self, pool => {
                let a = sqlx::query("DELETE FROM like_batches WHERE applied_at_ms < ?")
                    .bind(batches_before_ms)
                    .execute(pool)
                    .await?
                    .rows_affected();
                let b = sqlx::query("DELETE FROM like_idempotency WHERE created_at_ms < ?")
                    .bind(keys_before_ms)
                    .execute(pool)
                    .await?
                    .rows_affected();
                Ok(a + b)
            })
        })
        .await
    }

    /// Which of `ids` are recorded as applied (in `like_batches`).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.recorded_batches", skip_all)]
    pub async fn recorded_batches(&self, ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!(
            "SELECT id FROM like_batches WHERE id IN ({})",
            vec!["?"; ids.len()].join(", ")
        );
        self.guarded(async {
            on_pool!(self, pool => {
                // Bytes: MySQL stores the ids as VARBINARY (they are ASCII).
                let mut query = sqlx::query_scalar::<_, Vec<u8>>(&sql);
                for id in ids {
                    query = query.bind(*id);
                }
                let rows = query.fetch_all(pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|id| String::from_utf8_lossy(&id).into_owned())
                    .collect())
            })
        })
        .await
    }

    /// The MySQL pool, for the named-lock fallback (which needs a dedicated connection).
    pub(crate) fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        match &self.pool {
            Pool::MySql(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ocid: &str, key: &str) -> (String, String) {
        (ocid.to_owned(), key.to_owned())
    }

    #[test]
    fn a_queued_batch_counts_its_keyed_likes_apart_from_the_others() {
        let queued = Queued {
            id: "b".to_owned(),
            counts: [("a".to_owned(), 3), ("c".to_owned(), 1)].into(),
            keyed: vec![pair("a", "k1"), pair("c", "k2")],
        };
        let entry = Entry::of_queued(&queued);
        assert_eq!(entry.likes, 4);
        assert_eq!(entry.plain, [("a", 2)].into());
        assert_eq!(entry.keyed.len(), 2);
    }

    #[test]
    fn a_key_recorded_before_or_earlier_in_the_set_is_not_counted() {
        let (first, second) = (
            Batch {
                id: "1".to_owned(),
                counts: [("a".to_owned(), 2)].into(),
                keyed: vec![pair("a", "k1"), pair("a", "k2")],
            },
            Batch {
                id: "2".to_owned(),
                counts: BTreeMap::new(),
                keyed: vec![pair("a", "k2"), pair("b", "k1")],
            },
        );
        let entries = [Entry::of_batch(&first), Entry::of_batch(&second)];
        let known: HashSet<(String, String)> = [pair("a", "k1")].into();
        let tally = tally(&entries.iter().collect::<Vec<_>>(), &known);
        assert_eq!(tally.counts, [("a", 3), ("b", 1)].into());
        assert_eq!(tally.likes, 4);
        assert_eq!(tally.fresh, vec![&pair("a", "k2"), &pair("b", "k1")]);
        assert_eq!(tally.duplicates, vec![pair("a", "k1"), pair("a", "k2")]);
    }

    #[test]
    fn placeholders_come_in_rows() {
        assert_eq!(list(3), "?, ?, ?");
        assert_eq!(rows(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
