//! Every metric core exports, declared in one place (names are `maple_core_*`).
//!
//! Rule: HTTP metrics are labelled by route template (`/v1/characters/{name}`), never the raw
//! path, so a flood of names cannot blow up the series count.

use maple_common::metrics::{
    counter, counter_vec, gauge, gauge_vec, histogram, histogram_vec, render,
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
    pub store_errors_total: IntCounterVec,
    /// Equipment answers by the tier that served them: l1, l2, db, upstream, stale.
    pub equipment_source_total: IntCounterVec,
    /// Equipment loads by role: leader (this request loaded), follower (joined one in
    /// progress in this instance).
    pub singleflight_total: IntCounterVec,
    /// The cross-instance latch: acquired, followed (another instance fetched), waited_out
    /// (the leader took too long; fetched anyway), unavailable (Redis down).
    pub latch_total: IntCounterVec,
    /// Redis operations by operation and result (ok, error, breaker_open).
    pub redis_ops_total: IntCounterVec,
    /// Redis circuit breaker state: 0 closed, 1 open, 2 half-open.
    pub redis_breaker_state: IntGauge,
    /// Like requests by result: accepted, duplicate (idempotency key seen), rate_limited,
    /// failed (not stored anywhere; the client got 503).
    pub likes_total: IntCounterVec,
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
    pub like_syncs_total: IntCounterVec,
    /// Likes written to the database by the sync, batches skipped as already applied, and
    /// batches listed in Redis whose contents were gone.
    pub like_synced_total: IntCounterVec,
    /// Age of the oldest like batch not yet in the database (0 when none).
    pub like_sync_lag_seconds: Gauge,
    /// Time from a batch's flush to its database commit.
    pub like_sync_delay_seconds: Histogram,
    /// Backup files by state: pending (waiting to be applied), unreadable (kept for a human).
    pub like_backup_files: IntGaugeVec,
    /// Backup file operations by result: written, applied, failed.
    pub like_backups_total: IntCounterVec,
    /// Batches this instance flushed to Redis and keeps in memory until the database holds
    /// them (so a Redis that loses its data loses no like).
    pub like_retained_batches: IntGauge,
    /// Likes whose batch Redis lost before the sync (an empty restart, a failover to a
    /// replica without it): re-applied to the database from this instance's memory.
    pub like_redis_lost_total: IntCounterVec,
    /// Batches flushed to Redis without a memory copy because the copies reached their bound
    /// (the database has been slow to take them).
    pub like_unkept_batches_total: IntCounter,
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
    pub rejected_total: IntCounterVec,
    /// Requests being handled now.
    pub in_flight: IntGauge,
    /// Database pool connections by state (in_use, idle) and the pool's maximum (max), read at
    /// each scrape.
    pub db_pool_connections: IntGaugeVec,
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
            store_errors_total: counter_vec(
                &r,
                "maple_core_store_errors_total",
                "Database operations that failed, by operation.",
                &["operation"],
            )?,
            equipment_source_total: counter_vec(
                &r,
                "maple_core_equipment_source_total",
                "Equipment answers by the tier that served them.",
                &["source"],
            )?,
            singleflight_total: counter_vec(
                &r,
                "maple_core_singleflight_total",
                "Equipment loads by role in this instance: leader or follower.",
                &["role"],
            )?,
            latch_total: counter_vec(
                &r,
                "maple_core_latch_total",
                "Cross-instance fetch latch outcomes.",
                &["result"],
            )?,
            redis_ops_total: counter_vec(
                &r,
                "maple_core_redis_ops_total",
                "Redis operations by operation and result.",
                &["operation", "result"],
            )?,
            redis_breaker_state: gauge(
                &r,
                "maple_core_redis_breaker_state",
                "Redis circuit breaker state: 0 closed, 1 open, 2 half-open.",
            )?,
            likes_total: counter_vec(
                &r,
                "maple_core_likes_total",
                "Like requests by result.",
                &["result"],
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
            like_syncs_total: counter_vec(
                &r,
                "maple_core_like_syncs_total",
                "Like sync passes by result.",
                &["result"],
            )?,
            like_synced_total: counter_vec(
                &r,
                "maple_core_like_synced_total",
                "Likes written to the database by the sync (kind=likes), batches skipped as already applied (kind=skipped_batches), batches listed in Redis whose contents were gone (kind=missing_batches).",
                &["kind"],
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
            like_backup_files: gauge_vec(
                &r,
                "maple_core_like_backup_files",
                "Like backup files by state (pending, unreadable).",
                &["state"],
            )?,
            like_backups_total: counter_vec(
                &r,
                "maple_core_like_backups_total",
                "Like backup file operations by result (written, applied, failed).",
                &["result"],
            )?,
            like_retained_batches: gauge(
                &r,
                "maple_core_like_retained_batches",
                "Like batches flushed to Redis and kept in this instance's memory until the database holds them.",
            )?,
            like_redis_lost_total: counter_vec(
                &r,
                "maple_core_like_redis_lost_total",
                "Likes whose batch Redis lost before the sync, re-applied to the database from memory (kind=likes, batches).",
                &["kind"],
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
            rejected_total: counter_vec(
                &r,
                "maple_core_rejected_total",
                "Requests refused before reaching a handler, by reason.",
                &["reason"],
            )?,
            in_flight: gauge(
                &r,
                "maple_core_in_flight",
                "Requests being handled now.",
            )?,
            db_pool_connections: gauge_vec(
                &r,
                "maple_core_db_pool_connections",
                "Database pool connections by state (in_use, idle, max).",
                &["state"],
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
        self
    }

    /// Creates the series whose labels are a fixed set, at zero, so rules and dashboards see
    /// them (and `rate()` works) before the first event.
    fn with_known_series(self) -> Self {
        for operation in [
            "find_ocid",
            "upsert_character",
            "load_equipment",
            "save_equipment",
        ] {
            self.store_errors_total.with_label_values(&[operation]);
        }
        for source in ["l1", "l2", "db", "upstream", "stale"] {
            self.equipment_source_total.with_label_values(&[source]);
        }
        for role in ["leader", "follower"] {
            self.singleflight_total.with_label_values(&[role]);
        }
        for result in ["acquired", "followed", "waited_out", "unavailable"] {
            self.latch_total.with_label_values(&[result]);
        }
        for result in ["accepted", "duplicate", "rate_limited", "failed"] {
            self.likes_total.with_label_values(&[result]);
        }
        for target in ["redis", "db", "backup"] {
            for result in ["ok", "error"] {
                self.like_flushes_total.with_label_values(&[target, result]);
            }
        }
        for result in ["ok", "idle", "busy", "fenced", "error"] {
            self.like_syncs_total.with_label_values(&[result]);
        }
        for kind in ["likes", "skipped_batches", "missing_batches"] {
            self.like_synced_total.with_label_values(&[kind]);
        }
        for state in ["pending", "unreadable"] {
            self.like_backup_files.with_label_values(&[state]);
        }
        for result in ["written", "applied", "failed"] {
            self.like_backups_total.with_label_values(&[result]);
        }
        for kind in ["likes", "batches"] {
            self.like_redis_lost_total.with_label_values(&[kind]);
        }
        for state in ["in_use", "idle", "max"] {
            self.db_pool_connections.with_label_values(&[state]);
        }
        for phase in ["drain", "equipment", "likes", "database"] {
            self.shutdown_phase_seconds.with_label_values(&[phase]);
        }
        for reason in [
            "uri_too_long",
            "headers_too_large",
            "payload_too_large",
            "overloaded",
            "rate_limited",
        ] {
            self.rejected_total.with_label_values(&[reason]);
        }
        self
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
        metrics
            .store_errors_total
            .with_label_values(&["find_ocid"])
            .inc();
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
