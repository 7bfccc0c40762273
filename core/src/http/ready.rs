//! Answers kept ready to send: the JSON bytes and the same bytes gzip-compressed, each with its
//! own strong ETag. A leaf of `http`: the state's caches hold them, the handlers send them.

use std::ops::Range;

use bytes::Bytes;
use maple_common::nexon::Ocid;
use sha2::{Digest as _, Sha256};

use crate::character::CharacterName;

/// One answer in both representations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub identity: Bytes,
    pub gzip: Bytes,
    /// `"<sha256 of identity>"` and `"<sha256 of identity>-gz"` (RFC 9110 8.8.3: one strong
    /// ETag per representation, since the gzip bytes are not the JSON bytes).
    pub etags: [String; 2],
}

impl Ready {
    /// Compresses (gzip level 1: pricing a new option set must not wait on a slow level) and
    /// hashes `identity` (CPU work, tens of µs for 20 KB: call it off the
    /// async workers).
    pub fn new(identity: Bytes) -> Self {
        let mut gzip = maple_common::encoding::gzip(&identity);
        // Held as long as the answer is cached: no spare capacity (the weight counts bytes).
        gzip.shrink_to_fit();
        let gzip = Bytes::from(gzip);
        let hash = hex::encode(Sha256::digest(&identity));
        Self {
            identity,
            gzip,
            etags: [format!("\"{hash}\""), format!("\"{hash}-gz\"")],
        }
    }

    /// The representation for a client that does (`true`) or does not take gzip.
    pub fn body(&self, gzip: bool) -> Bytes {
        if gzip {
            self.gzip.clone()
        } else {
            self.identity.clone()
        }
    }

    /// Its ETag.
    pub fn etag(&self, gzip: bool) -> &str {
        &self.etags[usize::from(gzip)]
    }

    /// Heap bytes held besides the struct itself (for bounding a cache): both bodies and the
    /// two tags (checked against the real footprint by `tests/footprint.rs`).
    pub fn weight(&self) -> usize {
        self.identity.len()
            + self.gzip.len()
            + self.etags.iter().map(String::capacity).sum::<usize>()
    }
}

/// The shape of a valuation answer, for the API description: [`Valued::new`] writes these
/// bytes itself around the valuation's own JSON (a test holds the two together).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct CharacterExpectation {
    name: String,
    ocid: Ocid,
    valuation: maple_engine::valuation::CharacterValuation,
}

/// A character's valuation answer, ready: `{"name":…,"ocid":…,"valuation":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valued {
    pub name: CharacterName,
    pub ocid: Ocid,
    pub ready: Ready,
    /// Where the valuation's own JSON lies in `ready.identity`.
    valuation: Range<usize>,
}

impl Valued {
    /// The answer for `name` and `ocid` around the valuation's JSON (CPU work: see
    /// [`Ready::new`]).
    pub fn new(name: CharacterName, ocid: Ocid, valuation: &[u8]) -> Self {
        let mut json = Vec::with_capacity(valuation.len() + 128);
        json.extend_from_slice(b"{\"name\":");
        // Strings always serialize.
        let _ = serde_json::to_writer(&mut json, name.as_str());
        json.extend_from_slice(b",\"ocid\":");
        let _ = serde_json::to_writer(&mut json, &ocid);
        json.extend_from_slice(b",\"valuation\":");
        let start = json.len();
        json.extend_from_slice(valuation);
        let range = start..json.len();
        json.push(b'}');
        json.shrink_to_fit();
        Self {
            name,
            ocid,
            ready: Ready::new(Bytes::from(json)),
            valuation: range,
        }
    }

    /// The valuation's own JSON (to answer another name whose equipment is byte for byte the
    /// same without pricing it again).
    pub fn valuation(&self) -> Bytes {
        self.ready.identity.slice(self.valuation.clone())
    }

    /// Whether this is the answer for `name` and `ocid`.
    pub fn is_for(&self, name: &CharacterName, ocid: &Ocid) -> bool {
        self.name == *name && self.ocid == *ocid
    }

    /// Heap bytes an `Arc<Valued>` holds (for bounding a cache): the struct with its `Arc`
    /// counters, the answer's bodies and tags, the name and the ocid.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + maple_engine::ARC_COUNTS_BYTES
            + self.ready.weight()
            + self.name.as_str().len()
            + self.ocid.as_str().len()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn inflate(gzip: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gzip)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    #[test]
    fn both_representations_hold_the_same_json_and_have_their_own_etags() {
        let ready = Ready::new(Bytes::from_static(br#"{"a":1}"#));
        assert_eq!(inflate(&ready.gzip), ready.identity);
        assert_eq!(ready.etag(false).len(), 66);
        assert_eq!(
            ready.etag(true),
            format!("{}-gz\"", &ready.etag(false)[..65])
        );
        // The same bytes give the same tags; other bytes other tags.
        assert_eq!(ready, Ready::new(Bytes::from_static(br#"{"a":1}"#)));
        assert_ne!(
            ready.etags,
            Ready::new(Bytes::from_static(br#"{"a":2}"#)).etags
        );
    }

    #[test]
    fn a_valued_answer_is_json_with_the_valuation_inside() {
        let name = CharacterName::parse("아델").expect("name");
        let ocid: Ocid = "0123456789abcdef0123456789abcdef".parse().expect("ocid");
        let valued = Valued::new(name.clone(), ocid.clone(), br#"{"total":1.5,"s":"\""}"#);
        let json: serde_json::Value = serde_json::from_slice(&valued.ready.identity).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "name": "아델",
                "ocid": "0123456789abcdef0123456789abcdef",
                "valuation": { "total": 1.5, "s": "\"" },
            })
        );
        assert_eq!(&valued.valuation()[..], br#"{"total":1.5,"s":"\""}"#);
        assert!(valued.is_for(&name, &ocid));
        assert!(!valued.is_for(&CharacterName::parse("Other1").expect("name"), &ocid));
    }

    /// The bytes `Valued::new` writes are what the API description says:
    /// `CharacterExpectation` serialised.
    #[test]
    fn a_valued_answer_has_the_described_shape() {
        let name = CharacterName::parse("아델").expect("name");
        let ocid: Ocid = "0123456789abcdef0123456789abcdef".parse().expect("ocid");
        let valuation = maple_engine::valuation::CharacterValuation {
            character_class: Some("아델".to_owned()),
            main_stat: None,
            options: maple_engine::options::Options::default(),
            items: Vec::new(),
            total_potential_mesos: 1.0,
            total_additional_mesos: 2.0,
            total_starforce_mesos: 3.0,
            total_flame_mesos: 4.0,
            total_mesos: 10.0,
            unpriced_items: 0,
            presets: Vec::new(),
        };
        let bytes = serde_json::to_vec(&valuation).expect("json");
        let valued = Valued::new(name.clone(), ocid.clone(), &bytes);
        let described = CharacterExpectation {
            name: name.as_str().to_owned(),
            ocid,
            valuation,
        };
        let written: serde_json::Value =
            serde_json::from_slice(&valued.ready.identity).expect("json");
        assert_eq!(written, serde_json::to_value(&described).expect("json"));
    }
}
