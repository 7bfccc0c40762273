//! The operational routes: `/health/live`, `/health/ready`, `/metrics` and `/openapi.json`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maple_common::metrics::Label as _;
use serde_json::{Value, json};

use super::state::AppState;
use crate::admin::KeysFileState;
use crate::metrics::PoolState;

/// The API's description (OpenAPI 3.1), kept by hand beside the code and served at
/// `/openapi.json`. It lists exactly the routes of [`router`](super::router): the e2e test `openapi` checks
/// both ways (paths and methods), and the schemathesis run checks the bodies.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub(super) async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

pub(super) async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when not draining and the database answers within a second.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response();
    }
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unavailable",
        Err(_) => "timeout",
    };
    let status = if database == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "database": database, "database_kind": state.store.dialect() },
    });
    (status, Json(body)).into_response()
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
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
