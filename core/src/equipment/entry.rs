//! One equipment response as every tier holds it: gzip body, SHA-256, raw length, fetch time.
//! And which tier answered ([`Source`]). A leaf of `equipment`: L1, L2 (`l2`) and L3 (the
//! store's snapshot) all hold an [`Entry`]; the metrics label answers by [`Source`].

use std::time::Duration;

use bytes::Bytes;
use maple_common::encoding::InflateError;
use maple_common::nexon::Ocid;
use sha2::{Digest, Sha256};

use crate::clock::now_ms;
use crate::store::{EquipmentSnapshot, StoreError};

/// One equipment response as every tier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub gzip: Bytes,
    pub sha256: [u8; 32],
    /// Length of the uncompressed body.
    pub raw_len: u32,
    /// When Nexon produced it (ms since the epoch, our clock).
    pub fetched_at_ms: i64,
}

impl Entry {
    /// The heap bytes an `Arc<Entry>` holds, as L1 weighs it: the gzip bytes (their own
    /// allocation, or a share of the response they came in) and the entry with its `Arc`
    /// counters (checked against the real footprint by `tests/footprint.rs`).
    pub fn weight(&self) -> usize {
        self.gzip.len() + std::mem::size_of::<Self>() + maple_engine::ARC_COUNTS_BYTES
    }

    /// Compresses a body fetched now (CPU work: call it off the async workers).
    pub fn compress(ocid: Ocid, body: &[u8]) -> Self {
        Self::from(EquipmentSnapshot::compress(ocid, body, now_ms()))
    }

    /// An entry for a body fetched now that arrived gzip-compressed: the gzip bytes kept as they
    /// came, inflated once (bounded by `limit`) for the hash and length (CPU work: call it off
    /// the async workers; inflating is a fraction of what compressing costs).
    ///
    /// # Errors
    /// [`InflateError`] when the gzip is corrupt or inflates past `limit`.
    pub fn from_gzip(gzip: Bytes, limit: usize) -> Result<Self, InflateError> {
        let body = maple_common::encoding::gunzip(&gzip, limit)?;
        Ok(Self {
            sha256: Sha256::digest(&body).into(),
            raw_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            gzip,
            fetched_at_ms: now_ms(),
        })
    }

    /// The body, checked against its hash (CPU work: call it off the async workers).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the gzip is broken or the hash differs.
    pub fn decompress(&self, ocid: &Ocid) -> Result<Vec<u8>, StoreError> {
        self.to_snapshot(ocid).decompress()
    }

    pub fn to_snapshot(&self, ocid: &Ocid) -> EquipmentSnapshot {
        EquipmentSnapshot {
            ocid: ocid.clone(),
            body_gzip: self.gzip.to_vec(),
            body_sha256: self.sha256.to_vec(),
            body_bytes: self.raw_len,
            fetched_at_ms: self.fetched_at_ms,
        }
    }

    /// A strong ETag of the JSON: the content's SHA-256.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(self.sha256))
    }

    /// The strong ETag of the gzip representation of the same content.
    pub fn etag_gzip(&self) -> String {
        format!("\"{}-gz\"", hex::encode(self.sha256))
    }

    pub fn age(&self, now_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(now_ms - self.fetched_at_ms).unwrap_or(0))
    }

    pub(super) fn is_fresh(&self, now_ms: i64, fresh_for: Duration) -> bool {
        is_fresh_at(self.fetched_at_ms, now_ms, fresh_for)
    }
}

/// How far in the future a fetch time may lie (clocks of instances differ a little) before the
/// copy is distrusted rather than treated as brand new.
const CLOCK_TOLERANCE_MS: i64 = 60_000;

/// Whether a copy fetched at `fetched_at_ms` is fresh at `now_ms`.
pub(super) fn is_fresh_at(fetched_at_ms: i64, now_ms: i64, fresh_for: Duration) -> bool {
    let age_ms = now_ms.saturating_sub(fetched_at_ms);
    let fresh_ms = i64::try_from(fresh_for.as_millis()).unwrap_or(i64::MAX);
    age_ms > -CLOCK_TOLERANCE_MS && age_ms < fresh_ms
}

impl From<EquipmentSnapshot> for Entry {
    fn from(snapshot: EquipmentSnapshot) -> Self {
        let mut sha256 = [0_u8; 32];
        if snapshot.body_sha256.len() == 32 {
            sha256.copy_from_slice(&snapshot.body_sha256);
        } else {
            // A row without a usable hash: hash the compressed bytes so the ETag still
            // changes with the content (decompress() will report the row as corrupt).
            sha256.copy_from_slice(&Sha256::digest(&snapshot.body_gzip));
        }
        let mut gzip = snapshot.body_gzip;
        // Kept as long as the entry is cached: no spare capacity (the weight counts bytes).
        gzip.shrink_to_fit();
        Self {
            gzip: gzip.into(),
            sha256,
            raw_len: snapshot.body_bytes,
            fetched_at_ms: snapshot.fetched_at_ms,
        }
    }
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
    Db,
    Upstream,
    /// An expired entry: the refresh was slow or failed ([`StaleCause`] says which).
    Stale,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Db => "db",
            Self::Upstream => "upstream",
            Self::Stale => "stale",
        }
    }
}

impl maple_common::metrics::Label for Source {
    const ALL: &'static [Self] = &[Self::L1, Self::L2, Self::Db, Self::Upstream, Self::Stale];

    fn as_str(self) -> &'static str {
        Source::as_str(self)
    }
}

maple_common::metric_labels! {
    /// Why a stale answer is stale (`maple_core_equipment_stale_total{cause}`, and the
    /// `x-maple-stale-cause` header).
    pub enum StaleCause {
        /// The refresh took longer than the soft deadline; it goes on and lands in the tiers.
        Refreshing => "refreshing",
        /// The refresh failed (Nexon or the proxy); the newest copy any tier held answered.
        UpstreamFailed => "upstream_failed",
    }
}
