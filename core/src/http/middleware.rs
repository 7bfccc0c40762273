//! The middleware of the one stack in [`router`](super::router): `observe` (the request span,
//! the client address, RED metrics per route template, each error logged once, the access
//! line) and `guard` (sizes, load shedding, the per-client rate, the in-flight count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maple_common::telemetry::access::{self, Value};
use tracing::Instrument as _;

use super::characters::SOURCE_HEADER;
use super::client::{ClientIp, client_ip};
use super::state::AppState;
use crate::error::{ApiError, LoggedError};
use crate::metrics::Rejection;

/// Checks sizes, sheds load and applies the per-client rate before anything else runs.
pub(super) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = state.config.limits;
    let refuse = |reason: Rejection, error: ApiError| {
        state.metrics.rejected_total.inc(reason);
        error.into_response()
    };
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return refuse(
            Rejection::UriTooLong,
            ApiError::UriTooLong(limits.max_uri_bytes),
        );
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.max_header_bytes || headers.len() > limits.max_header_fields {
        return refuse(
            Rejection::HeadersTooLarge,
            ApiError::HeadersTooLarge(limits.max_header_bytes, limits.max_header_fields),
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return refuse(
            Rejection::PayloadTooLarge,
            ApiError::PayloadTooLarge(limits.max_body_bytes),
        );
    }
    let path = request.uri().path();
    let exempt = path.starts_with("/health/") || path == "/metrics";
    let api = path.starts_with("/v1/");
    let _permit = if exempt {
        None
    } else {
        match Arc::clone(&state.admission.in_flight).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return refuse(Rejection::Overloaded, ApiError::Overloaded),
        }
    };
    // Decided by `observe`, which runs first (the access log names the client too).
    let client = request.extensions().get::<ClientIp>().map(|c| c.0);
    if api
        && limits.client_rate > 0.0
        && let Some(client) = client
    {
        let taken = state
            .admission
            .requests
            .take(client, limits.client_rate, limits.client_burst);
        if let Err(retry_after) = taken {
            return refuse(
                Rejection::RateLimited,
                ApiError::RateLimited { retry_after },
            );
        }
    }
    // Counted while the handler runs, and uncounted however it ends: a client hanging up
    // drops this future mid-await, and the guard with it.
    let _in_flight = InFlight::enter(&state.metrics.in_flight);
    next.run(request).await
}

/// One request in `maple_core_in_flight` while alive.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The span of one request: a child of the caller's trace when it sent `traceparent`; its
/// `trace_id` field puts the trace id on every log line inside it. Also the trace id.
fn request_span(request: &Request, route: &str) -> (tracing::Span, Option<String>) {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        trace_id = tracing::field::Empty,
    );
    let trace_id = maple_common::telemetry::continue_trace(&span, request.headers());
    (span, trace_id)
}

/// Runs each request in its span (continuing the caller's trace), counts and times it per
/// route template, logs its error once, and writes its access-log line (`MAPLE_ACCESS_LOG`).
/// Decides the client address first ([`ClientIp`]).
pub(super) async fn observe(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (span, trace_id) = request_span(&request, route);
    let method = request.method().clone();
    let client = crate::server::peer(&request)
        .map(|peer| client_ip(&state.config.trusted_proxies, peer.ip(), request.headers()));
    if let Some(client) = client {
        request.extensions_mut().insert(ClientIp(client));
    }
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    if access::enabled() {
        access_line(
            &method,
            route,
            &response,
            elapsed,
            client,
            trace_id.as_deref(),
        );
    }
    if let Some(LoggedError(error)) = response.extensions().get::<LoggedError>() {
        let _in_span = span.enter();
        if status.is_server_error() {
            tracing::warn!(%route, %status, error = %error, "request failed");
        } else {
            tracing::debug!(%route, %status, error = %error, "request rejected");
        }
    }
    // Any token is a valid method to hyper: only the standard ones become labels.
    let method = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
        _ => "other",
    };
    state
        .metrics
        .http_requests_total
        .with_label_values(&[route, method, status.as_str()])
        .inc();
    state
        .metrics
        .http_request_duration_seconds
        .with_label_values(&[route, method])
        .observe(elapsed.as_secs_f64());
    response
}

/// One access-log line ([`access`]), formatted here and written off the request path.
fn access_line(
    method: &axum::http::Method,
    route: &str,
    response: &Response,
    elapsed: Duration,
    client: Option<std::net::IpAddr>,
    trace_id: Option<&str>,
) {
    let bytes = axum::body::HttpBody::size_hint(response.body())
        .exact()
        .or_else(|| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        });
    let source = response
        .headers()
        .get(SOURCE_HEADER)
        .and_then(|v| v.to_str().ok());
    access::write(&[
        ("method", Some(Value::Str(method.as_str()))),
        ("route", Some(Value::Str(route))),
        (
            "status",
            Some(Value::U64(u64::from(response.status().as_u16()))),
        ),
        ("duration_ms", Some(Value::Millis(elapsed))),
        ("bytes", bytes.map(Value::U64)),
        ("source", source.map(Value::Str)),
        ("client", client.map(Value::Ip)),
        ("trace_id", trace_id.map(Value::Str)),
    ]);
}
