//! The reverse proxy itself: which requests pass, where they go, what the upstream sees, and
//! what the client gets when the upstream fails.
//!
//! Rules: only `GET`/`HEAD` under `/maplestory/v1/` pass; the client's API key is always
//! removed and the configured one injected; every failure is answered with our JSON error body
//! and an `x-maple-proxy-error` header (so callers can tell our errors from Nexon's), and
//! metrics are recorded once, in `logging()`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use maple_common::error::ErrorBody;
use maple_common::nexon::{API_KEY_HEADER, API_PREFIX, PATH_BASIC, PATH_ID, PATH_ITEM_EQUIPMENT};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::breaker::{Breaker, Outcome, Permit, Transition};
use crate::config::ProxyConfig;
use crate::metrics::ProxyMetrics;

/// Header naming the cause when the proxy, not Nexon, produced an error response.
pub const PROXY_ERROR_HEADER: &str = "x-maple-proxy-error";

/// The Nexon sidecar's request logic.
#[derive(Debug)]
pub struct NexonProxy {
    config: Arc<ProxyConfig>,
    metrics: ProxyMetrics,
    breaker: Arc<Breaker>,
    host_header: String,
}

impl NexonProxy {
    pub fn new(config: Arc<ProxyConfig>, metrics: ProxyMetrics, breaker: Arc<Breaker>) -> Self {
        let host_header = config.upstream.host_header();
        Self {
            config,
            metrics,
            breaker,
            host_header,
        }
    }

    fn observe(&self, transition: Option<Transition>) {
        if let Some(Transition { from, to }) = transition {
            tracing::warn!(
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker transition"
            );
            self.metrics
                .breaker_transitions_total
                .with_label_values(&[from.as_str(), to.as_str()])
                .inc();
            self.metrics.breaker_state.set(to.gauge());
        }
    }
}

/// The route template a request belongs to: the metric label, never the raw path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Id,
    Basic,
    ItemEquipment,
    OtherNexon,
    Rejected,
}

impl Route {
    fn of(path: &str) -> Self {
        match path {
            PATH_ID => Self::Id,
            PATH_BASIC => Self::Basic,
            PATH_ITEM_EQUIPMENT => Self::ItemEquipment,
            _ if path.starts_with(API_PREFIX) => Self::OtherNexon,
            _ => Self::Rejected,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Id => PATH_ID,
            Self::Basic => PATH_BASIC,
            Self::ItemEquipment => PATH_ITEM_EQUIPMENT,
            Self::OtherNexon => "/maplestory/v1/*",
            Self::Rejected => "rejected",
        }
    }
}

/// State carried through one request's filters.
#[derive(Debug)]
pub struct RequestCtx {
    route: Route,
    started: Instant,
    /// Status of a response the proxy wrote itself (rejections and failures).
    own_status: Option<u16>,
    /// The breaker's permission for this request's upstream call, if it got one.
    permit: Option<Permit>,
}

/// Why the proxy refused or failed a request: the `code` in the error body and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    MethodNotAllowed,
    NotFound,
    InvalidPath,
    UpstreamTimeout,
    UpstreamUnreachable,
    UpstreamProtocol,
    BreakerOpen,
    Internal,
}

impl ProxyError {
    pub fn code(self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::InvalidPath => "invalid_path",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamProtocol => "upstream_protocol_error",
            Self::BreakerOpen => "breaker_open",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::NotFound => 404,
            Self::InvalidPath => 400,
            Self::UpstreamTimeout | Self::UpstreamUnreachable | Self::BreakerOpen => 503,
            Self::UpstreamProtocol => 502,
            Self::Internal => 500,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "only GET and HEAD are proxied",
            Self::NotFound => "only /maplestory/v1/ paths are proxied",
            Self::InvalidPath => {
                "the path contains a dot segment, an encoded separator or a backslash"
            }
            Self::UpstreamTimeout => "the Nexon API did not answer in time",
            Self::UpstreamUnreachable => "the Nexon API could not be reached",
            Self::UpstreamProtocol => "the Nexon API connection failed mid-response",
            Self::BreakerOpen => "the Nexon API is failing; calls are paused while it recovers",
            Self::Internal => "the proxy failed to handle the request",
        }
    }

    /// Classifies a pingora error from talking to the upstream.
    pub fn classify(error: &Error) -> Self {
        match error.etype() {
            ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout => Self::UpstreamTimeout,
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure
            | ErrorType::InvalidCert
            | ErrorType::HandshakeError
            | ErrorType::SocketError => Self::UpstreamUnreachable,
            _ if error.esource() == &ErrorSource::Upstream => Self::UpstreamProtocol,
            _ => Self::Internal,
        }
    }
}

/// Whether a path could escape its route upstream: dot segments, encoded separators or
/// dots, backslashes, empty segments.
fn is_suspicious(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("/../")
        || lower.ends_with("/..")
        || lower.contains("/./")
        || lower.contains("//")
        || lower.contains('\\')
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
}

async fn respond(
    session: &mut Session,
    error: ProxyError,
    retry_after: Option<std::time::Duration>,
) -> Result<u16> {
    let body = Bytes::from(ErrorBody::new(error.code(), error.message()).to_json_bytes());
    let mut header = ResponseHeader::build(error.status(), Some(5))?;
    if let Some(after) = retry_after {
        // Whole seconds, rounded up: never tell a client to come back before we will answer.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        header.insert_header(http::header::RETRY_AFTER, seconds.max(1).to_string())?;
    }
    header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    header.insert_header(PROXY_ERROR_HEADER, error.code())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(error.status())
}

#[async_trait]
impl ProxyHttp for NexonProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            route: Route::Rejected,
            started: Instant::now(),
            own_status: None,
            permit: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let header = session.req_header();
        let path = header.uri.path().to_owned();
        let method_ok = matches!(header.method, http::Method::GET | http::Method::HEAD);
        ctx.route = Route::of(&path);
        let rejection = if ctx.route == Route::Rejected {
            Some(ProxyError::NotFound)
        } else if is_suspicious(&path) {
            ctx.route = Route::Rejected;
            Some(ProxyError::InvalidPath)
        } else if !method_ok {
            Some(ProxyError::MethodNotAllowed)
        } else {
            None
        };
        if let Some(error) = rejection {
            ctx.own_status = Some(respond(session, error, None).await?);
            return Ok(true);
        }
        match self.breaker.acquire(Instant::now()) {
            Ok((permit, transition)) => {
                self.observe(transition);
                ctx.permit = Some(permit);
                Ok(false)
            }
            Err(rejected) => {
                self.metrics.breaker_rejections_total.inc();
                let error = ProxyError::BreakerOpen;
                ctx.own_status = Some(respond(session, error, Some(rejected.retry_after)).await?);
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let upstream = &self.config.upstream;
        let address = match upstream.host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, upstream.port),
            Err(_) => tokio::net::lookup_host((upstream.host.as_str(), upstream.port))
                .await
                .map_err(|e| Error::because(ErrorType::ConnectNoRoute, "resolving upstream", e))?
                .next()
                .ok_or_else(|| {
                    Error::explain(ErrorType::ConnectNoRoute, "upstream has no address")
                })?,
        };
        let mut peer = HttpPeer::new(address, upstream.tls, upstream.host.clone());
        peer.options.connection_timeout = Some(self.config.connect_timeout);
        peer.options.total_connection_timeout = Some(self.config.connect_timeout * 2);
        peer.options.read_timeout = Some(self.config.read_timeout);
        peer.options.write_timeout = Some(self.config.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        // Clients never choose the key: whatever they sent is dropped.
        upstream_request.remove_header(API_KEY_HEADER);
        upstream_request.insert_header(API_KEY_HEADER, self.config.api_key.expose())?;
        upstream_request.insert_header(http::header::HOST, self.host_header.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let error = ProxyError::classify(e);
        if matches!(
            error,
            ProxyError::UpstreamTimeout
                | ProxyError::UpstreamUnreachable
                | ProxyError::UpstreamProtocol
        ) {
            self.metrics
                .upstream_errors_total
                .with_label_values(&[error.code()])
                .inc();
        }
        let downstream_gone = e.esource() == &ErrorSource::Downstream;
        let status = if downstream_gone || session.response_written().is_some() {
            // Nothing more can be said to this client.
            0
        } else {
            // The connection is not reused after a failure: say so, or a pooling client
            // would send its next request into a socket we are about to close.
            session.set_keepalive(None);
            respond(session, error, None).await.unwrap_or(0)
        };
        ctx.own_status = Some(status);
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session
            .response_written()
            .map(|header| header.status.as_u16())
            .or(ctx.own_status)
            .unwrap_or(0);
        if let Some(permit) = ctx.permit.take() {
            // Decide from the error when there is one: an upstream failure counts against the
            // upstream; a client that left or an internal fault says nothing about it.
            let outcome = match e.map(ProxyError::classify) {
                Some(
                    ProxyError::UpstreamTimeout
                    | ProxyError::UpstreamUnreachable
                    | ProxyError::UpstreamProtocol,
                ) => Some(Outcome::Failure),
                Some(_) => None,
                // Nexon answered: 5xx and 429 are its failures, other statuses are not.
                None if status == 429 || status >= 500 => Some(Outcome::Failure),
                None => Some(Outcome::Success),
            };
            match outcome {
                Some(outcome) => {
                    let transition =
                        self.breaker
                            .record(permit, outcome, ctx.started.elapsed(), Instant::now());
                    self.observe(transition);
                }
                None => self.breaker.release(permit),
            }
        }
        let route = ctx.route.label();
        self.metrics
            .requests_total
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.metrics
            .request_duration_seconds
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(Route::of(PATH_ID), Route::Id);
        assert_eq!(
            Route::of("/maplestory/v1/character/stat"),
            Route::OtherNexon
        );
        assert_eq!(Route::of("/admin"), Route::Rejected);
    }

    #[test]
    fn traversal_attempts_are_suspicious() {
        for path in [
            "/maplestory/v1/../admin",
            "/maplestory/v1/%2e%2e/admin",
            "/maplestory/v1/%2E%2E/admin",
            "/maplestory/v1/a%2fb",
            "/maplestory/v1//id",
            "/maplestory/v1/a\\b",
            "/maplestory/v1/..",
        ] {
            assert!(is_suspicious(path), "{path}");
        }
        assert!(!is_suspicious(PATH_ITEM_EQUIPMENT));
    }
}
