//! Every metric core exports, each declared once (`declare_metrics!`): the field's name is the
//! metric's after `maple_core_`, its doc comment the help text, its type and value the kind
//! and the labels or buckets. The label enums below create every series at zero.
//!
//! Rule: HTTP metrics are labelled by route template (`/v1/characters/{name}`), never the raw
//! path, so a flood of names cannot blow up the series count.

use maple_common::metric_labels;
use maple_common::metrics::{Counters, Gauges, Label, render};
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Latency buckets in seconds: 1 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Likes per flush: one like to a hundred thousand.
pub const FLUSH_SIZE_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

/// Time from a like's flush to the database: 10 ms to 5 minutes.
pub const SYNC_DELAY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

use crate::admin::KeysFileState;
use crate::equipment::entry::{Source, StaleCause};
use crate::likes::batch::Target;
use crate::supervise::Task;

metric_labels! {
    /// `maple_core_store_errors_total{operation}`: database operations whose failure is
    /// tolerated (logged and counted, the request goes on).
    pub enum StoreOp {
        FindOcid => "find_ocid",
        UpsertCharacter => "upsert_character",
        ForgetName => "forget_name",
        LoadEquipment => "load_equipment",
        SaveEquipment => "save_equipment",
    }
}

metric_labels! {
    /// `maple_core_name_rechecks_total{outcome}`: a stored name → ocid asked of Nexon again
    /// once older than `MAPLE_CORE_NAME_RECHECK_S`.
    pub enum RecheckOutcome {
        Same => "same",
        Changed => "changed",
        Gone => "gone",
        Failed => "failed",
    }
}

metric_labels! {
    /// `maple_core_singleflight_total{role}`.
    pub enum Role { Leader => "leader", Follower => "follower" }
}

metric_labels! {
    /// `maple_core_latch_total{result}`.
    pub enum LatchResult {
        Acquired => "acquired",
        Followed => "followed",
        WaitedOut => "waited_out",
        Unavailable => "unavailable",
    }
}

metric_labels! {
    /// `maple_core_likes_total{result}`.
    pub enum LikeResult {
        Accepted => "accepted",
        Duplicate => "duplicate",
        RateLimited => "rate_limited",
        Failed => "failed",
    }
}

metric_labels! {
    /// The `result` of a flush to one target.
    pub enum FlushOutcome { Ok => "ok", Error => "error" }
}

metric_labels! {
    /// `maple_core_like_syncs_total{result}`.
    pub enum SyncResult {
        Ok => "ok",
        Idle => "idle",
        Busy => "busy",
        Fenced => "fenced",
        Error => "error",
    }
}

metric_labels! {
    /// `maple_core_like_synced_total{kind}`.
    pub enum SyncedKind {
        Likes => "likes",
        SkippedBatches => "skipped_batches",
        MissingBatches => "missing_batches",
        DuplicateKeys => "duplicate_keys",
    }
}

metric_labels! {
    /// `maple_core_like_backup_files{state}`.
    pub enum BackupFileState { Pending => "pending", Unreadable => "unreadable", Archived => "archived" }
}

metric_labels! {
    /// `maple_core_like_backups_total{result}`.
    pub enum BackupResult { Written => "written", Applied => "applied", Failed => "failed" }
}

metric_labels! {
    /// `maple_core_like_redis_lost_total{kind}`.
    pub enum LostKind { Likes => "likes", Batches => "batches" }
}

metric_labels! {
    /// `maple_core_db_pool_connections{state}`.
    pub enum PoolState { InUse => "in_use", Idle => "idle", Max => "max" }
}

metric_labels! {
    /// `maple_core_pricing_admissions_total{result}`: pricing work no cache answered, at the
    /// gate (`http::gate`).
    pub enum PricingAdmission {
        Admitted => "admitted",
        ClientBusy => "client_busy",
        LineFull => "line_full",
        WaitedOut => "waited_out",
        Abandoned => "abandoned",
    }
}

metric_labels! {
    /// `maple_core_like_count_refreshes_total{result}`.
    pub enum CountRefresh {
        Ok => "ok",
        Busy => "busy",
        Overtaken => "overtaken",
        Failed => "failed",
    }
}

metric_labels! {
    /// `maple_core_cache_entries{cache}` and `maple_core_cache_bytes{cache}`: core's caches.
    pub enum CacheName {
        L1 => "l1",
        Raw => "raw",
        Parsed => "parsed",
        Valuation => "valuation",
        Spreads => "spreads",
        FlameLaws => "flame_laws",
        Names => "names",
    }
}

metric_labels! {
    /// `maple_core_dependency_up{dependency}`: what readiness and each scrape found.
    pub enum Dependency { Database => "database", Redis => "redis" }
}

metric_labels! {
    /// `maple_core_redis_memory_bytes{kind}`.
    pub enum RedisMemory { Used => "used", Max => "max" }
}

metric_labels! {
    /// `maple_core_shutdown_phase_seconds{phase}`.
    pub enum ShutdownPhase {
        Drain => "drain",
        Equipment => "equipment",
        Likes => "likes",
        Database => "database",
    }
}

metric_labels! {
    /// `maple_core_rejected_total{reason}`: refused before reaching a handler.
    pub enum Rejection {
        UriTooLong => "uri_too_long",
        HeadersTooLarge => "headers_too_large",
        PayloadTooLarge => "payload_too_large",
        Overloaded => "overloaded",
        RateLimited => "rate_limited",
    }
}

maple_common::declare_metrics! {
    /// Core's metrics and their registry: each metric's name is `maple_core_` and its field's
    /// name, its help text the field's doc.
    #[derive(Debug, Clone)]
    pub struct CoreMetrics, names "maple_core_" {
        /// Requests answered, by route template, method and status.
        pub http_requests_total: IntCounterVec = &["route", "method", "status"],
        /// Request latency, by route template and method.
        pub http_request_duration_seconds: HistogramVec = (&["route", "method"], DURATION_BUCKETS),
        /// Calls to the Nexon API through the proxy, by endpoint and outcome.
        pub nexon_calls_total: IntCounterVec = &["endpoint", "outcome"],
        /// Database operations that failed, by operation.
        pub store_errors_total: Counters<StoreOp> = "operation",
        /// Equipment answers by the tier that served them: l1, l2, db, upstream, stale.
        pub equipment_source_total: Counters<Source> = "source",
        /// Stale equipment answers by cause: refreshing (the refresh was slower than
        /// MAPLE_CORE_STALE_AFTER_MS and goes on), upstream_failed (the refresh failed).
        pub equipment_stale_total: Counters<StaleCause> = "cause",
        /// Equipment loads by role: leader (this request loaded), follower (joined one in progress in
        /// this instance).
        pub singleflight_total: Counters<Role> = "role",
        /// The cross-instance fetch latch by result: acquired, followed (another instance fetched),
        /// waited_out (the leader took too long; fetched anyway), unavailable (Redis down).
        pub latch_total: Counters<LatchResult> = "result",
        /// Redis operations by use (equipment, likes, locks, memory), operation and result (ok, error,
        /// breaker_open).
        pub redis_ops_total: IntCounterVec = &["use", "operation", "result"],
        /// Redis circuit breaker state by use (equipment, likes, locks, memory): 0 closed, 1 open, 2
        /// half-open.
        pub redis_breaker_state: IntGaugeVec = &["use"],
        /// Like requests by result: accepted, duplicate (idempotency key seen), rate_limited, failed
        /// (not confirmed stored: 503 likes_unavailable, or outcome_unknown when Redis or the database
        /// may hold it).
        pub likes_total: Counters<LikeResult> = "result",
        /// Likes in this instance's buffer, waiting for their flush.
        pub like_buffer: IntGauge,
        /// Flushes of the like buffer by target (redis, db, backup) and result (ok, error).
        pub like_flushes_total: IntCounterVec = &["target", "result"],
        /// Likes per flush.
        pub like_flush_size: Histogram = FLUSH_SIZE_BUCKETS,
        /// Flush latency by target.
        pub like_flush_duration_seconds: HistogramVec = (&["target"], DURATION_BUCKETS),
        /// Sync passes by result: ok, idle (nothing to sync), busy (another instance leads), fenced (a
        /// newer leader exists), error.
        pub like_syncs_total: Counters<SyncResult> = "result",
        /// What the like sync wrote, by kind: likes (written to the database), skipped_batches (already
        /// applied), missing_batches (listed in Redis, contents gone), duplicate_keys (keyed likes not
        /// added because the database path recorded their key first).
        pub like_synced_total: Counters<SyncedKind> = "kind",
        /// Age of the oldest like batch not yet in the database (0 when none).
        pub like_sync_lag_seconds: Gauge,
        /// Time from a batch's flush to its database commit.
        pub like_sync_delay_seconds: Histogram = SYNC_DELAY_BUCKETS,
        /// Backup files by state: pending (waiting to be applied), unreadable (kept for a human),
        /// archived (applied, kept within the archive's bound).
        pub like_backup_files: Gauges<BackupFileState> = "state",
        /// Backup file operations by result: written, applied, failed.
        pub like_backups_total: Counters<BackupResult> = "result",
        /// Like batches this instance flushed to Redis and keeps in memory until the database holds
        /// them (so a Redis that loses its data loses no like).
        pub like_retained_batches: IntGauge,
        /// Bytes of applied backup files kept in `archive/` (bounded by
        /// `MAPLE_CORE_BACKUP_ARCHIVE_BYTES`).
        pub like_backup_archive_bytes: IntGauge,
        /// Likes and batches that Redis lost before the sync (an empty restart, a failover to a replica
        /// without it), re-applied to the database from this instance's memory, by kind: likes,
        /// batches.
        pub like_redis_lost_total: Counters<LostKind> = "kind",
        /// Batches flushed to Redis without a memory copy because the copies reached their bound (the
        /// database has been slow to take them).
        pub like_unkept_batches_total: IntCounter,
        /// Sync commits that ran out of time and were tried again in two halves (a large backlog).
        pub like_sync_splits_total: IntCounter,
        /// Like batches Redis took but too few replicas confirmed within 100 ms (WAIT,
        /// MAPLE_CORE_REDIS_MIN_REPLICAS): sent to the database instead, without counting against
        /// Redis.
        pub like_replica_shortfalls_total: IntCounter,
        /// Keyed likes refused with 429: the client used its MAPLE_CORE_LIKES_KEYS_PER_CLIENT
        /// idempotency keys of the last 24 h.
        pub like_keys_refused_total: IntCounter,
        /// Redis's memory: `used` and `max` (its `maxmemory`, 0 when unlimited), read every 10 s.
        pub redis_memory_bytes: Gauges<RedisMemory> = "kind",
        /// Like batches no store confirmed while Redis or the database may hold them (a write sent, its
        /// answer lost): answered 503 outcome_unknown (retry with the same key).
        pub like_outcome_unknown_total: IntCounter,
        /// Background count reads after a flush, which renew the counts likes are acknowledged with
        /// (off the acknowledgement path), by result: ok (learned), busy (a read was under way: the
        /// flushed characters join it), overtaken (a like was acknowledged for a character while it
        /// ran: not learned), failed (a store could not be read).
        pub like_count_refreshes_total: Counters<CountRefresh> = "result",
        /// L1 entries dropped because an instance purged them (read from Redis's purge log).
        pub purges_followed_total: IntCounter,
        /// Lock acquisitions by lock and outcome (redis, mysql, local, busy, unavailable).
        pub lock_acquisitions_total: IntCounterVec = &["lock", "outcome"],
        /// Acquisitions that fell back from Redis to the database's named lock.
        pub lock_fallbacks_total: IntCounterVec = &["lock"],
        /// Time spent acquiring (successfully or not), by lock.
        pub lock_wait_seconds: HistogramVec = (&["lock"], DURATION_BUCKETS),
        /// Time a lock was held, by lock.
        pub lock_held_seconds: HistogramVec = (&["lock"], DURATION_BUCKETS),
        /// Locks this instance holds now, by lock and backend.
        pub locks_held: IntGaugeVec = &["lock", "backend"],
        /// Requests refused before reaching a handler, by reason (uri_too_long, headers_too_large,
        /// payload_too_large, overloaded, rate_limited).
        pub rejected_total: Counters<Rejection> = "reason",
        /// Requests being handled now.
        pub in_flight: IntGauge,
        /// Database pool connections by state (in_use, idle) and the pool's maximum (max), read at each
        /// scrape.
        pub db_pool_connections: Gauges<PoolState> = "state",
        /// Whether each dependency (database, redis) answered its last probe, bounded to 250 ms: 1 up,
        /// 0 down; probed by /health/ready and each scrape; redis stays 0 when none is configured.
        /// Readiness does not depend on them: the service degrades instead.
        pub dependency_up: Gauges<Dependency> = "dependency",
        /// Entries in each of core's caches (l1, raw, parsed, valuation, spreads, flame_laws, names),
        /// read at each scrape.
        pub cache_entries: Gauges<CacheName> = "cache",
        /// Weighed bytes in each of core's caches, read at each scrape: the values' real heap bytes for
        /// l1, raw, parsed and valuation (checked by core/tests/footprint.rs); spreads, flame_laws and
        /// names estimated per entry.
        pub cache_bytes: Gauges<CacheName> = "cache",
        /// The admin keys file as last checked, one series per state at 1: unset, loaded, absent,
        /// invalid (a file that no longer parses; the previous keys kept). Read at each scrape.
        pub admin_keys_file: Gauges<KeysFileState> = "state",
        /// Admin keys in force (read at each scrape).
        pub admin_keys: IntGauge,
        /// Refused admin attempts deleted from the audit log beyond MAPLE_CORE_AUDIT_REFUSED_KEEP.
        pub audit_pruned_total: IntCounter,
        /// Lookups of a name Nexon said it does not know, answered 404 from memory without asking again
        /// (MAPLE_CORE_NOT_FOUND_TTL_S).
        pub not_found_remembered_total: IntCounter,
        /// Name lookups refused with 429: the client asked Nexon (missed every cache) more often than
        /// MAPLE_CORE_CLIENT_MISS_RATE.
        pub lookup_misses_refused_total: IntCounter,
        /// Pricing work no cache answered, by what the gate did: admitted, client_busy (429: the
        /// client's share in use), line_full and waited_out (503), abandoned (admitted, then the
        /// request went away and the work stopped).
        pub pricing_admissions_total: Counters<PricingAdmission> = "result",
        /// Background loops restarted after a panic, by task (the panic and its cause are logged).
        pub task_restarts_total: Counters<Task> = "task",
        /// Stored names asked of Nexon again once older than MAPLE_CORE_NAME_RECHECK_S, by outcome:
        /// same (the same ocid), changed (a rename, or a freed name taken by another character), gone
        /// (Nexon no longer knows the name), failed (the copy kept).
        pub name_rechecks_total: Counters<RecheckOutcome> = "outcome",
        /// Where shutdown is: 0 serving, 1 draining requests, 2 waiting for equipment loads, 3 saving
        /// likes, 4 closing the database, 5 stopped.
        pub shutdown_phase: IntGauge,
        /// How long each shutdown phase took (set as each ends).
        pub shutdown_phase_seconds: GaugeVec = &["phase"],

    }
}

impl CoreMetrics {
    /// # Errors
    /// Only if two metrics share a name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self::register()?.with_known_series())
    }

    /// Creates the series of the lock `name` at zero, as [`Self::with_known_series`] does for
    /// fixed label sets. Called by the composition root for each lock the service takes
    /// (metrics does not know the lock names: `lock.rs` does).
    pub fn with_lock(self, name: &str) -> Self {
        for outcome in ["redis", "mysql", "local", "busy", "unavailable"] {
            self.lock_acquisitions_total
                .with_label_values(&[name, outcome]);
        }
        self.lock_fallbacks_total.with_label_values(&[name]);
        self.lock_wait_seconds.with_label_values(&[name]);
        self.lock_held_seconds.with_label_values(&[name]);
        for backend in ["redis", "mysql", "local"] {
            self.locks_held.with_label_values(&[name, backend]);
        }
        self
    }

    /// Runs a Nexon call and counts its outcome under `endpoint`.
    ///
    /// # Errors
    /// The call's own error, unchanged.
    pub async fn nexon_call<T>(
        &self,
        endpoint: &'static str,
        call: impl Future<Output = Result<T, crate::nexon::NexonError>>,
    ) -> Result<T, crate::nexon::NexonError> {
        let result = call.await;
        self.nexon_calls_total
            .with_label_values(&[endpoint, crate::nexon::outcome(&result)])
            .inc();
        result
    }

    /// Logs and counts a database operation that failed where its failure is tolerated.
    pub fn store_error(&self, operation: StoreOp, error: &dyn std::fmt::Display) {
        tracing::warn!(operation = operation.as_str(), %error, "database operation failed");
        self.store_errors_total.inc(operation);
    }

    /// Creates the series of the two-label families whose labels are fixed sets, at zero, so
    /// rules and dashboards see them (and `rate()` works) before the first event; the
    /// one-label families ([`Counters`], [`Gauges`]) do this when registered.
    fn with_known_series(self) -> Self {
        for target in Target::ALL {
            for result in FlushOutcome::ALL {
                self.like_flushes_total
                    .with_label_values(&[target.as_str(), result.as_str()]);
            }
            self.like_flush_duration_seconds
                .with_label_values(&[target.as_str()]);
        }
        for phase in ShutdownPhase::ALL {
            self.shutdown_phase_seconds
                .with_label_values(&[phase.as_str()]);
        }
        self
    }

    /// Counts a flush of the like buffer to `target`.
    pub fn like_flush(&self, target: Target, result: FlushOutcome) {
        self.like_flushes_total
            .with_label_values(&[target.as_str(), result.as_str()])
            .inc();
    }

    /// Records how long a shutdown phase took.
    pub fn shutdown_phase_took(&self, phase: ShutdownPhase, seconds: f64) {
        self.shutdown_phase_seconds
            .with_label_values(&[phase.as_str()])
            .set(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Vec<u8> {
        render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rendered() {
        let metrics = CoreMetrics::new().expect("unique names");
        metrics
            .http_requests_total
            .with_label_values(&["/health/live", "GET", "200"])
            .inc();
        metrics
            .http_request_duration_seconds
            .with_label_values(&["/health/live", "GET"])
            .observe(0.001);
        metrics
            .nexon_calls_total
            .with_label_values(&["id", "ok"])
            .inc();
        metrics.store_errors_total.inc(StoreOp::FindOcid);
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        for name in [
            "maple_core_http_requests_total",
            "maple_core_http_request_duration_seconds_bucket",
            "maple_core_nexon_calls_total",
            "maple_core_store_errors_total",
        ] {
            assert!(text.contains(name), "{name}");
        }
    }
}
