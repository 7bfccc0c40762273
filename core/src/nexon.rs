//! Core's client for the Nexon API, always through the proxy (which holds the key).
//!
//! Rule: every call has a timeout; every failure is classified into [`NexonError`] here, so
//! handlers never look at status codes or message text.
//!
//! Equipment is asked for in gzip and taken as the proxy sends it ([`Body`]): the tiers keep
//! gzip anyway, so the proxy's compressed bytes go in as they are (inflated once here only to
//! check and hash them) instead of ten times the bytes on the wire and a compression of our own.

use std::time::Duration;

use bytes::Bytes;
use maple_common::contract::PROXY_ERROR_HEADER;
use maple_common::encoding::{Coding, content_coding, gunzip};
use maple_common::nexon::{
    NexonErrorBody, NexonErrorCode, Ocid, OcidResponse, PATH_BASIC, PATH_ID, PATH_ITEM_EQUIPMENT,
};
use reqwest::StatusCode;

use crate::character::CharacterName;

/// Largest body accepted from the proxy, as sent and inflated; equipment is ~350 KB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A body as the proxy sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Identity(Bytes),
    /// `Content-Encoding: gzip`: not inflated yet.
    Gzip(Bytes),
}

/// Why a Nexon call did not produce data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NexonError {
    /// Nexon does not know the character (or the ocid).
    #[error("character not found")]
    NotFound,
    /// Nexon or the proxy rate-limited us.
    #[error("rate limited by the Nexon API")]
    RateLimited { retry_after: Option<Duration> },
    /// The proxy or Nexon failed, timed out or could not be reached; `cause` says which.
    #[error("Nexon API unavailable: {cause}")]
    Unavailable { cause: String },
    /// The proxy's circuit breaker is open: Nexon is failing and calls are paused.
    #[error("Nexon API calls are paused by the proxy's circuit breaker")]
    CircuitOpen { retry_after: Option<Duration> },
    /// Nexon refused the request as malformed or the key as invalid: our bug or our config.
    #[error("Nexon API refused the request: {code}")]
    Rejected { code: String },
}

/// Fetches Nexon data through the proxy.
#[derive(Debug, Clone)]
pub struct NexonClient {
    http: reqwest::Client,
    base: String,
}

impl NexonClient {
    /// # Errors
    /// Only if the HTTP client cannot be built (no TLS backend needed: the proxy is HTTP).
    pub fn new(
        proxy_url: &str,
        token: Option<&maple_common::config::Secret>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token
            && let Ok(mut value) =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(1).min(timeout))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: proxy_url.to_owned(),
        })
    }

    /// `name` → ocid.
    ///
    /// # Errors
    /// [`NexonError::NotFound`] for an unknown name; other variants for failures.
    pub async fn ocid(&self, name: &CharacterName) -> Result<Ocid, NexonError> {
        let body = self
            .get(
                PATH_ID,
                &[("character_name", name.as_str())],
                Lookup::Name,
                Coding::Identity,
            )
            .await?
            .identity()?;
        let parsed: OcidResponse =
            serde_json::from_slice(&body).map_err(|e| NexonError::Unavailable {
                cause: format!("malformed ocid response: {e}"),
            })?;
        Ok(parsed.ocid)
    }

    /// Basic character information (JSON).
    ///
    /// # Errors
    /// As [`Self::ocid`].
    pub async fn basic(&self, ocid: &Ocid) -> Result<Bytes, NexonError> {
        self.get(
            PATH_BASIC,
            &[("ocid", ocid.as_str())],
            Lookup::Ocid,
            Coding::Identity,
        )
        .await?
        .identity()
    }

    /// The item-equipment JSON, as Nexon sent it: gzip-compressed when the proxy sent gzip.
    ///
    /// # Errors
    /// As [`Self::ocid`].
    pub async fn equipment(&self, ocid: &Ocid) -> Result<Body, NexonError> {
        self.get(
            PATH_ITEM_EQUIPMENT,
            &[("ocid", ocid.as_str())],
            Lookup::Ocid,
            Coding::Gzip,
        )
        .await
    }

    /// GETs `path`; `accept` is the coding to ask for (gzip is then taken as it comes).
    #[tracing::instrument(level = "info", name = "nexon.call", skip_all, fields(path))]
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        lookup: Lookup,
        accept: Coding,
    ) -> Result<Body, NexonError> {
        let mut headers = http::HeaderMap::new();
        maple_common::telemetry::inject(&tracing::Span::current(), &mut headers);
        if accept == Coding::Gzip {
            headers.insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .headers(headers)
            .send()
            .await
            .map_err(|e| NexonError::Unavailable {
                cause: if e.is_timeout() {
                    "proxy_timeout".into()
                } else {
                    format!("proxy_unreachable: {e}")
                },
            })?;
        let status = response.status();
        let proxy_error = response
            .headers()
            .get(PROXY_ERROR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let coding = content_coding(response.headers());
        if let Some(length) = response.content_length()
            && length > MAX_BODY_BYTES as u64
        {
            return Err(NexonError::Unavailable {
                cause: format!("response of {length} bytes exceeds the limit"),
            });
        }
        // Read chunk by chunk with a running cap: a chunked body has no length to check first.
        let mut response = response;
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| NexonError::Unavailable {
                cause: format!("reading the response: {e}"),
            })?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(NexonError::Unavailable {
                    cause: format!("response exceeds the {MAX_BODY_BYTES}-byte limit"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if status.is_success() {
            return match coding {
                Ok(Coding::Identity) => Ok(Body::Identity(body)),
                Ok(Coding::Gzip) => Ok(Body::Gzip(body)),
                Err(e) => Err(NexonError::Unavailable {
                    cause: format!("proxy_bad_coding: {e}"),
                }),
            };
        }
        // A failure is classified by the proxy's own error header first; the body (Nexon's
        // error, read for its code) matters only without one, and a body that cannot be
        // decoded is classified by its status alone.
        if let Some(cause) = proxy_error {
            return Err(classify_proxy_error(cause, retry_after));
        }
        let body = match coding {
            Ok(Coding::Gzip) => Body::Gzip(body).identity().unwrap_or_default(),
            _ => body,
        };
        Err(classify(status, &body, retry_after, lookup))
    }
}

impl Body {
    /// The identity bytes: a gzip body inflated here (bounded by [`MAX_BODY_BYTES`]; meant for
    /// the short answers, which the proxy sends identity anyway).
    ///
    /// # Errors
    /// [`NexonError::Unavailable`] when the gzip does not inflate within the bound.
    pub fn identity(self) -> Result<Bytes, NexonError> {
        match self {
            Self::Identity(body) => Ok(body),
            Self::Gzip(gzip) => gunzip(&gzip, MAX_BODY_BYTES).map(Bytes::from).map_err(|e| {
                NexonError::Unavailable {
                    cause: format!("proxy_bad_gzip: {e}"),
                }
            }),
        }
    }
}

/// A call's outcome as a metric label.
pub fn outcome<T>(result: &Result<T, NexonError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(NexonError::NotFound) => "not_found",
        Err(NexonError::RateLimited { .. }) => "rate_limited",
        Err(NexonError::CircuitOpen { .. }) => "circuit_open",
        Err(NexonError::Unavailable { .. }) => "unavailable",
        Err(NexonError::Rejected { .. }) => "rejected",
    }
}

/// What the request identified the character by, which decides what "invalid" means.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    Name,
    Ocid,
}

/// Maps an error the proxy produced itself (header `x-maple-proxy-error`) to [`NexonError`].
fn classify_proxy_error(code: String, retry_after: Option<Duration>) -> NexonError {
    match code.as_str() {
        "breaker_open" => NexonError::CircuitOpen { retry_after },
        // Nexon rate-limits the key, or the proxy keeps us inside its quota.
        "upstream_rate_limited" | "rate_limited" => NexonError::RateLimited { retry_after },
        // The proxy refused our request: a bug or misconfiguration on our side, not an outage.
        "not_found" | "invalid_path" | "method_not_allowed" | "unauthorized" => {
            NexonError::Rejected {
                code: format!("proxy_{code}"),
            }
        }
        _ => NexonError::Unavailable { cause: code },
    }
}

/// Maps a Nexon error response to [`NexonError`].
fn classify(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    lookup: Lookup,
) -> NexonError {
    let code = serde_json::from_slice::<NexonErrorBody>(body)
        .ok()
        .and_then(|b| NexonErrorCode::from_name(&b.error.name));
    match (code, lookup) {
        // Nexon answers an unknown name with "invalid parameter"; we validated the name
        // before sending it, so that means no such character.
        (Some(NexonErrorCode::InvalidParameter), Lookup::Name)
        | (Some(NexonErrorCode::InvalidIdentifier), Lookup::Ocid) => NexonError::NotFound,
        (Some(NexonErrorCode::RateLimitExceeded), _) => NexonError::RateLimited { retry_after },
        _ if status == StatusCode::TOO_MANY_REQUESTS => NexonError::RateLimited { retry_after },
        (
            Some(
                code @ (NexonErrorCode::DataPreparing
                | NexonErrorCode::GameMaintenance
                | NexonErrorCode::ApiMaintenance
                | NexonErrorCode::InternalServerError),
            ),
            _,
        ) => NexonError::Unavailable {
            cause: format!("nexon_{}", code.name()),
        },
        (Some(code), _) => NexonError::Rejected {
            code: code.name().to_owned(),
        },
        (None, _) if status.is_server_error() => NexonError::Unavailable {
            cause: format!("upstream_status_{}", status.as_u16()),
        },
        (None, _) => NexonError::Rejected {
            code: format!("status_{}", status.as_u16()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: NexonErrorCode) -> Vec<u8> {
        serde_json::to_vec(&code.body()).expect("serialises")
    }

    #[test]
    fn classifies_proxy_errors() {
        let after = Some(Duration::from_secs(3));
        assert!(matches!(
            classify_proxy_error("breaker_open".into(), after),
            NexonError::CircuitOpen { retry_after } if retry_after == after
        ));
        assert!(matches!(
            classify_proxy_error("invalid_path".into(), None),
            NexonError::Rejected { .. }
        ));
        assert!(matches!(
            classify_proxy_error("upstream_timeout".into(), None),
            NexonError::Unavailable { .. }
        ));
    }

    #[test]
    fn classifies_nexon_errors() {
        let invalid = body(NexonErrorCode::InvalidParameter);
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &invalid, None, Lookup::Name),
            NexonError::NotFound
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &invalid, None, Lookup::Ocid),
            NexonError::Rejected { .. }
        ));
        assert!(matches!(
            classify(
                StatusCode::BAD_REQUEST,
                &body(NexonErrorCode::InvalidIdentifier),
                None,
                Lookup::Ocid
            ),
            NexonError::NotFound
        ));
        assert!(matches!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                &body(NexonErrorCode::RateLimitExceeded),
                Some(Duration::from_secs(2)),
                Lookup::Name
            ),
            NexonError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(2)
        ));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                &body(NexonErrorCode::InternalServerError),
                None,
                Lookup::Ocid
            ),
            NexonError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, b"<html>", None, Lookup::Ocid),
            NexonError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(
                StatusCode::BAD_REQUEST,
                &body(NexonErrorCode::InvalidApiKey),
                None,
                Lookup::Ocid
            ),
            NexonError::Rejected { .. }
        ));
    }
}
