//! `ApiError`: every way a core request can fail, and the only place failures become HTTP.
//!
//! Rules: client mistakes are 4xx with a `code` naming the problem; a dependency outage is
//! 503 (never a 500 with a stack); the error travels to the logging middleware in the
//! response's extensions so it is logged exactly once.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maple_common::error::ErrorBody;

use crate::character::InvalidName;
use crate::nexon::NexonError;
use crate::store::StoreError;

/// Every `code` an error body of core can carry, its HTTP status and what it means. The API
/// description's `ErrorCode` schema and each operation's error responses are built from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    InvalidCharacterName,
    InvalidPath,
    InvalidQuery,
    InvalidRequest,
    InvalidHeader,
    Unauthorized,
    KeyExpired,
    Forbidden,
    CharacterNotFound,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    RateLimited,
    InternalError,
    UpstreamRejected,
    UpstreamUnavailable,
    UpstreamRateLimited,
    UpstreamCircuitOpen,
    StorageUnavailable,
    LikesUnavailable,
    OutcomeUnknown,
    ShuttingDown,
    Overloaded,
    RequestTimeout,
}

impl ErrorCode {
    /// Every code, by status.
    pub const ALL: [Self; 27] = [
        Self::InvalidCharacterName,
        Self::InvalidPath,
        Self::InvalidQuery,
        Self::InvalidRequest,
        Self::InvalidHeader,
        Self::Unauthorized,
        Self::KeyExpired,
        Self::Forbidden,
        Self::CharacterNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::HeadersTooLarge,
        Self::RateLimited,
        Self::InternalError,
        Self::UpstreamRejected,
        Self::UpstreamUnavailable,
        Self::UpstreamRateLimited,
        Self::UpstreamCircuitOpen,
        Self::StorageUnavailable,
        Self::LikesUnavailable,
        Self::OutcomeUnknown,
        Self::ShuttingDown,
        Self::Overloaded,
        Self::RequestTimeout,
    ];

    /// The stable text clients branch on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidCharacterName => "invalid_character_name",
            Self::InvalidPath => "invalid_path",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidHeader => "invalid_header",
            Self::Unauthorized => "unauthorized",
            Self::KeyExpired => "key_expired",
            Self::Forbidden => "forbidden",
            Self::CharacterNotFound => "character_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
            Self::UpstreamRejected => "upstream_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamRateLimited => "upstream_rate_limited",
            Self::UpstreamCircuitOpen => "upstream_circuit_open",
            Self::StorageUnavailable => "storage_unavailable",
            Self::LikesUnavailable => "likes_unavailable",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::ShuttingDown => "shutting_down",
            Self::Overloaded => "overloaded",
            Self::RequestTimeout => "request_timeout",
        }
    }

    /// The HTTP status every error with this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidCharacterName => StatusCode::BAD_REQUEST,
            Self::InvalidPath => StatusCode::BAD_REQUEST,
            Self::InvalidQuery => StatusCode::BAD_REQUEST,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InvalidHeader => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::KeyExpired => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::CharacterNotFound => StatusCode::NOT_FOUND,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpstreamRejected => StatusCode::BAD_GATEWAY,
            Self::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamRateLimited => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamCircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::LikesUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::OutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What it means, for the API description.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::InvalidCharacterName => {
                "The `{name}` path segment is not a valid character name (see `CharacterName`)."
            }
            Self::InvalidPath => {
                "A path segment could not be decoded (e.g. percent-encoding that is not UTF-8)."
            }
            Self::InvalidQuery => {
                "The query string has an unknown parameter or a value of the wrong type/range."
            }
            Self::InvalidRequest => {
                "The JSON request body is malformed, has a missing/unknown field, the wrong `Content-Type`, or a value out of range (the message names the field)."
            }
            Self::InvalidHeader => {
                "A request header is malformed (`Idempotency-Key`: must be 1 to 128 visible ASCII characters)."
            }
            Self::Unauthorized => {
                "Admin route without a valid `Authorization: Bearer <key>` (missing or unknown key). Sent with `WWW-Authenticate`."
            }
            Self::KeyExpired => {
                "Admin route with a key past its `expires_at_ms`. Sent with `WWW-Authenticate`."
            }
            Self::Forbidden => "Admin key is valid but lacks the scope the route needs.",
            Self::CharacterNotFound => {
                "Nexon (or, for the admin purge, the local name→ocid mapping) does not know the character."
            }
            Self::NotFound => "No route matches the path.",
            Self::MethodNotAllowed => "The path exists but not with this method.",
            Self::Conflict => "Admin like sync: another instance is syncing right now.",
            Self::PayloadTooLarge => {
                "The request body (declared `Content-Length` or bytes read) exceeds the body limit (64 KiB by default)."
            }
            Self::UriTooLong => {
                "The request target (path and query) exceeds the limit (2048 bytes by default)."
            }
            Self::HeadersTooLarge => {
                "The header names and values exceed 16 KiB, or there are more than 64 header fields (defaults)."
            }
            Self::RateLimited => {
                "This client exceeded its request rate on `/v1/` (or its like rate, or its rate of names no cache holds). Sent with `Retry-After` (seconds)."
            }
            Self::InternalError => {
                "A bug (e.g. a handler panicked). Details are logged, never sent."
            }
            Self::UpstreamRejected => {
                "The Nexon API (or the proxy) refused our request: a bug or misconfiguration on our side."
            }
            Self::UpstreamUnavailable => {
                "The Nexon API / proxy failed, timed out or answered something malformed."
            }
            Self::UpstreamRateLimited => {
                "The Nexon API (or the proxy's quota) is rate limiting us. `Retry-After` when known."
            }
            Self::UpstreamCircuitOpen => {
                "Calls to the Nexon API are paused while it recovers (circuit breaker open). `Retry-After` when known."
            }
            Self::StorageUnavailable => {
                "The database is unavailable (or a stored entry is corrupt)."
            }
            Self::LikesUnavailable => "Likes cannot be stored (or synced) right now.",
            Self::OutcomeUnknown => {
                "No store confirmed the like, but Redis or the database may hold it (a write was sent and its answer lost, or too few replicas confirmed it): it may be counted. Retry with the same `Idempotency-Key`. `Retry-After: 1`."
            }
            Self::ShuttingDown => {
                "This instance is draining and takes no new likes; retry on another instance."
            }
            Self::Overloaded => {
                "Too many requests in flight on this instance (load shedding; not applied to `/health/*` and `/metrics`). `Retry-After: 1`."
            }
            Self::RequestTimeout => {
                "The request did not complete within the request timeout (10 s by default)."
            }
        }
    }
}

/// A request failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid character name: {0}")]
    InvalidName(#[from] InvalidName),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("invalid query parameter {field}: {reason}")]
    InvalidQuery { field: &'static str, reason: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("character not found")]
    CharacterNotFound,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the Nexon API is unavailable: {cause}")]
    UpstreamUnavailable { cause: String },
    #[error("the Nexon API is rate limiting us")]
    UpstreamRateLimited { retry_after: Option<Duration> },
    #[error("the Nexon API is failing; calls are paused while it recovers")]
    UpstreamCircuitOpen { retry_after: Option<Duration> },
    #[error("the Nexon API refused our request: {code}")]
    UpstreamRejected { code: String },
    #[error("storage unavailable: {0}")]
    Storage(#[from] StoreError),
    #[error("the request took too long")]
    Timeout,
    #[error("invalid header {field}: {reason}")]
    InvalidHeader { field: &'static str, reason: String },
    #[error("too many requests; retry after {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("likes cannot be stored right now")]
    LikesUnavailable(String),
    #[error(
        "the like may or may not have been stored; retry with the same Idempotency-Key to count it at most once"
    )]
    OutcomeUnknown(String),
    #[error("this instance is shutting down; retry on another")]
    ShuttingDown,
    #[error("{0}")]
    Auth(#[from] crate::admin::AuthError),
    #[error("{0}")]
    Conflict(String),
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("the request's headers are larger than {0} bytes or more than {1} fields")]
    HeadersTooLarge(usize, usize),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the service is at capacity; retry shortly")]
    Overloaded,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::ocids::ResolveError> for ApiError {
    fn from(error: crate::ocids::ResolveError) -> Self {
        match error {
            crate::ocids::ResolveError::Nexon(error) => error.into(),
            crate::ocids::ResolveError::NotAdmitted { retry_after } => {
                Self::RateLimited { retry_after }
            }
        }
    }
}

impl From<NexonError> for ApiError {
    fn from(error: NexonError) -> Self {
        match error {
            NexonError::NotFound => Self::CharacterNotFound,
            NexonError::RateLimited { retry_after } => Self::UpstreamRateLimited { retry_after },
            NexonError::CircuitOpen { retry_after } => Self::UpstreamCircuitOpen { retry_after },
            NexonError::Unavailable { cause } => Self::UpstreamUnavailable { cause },
            NexonError::Rejected { code } => Self::UpstreamRejected { code },
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// The stable `code` of the error body.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidName(_) => ErrorCode::InvalidCharacterName,
            Self::InvalidPath(_) => ErrorCode::InvalidPath,
            Self::InvalidQuery { .. } => ErrorCode::InvalidQuery,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::CharacterNotFound => ErrorCode::CharacterNotFound,
            Self::RouteNotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::UpstreamUnavailable { .. } => ErrorCode::UpstreamUnavailable,
            Self::UpstreamRateLimited { .. } => ErrorCode::UpstreamRateLimited,
            Self::UpstreamCircuitOpen { .. } => ErrorCode::UpstreamCircuitOpen,
            Self::UpstreamRejected { .. } => ErrorCode::UpstreamRejected,
            Self::Storage(_) => ErrorCode::StorageUnavailable,
            Self::Timeout => ErrorCode::RequestTimeout,
            Self::InvalidHeader { .. } => ErrorCode::InvalidHeader,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::LikesUnavailable(_) => ErrorCode::LikesUnavailable,
            Self::OutcomeUnknown(_) => ErrorCode::OutcomeUnknown,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
            Self::Auth(crate::admin::AuthError::Forbidden { .. }) => ErrorCode::Forbidden,
            Self::Auth(crate::admin::AuthError::Expired { .. }) => ErrorCode::KeyExpired,
            Self::Auth(_) => ErrorCode::Unauthorized,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::UriTooLong(_) => ErrorCode::UriTooLong,
            Self::HeadersTooLarge(..) => ErrorCode::HeadersTooLarge,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// What the client reads: specific for its own mistakes, a fixed sentence per code for our
    /// internals (the detail stays in the log line, `LoggedError`).
    fn public_message(&self) -> String {
        match self {
            Self::Storage(_) => "the database is unavailable; try again shortly".to_owned(),
            Self::Internal(_) => "internal error".to_owned(),
            // The cause (a library's text with an internal URL, a decoder's text) is for the
            // log line only.
            Self::UpstreamUnavailable { .. } => {
                "the Nexon API is unavailable; try again shortly".to_owned()
            }
            Self::UpstreamRejected { .. } => {
                "the Nexon API refused the request; this is our fault and has been logged"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// The error that produced a response, for the logging middleware.
#[derive(Debug, Clone)]
pub struct LoggedError(pub Arc<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody::new(self.code().as_str(), self.public_message());
        let mut response = (status, Json(body)).into_response();
        if let Self::UpstreamRateLimited {
            retry_after: Some(after),
        }
        | Self::UpstreamCircuitOpen {
            retry_after: Some(after),
        }
        | Self::RateLimited { retry_after: after } = &self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                // Rounded up: a client that waits this long finds a token.
                HeaderValue::from(
                    u64::try_from(after.as_millis().div_ceil(1000))
                        .unwrap_or(u64::MAX)
                        .max(1),
                ),
            );
        }
        if let Self::Overloaded | Self::OutcomeUnknown(_) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::Auth(error) = &self
            && !matches!(error, crate::admin::AuthError::Forbidden { .. })
        {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"maple-admin\""),
            );
        }
        response
            .extensions_mut()
            .insert(LoggedError(Arc::new(self)));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_code_and_every_listed_code_a_variant() {
        use crate::admin::AuthError;
        let text = || "x".to_owned();
        let every = [
            ApiError::InvalidName(InvalidName::Empty),
            ApiError::InvalidPath(text()),
            ApiError::InvalidQuery {
                field: "f",
                reason: text(),
            },
            ApiError::InvalidRequest(text()),
            ApiError::CharacterNotFound,
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::UpstreamUnavailable { cause: text() },
            ApiError::UpstreamRateLimited { retry_after: None },
            ApiError::UpstreamCircuitOpen { retry_after: None },
            ApiError::UpstreamRejected { code: text() },
            ApiError::Storage(StoreError::Database(sqlx::Error::PoolTimedOut)),
            ApiError::Timeout,
            ApiError::InvalidHeader {
                field: "f",
                reason: text(),
            },
            ApiError::RateLimited {
                retry_after: Duration::ZERO,
            },
            ApiError::LikesUnavailable(text()),
            ApiError::OutcomeUnknown(text()),
            ApiError::ShuttingDown,
            ApiError::Auth(AuthError::Forbidden {
                name: text(),
                scope: "s",
            }),
            ApiError::Auth(AuthError::Expired { name: text() }),
            ApiError::Auth(AuthError::Missing),
            ApiError::Conflict(text()),
            ApiError::UriTooLong(1),
            ApiError::HeadersTooLarge(1, 1),
            ApiError::PayloadTooLarge(1),
            ApiError::Overloaded,
            ApiError::Internal(text()),
        ];
        // Every code is some error's, and each keeps the status its code documents.
        let mut codes: Vec<ErrorCode> = every.iter().map(ApiError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        let mut all = ErrorCode::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(codes, all);
    }

    #[test]
    fn outages_are_503_and_mistakes_4xx() {
        assert_eq!(
            ApiError::UpstreamUnavailable { cause: "x".into() }.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(ApiError::Timeout.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ApiError::InvalidName(InvalidName::Empty).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ApiError::CharacterNotFound.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn internals_are_not_leaked() {
        let err = ApiError::Internal("secret detail".into());
        assert!(!err.public_message().contains("secret"));
    }
}
