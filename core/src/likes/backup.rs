//! Backup files: where a batch of likes goes when neither Redis nor the database takes it (at
//! shutdown, or while both are down), so an acknowledged like survives the process.
//!
//! One JSON file per batch, `likes-{batch id}.json`, written to a temporary name, fsynced,
//! renamed into place and the folder fsynced: a file either exists whole or not at all. Files
//! are applied (Redis, else the database) at boot and every few seconds after; the batch id
//! makes applying twice harmless; a file is moved to `archive/` only after it was applied, and
//! the archive keeps the newest files within a size bound (`MAPLE_CORE_BACKUP_ARCHIVE_BYTES`):
//! it is a record for a human, on the volume the backups need. A file that cannot be read is
//! left where it is and reported.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::batch::{Batch, valid_key};

/// The format tag written into every file.
pub const FORMAT: &str = "maple-likes-backup/1";

/// Largest backup file read back (a batch of a million distinct characters is ~50 MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A backup file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    pub format: String,
    pub batch: String,
    pub counts: BTreeMap<String, i64>,
    #[serde(default)]
    pub keyed: Vec<(String, String)>,
}

/// Why a backup file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not a likes backup: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Parses and checks a backup file's bytes.
///
/// # Errors
/// A reason naming what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
    let file: BackupFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.format != FORMAT {
        return Err(format!("format {:?}, expected {FORMAT:?}", file.format));
    }
    if !valid_batch_id(&file.batch) {
        return Err(format!("batch id {:?} is malformed", file.batch));
    }
    for (ocid, n) in &file.counts {
        if ocid.parse::<maple_common::nexon::Ocid>().is_err() {
            return Err(format!("ocid {ocid:?} is malformed"));
        }
        if !(1..=i64::from(u32::MAX)).contains(n) {
            return Err(format!("count {n} for {ocid} is out of range"));
        }
    }
    for (ocid, key) in &file.keyed {
        if ocid.parse::<maple_common::nexon::Ocid>().is_err() || !valid_key(key) {
            return Err(format!("keyed like ({ocid:?}, {key:?}) is malformed"));
        }
    }
    Ok(Batch {
        id: file.batch,
        counts: file.counts,
        keyed: file.keyed,
    })
}

/// `{13-digit ms}-{16 hex}`.
pub fn valid_batch_id(id: &str) -> bool {
    let Some((ms, random)) = id.split_once('-') else {
        return false;
    };
    ms.len() == 13
        && ms.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The folder of backup files.
#[derive(Debug, Clone)]
pub struct BackupDir {
    dir: PathBuf,
}

impl BackupDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    #[cfg(feature = "test-hooks")]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
        let path = path.to_path_buf();
        move |cause| BackupError::Io { path, cause }
    }

    /// Writes `batch` durably (blocking: call from a blocking thread).
    ///
    /// # Errors
    /// [`BackupError::Io`] when the disk refuses.
    pub fn write(&self, batch: &Batch) -> Result<PathBuf, BackupError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let file = BackupFile {
            format: FORMAT.to_owned(),
            batch: batch.id.clone(),
            counts: batch.counts.clone(),
            keyed: batch.keyed.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| BackupError::Invalid {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let path = self.dir.join(format!("likes-{}.json", batch.id));
        let temporary = self.dir.join(format!(".likes-{}.json.tmp", batch.id));
        {
            let mut out = std::fs::File::create(&temporary).map_err(self.io(&temporary))?;
            out.write_all(&bytes).map_err(self.io(&temporary))?;
            out.sync_all().map_err(self.io(&temporary))?;
        }
        std::fs::rename(&temporary, &path).map_err(self.io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io(&self.dir))?;
        Ok(path)
    }

    /// The backup files waiting to be applied, oldest batch first.
    pub fn pending(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("likes-") && n.ends_with(".json"))
            })
            .collect();
        files.sort();
        files
    }

    /// Reads one file (blocking).
    ///
    /// # Errors
    /// [`BackupError`] when it cannot be read or is not a valid backup.
    pub fn read(&self, path: &Path) -> Result<Batch, BackupError> {
        let size = std::fs::metadata(path).map_err(self.io(path))?.len();
        if size > MAX_FILE_BYTES {
            return Err(BackupError::Invalid {
                path: path.to_path_buf(),
                reason: format!("{size} bytes is more than a backup can be"),
            });
        }
        let bytes = std::fs::read(path).map_err(self.io(path))?;
        decode(&bytes).map_err(|reason| BackupError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Deletes the oldest archived files until the archive holds at most `max_bytes`
    /// (blocking); returns the files and bytes it keeps. Names start with the batch's
    /// millisecond time, so name order is age order.
    ///
    /// # Errors
    /// [`BackupError::Io`] when the archive cannot be listed or a file removed.
    pub fn prune_archive(&self, max_bytes: u64) -> Result<(usize, u64), BackupError> {
        let archive = self.dir.join("archive");
        let entries = match std::fs::read_dir(&archive) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(self.io(&archive)(e)),
        };
        let mut files: Vec<(PathBuf, u64)> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("likes-") && n.ends_with(".json"))
            })
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p)))
            .map(|(len, p)| (p, len))
            .collect();
        // Newest first: keep while within the bound, delete the rest.
        files.sort_by(|a, b| b.0.cmp(&a.0));
        let (mut kept, mut bytes) = (0, 0_u64);
        for (path, len) in files {
            if bytes + len <= max_bytes {
                kept += 1;
                bytes += len;
            } else {
                std::fs::remove_file(&path).map_err(self.io(&path))?;
            }
        }
        Ok((kept, bytes))
    }

    /// Moves an applied file to `archive/` (blocking).
    ///
    /// # Errors
    /// [`BackupError::Io`] when the move fails (the file is applied again later: harmless).
    pub fn archive(&self, path: &Path) -> Result<(), BackupError> {
        let archive = self.dir.join("archive");
        std::fs::create_dir_all(&archive).map_err(self.io(&archive))?;
        let name = path.file_name().unwrap_or_default();
        std::fs::rename(path, archive.join(name)).map_err(self.io(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCID: &str = "0123456789abcdef0123456789abcdef";

    fn batch() -> Batch {
        Batch {
            id: "1764000000000-00112233aabbccdd".into(),
            counts: BTreeMap::from([(OCID.to_owned(), 3)]),
            keyed: vec![(OCID.to_owned(), "retry-1".to_owned())],
        }
    }

    #[test]
    fn a_written_file_reads_back_and_archives() {
        let dir = std::env::temp_dir().join(format!("maple-backup-{}", std::process::id()));
        let backups = BackupDir::new(dir.clone());
        let path = backups.write(&batch()).expect("written");
        assert_eq!(backups.pending(), vec![path.clone()]);
        assert_eq!(backups.read(&path).expect("valid"), batch());
        backups.archive(&path).expect("archived");
        assert!(backups.pending().is_empty());
        assert!(
            dir.join("archive")
                .join(path.file_name().expect("name"))
                .exists()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hostile_files_are_refused_with_a_reason() {
        let good = serde_json::to_string(&BackupFile {
            format: FORMAT.into(),
            batch: batch().id,
            counts: batch().counts,
            keyed: batch().keyed,
        })
        .expect("json");
        assert!(decode(good.as_bytes()).is_ok());
        for (bad, why) in [
            ("", "EOF"),
            ("{}", "missing field"),
            (&good.replace(FORMAT, "other/1"), "format"),
            (&good.replace("1764000000000-", "1764-"), "batch id"),
            (&good.replace(OCID, "../../etc/passwd"), "ocid"),
            (&good.replace("\":3", "\":-3"), "out of range"),
            (&good.replace("retry-1", "bad key"), "malformed"),
            (
                &good.replace("\"keyed\"", "\"extra\":1,\"keyed\""),
                "unknown field",
            ),
        ] {
            let reason = decode(bad.as_bytes()).expect_err(bad);
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }
}
