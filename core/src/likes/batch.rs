//! What a batch of likes is: counts per character and keyed likes, with an id that tells
//! its age. A leaf: the buffer, the queue scripts, the backup files and the store build on it.
//!
//! Rule: a batch id is unique and sorts by creation time; a key is 1–128 visible ASCII
//! characters.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::Rng as _;

use crate::clock::now_ms;

/// A batch of likes as flushed: counts per ocid, and keyed likes (each counts one if its
/// idempotency key is new for that character).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// `{created ms, 13 digits}-{16 hex}`: unique, and tells the batch's age.
    pub id: String,
    pub counts: BTreeMap<String, i64>,
    pub keyed: Vec<(String, String)>,
}

impl Batch {
    pub(super) fn new() -> Self {
        let random: u64 = rand::rng().random();
        Self {
            id: format!("{:013}-{random:016x}", now_ms()),
            ..Self::default()
        }
    }

    /// Adds keyed likes, one per (ocid, key); returns the tickets of the repeats (a key sent
    /// twice within one batch counts once) and, per pair, the ticket that stands for it.
    pub(super) fn add_keyed(&mut self, keyed: Vec<(String, String, u64)>) -> Repeats {
        let mut repeats = Repeats::default();
        for (ocid, key, ticket) in keyed {
            match repeats.first.entry((ocid, key)) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    repeats.tickets.insert(ticket);
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    self.keyed.push(slot.key().clone());
                    slot.insert(ticket);
                }
            }
        }
        repeats
    }

    /// Likes in the batch, keyed ones included (before duplicates are known).
    pub fn total(&self) -> i64 {
        self.counts.values().sum::<i64>() + i64::try_from(self.keyed.len()).unwrap_or(i64::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.keyed.is_empty()
    }

    /// Roughly the memory the batch takes (strings plus map and vector overhead).
    pub(super) fn approx_bytes(&self) -> usize {
        let counts: usize = self.counts.keys().map(|o| o.len() + 64).sum();
        let keyed: usize = self.keyed.iter().map(|(o, k)| o.len() + k.len() + 64).sum();
        self.id.len() + 96 + counts + keyed
    }

    /// Likes per character, each keyed like counting one (before duplicates are known).
    pub fn per_ocid(&self) -> BTreeMap<&str, i64> {
        let mut likes: BTreeMap<&str, i64> =
            self.counts.iter().map(|(o, n)| (o.as_str(), *n)).collect();
        for (ocid, _) in &self.keyed {
            *likes.entry(ocid.as_str()).or_default() += 1;
        }
        likes
    }

    /// When the batch was made (from its id).
    pub fn created_at_ms(id: &str) -> Option<i64> {
        id.split_once('-')?.0.parse().ok()
    }

    pub(super) fn targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = self
            .counts
            .keys()
            .map(String::as_str)
            .chain(self.keyed.iter().map(|(o, _)| o.as_str()))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    }
}

/// A batch as the sync reads it back from Redis: its counts per character (the keyed likes
/// Redis counted included) and those keyed likes, whose keys go to the database with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    pub counts: BTreeMap<String, i64>,
    pub keyed: Vec<(String, String)>,
}

impl Queued {
    /// No contents: gone from Redis (synced and cleaned up by another leader, or lost).
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Likes Redis counted for the batch.
    pub fn total(&self) -> i64 {
        self.counts.values().sum()
    }
}

/// Idempotency keys: 1 to 128 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Where a flushed batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Redis,
    Db,
    Backup,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Db => "db",
            Self::Backup => "backup",
        }
    }
}

impl maple_common::metrics::Label for Target {
    const ALL: &'static [Self] = &[Self::Redis, Self::Db, Self::Backup];

    fn as_str(self) -> &'static str {
        Target::as_str(self)
    }
}

/// Keyed likes of one flush: which ticket stands for each (ocid, key), and the tickets of
/// repeats within the batch.
#[derive(Debug, Default)]
pub(super) struct Repeats {
    pub(super) first: HashMap<(String, String), u64>,
    pub(super) tickets: HashSet<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_sort_by_age_and_carry_it() {
        let a = Batch::new();
        let created = Batch::created_at_ms(&a.id).expect("ms");
        assert!((now_ms() - created).abs() < 60_000);
        assert!(super::super::backup::valid_batch_id(&a.id), "{}", a.id);
        assert_ne!(a.id, Batch::new().id);
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(valid_key("retry-7f3a"));
        assert!(!valid_key(""));
        assert!(!valid_key("with space"));
        assert!(!valid_key(&"k".repeat(129)));
        assert!(!valid_key("키"));
    }
}
