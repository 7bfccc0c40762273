//! Every metric core exports, declared in one place (names are `maple_core_*`).
//!
//! Rule: HTTP metrics are labelled by route template (`/v1/characters/{name}`), never the raw
//! path, so a flood of names cannot blow up the series count.

use maple_common::metric_labels;
use maple_common::metrics::{
    Counters, Gauges, Label, counter, counter_vec, gauge, gauge_vec, histogram, histogram_vec,
    render,
};
use prometheus::{
    Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
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

/// Core's metrics and their registry.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    registry: Registry,
    /// Requests answered, by route template, method and status.
    pub http_requests_total: IntCounterVec,
    /// Request latency, by route template and method.
    pub http_request_duration_seconds: HistogramVec,
    /// Calls to the Nexon API through the proxy, by endpoint and outcome.
    pub nexon_calls_total: IntCounterVec,
    /// Database operations that failed, by operation.
    pub store_errors_total: Counters<StoreOp>,
    /// Equipment answers by the tier that served them: l1, l2, db, upstream, stale.
    pub equipment_source_total: Counters<Source>,
    /// Stale answers by cause: refreshing (the refresh was slower than the soft deadline and
    /// goes on), upstream_failed (the refresh failed).
    pub equipment_stale_total: Counters<StaleCause>,
    /// Equipment loads by role: leader (this request loaded), follower (joined one in
    /// progress in this instance).
    pub singleflight_total: Counters<Role>,
    /// The cross-instance latch: acquired, followed (another instance fetched), waited_out
    /// (the leader took too long; fetched anyway), unavailable (Redis down).
    pub latch_total: Counters<LatchResult>,
    /// Redis operations by use, operation and result (ok, error, breaker_open).
    pub redis_ops_total: IntCounterVec,
    /// Redis circuit breaker state by use: 0 closed, 1 open, 2 half-open.
    pub redis_breaker_state: IntGaugeVec,
    /// Like requests by result: accepted, duplicate (idempotency key seen), rate_limited,
    /// failed (not stored anywhere; the client got 503).
    pub likes_total: Counters<LikeResult>,
    /// Likes in this instance's buffer, waiting for their flush.
    pub like_buffer: IntGauge,
    /// Flushes of the like buffer by target (redis, db, backup) and result (ok, error).
    pub like_flushes_total: IntCounterVec,
    /// Likes per flush.
    pub like_flush_size: Histogram,
    /// Flush latency by target.
    pub like_flush_duration_seconds: HistogramVec,
    /// Sync passes by result: ok, idle (nothing to sync), busy (another instance leads),
    /// fenced (a newer leader exists), error.
    pub like_syncs_total: Counters<SyncResult>,
    /// Likes written to the database by the sync, batches skipped as already applied, and
    /// batches listed in Redis whose contents were gone.
    pub like_synced_total: Counters<SyncedKind>,
    /// Age of the oldest like batch not yet in the database (0 when none).
    pub like_sync_lag_seconds: Gauge,
    /// Time from a batch's flush to its database commit.
    pub like_sync_delay_seconds: Histogram,
    /// Backup files by state: pending (waiting to be applied), unreadable (kept for a human),
    /// archived (applied, kept within the archive's bound).
    pub like_backup_files: Gauges<BackupFileState>,
    /// Backup file operations by result: written, applied, failed.
    pub like_backups_total: Counters<BackupResult>,
    /// Batches this instance flushed to Redis and keeps in memory until the database holds
    /// them (so a Redis that loses its data loses no like).
    pub like_retained_batches: IntGauge,
    /// Bytes of applied backup files kept in `archive/` (bounded by
    /// `MAPLE_CORE_BACKUP_ARCHIVE_BYTES`).
    pub like_backup_archive_bytes: IntGauge,
    /// Likes whose batch Redis lost before the sync (an empty restart, a failover to a
    /// replica without it): re-applied to the database from this instance's memory.
    pub like_redis_lost_total: Counters<LostKind>,
    /// Batches flushed to Redis without a memory copy because the copies reached their bound
    /// (the database has been slow to take them).
    pub like_unkept_batches_total: IntCounter,
    /// Sync commits that ran out of time and were tried again in two halves (a large backlog).
    pub like_sync_splits_total: IntCounter,
    /// Like batches Redis took but too few replicas confirmed (`WAIT` came up short): sent to
    /// the database instead, without counting against Redis.
    pub like_replica_shortfalls_total: IntCounter,
    /// Keyed likes refused because the client used its idempotency keys for the day
    /// (`MAPLE_CORE_LIKES_KEYS_PER_CLIENT`).
    pub like_keys_refused_total: IntCounter,
    /// Redis's memory: `used` and `max` (its `maxmemory`, 0 when unlimited), read every 10 s.
    pub redis_memory_bytes: Gauges<RedisMemory>,
    /// Like batches no store confirmed while Redis or the database may hold them: answered
    /// 503 `outcome_unknown` (retry with the same key).
    pub like_outcome_unknown_total: IntCounter,
    /// Background count reads after a flush by result: ok (learned), busy (a read was under
    /// way: its characters join it), overtaken (a like was acknowledged for a character while
    /// it ran: not learned), failed.
    /// They renew the counts likes are acknowledged with, off the acknowledgement path.
    pub like_count_refreshes_total: Counters<CountRefresh>,
    /// L1 entries dropped because an instance purged them (read from Redis's purge log).
    pub purges_followed_total: IntCounter,
    /// Lock acquisitions by lock and outcome (redis, mysql, local, busy, unavailable).
    pub lock_acquisitions_total: IntCounterVec,
    /// Acquisitions that fell back from Redis to the database's named lock.
    pub lock_fallbacks_total: IntCounterVec,
    /// Time spent acquiring (successfully or not), by lock.
    pub lock_wait_seconds: HistogramVec,
    /// Time a lock was held, by lock.
    pub lock_held_seconds: HistogramVec,
    /// Locks this instance holds now, by lock and backend.
    pub locks_held: IntGaugeVec,
    /// Requests refused before reaching a handler, by reason (uri_too_long,
    /// headers_too_large, payload_too_large, overloaded, rate_limited).
    pub rejected_total: Counters<Rejection>,
    /// Requests being handled now.
    pub in_flight: IntGauge,
    /// Database pool connections by state (in_use, idle) and the pool's maximum (max), read at
    /// each scrape.
    pub db_pool_connections: Gauges<PoolState>,
    /// Whether each dependency answered its last probe (readiness and each scrape ping it,
    /// bounded to 250 ms): 1 up, 0 down; Redis stays 0 when none is configured. Readiness
    /// does not depend on them: the service degrades instead.
    pub dependency_up: Gauges<Dependency>,
    /// Each cache's entries and weighed bytes (the weights are the values' real heap bytes,
    /// checked by `tests/footprint.rs`), read at each scrape.
    pub cache_entries: Gauges<CacheName>,
    pub cache_bytes: Gauges<CacheName>,
    /// The admin keys file as last checked, one series per state at 1 (unset, loaded, absent,
    /// invalid: a file that no longer parses, the previous keys kept); read at each scrape.
    pub admin_keys_file: Gauges<KeysFileState>,
    /// Admin keys in force (read at each scrape).
    pub admin_keys: IntGauge,
    /// Refused admin attempts deleted from the audit log beyond its bound.
    pub audit_pruned_total: IntCounter,
    /// Lookups of a name Nexon said it does not know, answered 404 from memory.
    pub not_found_remembered_total: IntCounter,
    /// Name lookups refused (429) because the client asked Nexon too often: its miss rate.
    pub lookup_misses_refused_total: IntCounter,
    /// Pricing work no cache answered, by what the gate did: admitted, client_busy (429: the
    /// client's share in use), line_full and waited_out (503), abandoned (admitted, then the
    /// request went away and the work stopped).
    pub pricing_admissions_total: Counters<PricingAdmission>,
    /// Background loops restarted after a panic, by loop (`crate::supervise`).
    pub task_restarts_total: Counters<Task>,
    /// Re-checks of stored names by outcome: same ocid, changed (a rename, or a freed name
    /// taken by another character), gone (Nexon no longer knows the name), failed (kept).
    pub name_rechecks_total: Counters<RecheckOutcome>,
    /// Where shutdown is: 0 serving, 1 draining requests, 2 waiting for equipment loads,
    /// 3 saving likes, 4 closing the database, 5 stopped.
    pub shutdown_phase: IntGauge,
    /// How long each shutdown phase took (set as each ends).
    pub shutdown_phase_seconds: prometheus::GaugeVec,
}

impl CoreMetrics {
    /// # Errors
    /// Only if two metrics share a name (a programming error caught by tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Self {
            http_requests_total: counter_vec(
                &r,
                "maple_core_http_requests_total",
                "Requests answered, by route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_request_duration_seconds: histogram_vec(
                &r,
                "maple_core_http_request_duration_seconds",
                "Request latency, by route template and method.",
                &["route", "method"],
                DURATION_BUCKETS,
            )?,
            nexon_calls_total: counter_vec(
                &r,
                "maple_core_nexon_calls_total",
                "Calls to the Nexon API through the proxy, by endpoint and outcome.",
                &["endpoint", "outcome"],
            )?,
            store_errors_total: Counters::register(
                &r,
                "maple_core_store_errors_total",
                "Database operations that failed, by operation.",
                "operation",
            )?,
            equipment_source_total: Counters::register(
                &r,
                "maple_core_equipment_source_total",
                "Equipment answers by the tier that served them.",
                "source",
            )?,
            equipment_stale_total: Counters::register(
                &r,
                "maple_core_equipment_stale_total",
                "Stale equipment answers by cause: refreshing (the refresh was slower than MAPLE_CORE_STALE_AFTER_MS and goes on), upstream_failed.",
                "cause",
            )?,
            singleflight_total: Counters::register(
                &r,
                "maple_core_singleflight_total",
                "Equipment loads by role in this instance: leader or follower.",
                "role",
            )?,
            latch_total: Counters::register(
                &r,
                "maple_core_latch_total",
                "Cross-instance fetch latch outcomes.",
                "result",
            )?,
            redis_ops_total: counter_vec(
                &r,
                "maple_core_redis_ops_total",
                "Redis operations by use (equipment, likes, locks), operation and result.",
                &["use", "operation", "result"],
            )?,
            redis_breaker_state: gauge_vec(
                &r,
                "maple_core_redis_breaker_state",
                "Redis circuit breaker state by use (equipment, likes, locks): 0 closed, 1 open, 2 half-open.",
                &["use"],
            )?,
            likes_total: Counters::register(
                &r,
                "maple_core_likes_total",
                "Like requests by result.",
                "result",
            )?,
            like_buffer: gauge(
                &r,
                "maple_core_like_buffer",
                "Likes in this instance's buffer, waiting for their flush.",
            )?,
            like_flushes_total: counter_vec(
                &r,
                "maple_core_like_flushes_total",
                "Flushes of the like buffer by target and result.",
                &["target", "result"],
            )?,
            like_flush_size: histogram(
                &r,
                "maple_core_like_flush_size",
                "Likes per flush.",
                FLUSH_SIZE_BUCKETS,
            )?,
            like_flush_duration_seconds: histogram_vec(
                &r,
                "maple_core_like_flush_duration_seconds",
                "Flush latency by target.",
                &["target"],
                DURATION_BUCKETS,
            )?,
            like_syncs_total: Counters::register(
                &r,
                "maple_core_like_syncs_total",
                "Like sync passes by result.",
                "result",
            )?,
            like_synced_total: Counters::register(
                &r,
                "maple_core_like_synced_total",
                "Likes written to the database by the sync (kind=likes), batches skipped as already applied (kind=skipped_batches), batches listed in Redis whose contents were gone (kind=missing_batches).",
                "kind",
            )?,
            like_sync_lag_seconds: {
                let g = Gauge::new(
                    "maple_core_like_sync_lag_seconds",
                    "Age of the oldest like batch not yet in the database (0 when none).",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            like_sync_delay_seconds: histogram(
                &r,
                "maple_core_like_sync_delay_seconds",
                "Time from a like batch's flush to its database commit.",
                SYNC_DELAY_BUCKETS,
            )?,
            like_backup_files: Gauges::register(
                &r,
                "maple_core_like_backup_files",
                "Like backup files by state (pending, unreadable, archived).",
                "state",
            )?,
            like_backups_total: Counters::register(
                &r,
                "maple_core_like_backups_total",
                "Like backup file operations by result (written, applied, failed).",
                "result",
            )?,
            like_backup_archive_bytes: gauge(
                &r,
                "maple_core_like_backup_archive_bytes",
                "Bytes of applied like backup files kept in the archive.",
            )?,
            like_retained_batches: gauge(
                &r,
                "maple_core_like_retained_batches",
                "Like batches flushed to Redis and kept in this instance's memory until the database holds them.",
            )?,
            like_redis_lost_total: Counters::register(
                &r,
                "maple_core_like_redis_lost_total",
                "Likes whose batch Redis lost before the sync, re-applied to the database from memory (kind=likes, batches).",
                "kind",
            )?,
            like_keys_refused_total: counter(
                &r,
                "maple_core_like_keys_refused_total",
                "Keyed likes refused with 429: the client used its MAPLE_CORE_LIKES_KEYS_PER_CLIENT idempotency keys of the last 24 h.",
            )?,
            redis_memory_bytes: Gauges::register(
                &r,
                "maple_core_redis_memory_bytes",
                "Redis memory: used, and max (its maxmemory; 0 when unlimited), read every 10 s.",
                "kind",
            )?,
            like_count_refreshes_total: Counters::register(
                &r,
                "maple_core_like_count_refreshes_total",
                "Background count reads after a flush, which renew the counts likes are acknowledged with: ok, busy (a read was under way; the flushed characters join it), overtaken (a like was acknowledged while it ran: not learned), failed (a store could not be read).",
                "result",
            )?,
            like_outcome_unknown_total: counter(
                &r,
                "maple_core_like_outcome_unknown_total",
                "Like batches no store confirmed while Redis or the database may hold them (a write sent, its answer lost), answered 503 outcome_unknown.",
            )?,
            like_replica_shortfalls_total: counter(
                &r,
                "maple_core_like_replica_shortfalls_total",
                "Like batches Redis took but too few replicas confirmed within 100 ms (MAPLE_CORE_REDIS_MIN_REPLICAS): sent to the database instead.",
            )?,
            purges_followed_total: counter(
                &r,
                "maple_core_purges_followed_total",
                "L1 entries dropped because an instance purged them (read from Redis's purge log).",
            )?,
            like_unkept_batches_total: counter(
                &r,
                "maple_core_like_unkept_batches_total",
                "Like batches flushed to Redis without a memory copy because the copies reached their bound.",
            )?,
            like_sync_splits_total: counter(
                &r,
                "maple_core_like_sync_splits_total",
                "Like sync commits that ran out of time and were tried again in two halves.",
            )?,
            lock_acquisitions_total: counter_vec(
                &r,
                "maple_core_lock_acquisitions_total",
                "Lock acquisitions by lock and outcome (redis, mysql, local, busy, unavailable).",
                &["lock", "outcome"],
            )?,
            lock_fallbacks_total: counter_vec(
                &r,
                "maple_core_lock_fallbacks_total",
                "Lock acquisitions that fell back from Redis to the database.",
                &["lock"],
            )?,
            lock_wait_seconds: histogram_vec(
                &r,
                "maple_core_lock_wait_seconds",
                "Time spent acquiring a lock, by lock.",
                &["lock"],
                DURATION_BUCKETS,
            )?,
            lock_held_seconds: histogram_vec(
                &r,
                "maple_core_lock_held_seconds",
                "Time a lock was held, by lock.",
                &["lock"],
                DURATION_BUCKETS,
            )?,
            locks_held: gauge_vec(
                &r,
                "maple_core_locks_held",
                "Locks this instance holds now, by lock and backend.",
                &["lock", "backend"],
            )?,
            rejected_total: Counters::register(
                &r,
                "maple_core_rejected_total",
                "Requests refused before reaching a handler, by reason.",
                "reason",
            )?,
            in_flight: gauge(
                &r,
                "maple_core_in_flight",
                "Requests being handled now.",
            )?,
            db_pool_connections: Gauges::register(
                &r,
                "maple_core_db_pool_connections",
                "Database pool connections by state (in_use, idle, max).",
                "state",
            )?,
            cache_entries: Gauges::register(
                &r,
                "maple_core_cache_entries",
                "Entries in each of core's caches (l1, raw, parsed, valuation, spreads, flame_laws, names), read at each scrape.",
                "cache",
            )?,
            cache_bytes: Gauges::register(
                &r,
                "maple_core_cache_bytes",
                "Weighed bytes in each of core's caches (the values' heap bytes; names and spreads estimated per entry), read at each scrape.",
                "cache",
            )?,
            dependency_up: Gauges::register(
                &r,
                "maple_core_dependency_up",
                "Whether each dependency (database, redis) answered its last probe (1) or not (0); probed by /health/ready and each scrape.",
                "dependency",
            )?,
            admin_keys_file: Gauges::register(
                &r,
                "maple_core_admin_keys_file",
                "The admin keys file as last checked: 1 for its state (unset, loaded, absent, invalid = unparsable, previous keys kept).",
                "state",
            )?,
            admin_keys: gauge(&r, "maple_core_admin_keys", "Admin keys in force.")?,
            audit_pruned_total: counter(
                &r,
                "maple_core_audit_pruned_total",
                "Refused admin attempts deleted from the audit log beyond MAPLE_CORE_AUDIT_REFUSED_KEEP.",
            )?,
            not_found_remembered_total: counter(
                &r,
                "maple_core_not_found_remembered_total",
                "Lookups of a name Nexon said it does not know, answered 404 without asking again (MAPLE_CORE_NOT_FOUND_TTL_S).",
            )?,
            lookup_misses_refused_total: counter(
                &r,
                "maple_core_lookup_misses_refused_total",
                "Name lookups refused with 429: the client asked Nexon more often than MAPLE_CORE_CLIENT_MISS_RATE.",
            )?,
            pricing_admissions_total: Counters::register(
                &r,
                "maple_core_pricing_admissions_total",
                "Pricing work no cache answered, by what the gate did: admitted, client_busy (429), line_full and waited_out (503), abandoned (the request went away; the work stopped).",
                "result",
            )?,
            task_restarts_total: Counters::register(
                &r,
                "maple_core_task_restarts_total",
                "Background loops restarted after a panic, by task (the panic and its cause are logged).",
                "task",
            )?,
            name_rechecks_total: Counters::register(
                &r,
                "maple_core_name_rechecks_total",
                "Stored name to ocid mappings asked of Nexon again (MAPLE_CORE_NAME_RECHECK_S), by outcome: same, changed, gone, failed (the copy kept).",
                "outcome",
            )?,
            shutdown_phase: gauge(
                &r,
                "maple_core_shutdown_phase",
                "Shutdown phase: 0 serving, 1 draining, 2 equipment loads, 3 likes, 4 closing the database, 5 stopped.",
            )?,
            shutdown_phase_seconds: {
                let g = prometheus::GaugeVec::new(
                    prometheus::Opts::new(
                        "maple_core_shutdown_phase_seconds",
                        "How long each shutdown phase took.",
                    ),
                    &["phase"],
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            registry: r,
        }
        .with_known_series())
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
