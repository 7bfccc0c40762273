//! The admin audit log.

use serde::Serialize;

use super::{Pool, Store, StoreError};

/// One admin request as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Unix ms.
    pub at_ms: i64,
    /// The key's name, or `-` when no valid key was presented.
    pub key_name: String,
    /// e.g. `state.read`, `cache.purge`, `likes.sync`, `backups.list`, `backups.apply`,
    /// `config.read`, `audit.read`.
    pub action: String,
    pub target: String,
    /// The HTTP status answered.
    pub status: i16,
    /// Client IP address.
    pub client: String,
}

impl Store {
    /// Records an admin request.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.audit", skip_all)]
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query(
                    "INSERT INTO admin_audit (at_ms, key_name, action, target, status, client) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(entry.at_ms)
                .bind(entry.key_name.as_str())
                .bind(entry.action.as_str())
                .bind(entry.target.as_str())
                .bind(entry.status)
                .bind(entry.client.as_str())
                .execute(pool)
                .await
                .map(drop)
            })
        })
        .await
    }

    /// Deletes the oldest refused attempts (status 401 or 403) beyond the newest `keep`;
    /// how many were deleted.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.prune_refused_audit", skip_all)]
    pub async fn prune_refused_audit(&self, keep: u64) -> Result<u64, StoreError> {
        // The cutoff through a derived table: MySQL refuses a subquery on the table a
        // DELETE changes, but not one it has materialised.
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query(
                    "DELETE FROM admin_audit WHERE status IN (401, 403) AND id <= (\
                     SELECT id FROM (SELECT id FROM admin_audit WHERE status IN (401, 403) \
                     ORDER BY id DESC LIMIT 1 OFFSET ?) AS cutoff)",
                )
                .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        })
        .await
    }

    /// Makes `ocid`'s stored equipment count as fetched no later than `at_most_ms` (the admin
    /// purge: it stays as the stale fallback, but is no longer fresh).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.age_equipment", skip_all)]
    pub async fn age_equipment(
        &self,
        ocid: &maple_common::nexon::Ocid,
        at_most_ms: i64,
    ) -> Result<(), StoreError> {
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE equipment_snapshots SET fetched_at_ms = ? \
                     WHERE ocid = ? AND fetched_at_ms > ?",
                )
                .bind(at_most_ms)
                .bind(ocid.as_str())
                .bind(at_most_ms)
                .execute(pool)
                .await
                .map(drop)
            })
        })
        .await
    }

    /// The newest `limit` audit entries, newest first.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    #[tracing::instrument(level = "info", name = "db.recent_audit", skip_all)]
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.guarded(async {
            on_pool!(self, pool => {
                sqlx::query_as(
                    "SELECT at_ms, key_name, action, target, status, client FROM admin_audit \
                     ORDER BY id DESC LIMIT ?",
                )
                .bind(limit)
                .fetch_all(pool)
                .await
            })
        })
        .await
    }
}
