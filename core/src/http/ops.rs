//! The operational routes: `/health/live`, `/health/ready` and `/metrics` (`/openapi.json` is
//! [`super::openapi`]'s).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maple_common::metrics::Label as _;
use serde::Serialize;

use super::state::AppState;
use crate::admin::KeysFileState;
use crate::metrics::{CacheName, Dependency, PoolState};

/// `/health/live`: the process answers.
pub(super) async fn live() -> Json<Liveness> {
    Json(Liveness {
        status: LiveStatus::Ok,
    })
}

/// The process answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Liveness {
    status: LiveStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum LiveStatus {
    Ok,
}

/// Whether this instance serves, and what its dependencies answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Readiness {
    status: ReadyStatus,
    /// Absent while draining.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Checks>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    Ready,
    Degraded,
    Draining,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Checks {
    database: Probe,
    /// `sqlite` or `mysql`.
    database_kind: &'static str,
    redis: RedisProbe,
}

/// What a dependency answered within [`PROBE_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Probe {
    Ok,
    Unavailable,
    Timeout,
}

/// [`Probe`], or `not_configured` without Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum RedisProbe {
    Ok,
    Unavailable,
    Timeout,
    NotConfigured,
}

/// Each cache's entries and bytes into `maple_core_cache_entries` / `maple_core_cache_bytes`.
fn caches(state: &AppState) {
    let bodies = &state.characters.bodies;
    bodies.run_pending_tasks();
    let gear = &state.pricing.gear;
    gear.run_pending_tasks();
    let valuations = &state.pricing.valuations;
    valuations.run_pending_tasks();
    let engine = &state.pricing.engine;
    for (cache, (entries, bytes)) in [
        (CacheName::L1, state.characters.equipment.l1_usage()),
        (
            CacheName::Raw,
            (bodies.entry_count(), bodies.weighted_size()),
        ),
        (
            CacheName::Parsed,
            (gear.entry_count(), gear.weighted_size()),
        ),
        (
            CacheName::Valuation,
            (valuations.entry_count(), valuations.weighted_size()),
        ),
        (CacheName::Spreads, engine.starforce.usage()),
        (CacheName::FlameLaws, engine.flames.usage()),
        (CacheName::Names, state.characters.ocids.usage()),
    ] {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        state.metrics.cache_entries.set(cache, gauge(entries));
        state.metrics.cache_bytes.set(cache, gauge(bytes));
    }
}

/// How long a readiness probe or a scrape waits for each dependency's answer: well inside a
/// load balancer's check timeout (`deploy/haproxy.cfg`: 1 s), so a dependency that hangs
/// never makes the check itself fail.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Ready = started (this route is served only once start-up has finished) and not draining:
/// 200 `ready`, or 200 `degraded` when a dependency does not answer; 503 `draining` once
/// shutdown has begun. A dependency's outage does not take the instance out of a load
/// balancer: the tiers, stale answers and likes-to-Redis exist so that it is not a user outage,
/// and every instance sees the same outage — failing readiness would empty the pool at once.
/// Each dependency's state is in the body (`checks`) and in `maple_core_dependency_up`.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: ReadyStatus::Draining,
                checks: None,
            }),
        )
            .into_response();
    }
    let (database, redis) = probe(&state).await;
    let degraded = database != Probe::Ok || redis.is_some_and(|r| r != Probe::Ok);
    let body = Readiness {
        status: if degraded {
            ReadyStatus::Degraded
        } else {
            ReadyStatus::Ready
        },
        checks: Some(Checks {
            database,
            database_kind: state.store.dialect(),
            redis: match redis {
                None => RedisProbe::NotConfigured,
                Some(Probe::Ok) => RedisProbe::Ok,
                Some(Probe::Unavailable) => RedisProbe::Unavailable,
                Some(Probe::Timeout) => RedisProbe::Timeout,
            },
        }),
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// Pings the database and the likes' Redis (when configured) at once, each bounded by
/// [`PROBE_TIMEOUT`]; records the answers in `maple_core_dependency_up`. Each is `ok`,
/// `unavailable` or `timeout`.
/// (`unavailable` at once while the database's breaker is open.)
async fn probe(state: &AppState) -> (Probe, Option<Probe>) {
    let database = async {
        match tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await {
            Ok(Ok(())) => Probe::Ok,
            Ok(Err(_)) => Probe::Unavailable,
            Err(_) => Probe::Timeout,
        }
    };
    let redis = async {
        match tokio::time::timeout(PROBE_TIMEOUT, state.likes.redis_answers()).await {
            Ok(None) => None,
            Ok(Some(true)) => Some(Probe::Ok),
            Ok(Some(false)) => Some(Probe::Unavailable),
            Err(_) => Some(Probe::Timeout),
        }
    };
    let (database, redis) = tokio::join!(database, redis);
    let up = &state.metrics.dependency_up;
    up.set(Dependency::Database, i64::from(database == Probe::Ok));
    up.set(Dependency::Redis, i64::from(redis == Some(Probe::Ok)));
    (database, redis)
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    probe(&state).await;
    caches(&state);
    let (in_use, idle, max) = state.store.pool_usage();
    let pool = &state.metrics.db_pool_connections;
    pool.set(PoolState::InUse, i64::from(in_use));
    pool.set(PoolState::Idle, i64::from(idle));
    pool.set(PoolState::Max, i64::from(max));
    let keys = &state.admin.keys;
    let file = keys.file_state();
    for &each in KeysFileState::ALL {
        state
            .metrics
            .admin_keys_file
            .set(each, i64::from(each == file));
    }
    let in_force = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    state.metrics.admin_keys.set(in_force);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}
