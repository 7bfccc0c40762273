//! Persistence through sqlx: SQLite in embedded mode, MySQL/MariaDB in distributed mode, one
//! code path. Migrations for both live in `migrations/` and are applied at start-up.
//!
//! Rules: creating a character row is race-free (a unique key plus an upsert, never
//! check-then-insert); an equipment snapshot never replaces a newer one; bodies are stored
//! gzip-compressed with their SHA-256.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use maple_common::nexon::Ocid;
use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use maple_common::breaker::{Breaker, BreakerConfig, Outcome, Permit};

use crate::character::CharacterName;

/// How long a request waits for a pooled connection before the store reports unavailable
/// (then the breaker decides whether the next calls even try).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one statement may take, connection included; longer counts as an outage (a
/// database behind a silently dropping network would otherwise hold a request for minutes).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long closing the pool at shutdown waits for connections in use.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a statement within [`QUERY_TIMEOUT`]; running out of time reads as an I/O error.
async fn bounded<T>(
    statement: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(QUERY_TIMEOUT, statement)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

fn timed_out() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "statement timed out",
    ))
}

impl StoreError {
    /// Whether the statement ran out of its time ([`QUERY_TIMEOUT`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut)
    }
}

// Each cause is in the message, so none is also a `source()` (start-up errors print every
// source after the message: `maple_common::cli::report`).
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(error)
    }
}

/// A failure of the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("cannot create the folder for {path}: {cause}")]
    Folder { path: String, cause: std::io::Error },
    #[error("stored snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("database unavailable: it has been failing; retrying in {0:?}")]
    Unavailable(Duration),
    #[error("concurrent writers kept recording the same like batches or keys; nothing was written")]
    Raced,
    #[error("lock {name}: fence {token} is stale (the newest is {current}); nothing was written")]
    Fenced {
        name: String,
        token: i64,
        current: i64,
    },
}

impl StoreError {
    /// Whether a write that failed so may have happened all the same: the statement was sent
    /// and its answer lost (a timeout, a connection dropped mid-way). An open breaker, no
    /// connection to be had, or the server's own refusal (the transaction rolled back) wrote
    /// nothing.
    pub fn may_have_written(&self) -> bool {
        match self {
            Self::Database(error) => match error {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Configuration(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Database(_) => false,
                sqlx::Error::Io(io) => io.kind() != std::io::ErrorKind::ConnectionRefused,
                _ => true,
            },
            Self::Migrate(_)
            | Self::Folder { .. }
            | Self::Corrupt(_)
            | Self::Unavailable(_)
            | Self::Raced
            | Self::Fenced { .. } => false,
        }
    }
}

/// The database, whichever it is, behind a circuit breaker: once it has been failing, calls
/// fail at once (for a few seconds) instead of each waiting out the pool's acquire timeout,
/// so a request that can do without the database (it is a cache for most reads) is not held.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    breaker: Arc<Breaker>,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
}

/// Runs the same sqlx code against whichever pool the store holds.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::MySql($pool) => $body,
        }
    };
}

pub mod audit;
pub mod likes;

/// Whether an error says the database is unreachable (as opposed to a bad statement or data).
fn is_outage(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// A stored name → ocid mapping and when Nexon last confirmed it (`updated_at_ms`: written
/// when the mapping is first stored and each time a re-check confirms or changes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownName {
    pub ocid: Ocid,
    pub checked_at_ms: i64,
}

/// An equipment response as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquipmentSnapshot {
    pub ocid: Ocid,
    pub body_gzip: Vec<u8>,
    pub body_sha256: Vec<u8>,
    pub body_bytes: u32,
    pub fetched_at_ms: i64,
}

impl EquipmentSnapshot {
    /// Compresses a response body fetched at `fetched_at_ms`.
    pub fn compress(ocid: Ocid, body: &[u8], fetched_at_ms: i64) -> Self {
        let body_gzip = maple_common::encoding::gzip(body);
        Self {
            ocid,
            body_gzip,
            body_sha256: Sha256::digest(body).to_vec(),
            body_bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
            fetched_at_ms,
        }
    }

    /// The original body, checked against its hash.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the gzip is broken or the hash differs.
    pub fn decompress(&self) -> Result<Vec<u8>, StoreError> {
        // Bounded by the stored length: a corrupt row must not inflate to gigabytes.
        let body = maple_common::encoding::gunzip(&self.body_gzip, self.body_bytes as usize)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if Sha256::digest(&body).as_slice() != self.body_sha256.as_slice() {
            return Err(StoreError::Corrupt("content hash mismatch".into()));
        }
        Ok(body)
    }
}

/// A snapshot row: gzip body, SHA-256, raw length, fetch time.
type SnapshotRow = (Vec<u8>, Vec<u8>, u32, i64);

impl Store {
    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached or a migration fails.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = if url.starts_with("mysql:") {
            let pool = MySqlPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
            sqlx::migrate!("../migrations/mysql").run(&pool).await?;
            Pool::MySql(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            let file = options.get_filename();
            if let Some(folder) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|cause| StoreError::Folder {
                    path: file.display().to_string(),
                    cause,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
            Pool::Sqlite(pool)
        };
        Ok(Self {
            pool: store,
            // Judged on the last four calls: two outages among them take the database out of
            // the path for five seconds, then one probe decides.
            breaker: Arc::new(Breaker::new(BreakerConfig {
                window: 4,
                minimum_calls: 2,
                failure_rate_pct: 50,
                open_for: Duration::from_secs(5),
                probes: 1,
                slow_call: None,
            })),
        })
    }

    /// Admission through the breaker.
    fn admit(&self) -> Result<Permit, StoreError> {
        match self.breaker.acquire(Instant::now()) {
            Ok((permit, transition)) => {
                if let Some(t) = transition {
                    tracing::info!(
                        from = t.from.as_str(),
                        to = t.to.as_str(),
                        "database breaker"
                    );
                }
                Ok(permit)
            }
            Err(rejected) => Err(StoreError::Unavailable(rejected.retry_after)),
        }
    }

    /// Records how an admitted call went and passes its result on.
    fn settle<T>(
        &self,
        permit: Permit,
        started: Instant,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let outcome = match &result {
            Err(e) if is_outage(e) => Outcome::Failure,
            _ => Outcome::Success,
        };
        if let Some(t) = self
            .breaker
            .record(permit, outcome, started.elapsed(), Instant::now())
        {
            tracing::warn!(
                from = t.from.as_str(),
                to = t.to.as_str(),
                "database breaker"
            );
        }
        Ok(result?)
    }

    /// Connections in use, idle, and the pool's maximum.
    pub fn pool_usage(&self) -> (u32, u32, u32) {
        let (size, idle, max) = on_pool!(self, pool => {
            (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX), pool.options().get_max_connections())
        });
        (size.saturating_sub(idle), idle, max)
    }

    /// The database breaker's state, for the admin API.
    pub fn breaker(&self) -> maple_common::breaker::Snapshot {
        self.breaker.snapshot(Instant::now())
    }

    /// Runs a statement (or a transaction) through the breaker, within [`QUERY_TIMEOUT`],
    /// recording how it went.
    pub(crate) async fn guarded<T>(
        &self,
        operation: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let (permit, started) = (self.admit()?, Instant::now());
        let result = bounded(operation).await;
        self.settle(permit, started, result)
    }

    /// [`Self::guarded`] for a write whose size has no small bound (a sync of a backlog): running
    /// out of time does not count against the breaker, which guards every other caller — a
    /// large write is slow, not a sign of an outage. Other failures count as usual.
    pub(crate) async fn guarded_bulk<T>(
        &self,
        operation: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let (permit, started) = (self.admit()?, Instant::now());
        match tokio::time::timeout(QUERY_TIMEOUT, operation).await {
            Ok(result) => self.settle(permit, started, result),
            Err(_) => {
                self.breaker.release(permit);
                Err(StoreError::Database(timed_out()))
            }
        }
    }

    /// `sqlite` or `mysql`, for logs and metrics.
    pub fn dialect(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::MySql(_) => "mysql",
        }
    }

    /// A round trip to the database; refused at once while the breaker is open, so a
    /// readiness probe never waits on a database known to be down. It takes no breaker
    /// permit (a probe cancelled by its caller's timeout must not hold the half-open state's
    /// trial slot) and its outcome does not move the breaker.
    ///
    /// # Errors
    /// [`StoreError`] when it is unreachable or the breaker is open.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let breaker = self.breaker.snapshot(Instant::now());
        if breaker.state == maple_common::breaker::State::Open {
            let left = breaker.open_for_ms.unwrap_or(0);
            return Err(StoreError::Unavailable(Duration::from_millis(
                u64::try_from(left).unwrap_or(u64::MAX),
            )));
        }
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The ocid stored for `name`, if any.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    pub async fn find_ocid(&self, name: &CharacterName) -> Result<Option<Ocid>, StoreError> {
        Ok(self.find_name(name).await?.map(|known| known.ocid))
    }

    /// The ocid stored for `name` and when Nexon last confirmed it, if any.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.find_name", skip_all)]
    pub async fn find_name(&self, name: &CharacterName) -> Result<Option<KnownName>, StoreError> {
        let result: Result<Option<(String, i64)>, StoreError> = self
            .guarded(async {
                on_pool!(self, pool => {
                    sqlx::query_as("SELECT ocid, updated_at_ms FROM characters WHERE name = ?")
                        .bind(name.as_str())
                        .fetch_optional(pool)
                        .await
                })
            })
            .await;
        Ok(result?.and_then(|(ocid, checked_at_ms)| {
            Some(KnownName {
                ocid: ocid.parse().ok()?,
                checked_at_ms,
            })
        }))
    }

    /// Deletes `name`'s mapping if it still names `ocid` (Nexon no longer knows the name; a
    /// concurrent re-check that stored another ocid is kept). Whether a row went.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.forget_name", skip_all)]
    pub async fn forget_name(&self, name: &CharacterName, ocid: &Ocid) -> Result<bool, StoreError> {
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query("DELETE FROM characters WHERE name = ? AND ocid = ?")
                    .bind(name.as_str())
                    .bind(ocid.as_str())
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() > 0)
            })
        })
        .await
    }

    /// Records `name` → `ocid`; concurrent calls for one name leave exactly one row.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.upsert_character", skip_all)]
    pub async fn upsert_character(
        &self,
        name: &CharacterName,
        ocid: &Ocid,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = match self.pool {
            Pool::Sqlite(_) => {
                "INSERT INTO characters (name, ocid, created_at_ms, updated_at_ms) \
                 VALUES (?, ?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET \
                 ocid = excluded.ocid, updated_at_ms = excluded.updated_at_ms"
            }
            Pool::MySql(_) => {
                "INSERT INTO characters (name, ocid, created_at_ms, updated_at_ms) \
                 VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE \
                 ocid = VALUES(ocid), updated_at_ms = VALUES(updated_at_ms)"
            }
        };
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query(sql)
                    .bind(name.as_str())
                    .bind(ocid.as_str())
                    .bind(now_ms)
                    .bind(now_ms)
                    .execute(pool)
                    .await
                    .map(drop)
            })
        })
        .await
    }

    /// Stores a snapshot unless a newer one is already there.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.save_equipment", skip_all)]
    pub async fn save_equipment(&self, snapshot: &EquipmentSnapshot) -> Result<(), StoreError> {
        let sql = match self.pool {
            Pool::Sqlite(_) => {
                "INSERT INTO equipment_snapshots \
                 (ocid, body_gzip, body_sha256, body_bytes, fetched_at_ms) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (ocid) DO UPDATE SET \
                 body_gzip = excluded.body_gzip, body_sha256 = excluded.body_sha256, \
                 body_bytes = excluded.body_bytes, fetched_at_ms = excluded.fetched_at_ms \
                 WHERE excluded.fetched_at_ms >= equipment_snapshots.fetched_at_ms"
            }
            // MySQL applies assignments left to right: the timestamp must change last.
            Pool::MySql(_) => {
                "INSERT INTO equipment_snapshots \
                 (ocid, body_gzip, body_sha256, body_bytes, fetched_at_ms) VALUES (?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE \
                 body_gzip = IF(VALUES(fetched_at_ms) >= fetched_at_ms, VALUES(body_gzip), body_gzip), \
                 body_sha256 = IF(VALUES(fetched_at_ms) >= fetched_at_ms, VALUES(body_sha256), body_sha256), \
                 body_bytes = IF(VALUES(fetched_at_ms) >= fetched_at_ms, VALUES(body_bytes), body_bytes), \
                 fetched_at_ms = GREATEST(fetched_at_ms, VALUES(fetched_at_ms))"
            }
        };
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query(sql)
                    .bind(snapshot.ocid.as_str())
                    .bind(snapshot.body_gzip.as_slice())
                    .bind(snapshot.body_sha256.as_slice())
                    .bind(snapshot.body_bytes)
                    .bind(snapshot.fetched_at_ms)
                    .execute(pool)
                    .await
                    .map(drop)
            })
        })
        .await
    }

    /// The stored snapshot for `ocid`, if any.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.load_equipment", skip_all)]
    pub async fn load_equipment(
        &self,
        ocid: &Ocid,
    ) -> Result<Option<EquipmentSnapshot>, StoreError> {
        let result: Result<Option<SnapshotRow>, StoreError> = self
            .guarded(async {
                on_pool!(self, pool => {
                    sqlx::query_as(
                        "SELECT body_gzip, body_sha256, body_bytes, fetched_at_ms \
                         FROM equipment_snapshots WHERE ocid = ?",
                    )
                    .bind(ocid.as_str())
                    .fetch_optional(pool)
                    .await
                })
            })
            .await;
        let row = result?;
        Ok(row.map(
            |(body_gzip, body_sha256, body_bytes, fetched_at_ms)| EquipmentSnapshot {
                ocid: ocid.clone(),
                body_gzip,
                body_sha256,
                body_bytes,
                fetched_at_ms,
            },
        ))
    }

    /// Number of character rows for `name` (tests use it to prove upserts are race-free).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn count_characters(&self, name: &CharacterName) -> Result<i64, StoreError> {
        let (count,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM characters WHERE name = ?")
                .bind(name.as_str())
                .fetch_one(pool)
                .await
        })?;
        Ok(count)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        let closing = async { on_pool!(self, pool => pool.close().await) };
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!("database pool did not close in time; leaving it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_detect_corruption() {
        let ocid: Ocid = "0123456789abcdef0123456789abcdef".parse().expect("ocid");
        let body = br#"{"item_equipment":[]}"#.repeat(1000);
        let snapshot = EquipmentSnapshot::compress(ocid, &body, 1);
        assert!(snapshot.body_gzip.len() < body.len() / 10);
        assert_eq!(snapshot.decompress().expect("intact"), body);
        let mut broken = snapshot.clone();
        broken.body_sha256[0] ^= 1;
        assert!(matches!(broken.decompress(), Err(StoreError::Corrupt(_))));
    }
}
