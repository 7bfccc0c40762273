//! Admin authentication: bearer API keys with names and scopes, stored only as SHA-256 hashes
//! in a JSON file that is re-read when it changes (rotation without a restart).
//!
//! ```json
//! {"keys": [{"name": "sre-oncall", "sha256": "<64 hex>", "scopes": ["admin:read", "cache:purge"],
//!            "expires_at_ms": 1798761600000}]}
//! ```
//! `maple-core admin-key NAME SCOPE[,SCOPE…]` makes a random 32-byte key and prints it once with
//! the line to add to the file. A presented key is hashed and compared with every stored hash
//! in constant time. No file, or no keys: every admin request is refused (401). Deleting the
//! file revokes every key; a file that no longer parses keeps the previous keys in force and
//! says so on `maple_core_admin_keys_file{state="invalid"}` (an alert fires on it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use maple_common::metric_labels;

metric_labels! {
    /// The keys file as last checked (`maple_core_admin_keys_file{state}`).
    pub enum KeysFileState {
        /// No file is configured: no keys.
        Unset => "unset",
        /// The file was read and its keys are in force.
        Loaded => "loaded",
        /// The file is gone: no keys (deleting the file revokes them all).
        Absent => "absent",
        /// The file cannot be read or parsed: the previous keys stay in force.
        Invalid => "invalid",
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read state: breakers, caches, likes, locks, backups, the audit log.
    #[serde(rename = "admin:read")]
    Read,
    /// Purge a character's cached equipment.
    #[serde(rename = "cache:purge")]
    CachePurge,
    /// Force a like sync.
    #[serde(rename = "likes:sync")]
    LikesSync,
    /// List and re-apply like backup files.
    #[serde(rename = "likes:backup")]
    Backups,
    /// Read the configuration (secrets redacted).
    #[serde(rename = "config:read")]
    Config,
}

impl Scope {
    pub const ALL: [Self; 5] = [
        Self::Read,
        Self::CachePurge,
        Self::LikesSync,
        Self::Backups,
        Self::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "admin:read",
            Self::CachePurge => "cache:purge",
            Self::LikesSync => "likes:sync",
            Self::Backups => "likes:backup",
            Self::Config => "config:read",
        }
    }

    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| format!("unknown scope {name:?}"))
    }
}

/// One key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    pub name: String,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    pub scopes: BTreeSet<Scope>,
    /// After this (Unix ms) the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<StoredKey>,
}

/// A key, parsed.
#[derive(Debug, Clone)]
struct Key {
    name: String,
    hash: [u8; 32],
    scopes: BTreeSet<Scope>,
    expires_at_ms: Option<i64>,
}

/// Who made an admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub scopes: BTreeSet<Scope>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an admin API key is required (Authorization: Bearer …)")]
    Missing,
    #[error("the admin API key is not valid")]
    Invalid,
    #[error("the admin API key has expired")]
    Expired { name: String },
    #[error("the key {name:?} lacks the scope {scope}")]
    Forbidden { name: String, scope: &'static str },
}

/// The keys, re-read from their file when it changes (checked at most once a second).
#[derive(Debug, Clone)]
pub struct AdminKeys {
    inner: Arc<RwLock<Loaded>>,
    file: Option<PathBuf>,
}

#[derive(Debug)]
struct Loaded {
    keys: Vec<Key>,
    /// Modification time and length of the file as last read.
    seen: Option<(SystemTime, u64)>,
    checked_at: Option<Instant>,
    state: KeysFileState,
}

const RECHECK: Duration = Duration::from_secs(1);

/// Hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (32 bytes, hex) and its stored form.
pub fn new_key(name: &str, scopes: BTreeSet<Scope>) -> (String, StoredKey) {
    let bytes: [u8; 32] = rand::rng().random();
    let key = format!("mk_{}", hex::encode(bytes));
    let stored = StoredKey {
        name: name.to_owned(),
        sha256: hash_key(&key),
        scopes,
        expires_at_ms: None,
    };
    (key, stored)
}

fn parse_file(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let file: KeysFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut names = BTreeSet::new();
    file.keys
        .into_iter()
        .map(|k| {
            if k.name.is_empty() || k.name.len() > 64 || !names.insert(k.name.clone()) {
                return Err(format!(
                    "key name {:?} is empty, too long or repeated",
                    k.name
                ));
            }
            let mut hash = [0_u8; 32];
            hex::decode_to_slice(&k.sha256, &mut hash)
                .map_err(|_| format!("key {:?}: sha256 must be 64 hex digits", k.name))?;
            Ok(Key {
                name: k.name,
                hash,
                scopes: k.scopes,
                expires_at_ms: k.expires_at_ms,
            })
        })
        .collect()
}

impl AdminKeys {
    /// Loads `file` (when set).
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed (a typo must not lock everyone out
    /// silently at start-up).
    /// A file that does not exist is no keys (as when it is deleted later), with a warning.
    pub fn load(file: Option<PathBuf>) -> Result<Self, String> {
        let keys = Self {
            inner: Arc::new(RwLock::new(Loaded {
                keys: Vec::new(),
                seen: None,
                checked_at: None,
                state: KeysFileState::Unset,
            })),
            file,
        };
        if let Some(path) = &keys.file {
            let mut loaded = keys.write();
            loaded.checked_at = Some(Instant::now());
            match std::fs::read(path) {
                Ok(bytes) => {
                    loaded.keys =
                        parse_file(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                    loaded.seen = Self::stamp(path);
                    loaded.state = KeysFileState::Loaded;
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), "admin keys file does not exist: no admin keys");
                    loaded.state = KeysFileState::Absent;
                }
                Err(error) => return Err(format!("{}: {error}", path.display())),
            }
        }
        Ok(keys)
    }

    /// The keys file as last checked (re-checked first if a second has passed).
    pub fn file_state(&self) -> KeysFileState {
        self.refresh();
        self.read().state
    }

    /// How many keys are in force.
    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// Whether no key is in force (every admin request is refused).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Loaded> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// Re-reads the file if it changed since it was last read (checked at most once a
    /// second). A file that is gone revokes every key; one that no longer parses leaves the
    /// previous keys in force (logged, and [`KeysFileState::Invalid`] until it is fixed).
    fn refresh(&self) {
        let Some(path) = &self.file else {
            return;
        };
        if self
            .read()
            .checked_at
            .is_some_and(|at| at.elapsed() < RECHECK)
        {
            return;
        }
        let stamp = Self::stamp(path);
        let mut loaded = self.write();
        loaded.checked_at = Some(Instant::now());
        if stamp.is_some() && stamp == loaded.seen {
            return;
        }
        let read = std::fs::read(path);
        if read
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            if loaded.state != KeysFileState::Absent {
                tracing::warn!(revoked = loaded.keys.len(), path = %path.display(), "admin keys file is gone: every admin key is revoked");
            }
            loaded.keys.clear();
            loaded.seen = None;
            loaded.state = KeysFileState::Absent;
            return;
        }
        match read.map_err(|e| e.to_string()).and_then(|b| parse_file(&b)) {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), path = %path.display(), "admin keys reloaded");
                loaded.keys = keys;
                loaded.seen = stamp;
                loaded.state = KeysFileState::Loaded;
            }
            Err(error) => {
                if loaded.state != KeysFileState::Invalid {
                    tracing::error!(%error, path = %path.display(), "admin keys file is invalid; keeping the previous keys");
                }
                // Not re-read until it changes again.
                loaded.seen = stamp;
                loaded.state = KeysFileState::Invalid;
            }
        }
    }

    /// Checks an `Authorization` header value for `scope`.
    ///
    /// # Errors
    /// [`AuthError`]: missing (401), invalid or expired (401), lacking the scope (403).
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scope: Scope,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        self.refresh();
        let token = authorization
            .and_then(maple_common::contract::bearer_token)
            .ok_or(AuthError::Missing)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let loaded = self.read();
        // Every stored hash is compared, so the time does not tell which one matched.
        let mut found = None;
        for key in &loaded.keys {
            if maple_common::contract::constant_time_eq(&key.hash, &presented) {
                found = Some(key);
            }
        }
        let key = found.ok_or(AuthError::Invalid)?;
        if key.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::Expired {
                name: key.name.clone(),
            });
        }
        if !key.scopes.contains(&scope) {
            return Err(AuthError::Forbidden {
                name: key.name.clone(),
                scope: scope.as_str(),
            });
        }
        Ok(Principal {
            name: key.name.clone(),
            scopes: key.scopes.clone(),
        })
    }
}

/// How many refused attempts (401, 403) the audit log keeps: anyone can make them, so without
/// a bound a client could fill the table. Admitted attempts are all kept. After every tenth of
/// the bound's refused rows (at least one), one pass deletes the oldest refused rows beyond
/// it, so the table holds at most `keep` plus a tenth.
#[derive(Debug)]
pub struct AuditRetention {
    keep: u64,
    every: u64,
    refused_since_prune: std::sync::atomic::AtomicU64,
    pruning: std::sync::atomic::AtomicBool,
}

impl AuditRetention {
    pub fn new(keep: u64) -> Self {
        Self {
            keep,
            every: (keep / 10).max(1),
            refused_since_prune: std::sync::atomic::AtomicU64::new(0),
            pruning: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Refused attempts kept.
    pub fn keep(&self) -> u64 {
        self.keep
    }

    /// Whether an audit row with `status` is a refusal the bound applies to.
    pub fn is_refusal(status: u16) -> bool {
        matches!(status, 401 | 403)
    }

    /// Counts one refused row written; whether the caller should prune now (then it must
    /// call [`Self::pruned`]). One prune at a time.
    pub fn refused_written(&self) -> bool {
        use std::sync::atomic::Ordering;
        let since = self.refused_since_prune.fetch_add(1, Ordering::Relaxed) + 1;
        since >= self.every && !self.pruning.swap(true, Ordering::AcqRel)
    }

    /// A prune claimed by [`Self::refused_written`] ended (whether or not it succeeded).
    pub fn pruned(&self) {
        use std::sync::atomic::Ordering;
        self.refused_since_prune.store(0, Ordering::Relaxed);
        self.pruning.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(keys: &[StoredKey]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "maple-admin-keys-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, serde_json::json!({ "keys": keys }).to_string()).expect("write");
        path
    }

    #[test]
    fn keys_are_checked_by_hash_scope_and_expiry() {
        let (reader, mut stored) = new_key("reader", BTreeSet::from([Scope::Read]));
        let (old, mut expired) = new_key("old", BTreeSet::from(Scope::ALL));
        expired.expires_at_ms = Some(1_000);
        stored.expires_at_ms = Some(10_000);
        let path = file_with(&[stored.clone(), expired]);
        let keys = AdminKeys::load(Some(path.clone())).expect("valid");
        let bearer = |k: &str| format!("Bearer {k}");
        assert_eq!(
            keys.authorize(Some(&bearer(&reader)), Scope::Read, 5_000)
                .expect("valid")
                .name,
            "reader"
        );
        assert_eq!(
            keys.authorize(Some(&bearer(&reader)), Scope::CachePurge, 5_000),
            Err(AuthError::Forbidden {
                name: "reader".into(),
                scope: "cache:purge"
            })
        );
        assert_eq!(
            keys.authorize(Some(&bearer(&reader)), Scope::Read, 10_000),
            Err(AuthError::Expired {
                name: "reader".into()
            })
        );
        assert!(matches!(
            keys.authorize(Some(&bearer(&old)), Scope::Read, 5_000),
            Err(AuthError::Expired { .. })
        ));
        assert_eq!(
            keys.authorize(Some(&bearer("mk_guess")), Scope::Read, 0),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            keys.authorize(None, Scope::Read, 0),
            Err(AuthError::Missing)
        );
        assert_eq!(
            keys.authorize(Some(&reader), Scope::Read, 0),
            Err(AuthError::Missing),
            "not a bearer header"
        );
        // The scheme is case-insensitive, as the proxy reads it (maple_common::contract).
        assert_eq!(
            keys.authorize(Some(&format!("bearer {reader}")), Scope::Read, 5_000)
                .expect("valid")
                .name,
            "reader"
        );
        // The file stores only the hash.
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&reader));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn bad_files_are_refused_at_load_with_a_reason() {
        for (text, why) in [
            ("{", "EOF"),
            (
                r#"{"keys":[{"name":"a","sha256":"zz","scopes":[]}]}"#,
                "64 hex",
            ),
            (
                r#"{"keys":[{"name":"a","sha256":"00","scopes":["root"]}]}"#,
                "unknown variant",
            ),
            (r#"{"keys":[],"extra":1}"#, "unknown field"),
        ] {
            let path = file_with(&[]);
            std::fs::write(&path, text).expect("write");
            let error = AdminKeys::load(Some(path.clone())).expect_err(text);
            assert!(error.contains(why), "{text}: {error}");
            let _ = std::fs::remove_file(path);
        }
        let keys = AdminKeys::load(None).expect("no file");
        assert_eq!(
            keys.authorize(Some("Bearer anything"), Scope::Read, 0),
            Err(AuthError::Invalid)
        );
        assert_eq!(keys.file_state(), KeysFileState::Unset);
    }

    /// Deleting the file revokes every key (it used to keep them, as if the file were only
    /// broken); a file that no longer parses keeps them and says so; a file that does not
    /// exist at start is no keys, not an error.
    #[test]
    fn a_deleted_file_revokes_every_key_and_a_broken_one_keeps_them() {
        let (reader, stored) = new_key("reader", BTreeSet::from([Scope::Read]));
        let path = file_with(std::slice::from_ref(&stored));
        let keys = AdminKeys::load(Some(path.clone())).expect("valid");
        let admitted = |keys: &AdminKeys| {
            keys.authorize(Some(&format!("Bearer {reader}")), Scope::Read, 0)
                .is_ok()
        };
        let after_a_recheck = || std::thread::sleep(RECHECK + Duration::from_millis(100));
        assert!(admitted(&keys));
        assert_eq!((keys.file_state(), keys.len()), (KeysFileState::Loaded, 1));

        std::fs::write(&path, "{ not json").expect("write");
        after_a_recheck();
        assert!(admitted(&keys), "a broken file keeps the previous keys");
        assert_eq!((keys.file_state(), keys.len()), (KeysFileState::Invalid, 1));

        std::fs::remove_file(&path).expect("delete");
        after_a_recheck();
        assert!(!admitted(&keys), "a deleted file revokes the keys");
        assert_eq!((keys.file_state(), keys.len()), (KeysFileState::Absent, 0));

        std::fs::write(&path, serde_json::json!({ "keys": [stored] }).to_string()).expect("write");
        after_a_recheck();
        assert!(admitted(&keys), "a file put back is read again");
        assert_eq!(keys.file_state(), KeysFileState::Loaded);
        let _ = std::fs::remove_file(&path);

        let missing = AdminKeys::load(Some(path.with_extension("missing"))).expect("absent");
        assert_eq!(
            (missing.file_state(), missing.len()),
            (KeysFileState::Absent, 0)
        );
    }

    #[test]
    fn retention_prunes_after_every_tenth_of_the_bound_one_pass_at_a_time() {
        let retention = AuditRetention::new(50);
        let due: Vec<bool> = (0..5).map(|_| retention.refused_written()).collect();
        assert_eq!(due, [false, false, false, false, true]);
        // While that prune runs, nobody else starts one.
        assert!((0..20).all(|_| !retention.refused_written()));
        retention.pruned();
        assert!((0..4).all(|_| !retention.refused_written()));
        assert!(retention.refused_written());
        let none_kept = AuditRetention::new(0);
        assert!(
            none_kept.refused_written(),
            "keep 0 prunes after every refusal"
        );
        assert!(AuditRetention::is_refusal(401) && AuditRetention::is_refusal(403));
        assert!(!AuditRetention::is_refusal(200) && !AuditRetention::is_refusal(404));
    }
}
