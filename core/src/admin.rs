//! Admin authentication: bearer API keys with names and scopes, stored only as SHA-256 hashes
//! in a JSON file that is re-read when it changes (rotation without a restart).
//!
//! ```json
//! {"keys": [{"name": "sre-oncall", "sha256": "<64 hex>", "scopes": ["admin:read", "cache:purge"],
//!            "expires_at_ms": 1798761600000}]}
//! ```
//! `maple-core admin-key NAME SCOPE[,SCOPE…]` makes a random 32-byte key and prints it once with
//! the line to add to the file. A presented key is hashed and compared with every stored hash
//! in constant time. No file, or no keys: every admin request is refused (401).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

#[derive(Debug, Default)]
struct Loaded {
    keys: Vec<Key>,
    /// Modification time and length of the file as last read.
    seen: Option<(SystemTime, u64)>,
    checked_at: Option<Instant>,
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
    pub fn load(file: Option<PathBuf>) -> Result<Self, String> {
        let keys = Self {
            inner: Arc::new(RwLock::new(Loaded::default())),
            file,
        };
        if let Some(path) = &keys.file {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let parsed = parse_file(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut loaded = keys.write();
            loaded.keys = parsed;
            loaded.seen = Self::stamp(path);
            loaded.checked_at = Some(Instant::now());
        }
        Ok(keys)
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

    /// Re-reads the file if it changed since it was last read. A file that no longer parses
    /// leaves the previous keys in force (and is logged).
    fn refresh(&self) {
        let Some(path) = &self.file else {
            return;
        };
        {
            let loaded = self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if loaded.checked_at.is_some_and(|at| at.elapsed() < RECHECK) {
                return;
            }
        }
        let stamp = Self::stamp(path);
        let mut loaded = self.write();
        loaded.checked_at = Some(Instant::now());
        if stamp == loaded.seen {
            return;
        }
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| parse_file(&b))
        {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), path = %path.display(), "admin keys reloaded");
                loaded.keys = keys;
                loaded.seen = stamp;
            }
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "admin keys file is invalid; keeping the previous keys");
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
        let loaded = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    }
}
