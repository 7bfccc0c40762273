//! `POST /v1/characters/{name}/likes` and `GET /v1/characters/{name}/likes`.

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::characters::resolve;
use super::client::ClientIp;
use super::extract::parse_name;
use super::state::AppState;
use crate::error::ApiError;
use crate::likes::{LikeError, valid_key};
use crate::metrics::LikeResult;

/// The header that makes a retried POST count once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Answered on a POST whose idempotency key had been counted before.
pub const REPLAYED: &str = "idempotent-replayed";

/// Admits one like from `client`, or says when to retry.
fn admit(state: &AppState, client: IpAddr) -> Result<(), ApiError> {
    let config = state.likes.config();
    if config.client_rate <= 0.0 {
        return Ok(());
    }
    state
        .admission
        .likes
        .take(client, config.client_rate, config.client_burst)
        .map_err(|retry_after| {
            state.metrics.likes_total.inc(LikeResult::RateLimited);
            ApiError::RateLimited { retry_after }
        })
}

/// Admits one more idempotency key from `client` (each is remembered 24 h), or says when its
/// window ends; a retry with a key it sent recently is not charged again.
fn admit_key(state: &AppState, client: IpAddr, key: &str) -> Result<(), ApiError> {
    let cap = state.likes.config().keys_per_client;
    if cap == 0 {
        return Ok(());
    }
    state
        .admission
        .keys
        .take(client, key, cap)
        .map_err(|retry_after| {
            state.metrics.likes_total.inc(LikeResult::RateLimited);
            state.metrics.like_keys_refused_total.inc();
            ApiError::RateLimited { retry_after }
        })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid = || ApiError::InvalidHeader {
        field: "Idempotency-Key",
        reason: "must be 1 to 128 visible ASCII characters".into(),
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if valid_key(key) {
        Ok(Some(key_digest(key)))
    } else {
        Err(invalid())
    }
}

/// What is stored for an idempotency key: the first 128 bits of its SHA-256, in hex. Every
/// key costs the same 32 bytes in Redis and the database however long the client's is, and
/// the client's own text is never stored.
fn key_digest(key: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
}

/// How long before the request timeout a like still unconfirmed is answered `outcome_unknown`.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

/// `POST`: counts one like (once per `Idempotency-Key`), answered 202 once it is stored.
pub async fn add(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Answered before the request timeout would answer for it: once buffered, a like may be
    // stored after all, and `request_timeout` would tell the client it was not.
    let request_timeout = state.config.request_timeout;
    let answer_by =
        tokio::time::Instant::now() + request_timeout - (request_timeout / 4).min(ANSWER_MARGIN);
    let name = parse_name(path)?;
    let key = idempotency_key(&headers)?;
    admit(&state, client)?;
    if let Some(key) = &key {
        admit_key(&state, client, key)?;
    }
    let ocid = resolve(&state, client, &name).await?;
    let added = tokio::time::timeout_at(answer_by, state.likes.add(&ocid, key))
        .await
        .map_err(|_| {
            ApiError::OutcomeUnknown(
                "the like was buffered but not confirmed stored in time; it may be counted".into(),
            )
        })?
        .map_err(|e| match e {
            LikeError::ShuttingDown => ApiError::ShuttingDown,
            LikeError::Unavailable(reason) => ApiError::LikesUnavailable(reason),
            LikeError::OutcomeUnknown(reason) => ApiError::OutcomeUnknown(reason),
        })?;
    let body = LikeAdded {
        name: name.as_str().to_owned(),
        likes: added.likes,
        counted: added.counted,
        partial: added.partial,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if !added.counted {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET`: the character's likes (synced + pending); `"partial": true` when a store could
/// not be read (the count may then be low).
pub async fn count(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<LikeCountAnswer>, ApiError> {
    let name = parse_name(path)?;
    let ocid = resolve(&state, client, &name).await?;
    let count = state.likes.count(&ocid).await?;
    Ok(Json(LikeCountAnswer {
        name: name.as_str().to_owned(),
        likes: count.likes,
        partial: count.partial,
    }))
}

/// The answer to a like.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LikeAdded {
    pub name: String,
    /// The count after this like's flush (stored + pending).
    pub likes: i64,
    /// `false` when the `Idempotency-Key` had been counted before.
    pub counted: bool,
    /// Present (and `true`) while this instance has not read the character's count yet (or
    /// its last read could not reach a store): `likes` is then what it remembers plus the
    /// likes it acknowledged since, and may be low. The like itself is stored; the
    /// acknowledgement never waits for a read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// A character's like count.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = LikeCount)]
pub struct LikeCountAnswer {
    pub name: String,
    /// Synced and pending likes.
    pub likes: i64,
    /// Present (and `true`) only when a store could not be read; the true count may be
    /// higher.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}
