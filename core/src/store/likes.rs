//! The database's part of likes and locks: batches applied exactly once (their ids are
//! recorded in the transaction that adds their counts), idempotency keys, and fencing tokens.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Pool, Store, StoreError};
use crate::likes::batch::Batch;

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
}

/// A fencing token: the number the database issued for one acquisition of a named lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub name: String,
    pub token: i64,
}

/// SQL for the two dialects.
struct Sql {
    insert_batch: &'static str,
    insert_key: &'static str,
    add_likes: &'static str,
    insert_fence: &'static str,
    read_fence: &'static str,
}

const SQLITE: Sql = Sql {
    insert_batch: "INSERT OR IGNORE INTO like_batches (id, likes, applied_at_ms) VALUES (?, ?, ?)",
    insert_key: "INSERT OR IGNORE INTO like_idempotency (ocid, ikey, created_at_ms) VALUES (?, ?, ?)",
    add_likes: "INSERT INTO character_likes (ocid, likes, updated_at_ms) VALUES (?, ?, ?) \
                ON CONFLICT (ocid) DO UPDATE SET likes = character_likes.likes + excluded.likes, \
                updated_at_ms = excluded.updated_at_ms",
    insert_fence: "INSERT OR IGNORE INTO lock_fences (name, issued, holder, issued_at_ms) \
                   VALUES (?, 0, '', 0)",
    read_fence: "SELECT issued FROM lock_fences WHERE name = ?",
};

const MYSQL: Sql = Sql {
    insert_batch: "INSERT IGNORE INTO like_batches (id, likes, applied_at_ms) VALUES (?, ?, ?)",
    insert_key: "INSERT IGNORE INTO like_idempotency (ocid, ikey, created_at_ms) VALUES (?, ?, ?)",
    add_likes: "INSERT INTO character_likes (ocid, likes, updated_at_ms) VALUES (?, ?, ?) \
                ON DUPLICATE KEY UPDATE likes = likes + VALUES(likes), \
                updated_at_ms = VALUES(updated_at_ms)",
    insert_fence: "INSERT IGNORE INTO lock_fences (name, issued, holder, issued_at_ms) \
                   VALUES (?, 0, '', 0)",
    // The row lock orders this transaction after any fence issued concurrently.
    read_fence: "SELECT issued FROM lock_fences WHERE name = ? FOR UPDATE",
};

impl Store {
    fn sql(&self) -> &'static Sql {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE,
            Pool::MySql(_) => &MYSQL,
        }
    }

    /// Applies a batch of likes in one transaction, exactly once: the batch id is recorded
    /// with the counts, so applying it again changes nothing.
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
        self.guarded(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                let recorded = sqlx::query(sql.insert_batch)
                    .bind(batch.id.as_str())
                    .bind(batch.total())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if recorded == 0 {
                    tx.rollback().await?;
                    return Ok(Applied::default());
                }
                let mut counts: BTreeMap<&str, i64> =
                    batch.counts.iter().map(|(o, n)| (o.as_str(), *n)).collect();
                let mut duplicates = Vec::new();
                for (ocid, key) in &batch.keyed {
                    let new = sqlx::query(sql.insert_key)
                        .bind(ocid.as_str())
                        .bind(key.as_str())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if new == 0 {
                        duplicates.push((ocid.clone(), key.clone()));
                    } else {
                        *counts.entry(ocid.as_str()).or_default() += 1;
                    }
                }
                for (ocid, likes) in counts {
                    sqlx::query(sql.add_likes)
                        .bind(ocid)
                        .bind(likes)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Applied { applied: true, duplicates })
            })
        })
        .await
    }

    /// Adds the counts of batches taken from Redis, in one transaction that first checks the
    /// fence: only the newest holder of the lock may write. Batches recorded before are
    /// skipped, so a sync repeated by a new leader counts nothing twice. Empty batches (their
    /// contents were gone from Redis) are not recorded.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] when a newer fence was issued (nothing was written), or a
    /// database failure.
    #[tracing::instrument(level = "info", name = "db.apply_synced_batches", skip_all)]
    pub async fn apply_synced_batches(
        &self,
        fence: &Fence,
        batches: &[(String, BTreeMap<String, i64>)],
        now_ms: i64,
    ) -> Result<Synced, StoreError> {
        let sql = self.sql();
        let result = self
            .guarded(async {
                on_pool!(self, pool => {
                    let mut tx = pool.begin().await?;
                    let current: Option<(i64,)> = sqlx::query_as(sql.read_fence)
                        .bind(fence.name.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let current = current.map_or(0, |(issued,)| issued);
                    if current != fence.token {
                        tx.rollback().await?;
                        return Ok(Err(current));
                    }
                    let mut synced = Synced::default();
                    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
                    for (id, batch) in batches {
                        // Its contents were gone from Redis: recording the id would keep the
                        // instance that flushed it from applying it (see `Likes::watch_once`).
                        if batch.is_empty() {
                            continue;
                        }
                        let likes: i64 = batch.values().sum();
                        let recorded = sqlx::query(sql.insert_batch)
                            .bind(id.as_str())
                            .bind(likes)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        if recorded == 0 {
                            synced.skipped += 1;
                            continue;
                        }
                        synced.applied += 1;
                        synced.likes += likes;
                        for (ocid, n) in batch {
                            *counts.entry(ocid.as_str()).or_default() += n;
                        }
                    }
                    for (ocid, likes) in counts {
                        sqlx::query(sql.add_likes)
                            .bind(ocid)
                            .bind(likes)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(Ok(synced))
                })
            })
            .await;
        result?.map_err(|current| StoreError::Fenced {
            name: fence.name.clone(),
            token: fence.token,
            current,
        })
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
