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
    /// Every `code` an error body of core can carry (the API description's `ErrorCode` lists
    /// exactly these; a test holds each variant's [`Self::code`] to this list).
    #[cfg(any(test, feature = "test-hooks"))]
    pub const CODES: [&'static str; 27] = [
        "invalid_character_name",
        "invalid_path",
        "invalid_query",
        "invalid_request",
        "character_not_found",
        "not_found",
        "method_not_allowed",
        "upstream_unavailable",
        "upstream_rate_limited",
        "upstream_circuit_open",
        "upstream_rejected",
        "storage_unavailable",
        "request_timeout",
        "invalid_header",
        "rate_limited",
        "likes_unavailable",
        "outcome_unknown",
        "shutting_down",
        "forbidden",
        "key_expired",
        "unauthorized",
        "conflict",
        "uri_too_long",
        "headers_too_large",
        "payload_too_large",
        "overloaded",
        "internal_error",
    ];

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidName(_)
            | Self::InvalidPath(_)
            | Self::InvalidQuery { .. }
            | Self::InvalidRequest(_)
            | Self::InvalidHeader { .. } => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Auth(crate::admin::AuthError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(..) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::CharacterNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpstreamUnavailable { .. }
            | Self::UpstreamRateLimited { .. }
            | Self::UpstreamCircuitOpen { .. }
            | Self::Storage(_)
            | Self::LikesUnavailable(_)
            | Self::OutcomeUnknown(_)
            | Self::ShuttingDown
            | Self::Overloaded
            | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamRejected { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `code` of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_character_name",
            Self::InvalidPath(_) => "invalid_path",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::InvalidRequest(_) => "invalid_request",
            Self::CharacterNotFound => "character_not_found",
            Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UpstreamUnavailable { .. } => "upstream_unavailable",
            Self::UpstreamRateLimited { .. } => "upstream_rate_limited",
            Self::UpstreamCircuitOpen { .. } => "upstream_circuit_open",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::Storage(_) => "storage_unavailable",
            Self::Timeout => "request_timeout",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::RateLimited { .. } => "rate_limited",
            Self::LikesUnavailable(_) => "likes_unavailable",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::ShuttingDown => "shutting_down",
            Self::Auth(crate::admin::AuthError::Forbidden { .. }) => "forbidden",
            Self::Auth(crate::admin::AuthError::Expired { .. }) => "key_expired",
            Self::Auth(_) => "unauthorized",
            Self::Conflict(_) => "conflict",
            Self::UriTooLong(_) => "uri_too_long",
            Self::HeadersTooLarge(..) => "headers_too_large",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Overloaded => "overloaded",
            Self::Internal(_) => "internal_error",
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
        let body = ErrorBody::new(self.code(), self.public_message());
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
        let codes: Vec<&str> = every.iter().map(ApiError::code).collect();
        assert_eq!(codes, ApiError::CODES);
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
