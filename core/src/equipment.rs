//! The equipment read path: L1 (moka, in process, bounded in bytes) → L2 (Redis, shared, when
//! configured) → L3 (the database, the source of truth) → the Nexon API through the proxy.
//!
//! Every tier holds the same [`Entry`]: the response gzip-compressed, its SHA-256 and the time
//! Nexon produced it. An entry is fresh for `fresh_for` after that time; a fresh entry in any
//! tier answers the request (and is copied into the tiers above it). Otherwise one load per
//! character runs in this instance (followers wait for it), and across instances a latch in
//! Redis elects one fetcher while the others watch L2 for its result (bounded; then they fetch
//! themselves). A request waits for the load at most `stale_after` when a copy is at hand
//! (the load copies an expired one it finds in L2 or L3 into L1): then the copy answers as
//! stale ([`StaleCause::Refreshing`]) and the load goes on, storing what it fetches in every
//! tier. When the fetch fails, the newest entry any tier still holds is served as stale
//! ([`StaleCause::UpstreamFailed`]); with none, the upstream's error. Writes never let an older entry shadow a newer one:
//! L1 and L2 compare fetch times, the database upserts only newer rows.

use std::sync::Arc;
use std::time::Duration;

use maple_common::flight::{Flights, Joined, land};
use maple_common::nexon::Ocid;

pub mod entry;
pub mod l2;

use self::entry::is_fresh_at;
pub use self::entry::{Entry, Source, StaleCause};
use self::l2::L2;
use crate::clock::now_ms;
use crate::metrics::{CoreMetrics, LatchResult, Role, StoreOp};
use crate::nexon::{Body, MAX_BODY_BYTES, NexonClient, NexonError};
use crate::redis_link::RedisLink;
use crate::store::Store;

/// Pipeline settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierConfig {
    /// How long after Nexon produced it an entry is served without asking again.
    pub fresh_for: Duration,
    /// Bound on L1, in compressed bytes.
    pub l1_max_bytes: u64,
    /// Bound on the decompressed bodies kept for clients without gzip.
    pub raw_max_bytes: u64,
    /// How long the cross-instance latch lives (a crashed leader's expires by itself).
    pub latch_ttl: Duration,
    /// How long a follower instance watches L2 for the leader's result.
    pub latch_wait: Duration,
    /// How long a request with a copy at hand waits for the refresh before the copy answers
    /// as stale (the refresh goes on); zero waits for the refresh's own deadline.
    pub stale_after: Duration,
}

impl Default for TierConfig {
    fn default() -> Self {
        // The declared defaults (`config::settings`). The latch's TTL is longer than a fetch
        // may take (core's upstream timeout), so a slow leader keeps it; short enough that a
        // crashed leader's frees the key soon.
        use crate::config::settings;
        Self {
            fresh_for: Duration::from_secs(settings::EQUIPMENT_FRESH_S.default_value()),
            l1_max_bytes: settings::L1_MAX_BYTES.default_value(),
            raw_max_bytes: settings::RAW_MAX_BYTES.default_value(),
            latch_ttl: Duration::from_millis(settings::LATCH_TTL_MS.default_value()),
            latch_wait: Duration::from_millis(settings::LATCH_WAIT_MS.default_value()),
            stale_after: Duration::from_millis(settings::STALE_AFTER_MS.default_value()),
        }
    }
}

/// How often an instance reads the purge log (other instances' purges).
const PURGE_POLL: Duration = Duration::from_secs(1);

/// An answer: the entry and where it came from.
#[derive(Debug, Clone)]
pub struct Served {
    pub entry: Arc<Entry>,
    pub source: Source,
    /// Why a [`Source::Stale`] answer is stale; `None` for the others.
    pub stale: Option<StaleCause>,
}

impl Served {
    fn from(entry: Arc<Entry>, source: Source) -> Self {
        Self {
            entry,
            source,
            stale: None,
        }
    }

    fn stale(entry: Arc<Entry>, cause: StaleCause) -> Self {
        Self {
            entry,
            source: Source::Stale,
            stale: Some(cause),
        }
    }
}

/// What a purge reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Purged {
    /// `None` without Redis.
    pub redis: Option<bool>,
    pub database: bool,
}

/// The tiers and the loads in flight.
#[derive(Debug, Clone)]
pub struct EquipmentTiers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    l1: moka::sync::Cache<Ocid, Arc<Entry>>,
    /// When each recently purged ocid was purged: a copy fetched before that is not served as
    /// fresh nor kept in L1 (a load that began before the purge may bring one back).
    purged: moka::sync::Cache<Ocid, i64>,
    l2: Option<L2>,
    store: Store,
    nexon: NexonClient,
    flights: Flights<Result<Served, NexonError>>,
    config: TierConfig,
    metrics: CoreMetrics,
}

impl EquipmentTiers {
    /// Forgets `ocid`'s equipment in this instance's L1 and in L2, and marks the database
    /// copy as no longer fresh (it stays as the stale fallback): the next request fetches it
    /// from Nexon. Other instances drop their L1 copies when they read the purge in Redis's
    /// purge log ([`Self::follow_purges`], about a second).
    pub async fn purge(&self, ocid: &Ocid) -> Purged {
        let inner = &self.inner;
        self.mark_purged(ocid, now_ms());
        // The database copy first: once the purge is in Redis's log, no instance may find a
        // fresh copy anywhere.
        let fresh_ms = i64::try_from(inner.config.fresh_for.as_millis()).unwrap_or(i64::MAX);
        let database = inner
            .store
            .age_equipment(ocid, now_ms().saturating_sub(fresh_ms).saturating_sub(1))
            .await
            .is_ok();
        let redis = match &inner.l2 {
            Some(redis) => Some(redis.purge(ocid).await.is_ok()),
            None => None,
        };
        Purged { redis, database }
    }

    /// Forgets `ocid` in L1 and refuses copies fetched at or before `at_ms` from now on.
    /// Whether L1 held it.
    fn mark_purged(&self, ocid: &Ocid, at_ms: i64) -> bool {
        let inner = &self.inner;
        let at_ms = inner
            .purged
            .get(ocid)
            .map_or(at_ms, |known| known.max(at_ms));
        inner.purged.insert(ocid.clone(), at_ms);
        inner.l1.remove(ocid).is_some()
    }

    /// Whether `entry` was fetched before `ocid` was last purged.
    fn superseded(&self, ocid: &Ocid, entry: &Entry) -> bool {
        self.inner
            .purged
            .get(ocid)
            .is_some_and(|at| entry.fetched_at_ms <= at)
    }

    /// Fresh, and not older than a purge.
    fn usable(&self, ocid: &Ocid, entry: &Entry) -> bool {
        entry.is_fresh(now_ms(), self.inner.config.fresh_for) && !self.superseded(ocid, entry)
    }

    /// Follows the purges instances log in Redis and drops the L1 copies here (within about a
    /// second), until `stop`. Without Redis there is nothing to follow.
    pub async fn follow_purges(self, stop: tokio_util::sync::CancellationToken) {
        let Some(redis) = self.inner.l2.clone() else {
            return;
        };
        // `None` until the first answer, which only finds where the log ends: at start-up L1
        // holds nothing older purges could concern. If that first answer comes late (Redis
        // down at start-up), L1 may hold copies purged meanwhile: it is emptied then.
        let mut after: Option<String> = None;
        let mut missed = false;
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
            wait = PURGE_POLL;
            let Ok(log) = redis.purged_since(after.as_deref()).await else {
                missed = true;
                continue;
            };
            let behind = match (&after, &log.newest) {
                (None, _) => missed,
                // The log was lost (Redis restarted empty) or its ids went back (a failover to
                // a node with a slower clock): purges since cannot be told apart.
                (Some(after), None) => after != "0-0",
                (Some(after), Some(newest)) => {
                    l2::purge_id_order(newest) < l2::purge_id_order(after)
                }
            };
            if behind {
                tracing::warn!(
                    "the purge log cannot be followed from where this instance was; emptying L1"
                );
                self.inner.l1.invalidate_all();
                after = Some(log.newest.unwrap_or_else(|| "0-0".to_owned()));
                missed = false;
                continue;
            }
            let full = log.purged.len() >= l2::PURGE_PAGE;
            for purge in &log.purged {
                if let Ok(ocid) = Ocid::try_from(purge.ocid.clone())
                    && self.mark_purged(&ocid, purge.at_ms)
                {
                    self.inner.metrics.purges_followed_total.inc();
                }
            }
            after = log
                .purged
                .last()
                .map(|p| p.id.clone())
                .or(after)
                .or(log.newest)
                .or_else(|| Some("0-0".to_owned()));
            if full {
                // More are waiting: read on at once.
                wait = Duration::ZERO;
            }
        }
    }

    /// Redis's breaker, when Redis is configured.
    pub fn redis_breaker(&self) -> Option<maple_common::breaker::Snapshot> {
        self.inner.l2.as_ref().map(L2::breaker)
    }

    /// L1's entries and weighted size (compressed bytes), for the admin API.
    pub fn l1_usage(&self) -> (u64, u64) {
        self.inner.l1.run_pending_tasks();
        (self.inner.l1.entry_count(), self.inner.l1.weighted_size())
    }

    /// Equipment loads in progress (each stores what it fetched before it ends).
    pub fn in_flight(&self) -> usize {
        self.inner.flights.len()
    }

    /// Resolves when every equipment load has ended (each stored what it fetched).
    pub async fn drained(&self) {
        self.inner.flights.drained().await;
    }

    pub fn new(
        config: TierConfig,
        redis: Option<RedisLink>,
        store: Store,
        nexon: NexonClient,
        metrics: CoreMetrics,
    ) -> Self {
        let l1 = moka::sync::Cache::builder()
            .max_capacity(config.l1_max_bytes)
            .weigher(|_: &Ocid, entry: &Arc<Entry>| {
                u32::try_from(entry.weight()).unwrap_or(u32::MAX)
            })
            .build();
        let purged = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(config.fresh_for + Duration::from_secs(60))
            .build();
        Self {
            inner: Arc::new(Inner {
                l1,
                purged,
                l2: redis.map(L2::new),
                store,
                nexon,
                flights: Flights::default(),
                config,
                metrics,
            }),
        }
    }

    /// The equipment of `ocid`, from the first tier holding a fresh copy, else from Nexon.
    ///
    /// # Errors
    /// [`NexonError`] when Nexon fails and no tier holds any copy.
    #[tracing::instrument(level = "info", name = "equipment.get", skip_all, fields(source))]
    pub async fn get(&self, ocid: &Ocid) -> Result<Served, NexonError> {
        let served = self.lookup(ocid).await;
        if let Ok(served) = &served {
            tracing::Span::current().record("source", served.source.as_str());
        }
        if let Ok(served) = &served {
            self.inner.metrics.equipment_source_total.inc(served.source);
            if let Some(cause) = served.stale {
                self.inner.metrics.equipment_stale_total.inc(cause);
            }
        }
        served
    }

    async fn lookup(&self, ocid: &Ocid) -> Result<Served, NexonError> {
        if let Some(entry) = self.inner.l1.get(ocid)
            && self.usable(ocid, &entry)
        {
            return Ok(Served::from(entry, Source::L1));
        }
        let this = self.clone();
        let key = ocid.as_str().to_owned();
        let target = ocid.clone();
        let joined = self
            .inner
            .flights
            .join(&key, move || async move { this.load(&target).await });
        let role = match joined {
            Joined::Leader(_) => Role::Leader,
            Joined::Follower(_) => Role::Follower,
        };
        self.inner.metrics.singleflight_total.inc(role);
        let landed = land(joined.into_receiver());
        let stale_after = self.inner.config.stale_after;
        let landed = if stale_after.is_zero() {
            landed.await
        } else {
            tokio::pin!(landed);
            match tokio::time::timeout(stale_after, &mut landed).await {
                Ok(landed) => landed,
                // The refresh is slow: an expired copy at hand answers now, the load goes on
                // (it runs on its own task) and stores what it fetches in every tier. A fresh
                // copy in L1 means the load has just stored its result and is landing: its
                // answer (with its source) is the one to give.
                Err(_) => match self.stand_in(ocid) {
                    Some(entry) if !self.usable(ocid, &entry) => {
                        return Ok(Served::stale(entry, StaleCause::Refreshing));
                    }
                    _ => landed.await,
                },
            }
        };
        landed.unwrap_or_else(|| {
            Err(NexonError::Unavailable {
                cause: "the equipment load failed".into(),
            })
        })
    }

    /// A copy to answer with while the refresh is slow: L1's (fresh or not; the load puts
    /// the expired copies it finds in L2 and L3 there), unless a purge superseded it.
    fn stand_in(&self, ocid: &Ocid) -> Option<Arc<Entry>> {
        self.inner
            .l1
            .get(ocid)
            .filter(|entry| !self.superseded(ocid, entry))
    }

    /// Puts `entry` in L1 unless L1 holds a newer one.
    fn remember(&self, ocid: &Ocid, entry: &Arc<Entry>) {
        if self.superseded(ocid, entry) {
            return;
        }
        self.inner
            .l1
            .entry(ocid.clone())
            .and_compute_with(|existing| match existing {
                Some(current) if current.value().fetched_at_ms >= entry.fetched_at_ms => {
                    moka::ops::compute::Op::Nop
                }
                _ => moka::ops::compute::Op::Put(Arc::clone(entry)),
            });
    }

    /// The load behind one flight: L2, L3, then the fetch (latched across instances).
    async fn load(&self, ocid: &Ocid) -> Result<Served, NexonError> {
        // The newest copy seen on the way down, to stand in if the fetch fails.
        let mut newest: Option<Arc<Entry>> = self.inner.l1.get(ocid);
        let keep = |newest: &mut Option<Arc<Entry>>, entry: &Arc<Entry>| {
            if newest
                .as_ref()
                .is_none_or(|n| n.fetched_at_ms < entry.fetched_at_ms)
            {
                *newest = Some(Arc::clone(entry));
            }
        };

        if let Some(l2) = &self.inner.l2
            && let Ok(Some(entry)) = l2.get(ocid).await
        {
            let entry = Arc::new(entry);
            // Fresh, it answers; expired, it stands in while the refresh is slow.
            self.remember(ocid, &entry);
            if self.usable(ocid, &entry) {
                return Ok(Served::from(entry, Source::L2));
            }
            keep(&mut newest, &entry);
        }

        match self.inner.store.load_equipment(ocid).await {
            Ok(Some(snapshot)) => {
                let entry = Arc::new(Entry::from(snapshot));
                self.remember(ocid, &entry);
                if self.usable(ocid, &entry) {
                    if let Some(l2) = &self.inner.l2 {
                        let _ = l2.put(ocid, &entry).await;
                    }
                    return Ok(Served::from(entry, Source::Db));
                }
                keep(&mut newest, &entry);
            }
            Ok(None) => {}
            Err(e) => self.inner.metrics.store_error(StoreOp::LoadEquipment, &e),
        }

        match self.fetch_latched(ocid).await {
            Ok(served) => Ok(served),
            Err(error) => match newest {
                Some(entry) => {
                    tracing::warn!(ocid = ocid.as_str(), %error, "serving stale equipment");
                    Ok(Served::stale(entry, StaleCause::UpstreamFailed))
                }
                None => Err(error),
            },
        }
    }

    /// Fetches from Nexon, unless another instance holds the latch: then waits (bounded) for
    /// its result to appear in L2.
    async fn fetch_latched(&self, ocid: &Ocid) -> Result<Served, NexonError> {
        let Some(l2) = &self.inner.l2 else {
            return self.fetch(ocid).await;
        };
        let token = format!("{:032x}", rand::random::<u128>());
        let config = self.inner.config;
        let latch = |result: LatchResult| {
            self.inner.metrics.latch_total.inc(result);
        };
        match l2.try_latch(ocid, &token, config.latch_ttl).await {
            Ok(true) => {
                latch(LatchResult::Acquired);
                let result = self.fetch(ocid).await;
                let _ = l2.release_latch(ocid, &token).await;
                result
            }
            Ok(false) => {
                // Watch the fetch time only (not the body) until a fresh copy lands, the leader
                // gives up (its latch is gone), or our patience ends; then read or fetch.
                let until = tokio::time::Instant::now() + config.latch_wait;
                while tokio::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let landed = match l2.fetched_at(ocid).await {
                        Ok(Some(at)) => is_fresh_at(at, now_ms(), config.fresh_for),
                        Ok(None) => false,
                        // Redis went away while we waited: stop waiting.
                        Err(_) => break,
                    };
                    if landed
                        && let Ok(Some(entry)) = l2.get(ocid).await
                        && !self.superseded(ocid, &entry)
                    {
                        latch(LatchResult::Followed);
                        let entry = Arc::new(entry);
                        self.remember(ocid, &entry);
                        return Ok(Served::from(entry, Source::L2));
                    }
                    if !landed && matches!(l2.latch_held(ocid).await, Ok(false)) {
                        break;
                    }
                }
                latch(LatchResult::WaitedOut);
                self.fetch(ocid).await
            }
            Err(_) => {
                latch(LatchResult::Unavailable);
                self.fetch(ocid).await
            }
        }
    }

    /// Fetches from Nexon and writes the result to every tier.
    async fn fetch(&self, ocid: &Ocid) -> Result<Served, NexonError> {
        let body = self
            .inner
            .metrics
            .nexon_call("item-equipment", self.inner.nexon.equipment(ocid))
            .await?;
        // The proxy's gzip goes into the tiers as it is (inflated once to hash it); an
        // identity body is compressed here.
        let target = ocid.clone();
        let entry = tokio::task::spawn_blocking(move || match body {
            Body::Gzip(gzip) => {
                Entry::from_gzip(gzip, MAX_BODY_BYTES).map_err(|e| NexonError::Unavailable {
                    cause: format!("proxy_bad_gzip: {e}"),
                })
            }
            Body::Identity(body) => Ok(Entry::compress(target, &body)),
        })
        .await
        .map_err(|e| NexonError::Unavailable {
            cause: format!("compressing the response: {e}"),
        })??;
        let entry = Arc::new(entry);
        if let Err(e) = self
            .inner
            .store
            .save_equipment(&entry.to_snapshot(ocid))
            .await
        {
            self.inner.metrics.store_error(StoreOp::SaveEquipment, &e);
        }
        if let Some(l2) = &self.inner.l2 {
            let _ = l2.put(ocid, &entry).await;
        }
        self.remember(ocid, &entry);
        Ok(Served::from(entry, Source::Upstream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_from_the_proxys_gzip_keeps_those_bytes_and_names_the_same_content() {
        let ocid = Ocid::from_bytes([8; 16]);
        let body = "{\"item_equipment\": [\"Eternal Hat\"]}".repeat(100);
        let gzip = bytes::Bytes::from(maple_common::encoding::gzip(body.as_bytes()));
        let taken = Entry::from_gzip(gzip.clone(), MAX_BODY_BYTES).expect("valid gzip");
        assert_eq!(taken.gzip, gzip, "the bytes as they came");
        let compressed = Entry::compress(ocid.clone(), body.as_bytes());
        assert_eq!(taken.etag(), compressed.etag());
        assert_eq!(taken.raw_len, compressed.raw_len);
        assert_eq!(
            taken.decompress(&ocid).expect("intact"),
            body.as_bytes().to_vec()
        );
        assert!(Entry::from_gzip(gzip.slice(..gzip.len() / 2), MAX_BODY_BYTES).is_err());
        // Two gzip members in a row are one body, stored and read back whole.
        let half = body.len() / 2;
        let members = [
            maple_common::encoding::gzip(&body.as_bytes()[..half]),
            maple_common::encoding::gzip(&body.as_bytes()[half..]),
        ]
        .concat();
        let joined = Entry::from_gzip(members.into(), MAX_BODY_BYTES).expect("two members");
        assert_eq!(joined.etag(), compressed.etag());
        assert_eq!(
            joined.decompress(&ocid).expect("read back whole"),
            body.as_bytes().to_vec()
        );
        assert!(Entry::from_gzip(gzip, body.len() - 1).is_err(), "bounded");
    }

    #[test]
    fn entries_round_trip_and_name_their_content() {
        let ocid = Ocid::from_bytes([7; 16]);
        let body = br#"{"item_equipment":[]}"#;
        let entry = Entry::compress(ocid.clone(), body);
        assert_eq!(entry.decompress(&ocid).expect("intact"), body.to_vec());
        assert_eq!(entry.etag().len(), 66);
        let same = Entry::compress(ocid.clone(), body);
        assert_eq!(entry.etag(), same.etag(), "the ETag is the content's");
        assert!(entry.is_fresh(entry.fetched_at_ms, Duration::from_secs(1)));
        assert!(!entry.is_fresh(entry.fetched_at_ms + 1_000, Duration::from_secs(1)));
        // A copy stamped far in the future (a fast clock) is not trusted as fresh.
        assert!(!entry.is_fresh(entry.fetched_at_ms - 120_000, Duration::from_secs(1)));
        assert!(entry.is_fresh(entry.fetched_at_ms - 1_000, Duration::from_secs(1)));
        let back = Entry::from(entry.to_snapshot(&ocid));
        assert_eq!(back, entry);
    }
}
