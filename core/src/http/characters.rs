//! `GET /v1/characters/{name}` and `GET /v1/characters/{name}/equipment`, and the equipment
//! body as the other handlers get it (an entry, decompressed on demand).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use maple_common::metrics::Label as _;
use maple_common::nexon::Ocid;
use serde::Deserialize;
use serde_json::Value;

use super::client::ClientIp;
use super::extract::{accepts_gzip, etag_matches, parse_name};
use super::state::AppState;
use crate::character::CharacterName;
use crate::clock::now_ms;
use crate::equipment::{Entry, Served, Source};
use crate::error::ApiError;

/// The character's ocid, asking Nexon only within `client`'s miss rate (each miss is a call
/// on the API key's quota, which one client must not be able to spend): 429 beyond it.
pub(super) async fn resolve(
    state: &AppState,
    client: IpAddr,
    name: &CharacterName,
) -> Result<Ocid, ApiError> {
    let limits = &state.config.limits;
    let admit = || {
        if limits.client_miss_rate <= 0.0 {
            return Ok(());
        }
        let taken =
            state
                .admission
                .misses
                .take(client, limits.client_miss_rate, limits.client_miss_burst);
        if taken.is_err() {
            state.metrics.lookup_misses_refused_total.inc();
        }
        taken
    };
    Ok(state.characters.ocids.resolve(name, admit).await?)
}

/// `GET /v1/characters/{name}`: the ocid and Nexon's basic information.
pub(super) async fn character(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CharacterBasic>, ApiError> {
    let name = parse_name(path)?;
    let ocid = resolve(&state, client, &name).await?;
    let basic = state
        .metrics
        .nexon_call("basic", state.characters.nexon.basic(&ocid))
        .await?;
    let basic: Value =
        serde_json::from_slice(&basic).map_err(|e| ApiError::UpstreamUnavailable {
            cause: format!("malformed basic response: {e}"),
        })?;
    Ok(Json(CharacterBasic {
        name: name.as_str().to_owned(),
        ocid,
        basic,
    }))
}

/// A character: its name, ocid and Nexon's basic information.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CharacterBasic {
    /// The validated, NFC-normalised name as requested.
    pub name: String,
    pub ocid: Ocid,
    /// Nexon's `character/basic` document, verbatim (e.g. `character_name`, `world_name`,
    /// `character_class`, `character_level`, `date`, …).
    #[schema(value_type = Object)]
    pub basic: Value,
}

#[derive(Debug, Deserialize)]
pub(super) struct EquipmentQuery {}

/// Header naming the tier that answered: `l1`, `l2`, `db`, `upstream` or `stale`.
pub const SOURCE_HEADER: &str = "x-maple-source";

/// Header saying why a stale answer is stale: `refreshing` (the refresh was slow and goes on)
/// or `upstream_failed`.
pub const STALE_CAUSE_HEADER: &str = "x-maple-stale-cause";

/// `GET /v1/characters/{name}/equipment`: Nexon's item-equipment JSON. Sent gzip-compressed as
/// stored when the client accepts gzip (no recompression), with a strong ETag (304 on a
/// matching `If-None-Match`) and `x-maple-source`; a stale answer also carries `age` and
/// `x-maple-stale-cause`.
pub(super) async fn equipment(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<EquipmentQuery>, QueryRejection>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = parse_name(path)?;
    query.map_err(|e| ApiError::InvalidQuery {
        field: "query",
        reason: e.body_text(),
    })?;
    let ocid = resolve(&state, client, &name).await?;
    let served = state.characters.equipment.get(&ocid).await?;
    let entry = Arc::clone(&served.entry);
    let gzip = accepts_gzip(&request_headers);
    // One strong ETag per representation (RFC 9110 8.8.3): the gzip bytes are not the JSON bytes.
    let etags = [entry.etag(), entry.etag_gzip()];
    let etag = &etags[usize::from(gzip)];
    let mut headers = tier_headers(&served);
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if etag_matches(&request_headers, &etags) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return Ok((headers, entry.gzip.clone()).into_response());
    }
    let body = decompress(&state, entry, ocid).await?;
    Ok((headers, body).into_response())
}

/// What every answer read from the equipment tiers carries: the tier that answered, `Vary`
/// (the body depends on `Accept-Encoding`), and for a stale answer its `Age` and cause.
pub(super) fn tier_headers(served: &Served) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        SOURCE_HEADER,
        HeaderValue::from_static(served.source.as_str()),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if served.source == Source::Stale {
        headers.insert(header::AGE, served.entry.age(now_ms()).as_secs().into());
    }
    if let Some(cause) = served.stale {
        headers.insert(STALE_CAUSE_HEADER, HeaderValue::from_static(cause.as_str()));
    }
    headers
}

/// The body of `entry`: from the cache of recently decompressed bodies (keyed by content
/// hash, so it can never be out of date), else decompressed and checked off the async workers.
pub(super) async fn decompress(
    state: &AppState,
    entry: Arc<Entry>,
    ocid: Ocid,
) -> Result<Bytes, ApiError> {
    if let Some(body) = state.characters.bodies.get(&entry.sha256) {
        return Ok(body);
    }
    let hash = entry.sha256;
    let body = tokio::task::spawn_blocking(move || entry.decompress(&ocid))
        .await
        .map_err(|e| ApiError::Internal(format!("decompressing equipment: {e}")))??;
    let body = Bytes::from(body);
    state.characters.bodies.insert(hash, body.clone());
    Ok(body)
}
