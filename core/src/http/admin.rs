//! `/v1/admin/…`: state, purge, forced sync, backup files, configuration, audit log.
//!
//! Every request names its scope; [`admin`] authenticates it (bearer key, hashed, see
//! [`crate::admin`]), runs it, and records who, what, when and how it ended in the audit log —
//! refusals included. If the audit cannot be written (the database is down) the entry goes to
//! the log instead and the action still runs: an SRE must be able to act during an outage.

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::parse_name;
use crate::AppState;
use crate::admin::{AuthError, Principal, Scope};
use crate::error::ApiError;
use crate::http::ClientIp;
use crate::likes::SyncPass;
use crate::store::{AuditEntry, now_ms};

/// Authenticates, runs `action` and audits it.
async fn admin<F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    client: IpAddr,
    scope: Scope,
    action: &'static str,
    target: String,
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Principal) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (key_name, result) = match state.admin_keys.authorize(authorization, scope, now_ms()) {
        Ok(principal) => (principal.name.clone(), run(principal).await),
        Err(error) => {
            let name = match &error {
                AuthError::Expired { name } | AuthError::Forbidden { name, .. } => name.clone(),
                AuthError::Missing | AuthError::Invalid => "-".to_owned(),
            };
            (name, Err(ApiError::Auth(error)))
        }
    };
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.status(),
    };
    let mut target = target;
    target.truncate(256);
    let entry = AuditEntry {
        at_ms: now_ms(),
        key_name,
        action: action.to_owned(),
        target,
        status: i16::try_from(status.as_u16()).unwrap_or(i16::MAX),
        client: client.to_string(),
    };
    if let Err(error) = state.store.audit(&entry).await {
        tracing::warn!(
            audit = true,
            key = %entry.key_name,
            action = %entry.action,
            target = %entry.target,
            status = entry.status,
            client = %entry.client,
            %error,
            "admin action (the audit table could not be written)"
        );
    } else {
        tracing::info!(audit = true, key = %entry.key_name, action = %entry.action, target = %entry.target, status = entry.status, "admin action");
    }
    result
}

fn ok(body: serde_json::Value) -> Result<Response, ApiError> {
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// `GET /v1/admin/state` (`admin:read`): breakers, caches, likes, this instance.
pub async fn state(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::Read,
        "state.read",
        String::new(),
        |_| async move {
            let (l1_entries, l1_bytes) = s.equipment.l1_usage();
            let backups = s.likes.backup_files().await;
            ok(json!({
                "database": { "dialect": s.store.dialect(), "breaker": s.store.breaker() },
                "redis": s.equipment.redis_breaker().map(|b| json!({ "breaker": b })),
                "equipment": {
                    "l1_entries": l1_entries,
                    "l1_bytes": l1_bytes,
                    "loads_in_flight": s.equipment.in_flight(),
                    "decompressed_bodies": s.bodies.entry_count(),
                },
                "likes": {
                    "buffered": s.likes.buffered(),
                    "backup_files": backups.len(),
                },
                "draining": s.shutdown.is_cancelled(),
            }))
        },
    )
    .await
}

/// `POST /v1/admin/characters/{name}/purge` (`cache:purge`).
pub async fn purge(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let raw = path
        .as_ref()
        .map(|Path(name)| name.clone())
        .unwrap_or_default();
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::CachePurge,
        "cache.purge",
        raw,
        |_| async move {
            let name = parse_name(path)?;
            let key = name.as_str().to_lowercase();
            let ocid = match s.ocids.get(&key) {
                Some(ocid) => Some(ocid),
                None => s.store.find_ocid(&name).await?,
            };
            s.ocids.invalidate(&key);
            let Some(ocid) = ocid else {
                return Err(ApiError::CharacterNotFound);
            };
            let purged = s.equipment.purge(&ocid).await;
            ok(json!({ "name": name.as_str(), "ocid": ocid, "purged": purged }))
        },
    )
    .await
}

/// `POST /v1/admin/likes/sync` (`likes:sync`): one sync pass now.
pub async fn sync(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::LikesSync,
        "likes.sync",
        String::new(),
        |_| async move {
            match s.likes.sync_once().await {
                Ok(SyncPass::Synced(likes)) => ok(json!({ "result": "synced", "likes": likes })),
                Ok(SyncPass::Idle) => ok(json!({ "result": "idle", "likes": 0 })),
                Ok(SyncPass::Busy) => Err(ApiError::Conflict(
                    "another instance is syncing now; try again in a second".into(),
                )),
                Err(error) => Err(ApiError::LikesUnavailable(error.to_string())),
            }
        },
    )
    .await
}

/// `GET /v1/admin/backups` (`likes:backup`): backup files waiting to be applied.
pub async fn backups(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::Backups,
        "backups.list",
        String::new(),
        |_| async move {
            let files = s.likes.backup_files().await;
            ok(json!({ "directory": s.likes.config().backup_dir, "files": files }))
        },
    )
    .await
}

/// `POST /v1/admin/backups/apply` (`likes:backup`): apply what can be applied now.
pub async fn apply_backups(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::Backups,
        "backups.apply",
        String::new(),
        |_| async move {
            let applied = s.likes.recover().await;
            let left = s.likes.backup_files().await;
            ok(json!({ "applied": applied, "left": left }))
        },
    )
    .await
}

/// `GET /v1/admin/config` (`config:read`): the configuration, secrets redacted.
pub async fn config(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::Config,
        "config.read",
        String::new(),
        |_| async move { ok(s.config.redacted()) },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /v1/admin/audit?limit=N` (`admin:read`): the newest entries (1–500, default 50).
pub async fn audit(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let s = state.clone();
    admin(
        &state,
        &headers,
        client,
        Scope::Read,
        "audit.read",
        String::new(),
        |_| async move {
            let Query(query) = query.map_err(|e| ApiError::InvalidQuery {
                field: "limit",
                reason: e.body_text(),
            })?;
            let limit = query.limit.unwrap_or(50);
            if !(1..=500).contains(&limit) {
                return Err(ApiError::InvalidQuery {
                    field: "limit",
                    reason: format!("{limit} is outside 1..=500"),
                });
            }
            let entries = s.store.recent_audit(limit).await?;
            ok(json!({ "entries": entries }))
        },
    )
    .await
}
