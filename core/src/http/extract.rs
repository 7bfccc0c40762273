//! Reading a request: the character name in the path, and content negotiation (`If-None-Match`,
//! `Accept-Encoding`). Pure functions of the request; every refusal is an [`ApiError`].

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, header};

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

/// Whether `Accept-Encoding` allows gzip: an explicit `gzip` entry decides by its q-value;
/// otherwise `*` does; otherwise not.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| {
                let (key, value) = p.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())?
            })
            .next()
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q > 0.0);
        } else if name == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}
