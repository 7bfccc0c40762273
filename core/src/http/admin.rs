//! `/v1/admin/…`: state, purge, forced sync, backup files, configuration, audit log.
//!
//! Each route names its scope and action in [`routes`]; one layer (`authorize_and_audit`)
//! authenticates the request (bearer key, hashed, see [`crate::admin`]) before the handler runs,
//! and records who, what, when and how it ended in the audit log — refusals included. If the
//! audit cannot be written (the database is down) the entry goes to the log instead and the
//! action still runs: an SRE must be able to act during an outage. Handlers only do the work.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection, RawPathParamsRejection};
use axum::extract::{Path, Query, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use maple_common::breaker::Snapshot;
use maple_common::nexon::Ocid;
use serde::{Deserialize, Serialize};

use super::client::ClientIp;
use super::extract::parse_name;
use super::state::AppState;
use crate::admin::{AuditRetention, AuthError, Scope};
use crate::clock::now_ms;
use crate::equipment::Purged;
use crate::error::ApiError;
use crate::likes::{BackupInfo, SyncPass};
use crate::store::audit::AuditEntry;

/// One admin route: its full path, handlers, the scope it needs and its audit action.
pub(super) struct AdminRoute {
    pub(super) path: &'static str,
    handlers: MethodRouter<AppState>,
    scope: Scope,
    action: &'static str,
}

/// Every admin route.
pub(super) fn routes() -> Vec<AdminRoute> {
    let route = |path, handlers, scope, action| AdminRoute {
        path,
        handlers,
        scope,
        action,
    };
    vec![
        route("/v1/admin/state", get(state), Scope::Read, "state.read"),
        route(
            "/v1/admin/characters/{name}/purge",
            post(purge),
            Scope::CachePurge,
            "cache.purge",
        ),
        route(
            "/v1/admin/likes/sync",
            post(sync),
            Scope::LikesSync,
            "likes.sync",
        ),
        route(
            "/v1/admin/backups",
            get(backups),
            Scope::Backups,
            "backups.list",
        ),
        route(
            "/v1/admin/backups/apply",
            post(apply_backups),
            Scope::Backups,
            "backups.apply",
        ),
        route(
            "/v1/admin/config",
            get(config),
            Scope::Config,
            "config.read",
        ),
        route("/v1/admin/audit", get(audit), Scope::Read, "audit.read"),
    ]
}

/// The admin router: each route behind the authorization-and-audit layer with its scope.
pub(super) fn router(state: &AppState) -> axum::Router<AppState> {
    routes()
        .into_iter()
        .fold(axum::Router::new(), |router, route| {
            let guarded = Guarded {
                state: state.clone(),
                scope: route.scope,
                action: route.action,
            };
            router.route(
                route.path,
                route
                    .handlers
                    .route_layer(axum::middleware::from_fn_with_state(
                        guarded,
                        authorize_and_audit,
                    )),
            )
        })
}

/// What the layer knows of its route.
#[derive(Clone)]
struct Guarded {
    state: AppState,
    scope: Scope,
    action: &'static str,
}

/// Authenticates the request for the route's scope, runs the handler if allowed, and audits
/// the attempt: key name (`-` when none was valid), action, target (the path's parameters),
/// status, client. The whole attempt runs detached (on the admin task tracker, `state.admin.tasks`): a client
/// that hangs up, or the request timeout, leaves neither an action half done nor an action
/// without its row. A handler that panics is answered and audited as a 500.
async fn authorize_and_audit(
    State(route): State<Guarded>,
    ClientIp(client): ClientIp,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let target = params
        .map(|params| {
            params
                .iter()
                .map(|(_, value)| value)
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    let tasks = route.state.admin.tasks.clone();
    let attempt = tasks.spawn(attempt(route, client, target, request, next));
    attempt.await.unwrap_or_else(|error| {
        // Only if the runtime is going away: the attempt itself catches panics.
        ApiError::Internal(format!("admin task failed: {error}")).into_response()
    })
}

/// One admin attempt, start to end: authorize, act, audit.
async fn attempt(
    route: Guarded,
    client: std::net::IpAddr,
    mut target: String,
    request: Request,
    next: Next,
) -> Response {
    use futures::FutureExt as _;

    let Guarded {
        state,
        scope,
        action,
    } = route;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (key_name, response) = match state.admin.keys.authorize(authorization, scope, now_ms()) {
        Ok(principal) => {
            let name = principal.name.clone();
            let handled = std::panic::AssertUnwindSafe(next.run(request))
                .catch_unwind()
                .await;
            let response = handled.unwrap_or_else(|_| {
                tracing::error!(action, "admin handler panicked");
                ApiError::Internal("handler panicked".into()).into_response()
            });
            (name, response)
        }
        Err(error) => {
            let name = match &error {
                AuthError::Expired { name } | AuthError::Forbidden { name, .. } => name.clone(),
                AuthError::Missing | AuthError::Invalid => "-".to_owned(),
            };
            (name, ApiError::Auth(error).into_response())
        }
    };
    let status = response.status();
    // At most 256 bytes, cut between characters (the target is the client's text).
    target.truncate(target.floor_char_boundary(256));
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
        let retention = &state.admin.retention;
        if AuditRetention::is_refusal(status.as_u16()) && retention.refused_written() {
            match state.store.prune_refused_audit(retention.keep()).await {
                Ok(pruned) => state.metrics.audit_pruned_total.inc_by(pruned),
                Err(error) => tracing::warn!(%error, "pruning refused audit rows failed"),
            }
            retention.pruned();
        }
    }
    response
}

fn ok<T: Serialize>(body: T) -> Result<Response, ApiError> {
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// `GET /v1/admin/state` (`admin:read`): breakers, caches, likes, this instance.
pub(super) async fn state(State(s): State<AppState>) -> Result<Response, ApiError> {
    let (l1_entries, l1_bytes) = s.characters.equipment.l1_usage();
    let backups = s.likes.backup_files().await;
    ok(AdminState {
        database: DatabaseState {
            dialect: s.store.dialect(),
            breaker: s.store.breaker(),
        },
        redis: s
            .characters
            .equipment
            .redis_breaker()
            .map(|equipment| RedisState {
                breaker: equipment.clone(),
                breakers: RedisBreakers {
                    equipment,
                    likes: s.likes.redis_breaker(),
                    locks: s.locks.redis_breaker(),
                },
            }),
        equipment: EquipmentState {
            l1_entries,
            l1_bytes,
            loads_in_flight: s.characters.equipment.in_flight(),
            decompressed_bodies: s.characters.bodies.entry_count(),
        },
        likes: LikesState {
            buffered: s.likes.buffered(),
            backup_files: backups.len(),
        },
        draining: s.shutdown.is_cancelled(),
    })
}

/// This instance as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AdminState {
    database: DatabaseState,
    /// null without Redis. `breaker` is the equipment use's (kept for existing clients);
    /// `breakers` has each use's.
    redis: Option<RedisState>,
    equipment: EquipmentState,
    likes: LikesState,
    /// Whether shutdown has begun.
    draining: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DatabaseState {
    /// `sqlite` or `mysql`.
    dialect: &'static str,
    breaker: Snapshot,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RedisState {
    breaker: Snapshot,
    breakers: RedisBreakers,
}

/// One breaker per use of Redis: a slow equipment read cannot open the breaker that guards
/// like flushes or lock renewals (null for a use without Redis).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RedisBreakers {
    equipment: Snapshot,
    likes: Option<Snapshot>,
    locks: Option<Snapshot>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct EquipmentState {
    l1_entries: u64,
    l1_bytes: u64,
    loads_in_flight: usize,
    decompressed_bodies: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct LikesState {
    /// Likes in this instance's buffer.
    buffered: usize,
    /// Backup files waiting in the backup folder.
    backup_files: usize,
}

/// `POST /v1/admin/characters/{name}/purge` (`cache:purge`).
pub(super) async fn purge(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = parse_name(path)?;
    let ocid = s.characters.ocids.known_then_forget(&name).await?;
    let Some(ocid) = ocid else {
        return Err(ApiError::CharacterNotFound);
    };
    let purged = s.characters.equipment.purge(&ocid).await;
    ok(PurgeResponse {
        name: name.as_str().to_owned(),
        ocid,
        purged,
    })
}

/// What a purge reached.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct PurgeResponse {
    name: String,
    ocid: Ocid,
    purged: Purged,
}

/// `POST /v1/admin/likes/sync` (`likes:sync`): one sync pass now.
pub(super) async fn sync(State(s): State<AppState>) -> Result<Response, ApiError> {
    match s.likes.sync_once().await {
        Ok(SyncPass::Synced(likes)) => ok(SyncResponse {
            result: SyncOutcome::Synced,
            likes,
        }),
        Ok(SyncPass::Idle) => ok(SyncResponse {
            result: SyncOutcome::Idle,
            likes: 0,
        }),
        Ok(SyncPass::Busy) => Err(ApiError::Conflict(
            "another instance is syncing now; try again in a second".into(),
        )),
        Err(error) => Err(ApiError::LikesUnavailable(error.to_string())),
    }
}

/// One sync pass.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SyncResponse {
    result: SyncOutcome,
    /// Likes written to the database.
    likes: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum SyncOutcome {
    Synced,
    Idle,
}

/// `GET /v1/admin/backups` (`likes:backup`): backup files waiting to be applied.
pub(super) async fn backups(State(s): State<AppState>) -> Result<Response, ApiError> {
    let files = s.likes.backup_files().await;
    ok(BackupsResponse {
        directory: s.likes.config().backup_dir.display().to_string(),
        files,
    })
}

/// The backup folder and its files.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct BackupsResponse {
    directory: String,
    files: Vec<BackupInfo>,
}

/// `POST /v1/admin/backups/apply` (`likes:backup`): apply what can be applied now.
pub(super) async fn apply_backups(State(s): State<AppState>) -> Result<Response, ApiError> {
    let applied = s.likes.recover().await;
    let left = s.likes.backup_files().await;
    ok(ApplyBackupsResponse { applied, left })
}

/// What applying the backup files did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ApplyBackupsResponse {
    /// Files applied and archived.
    applied: usize,
    /// Files still waiting (or unreadable).
    left: Vec<BackupInfo>,
}

/// `GET /v1/admin/config` (`config:read`): the configuration, secrets redacted.
pub(super) async fn config(State(s): State<AppState>) -> Result<Response, ApiError> {
    ok(s.config.redacted())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// How many entries, newest first (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `GET /v1/admin/audit?limit=N` (`admin:read`): the newest entries (1–500, default 50).
pub(super) async fn audit(
    State(s): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    ok(AuditResponse { entries })
}

/// The newest audit entries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AuditResponse {
    entries: Vec<AuditEntry>,
}
