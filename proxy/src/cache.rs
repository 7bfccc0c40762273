//! The response cache: upstream 200s, bounded in bytes, kept past their TTL for the stale
//! window so they can stand in when the upstream fails; and Nexon's "no such character"
//! answers for `not_found_for`, fresh or gone (no stale life: they stand in for nothing).
//!
//! An entry's life: fresh for the route's TTL (served as `HIT`), then for `revalidate_for`
//! served at once while one background refresh runs (stale-while-revalidate), then usable only
//! as a fallback when the upstream fails (stale-if-error), until `stale_for` after expiry,
//! when it is evicted. Time is a parameter, so freshness is tested without sleeping.

use std::sync::Arc;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;

/// Cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bound on the bodies (and keys) held, in bytes.
    pub max_bytes: u64,
    /// How long after expiry an entry is kept as a fallback.
    pub stale_for: Duration,
    /// How long after expiry an entry is still served at once while a refresh runs.
    pub revalidate_for: Duration,
    /// How long a "no such character" answer is served from the cache (zero: never).
    pub not_found_for: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        use crate::config::vars::*;
        Self {
            max_bytes: CACHE_MAX_BYTES.default_value(),
            stale_for: Duration::from_secs(CACHE_STALE_S.default_value()),
            revalidate_for: Duration::from_secs(CACHE_REVALIDATE_S.default_value()),
            not_found_for: Duration::from_secs(CACHE_NOT_FOUND_S.default_value()),
        }
    }
}

/// One cached upstream answer: a 200, or (`status` 400) Nexon saying the name or ocid does
/// not exist.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// `body` gzip-compressed, made once when stored (bodies of [`GZIP_MIN_BYTES`] or more):
    /// sent as it is to a client that accepts gzip, so no hit compresses anything.
    pub gzip: Option<Bytes>,
    /// When the upstream produced it (monotonic, for freshness).
    pub fetched_at: Instant,
    /// Its route's TTL when it was stored.
    pub ttl: Duration,
}

/// Bodies shorter than this are kept and sent as they are: gzip's own framing would eat
/// most of what it saves.
pub const GZIP_MIN_BYTES: usize = 1024;

impl Stored {
    /// `self` with its gzip form beside the body, when the body is long enough to gain.
    #[must_use]
    pub fn with_gzip(mut self) -> Self {
        if self.body.len() >= GZIP_MIN_BYTES {
            self.gzip = Some(Bytes::from(maple_common::encoding::gzip(&self.body)));
        }
        self
    }

    /// The body to send, and whether it is the gzip form.
    pub fn body_for(&self, accepts_gzip: bool) -> (Bytes, bool) {
        match &self.gzip {
            Some(gzip) if accepts_gzip => (gzip.clone(), true),
            _ => (self.body.clone(), false),
        }
    }

    /// Whether this is a "no such character" answer rather than data.
    pub fn is_not_found(&self) -> bool {
        self.status != 200
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.fetched_at)
    }
}

/// How an entry may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL: serve it.
    Fresh,
    /// Just expired: serve it and refresh in the background.
    Revalidate,
    /// Long expired: only a fallback when the upstream fails.
    Stale,
}

/// The cache itself; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<Stored>>,
    config: CacheConfig,
    /// The purge generation, bumped by every purge: a fetch that started before a purge must
    /// not put back what the purge removed. A put checks it and inserts under the read lock;
    /// a purge bumps it under the write lock (so every earlier put has landed, or will be
    /// refused) and then removes.
    generation: Arc<RwLock<u64>>,
    /// Runs inside a put between its generation check and its insert (tests of the race).
    #[cfg(test)]
    between_check_and_insert: Hook,
}

/// A test's code to run at a chosen point.
#[cfg(test)]
#[derive(Clone, Default)]
struct Hook(Arc<std::sync::Mutex<Option<HookFn>>>);

#[cfg(test)]
type HookFn = Box<dyn Fn() + Send>;

#[cfg(test)]
impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// The cache's purge generation when a fetch started; hand it back to [`ResponseCache::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

/// Entries live for their TTL plus the stale window.
struct Lifetime {
    stale_for: Duration,
}

impl Expiry<String, Arc<Stored>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        if value.is_not_found() {
            return Some(value.ttl);
        }
        Some(value.ttl.saturating_add(self.stale_for))
    }

    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<Stored>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

impl ResponseCache {
    pub fn new(config: CacheConfig) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &String, value: &Arc<Stored>| {
                // Bodies dominate; the constant covers the entry's own bookkeeping.
                let gzip = value.gzip.as_ref().map_or(0, Bytes::len);
                u32::try_from(key.len() + value.body.len() + gzip + 256).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetime {
                stale_for: config.stale_for,
            })
            .build();
        Self {
            entries,
            config,
            generation: Arc::new(RwLock::new(0)),
            #[cfg(test)]
            between_check_and_insert: Hook::default(),
        }
    }

    /// The entry under `key` and how it may be used at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<(Arc<Stored>, Freshness)> {
        let stored = self.entries.get(key)?;
        let age = stored.age(now);
        let freshness = if age < stored.ttl {
            Freshness::Fresh
        } else if stored.is_not_found() {
            return None;
        } else if age < stored.ttl.saturating_add(self.config.revalidate_for) {
            Freshness::Revalidate
        } else if age < stored.ttl.saturating_add(self.config.stale_for) {
            Freshness::Stale
        } else {
            // moka evicts lazily; an entry past its life is gone for us.
            return None;
        };
        Some((stored, freshness))
    }

    /// The current purge generation: take it before fetching.
    pub fn generation(&self) -> Generation {
        Generation(
            *self
                .generation
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Stores `stored` unless the cache already holds a newer answer for `key` (two fetches
    /// for one key can finish out of order; the older one must not win), or a purge happened
    /// since the fetch began at `since` (its answer may be what the purge meant to remove).
    pub fn put(&self, key: &str, stored: Arc<Stored>, since: Generation) {
        if stored.ttl.is_zero() {
            return;
        }
        let generation = self
            .generation
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if Generation(*generation) != since {
            return;
        }
        #[cfg(test)]
        if let Some(hook) = &*self
            .between_check_and_insert
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            hook();
        }
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing {
                Some(entry) if entry.value().fetched_at > stored.fetched_at => {
                    moka::ops::compute::Op::Nop
                }
                _ => moka::ops::compute::Op::Put(stored),
            });
    }

    /// Removes every entry whose key starts with `prefix` (all of them for `""`); returns how
    /// many were removed.
    pub fn purge(&self, prefix: &str) -> u64 {
        // The bump under the write lock is enough: a put checks and inserts under the read
        // lock, so once the bump is done every put that began earlier has landed (and is
        // removed below) or will be refused. The walk then runs without blocking puts.
        *self
            .generation
            .write()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        let mut removed = 0;
        for (key, _) in &self.entries {
            if key.starts_with(prefix) {
                self.entries.invalidate(key.as_str());
                removed += 1;
            }
        }
        self.entries.run_pending_tasks();
        removed
    }

    /// Entries and their weighed size in bytes (approximate until pending work runs).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    pub fn config(&self) -> CacheConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(at: Instant, ttl_s: u64, body: &'static [u8]) -> Arc<Stored> {
        Arc::new(Stored {
            status: 200,
            content_type: Some("application/json".into()),
            body: Bytes::from_static(body),
            gzip: None,
            fetched_at: at,
            ttl: Duration::from_secs(ttl_s),
        })
    }

    #[test]
    fn a_long_body_keeps_a_gzip_form_beside_it_and_a_short_one_does_not() {
        let long = Stored {
            body: Bytes::from("{\"item\": \"Eternal Hat\"}, ".repeat(200)),
            ..(*stored(Instant::now(), 10, b"")).clone()
        }
        .with_gzip();
        let gzip = long.gzip.clone().expect("a gzip form");
        assert!(gzip.len() * 4 < long.body.len());
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut inflated)
            .expect("valid gzip");
        assert_eq!(inflated, long.body);
        assert_eq!(long.body_for(true), (gzip, true));
        assert_eq!(long.body_for(false), (long.body.clone(), false));

        let short = (*stored(Instant::now(), 10, b"{\"ocid\": \"x\"}"))
            .clone()
            .with_gzip();
        assert!(short.gzip.is_none());
        assert_eq!(short.body_for(true), (short.body.clone(), false));
    }

    fn cache() -> ResponseCache {
        ResponseCache::new(CacheConfig {
            max_bytes: 1 << 20,
            stale_for: Duration::from_secs(100),
            revalidate_for: Duration::from_secs(5),
            not_found_for: Duration::from_secs(3),
        })
    }

    #[test]
    fn freshness_follows_ttl_then_revalidate_then_stale() {
        let cache = cache();
        let t0 = Instant::now();
        cache.put("k", stored(t0, 10, b"x"), cache.generation());
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(cache.get("k", at(0)).map(|e| e.1), Some(Freshness::Fresh));
        assert_eq!(cache.get("k", at(9)).map(|e| e.1), Some(Freshness::Fresh));
        assert_eq!(
            cache.get("k", at(10)).map(|e| e.1),
            Some(Freshness::Revalidate)
        );
        assert_eq!(cache.get("k", at(16)).map(|e| e.1), Some(Freshness::Stale));
        assert_eq!(cache.get("k", at(110)).map(|e| e.1), None);
    }

    #[test]
    fn an_older_answer_never_replaces_a_newer_one() {
        let cache = cache();
        let t0 = Instant::now();
        cache.put(
            "k",
            stored(t0 + Duration::from_secs(1), 10, b"new"),
            cache.generation(),
        );
        cache.put("k", stored(t0, 10, b"old"), cache.generation());
        let (entry, _) = cache.get("k", t0).expect("cached");
        assert_eq!(&entry.body[..], b"new");
        cache.put(
            "k",
            stored(t0 + Duration::from_secs(2), 10, b"newer"),
            cache.generation(),
        );
        assert_eq!(&cache.get("k", t0).expect("cached").0.body[..], b"newer");
    }

    #[test]
    fn zero_ttl_is_not_cached_and_purge_takes_a_prefix() {
        let cache = cache();
        let t0 = Instant::now();
        cache.put("/a", stored(t0, 0, b"x"), cache.generation());
        assert!(cache.get("/a", t0).is_none());
        cache.put("/a/1", stored(t0, 10, b"x"), cache.generation());
        cache.put("/a/2", stored(t0, 10, b"x"), cache.generation());
        cache.put("/b/1", stored(t0, 10, b"x"), cache.generation());
        assert_eq!(cache.purge("/a/"), 2);
        assert!(cache.get("/b/1", t0).is_some());
        assert_eq!(cache.purge(""), 1);
        assert_eq!(cache.usage().0, 0);
    }

    #[test]
    fn a_fetch_older_than_a_purge_is_not_stored() {
        let cache = cache();
        let t0 = Instant::now();
        let began = cache.generation();
        cache.purge("");
        cache.put("k", stored(t0, 10, b"from before the purge"), began);
        assert!(cache.get("k", t0).is_none());
        cache.put("k", stored(t0, 10, b"after"), cache.generation());
        assert!(cache.get("k", t0).is_some());
    }

    #[test]
    fn the_byte_bound_holds() {
        let cache = ResponseCache::new(CacheConfig {
            max_bytes: 10_000,
            ..CacheConfig::default()
        });
        let t0 = Instant::now();
        static BODY: [u8; 1000] = [b'x'; 1000];
        for i in 0..100 {
            cache.put(&format!("/k{i}"), stored(t0, 60, &BODY), cache.generation());
        }
        let (_, bytes) = cache.usage();
        assert!(bytes <= 10_000, "held {bytes} bytes");
    }

    #[test]
    fn a_not_found_answer_is_fresh_then_gone_and_data_replaces_it() {
        let cache = cache();
        let t0 = Instant::now();
        let not_found = |at: Instant| {
            Arc::new(Stored {
                status: 400,
                content_type: Some("application/json".into()),
                body: Bytes::from_static(b"{}"),
                gzip: None,
                fetched_at: at,
                ttl: Duration::from_secs(3),
            })
        };
        cache.put("k", not_found(t0), cache.generation());
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(cache.get("k", at(2)).map(|e| e.1), Some(Freshness::Fresh));
        // No revalidation, no stale life: past its TTL it is not there.
        assert!(cache.get("k", at(3)).is_none());
        assert!(cache.get("k", at(50)).is_none());
        // The character appears: the 200 takes the key.
        cache.put(
            "k",
            stored(t0 + Duration::from_secs(1), 10, b"data"),
            cache.generation(),
        );
        let (entry, _) = cache.get("k", at(2)).expect("cached");
        assert!(!entry.is_not_found());
        assert_eq!(&entry.body[..], b"data");
        // A purge removes "not found" answers like any other.
        cache.put("n", not_found(at(1)), cache.generation());
        assert_eq!(cache.purge("n"), 1);
        assert!(cache.get("n", at(1)).is_none());
    }

    /// A purge that runs between a put's generation check and its insert must still remove
    /// what the put stores: the put began before the purge.
    #[test]
    fn a_purge_during_a_put_removes_what_the_put_stores() {
        let cache = cache();
        let purger = cache.clone();
        *cache.between_check_and_insert.0.lock().expect("hook") = Some(Box::new(move || {
            // The purge runs on its own thread; the put goes on after at most 200 ms (with
            // the lock, the purge waits for the put to finish, then removes its entry).
            let (done, finished) = std::sync::mpsc::channel();
            let purger = purger.clone();
            std::thread::spawn(move || {
                purger.purge("");
                let _ = done.send(());
            });
            let _ = finished.recv_timeout(Duration::from_millis(200));
        }));
        let since = cache.generation();
        cache.put("k", stored(Instant::now(), 600, b"old"), since);
        *cache.between_check_and_insert.0.lock().expect("hook") = None;
        // The purge has finished by the time a later generation is readable.
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.generation() == since {
            assert!(Instant::now() < deadline, "the purge never ran");
            std::thread::yield_now();
        }
        assert!(
            cache.get("k", Instant::now()).is_none(),
            "an answer fetched before the purge outlived it"
        );
    }
}
