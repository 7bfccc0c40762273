//! The HTTP surface of core: routes, handlers and the one middleware stack.
//!
//! Rule: handlers return `Result<_, ApiError>`; nothing else in the crate builds an error
//! response. Every request passes the stack in [`router`], which bounds its time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{BoxError, Json, Router};
use bytes::Bytes;
use maple_common::nexon::Ocid;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::character::CharacterName;
use crate::equipment::{Entry, Source};
use crate::error::{ApiError, LoggedError};
use crate::nexon::NexonError;
use crate::store::now_ms;

mod admin;
mod expectation;
mod likes;

pub use likes::{ClientLimits, IDEMPOTENCY_KEY, REPLAYED};

/// Request-level limits: everything reachable from the network assumes a hostile client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests handled at once; beyond it requests are shed at once with 503 `overloaded`
    /// (before latency collapses) — health checks and metrics excepted.
    pub max_in_flight: usize,
    /// Requests per second per client address on `/v1/` (0: no limit), and the burst.
    pub client_rate: f64,
    pub client_burst: f64,
    /// Largest request body (413 beyond it).
    pub max_body_bytes: usize,
    /// Longest request target, path and query (414 beyond it).
    pub max_uri_bytes: usize,
    /// Largest total of header names and values, and most header fields (431 beyond).
    pub max_header_bytes: usize,
    pub max_header_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            client_rate: 200.0,
            client_burst: 400.0,
            max_body_bytes: 64 * 1024,
            max_uri_bytes: 2048,
            max_header_bytes: 16 * 1024,
            max_header_fields: 64,
        }
    }
}

/// The client a request is from: the peer, or — when the peer is a trusted proxy (a load
/// balancer, `MAPLE_CORE_TRUSTED_PROXIES`) — the nearest untrusted address in
/// `X-Forwarded-For`. Set by [`observe`] for the access log, [`guard`] and the handlers (rate
/// limits, the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    /// What [`guard`] decided; without it (a router used without the guard), the peer.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<Self>() {
            return Ok(*client);
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |info| info.0.ip());
        Ok(Self(peer))
    }
}

fn client_ip(
    trusted: &[std::net::IpAddr],
    peer: std::net::IpAddr,
    headers: &HeaderMap,
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    // Right to left: each trusted proxy appended the address it saw; the first address no
    // trusted proxy owns is the client. Anything unparsable ends the walk (left of it the
    // client could have written anything).
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => {}
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    peer
}

/// Takes a token from `client`'s bucket in `buckets` (made at `rate` per second with `burst`
/// on first use); `Err` says when one will be free.
pub(crate) fn take_token(
    buckets: &ClientLimits,
    client: std::net::IpAddr,
    rate: f64,
    burst: f64,
) -> Result<(), Duration> {
    let now = Instant::now();
    let bucket = buckets.get_with(client, || {
        Arc::new(maple_common::rate::TokenBucket::new(
            maple_common::rate::RateLimitConfig {
                rps: rate,
                burst,
                max_wait: Duration::ZERO,
            },
            now,
        ))
    });
    bucket.reserve(now).map(drop)
}

/// Checks sizes, sheds load and applies the per-client rate before anything else runs.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = state.config.limits;
    let refuse = |reason: &'static str, error: ApiError| {
        state
            .metrics
            .rejected_total
            .with_label_values(&[reason])
            .inc();
        error.into_response()
    };
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return refuse("uri_too_long", ApiError::UriTooLong(limits.max_uri_bytes));
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.max_header_bytes || headers.len() > limits.max_header_fields {
        return refuse(
            "headers_too_large",
            ApiError::HeadersTooLarge(limits.max_header_bytes, limits.max_header_fields),
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return refuse(
            "payload_too_large",
            ApiError::PayloadTooLarge(limits.max_body_bytes),
        );
    }
    let path = request.uri().path();
    let exempt = path.starts_with("/health/") || path == "/metrics";
    let api = path.starts_with("/v1/");
    let _permit = if exempt {
        None
    } else {
        match Arc::clone(&state.in_flight).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return refuse("overloaded", ApiError::Overloaded),
        }
    };
    // Decided by `observe`, which runs first (the access log names the client too).
    let client = request.extensions().get::<ClientIp>().map(|c| c.0);
    if api
        && limits.client_rate > 0.0
        && let Some(client) = client
    {
        let taken = take_token(
            &state.client_limits,
            client,
            limits.client_rate,
            limits.client_burst,
        );
        if let Err(retry_after) = taken {
            return refuse("rate_limited", ApiError::RateLimited { retry_after });
        }
    }
    state.metrics.in_flight.inc();
    let response = next.run(request).await;
    state.metrics.in_flight.dec();
    response
}

/// The span of one request: a child of the caller's trace when it sent `traceparent`; its
/// `trace_id` field puts the trace id on every log line inside it.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        trace_id = tracing::field::Empty,
    );
    maple_common::telemetry::continue_trace(&span, request.headers());
    span
}

/// The API's description (OpenAPI 3.1), kept by hand beside the code and served at
/// `/openapi.json`. It lists exactly the routes of [`routes`]: the e2e test `openapi` checks
/// both ways (paths and methods), and the schemathesis run checks the bodies.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route: its path template and its handlers.
fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/v1/characters/{name}", get(character)),
        ("/v1/characters/{name}/equipment", get(equipment)),
        (
            "/v1/characters/{name}/likes",
            get(likes::count).post(likes::add),
        ),
        (
            "/v1/characters/{name}/expectation",
            get(expectation::character),
        ),
        ("/v1/potential/probability", post(expectation::probability)),
        ("/v1/starforce/expectation", post(expectation::starforce)),
        ("/v1/admin/state", get(admin::state)),
        ("/v1/admin/characters/{name}/purge", post(admin::purge)),
        ("/v1/admin/likes/sync", post(admin::sync)),
        ("/v1/admin/backups", get(admin::backups)),
        ("/v1/admin/backups/apply", post(admin::apply_backups)),
        ("/v1/admin/config", get(admin::config)),
        ("/v1/admin/audit", get(admin::audit)),
        ("/health/live", get(live)),
        ("/health/ready", get(ready)),
        ("/metrics", get(metrics)),
        ("/openapi.json", get(openapi)),
    ]
}

/// The path templates the router serves (for the test that holds them against [`OPENAPI`]).
pub fn route_templates() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

/// The application's routes behind its middleware stack.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost first:
        .layer(
            ServiceBuilder::new()
                // 1. A panic becomes a 500 JSON answer instead of a dropped connection.
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("handler panicked".into()).into_response()
                }))
                // 2. A span per request (continuing the caller's trace): every log line below,
                //    the error line included, carries its trace id.
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                // 3. RED metrics per route template, and each error logged exactly once.
                .layer(middleware::from_fn_with_state(state.clone(), observe))
                // 4. Sizes, load shedding, per-client rate: before any work.
                .layer(middleware::from_fn_with_state(state.clone(), guard))
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.config.limits.max_body_bytes,
                ))
                // 5. Every request ends within the timeout (503 JSON), so a drain always ends.
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::Timeout
                }))
                .timeout(request_timeout),
        )
        .with_state(state)
}

/// Counts and times each request per route template, logs its error once, and writes its
/// access-log line (`MAPLE_ACCESS_LOG`). Decides the client address first ([`ClientIp`]).
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let client = crate::server::peer(&request)
        .map(|peer| client_ip(&state.config.trusted_proxies, peer.ip(), request.headers()));
    if let Some(client) = client {
        request.extensions_mut().insert(ClientIp(client));
    }
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    access_line(&method, &route, &response, elapsed, client);
    if let Some(LoggedError(error)) = response.extensions().get::<LoggedError>() {
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
        .with_label_values(&[route.as_str(), method, status.as_str()])
        .inc();
    state
        .metrics
        .http_request_duration_seconds
        .with_label_values(&[route.as_str(), method])
        .observe(elapsed.as_secs_f64());
    response
}

/// One access-log line (target `access`): a structured event the telemetry layer writes off
/// the request path. Cheap when the access log is off (the event is disabled).
fn access_line(
    method: &axum::http::Method,
    route: &str,
    response: &Response,
    elapsed: Duration,
    client: Option<std::net::IpAddr>,
) {
    use maple_common::telemetry::ACCESS_TARGET;
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        return;
    }
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
    let trace_id = maple_common::telemetry::trace_id(&tracing::Span::current());
    tracing::info!(
        target: ACCESS_TARGET,
        method = %method,
        route,
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        bytes,
        source,
        client = client.map(tracing::field::display),
        trace_id,
        "request"
    );
}

fn parse_name(path: Result<Path<String>, PathRejection>) -> Result<CharacterName, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::InvalidPath(e.body_text()))?;
    Ok(CharacterName::parse(&raw)?)
}

/// `name` → ocid: memory, then the stored mapping, then Nexon's answer (remembered in both).
async fn resolve_ocid(state: &AppState, name: &CharacterName) -> Result<Ocid, ApiError> {
    // Names compare case-insensitively (as the database's collation does).
    let key = name.as_str().to_lowercase();
    if let Some(ocid) = state.ocids.get(&key) {
        return Ok(ocid);
    }
    match state.store.find_ocid(name).await {
        Ok(Some(ocid)) => {
            state.ocids.insert(key, ocid.clone());
            return Ok(ocid);
        }
        Ok(None) => {}
        // The database is a cache for this mapping: its outage must not fail the request.
        Err(e) => state.store_error("find_ocid", &e),
    }
    let ocid = state.call("id", state.nexon.ocid(name)).await?;
    if let Err(e) = state.store.upsert_character(name, &ocid, now_ms()).await {
        state.store_error("upsert_character", &e);
    }
    state.ocids.insert(key, ocid.clone());
    Ok(ocid)
}

/// `GET /v1/characters/{name}`: the ocid and Nexon's basic information.
async fn character(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(path)?;
    let ocid = resolve_ocid(&state, &name).await?;
    let basic = state.call("basic", state.nexon.basic(&ocid)).await?;
    let basic: Value =
        serde_json::from_slice(&basic).map_err(|e| ApiError::UpstreamUnavailable {
            cause: format!("malformed basic response: {e}"),
        })?;
    Ok(Json(
        json!({ "name": name.as_str(), "ocid": ocid, "basic": basic }),
    ))
}

#[derive(Debug, Deserialize)]
struct EquipmentQuery {}

/// Header naming the tier that answered: `l1`, `l2`, `db`, `upstream` or `stale`.
pub const SOURCE_HEADER: &str = "x-maple-source";

/// `GET /v1/characters/{name}/equipment`: Nexon's item-equipment JSON. Sent gzip-compressed as
/// stored when the client accepts gzip (no recompression), with a strong ETag (304 on a
/// matching `If-None-Match`) and `x-maple-source`; a stale answer also carries `age`.
async fn equipment(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<EquipmentQuery>, QueryRejection>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = parse_name(path)?;
    query.map_err(|e| ApiError::InvalidQuery {
        field: "query",
        reason: e.body_text(),
    })?;
    let ocid = resolve_ocid(&state, &name).await?;
    let served = state.equipment.get(&ocid).await?;
    let entry = Arc::clone(&served.entry);
    let gzip = accepts_gzip(&request_headers);
    // One strong ETag per representation (RFC 9110 8.8.3): the gzip bytes are not the JSON bytes.
    let etags = [entry.etag(), entry.etag_gzip()];
    let etag = &etags[usize::from(gzip)];
    let mut headers = HeaderMap::new();
    headers.insert(
        SOURCE_HEADER,
        HeaderValue::from_static(served.source.as_str()),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if served.source == Source::Stale {
        headers.insert(header::AGE, entry.age(now_ms()).as_secs().into());
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

/// Whether `If-None-Match` names one of this content's ETags (or `*`), by weak comparison.
fn etag_matches(headers: &HeaderMap, etags: &[String]) -> bool {
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
fn accepts_gzip(headers: &HeaderMap) -> bool {
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

/// The body of `entry`: from the cache of recently decompressed bodies (keyed by content
/// hash, so it can never be out of date), else decompressed and checked off the async workers.
async fn decompress(state: &AppState, entry: Arc<Entry>, ocid: Ocid) -> Result<Bytes, ApiError> {
    if let Some(body) = state.bodies.get(&entry.sha256) {
        return Ok(body);
    }
    let hash = entry.sha256;
    let body = tokio::task::spawn_blocking(move || entry.decompress(&ocid))
        .await
        .map_err(|e| ApiError::Internal(format!("decompressing equipment: {e}")))??;
    let body = Bytes::from(body);
    state.bodies.insert(hash, body.clone());
    Ok(body)
}

/// The character's equipment entry (from the tiers or Nexon): its SHA-256 identifies the
/// content (e.g. for cached valuations) without decompressing it.
async fn equipment_entry(
    state: &AppState,
    name: &CharacterName,
) -> Result<(Ocid, Arc<Entry>), ApiError> {
    let ocid = resolve_ocid(state, name).await?;
    let served = state.equipment.get(&ocid).await?;
    Ok((ocid, served.entry))
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when not draining and the database answers within a second.
async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response();
    }
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unavailable",
        Err(_) => "timeout",
    };
    let status = if database == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "database": database, "database_kind": state.store.dialect() },
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (in_use, idle, max) = state.store.pool_usage();
    let pool = &state.metrics.db_pool_connections;
    pool.with_label_values(&["in_use"]).set(i64::from(in_use));
    pool.with_label_values(&["idle"]).set(i64::from(idle));
    pool.with_label_values(&["max"]).set(i64::from(max));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

impl AppState {
    /// Runs a Nexon call and counts its outcome.
    async fn call<T>(
        &self,
        endpoint: &'static str,
        call: impl Future<Output = Result<T, NexonError>>,
    ) -> Result<T, NexonError> {
        let result = call.await;
        let outcome = crate::nexon::outcome(&result);
        self.metrics
            .nexon_calls_total
            .with_label_values(&[endpoint, outcome])
            .inc();
        result
    }

    fn store_error(&self, operation: &'static str, error: &crate::store::StoreError) {
        tracing::warn!(operation, error = %error, "database operation failed");
        self.metrics
            .store_errors_total
            .with_label_values(&[operation])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let lb = ip("10.0.0.2");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.3"),
        );
        let trusted = [lb, ip("10.0.0.3")];
        // From the load balancer: the nearest address no trusted proxy owns.
        assert_eq!(client_ip(&trusted, lb, &headers), ip("203.0.113.7"));
        // From anyone else: the header is theirs to forge; the peer counts.
        assert_eq!(
            client_ip(&trusted, ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        // Garbage ends the walk: the peer counts.
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, not-an-ip"),
        );
        assert_eq!(client_ip(&trusted, lb, &headers), lb);
    }
}
