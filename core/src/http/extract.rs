//! Reading a request: the character name in the path, and content negotiation (`If-None-Match`,
//! `Accept-Encoding`). Pure functions of the request; every refusal is an [`ApiError`].

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, header};
// Whether `Accept-Encoding` allows gzip: one reading for core and the proxy.
pub(super) use maple_common::encoding::accepts_gzip;

use crate::character::CharacterName;
use crate::error::ApiError;

/// The `{name}` of the path, validated.
pub(super) fn parse_name(
    path: Result<Path<String>, PathRejection>,
) -> Result<CharacterName, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::InvalidPath(e.body_text()))?;
    Ok(CharacterName::parse(&raw)?)
}

/// Whether `If-None-Match` names one of this content's ETags (or `*`), by weak comparison.
pub(super) fn etag_matches(headers: &HeaderMap, etags: &[String]) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || etags.iter().any(|etag| etag == tag))
}
