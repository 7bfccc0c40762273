//! Backup files: applied at start and every few seconds (Redis, else the database), then
//! archived, the archive pruned to its bound; unreadable ones are kept for a human and
//! reported once.
//!
//! Rule: applying a file twice is harmless (its batch id is recorded with its counts).

use std::sync::PoisonError;
use std::time::Duration;

use super::state::Likes;
use crate::clock::now_ms;
use crate::metrics::{BackupFileState, BackupResult};

/// How often backup files are looked for and applied.
const RECOVER_EVERY: Duration = Duration::from_secs(5);

impl Likes {
    pub(super) async fn recover_loop(self) {
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
            inner.metrics.like_backups_total.inc(BackupResult::Applied);
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
        files.set(BackupFileState::Pending, pending);
        files.set(BackupFileState::Unreadable, unreadable);
        // The archive is a record for a human: the newest files within the bound.
        let backups = inner.backups.clone();
        let bound = self.config().archive_max_bytes;
        match tokio::task::spawn_blocking(move || backups.prune_archive(bound)).await {
            Ok(Ok((kept, bytes))) => {
                files.set(
                    BackupFileState::Archived,
                    i64::try_from(kept).unwrap_or(i64::MAX),
                );
                inner
                    .metrics
                    .like_backup_archive_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            Ok(Err(error)) => tracing::warn!(%error, "the backup archive could not be pruned"),
            Err(_) => {}
        }
        applied
    }
}
