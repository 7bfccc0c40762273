//! The sidecar's request logic: which requests pass, how they are answered from the cache or
//! the upstream, and what the client gets when the upstream fails.
//!
//! Rules: only `GET`/`HEAD` under `/maplestory/v1/` pass (and, when client tokens are set, only
//! with one). Every request is answered in `request_filter`: a fresh cache entry at once
//! (`x-cache: HIT`); a just-expired one at once while one background refresh runs (`STALE`);
//! otherwise the request joins the one upstream fetch for its key (`MISS` for the request that
//! started it, `COALESCED` for the others), waiting no longer than its route's deadline. When
//! the fetch fails, a kept stale entry is served (`STALE`, with `age` and the cause); with
//! nothing kept, the client gets our error at once, as Nexon's error document (`error.name`
//! the closest Nexon code, so a Nexon client reads it; `error.code` and `x-maple-proxy-error`
//! name our cause) and an alert goes out. `Cache-Control: no-cache` skips the cache only for a client that
//! presented a client token (with none configured, for nobody). Nexon's "no such character"
//! is cached too, briefly (`MAPLE_PROXY_CACHE_NOT_FOUND_S`), and served as a `HIT` with
//! Nexon's status and body. A data answer goes out gzip-compressed to a client whose
//! `Accept-Encoding` takes gzip (the form made once when the body was stored), identity to the
//! rest, with `Vary: Accept-Encoding`. Metrics are recorded once, in `logging()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use maple_common::encoding::accepts_gzip;
use maple_common::flight::{Flights, Joined, land};
use maple_common::nexon::{NexonErrorBody, NexonErrorCode};
use pingora::http::ResponseHeader;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::alerts::Alerter;
use crate::cache::{Freshness, ResponseCache, Stored};
use crate::config::ProxyConfig;
use crate::metrics::ProxyMetrics;
use crate::routes::{Route, canonical, normalised_path, validate_query};
use crate::upstream::{Answer, Failure, Fetched, Fetcher};

/// Header naming the cause when the proxy, not Nexon, produced an error response.
pub use maple_common::contract::PROXY_ERROR_HEADER;
/// How the response was served: `HIT`, `MISS`, `STALE` or `COALESCED`.
pub const CACHE_HEADER: &str = "x-cache";
/// On a `STALE` response: why (`revalidating`, or the failure's code).
pub const STALE_CAUSE_HEADER: &str = "x-cache-stale-cause";

/// How a request was served, from the cache's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
    Stale,
    Coalesced,
}

impl CacheResult {
    fn header(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Coalesced => "COALESCED",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Coalesced => "coalesced",
        }
    }
}

/// The shared parts a request needs.
#[derive(Debug)]
pub struct NexonProxy {
    config: Arc<ProxyConfig>,
    metrics: ProxyMetrics,
    cache: ResponseCache,
    flights: Arc<Flights<Fetched>>,
    fetcher: Arc<Fetcher>,
    alerter: Arc<Alerter>,
}

/// State carried through one request.
#[derive(Debug)]
pub struct RequestCtx {
    route: Route,
    /// The request's path once percent-decoded, when decoding changed it (it is routed,
    /// cached and sent upstream under this); `None` when the path came as it is.
    decoded_path: Option<String>,
    started: Instant,
    status: u16,
    cache: Option<CacheResult>,
    stale_cause: Option<&'static str>,
    /// Whether the request presented a valid client token: only such a client may skip the
    /// cache with `no-cache` (anyone else could make every request an upstream call).
    token_presented: bool,
    /// Requests sent upstream for this one (a flight's leader only; followers made none).
    attempts: Option<Arc<AtomicU32>>,
    /// The trace this request belongs to (the caller's when it sent `traceparent`).
    trace_id: Option<String>,
}

/// Why the proxy refused a request before any upstream work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MethodNotAllowed,
    NotFound,
    InvalidPath,
    Unauthorized,
    /// A Nexon parameter that cannot be valid: the parameter and why.
    InvalidQuery(String, &'static str),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::InvalidPath => "invalid_path",
            Self::Unauthorized => "unauthorized",
            Self::InvalidQuery(..) => "invalid_query",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::NotFound => 404,
            Self::InvalidPath | Self::InvalidQuery(..) => 400,
            Self::Unauthorized => 401,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::MethodNotAllowed => "only GET and HEAD are proxied".into(),
            Self::NotFound => "only /maplestory/v1/ paths are proxied".into(),
            Self::InvalidPath => "the path, once percent-decoded, must be /-separated segments of \
                 ASCII letters, digits, '-', '_', '.' and '~', none empty and none of dots only \
                 (no encoded '/')"
                .into(),
            Self::Unauthorized => "send Authorization: Bearer <token> with a client token".into(),
            Self::InvalidQuery(field, problem) => format!("query parameter {field} {problem}"),
        }
    }
}

/// One response the proxy writes.
struct Reply<'a> {
    status: u16,
    content_type: Option<&'a str>,
    body: Bytes,
    extra: Vec<(&'static str, String)>,
}

async fn write(session: &mut Session, reply: Reply<'_>) -> Result<u16> {
    let mut header = ResponseHeader::build(reply.status, Some(4 + reply.extra.len()))?;
    if let Some(content_type) = reply.content_type {
        header.insert_header(http::header::CONTENT_TYPE, content_type)?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
    for (name, value) in reply.extra {
        header.insert_header(name, value)?;
    }
    if session.req_header().method == http::Method::HEAD {
        session
            .write_response_header(Box::new(header), true)
            .await?;
    } else {
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(reply.status)
}

fn error_reply(
    status: u16,
    code: &'static str,
    message: &str,
    retry_after: Option<Duration>,
) -> Reply<'static> {
    let mut extra = vec![(PROXY_ERROR_HEADER, code.to_owned())];
    if let Some(after) = retry_after {
        // Whole seconds, rounded up: never tell a client to come back before we will answer.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        extra.push(("retry-after", seconds.max(1).to_string()));
    }
    if status == 401 {
        extra.push(("www-authenticate", "Bearer".to_owned()));
    }
    // Nexon's own error document, so that a published Nexon client pointed at the proxy reads
    // our refusals as it reads Nexon's: `name` the closest Nexon code, `message` our sentence;
    // `code` (and the header) keep the precise cause.
    let body = serde_json::json!({
        "error": {
            "name": nexon_code(code).name(),
            "message": message,
            "code": code,
        }
    });
    Reply {
        status,
        content_type: Some("application/json"),
        body: Bytes::from(body.to_string()),
        extra,
    }
}

/// The Nexon error code closest to one of the proxy's own refusals: its rate limit is Nexon's
/// rate limit; a failing or paused upstream, an overload or a deadline is Nexon's internal
/// error (the one a Nexon client retries); a missing client token is an invalid key; a bad
/// query a bad parameter; anything else about the request a bad path.
pub fn nexon_code(code: &str) -> NexonErrorCode {
    match code {
        "rate_limited" | "upstream_rate_limited" => NexonErrorCode::RateLimitExceeded,
        "unauthorized" => NexonErrorCode::InvalidApiKey,
        "invalid_query" => NexonErrorCode::InvalidParameter,
        "method_not_allowed" | "not_found" | "invalid_path" => NexonErrorCode::InvalidPath,
        _ => NexonErrorCode::InternalServerError,
    }
}

/// `stored` as the client takes it: gzip when it accepts gzip and a gzip form is kept, with
/// `Vary: Accept-Encoding` on every data answer (a shared cache must key on it).
fn stored_reply<'a>(
    stored: &'a Stored,
    result: CacheResult,
    stale_cause: Option<&'static str>,
    accepts_gzip: bool,
) -> Reply<'a> {
    let mut extra = vec![(CACHE_HEADER, result.header().to_owned())];
    let (body, gzip) = stored.body_for(accepts_gzip);
    if !stored.is_not_found() {
        extra.push(("vary", "accept-encoding".to_owned()));
    }
    if gzip {
        extra.push(("content-encoding", "gzip".to_owned()));
    }
    if matches!(result, CacheResult::Hit | CacheResult::Stale) {
        extra.push(("age", stored.age(Instant::now()).as_secs().to_string()));
    }
    if let Some(cause) = stale_cause {
        extra.push((STALE_CAUSE_HEADER, cause.to_owned()));
    }
    Reply {
        status: stored.status,
        content_type: stored.content_type.as_deref(),
        body,
        extra,
    }
}

/// Nexon's answer that the character does not exist, to cache for `ttl`: `OPENAPI00004` on
/// the id route (a name it does not know) or `OPENAPI00003` on any (an ocid it does not know).
/// Zero `ttl`: nothing is cached.
fn not_found(route: Route, answer: &Answer, ttl: Duration) -> Option<Stored> {
    if ttl.is_zero() || answer.status != 400 {
        return None;
    }
    let body: NexonErrorBody = serde_json::from_slice(&answer.body).ok()?;
    let code = NexonErrorCode::from_name(&body.error.name)?;
    let unknown = match code {
        NexonErrorCode::InvalidIdentifier => true,
        NexonErrorCode::InvalidParameter => route == Route::Id,
        _ => false,
    };
    unknown.then(|| Stored {
        status: answer.status,
        content_type: answer.content_type.clone(),
        body: answer.body.clone(),
        gzip: None,
        fetched_at: Instant::now(),
        ttl,
    })
}

/// Whether the client asked to skip the cache (`Cache-Control: no-cache` or `Pragma: no-cache`);
/// honoured only for a client that presented a token.
fn wants_revalidation(header: &pingora::http::RequestHeader) -> bool {
    ["cache-control", "pragma"].iter().any(|name| {
        header
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
            })
    })
}

impl NexonProxy {
    pub fn new(
        config: Arc<ProxyConfig>,
        metrics: ProxyMetrics,
        cache: ResponseCache,
        flights: Arc<Flights<Fetched>>,
        fetcher: Arc<Fetcher>,
        alerter: Arc<Alerter>,
    ) -> Self {
        Self {
            config,
            metrics,
            cache,
            flights,
            fetcher,
            alerter,
        }
    }

    /// Why `session`'s request is refused, if it is; sets `ctx`'s route and decoded path.
    fn refusal(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Refusal> {
        let header = session.req_header();
        let Some(path) = normalised_path(header.uri.path()) else {
            ctx.route = Route::Rejected;
            return Some(Refusal::InvalidPath);
        };
        ctx.route = Route::of(&path);
        if let std::borrow::Cow::Owned(decoded) = path {
            ctx.decoded_path = Some(decoded);
        }
        if ctx.route == Route::Rejected {
            return Some(Refusal::NotFound);
        }
        if !matches!(header.method, http::Method::GET | http::Method::HEAD) {
            return Some(Refusal::MethodNotAllowed);
        }
        if !self.config.client_tokens.is_empty() {
            let presented = header
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(maple_common::contract::bearer_token);
            let known = presented.is_some_and(|token| {
                // Check every token, so the time taken does not say which one was close.
                self.config
                    .client_tokens
                    .iter()
                    .fold(false, |found, t| t.matches(token.as_bytes()) | found)
            });
            if !known {
                return Some(Refusal::Unauthorized);
            }
            ctx.token_presented = true;
        }
        if let Err((field, problem)) = validate_query(header.uri.query()) {
            return Some(Refusal::InvalidQuery(field, problem));
        }
        None
    }

    /// Joins the upstream fetch for `key`, starting it if none is in the air; the fetch stores
    /// a 200 in the cache before anyone waiting on it is told. Returns it with the counter of
    /// the requests the flight sends upstream (stays 0 for a follower).
    fn start_fetch(
        &self,
        route: Route,
        key: &str,
        deadline: Instant,
    ) -> (Joined<Fetched>, Arc<AtomicU32>) {
        let fetcher = Arc::clone(&self.fetcher);
        let cache = self.cache.clone();
        let since = cache.generation();
        // "No such character" lives no longer than an answer would (a route not cached
        // caches neither).
        let not_found_for = cache
            .config()
            .not_found_for
            .min(self.config.routes.policy(route).ttl);
        let target = key.to_owned();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&attempts);
        let joined = self.flights.join(key, move || async move {
            let fetched = fetcher.fetch(route, &target, deadline, &counted).await;
            match &fetched {
                Fetched::Ok(stored) => cache.put(&target, Arc::clone(stored), since),
                Fetched::Answer(answer) => {
                    if let Some(stored) = not_found(route, answer, not_found_for) {
                        cache.put(&target, Arc::new(stored), since);
                    }
                }
                Fetched::Failed(_) => {}
            }
            fetched
        });
        (joined, attempts)
    }

    async fn serve(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<u16> {
        let header = session.req_header();
        let path = ctx.decoded_path.as_deref().unwrap_or(header.uri.path());
        let key = canonical(path, header.uri.query());
        // `no-cache` only from a client with a token; from anyone else it is ignored.
        let revalidate = ctx.token_presented && wants_revalidation(header);
        let gzip = accepts_gzip(&header.headers);
        let policy = self.config.routes.policy(ctx.route);
        let now = Instant::now();
        let deadline = now + policy.deadline;

        if !revalidate && let Some((entry, freshness)) = self.cache.get(&key, now) {
            match freshness {
                Freshness::Fresh => {
                    ctx.cache = Some(CacheResult::Hit);
                    return write(session, stored_reply(&entry, CacheResult::Hit, None, gzip))
                        .await;
                }
                Freshness::Revalidate => {
                    // One refresh at a time: a key already in flight is left to that flight.
                    drop(self.start_fetch(ctx.route, &key, deadline).0);
                    ctx.cache = Some(CacheResult::Stale);
                    ctx.stale_cause = Some("revalidating");
                    let reply = stored_reply(&entry, CacheResult::Stale, ctx.stale_cause, gzip);
                    return write(session, reply).await;
                }
                Freshness::Stale => {}
            }
        }

        let (joined, attempts) = self.start_fetch(ctx.route, &key, deadline);
        ctx.attempts = Some(attempts);
        let result = if matches!(joined, Joined::Follower(_)) {
            CacheResult::Coalesced
        } else {
            CacheResult::Miss
        };
        let fetched =
            match tokio::time::timeout_at(deadline.into(), land(joined.into_receiver())).await {
                Ok(Some(fetched)) => fetched,
                // The fetch task died: nothing was learned about the upstream.
                Ok(None) => Fetched::Failed(Failure::Protocol),
                Err(_) => Fetched::Failed(Failure::Timeout),
            };
        match fetched {
            Fetched::Ok(stored) => {
                ctx.cache = Some(result);
                write(session, stored_reply(&stored, result, None, gzip)).await
            }
            Fetched::Answer(answer) => {
                ctx.cache = Some(result);
                let reply = Reply {
                    status: answer.status,
                    content_type: answer.content_type.as_deref(),
                    body: answer.body.clone(),
                    extra: vec![(CACHE_HEADER, result.header().to_owned())],
                };
                write(session, reply).await
            }
            Fetched::Failed(failure) => {
                if let Some((entry, _)) = self
                    .cache
                    .get(&key, Instant::now())
                    .filter(|(entry, _)| !entry.is_not_found())
                {
                    ctx.cache = Some(CacheResult::Stale);
                    ctx.stale_cause = Some(failure.code());
                    let reply = stored_reply(&entry, CacheResult::Stale, ctx.stale_cause, gzip);
                    return write(session, reply).await;
                }
                if failure.is_upstream_fault() {
                    self.alerter.raise(
                        failure.code(),
                        ctx.route.label(),
                        "failed with nothing cached to serve",
                    );
                }
                let reply = error_reply(
                    failure.status(),
                    failure.code(),
                    &failure.message(),
                    failure.retry_after(),
                );
                write(session, reply).await
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for NexonProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            route: Route::Rejected,
            decoded_path: None,
            started: Instant::now(),
            status: 0,
            cache: None,
            stale_cause: None,
            token_presented: false,
            attempts: None,
            trace_id: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.status = match self.refusal(session, ctx) {
            Some(refusal) => {
                let reply = error_reply(refusal.status(), refusal.code(), &refusal.message(), None);
                write(session, reply).await?
            }
            None => {
                // One span per request, continuing the caller's trace; the upstream fetch
                // (even when run by a flight) is its child and passes `traceparent` on.
                let span = tracing::info_span!(
                    "proxy.request",
                    route = ctx.route.label(),
                    trace_id = tracing::field::Empty,
                );
                ctx.trace_id =
                    maple_common::telemetry::continue_trace(&span, &session.req_header().headers);
                tracing::Instrument::instrument(self.serve(session, ctx), span).await?
            }
        };
        // Answered here, always: nothing is streamed through pingora's upstream path.
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "every request is answered in request_filter",
        ))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let route = ctx.route.label();
        access_line(session, ctx);
        self.metrics
            .requests_total
            .with_label_values(&[route, &ctx.status.to_string()])
            .inc();
        self.metrics
            .request_duration_seconds
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
        if let Some(result) = ctx.cache {
            self.metrics
                .cache_requests_total
                .with_label_values(&[route, result.label()])
                .inc();
        }
        if let Some(cause) = ctx.stale_cause {
            self.metrics
                .stale_served_total
                .with_label_values(&[route, cause])
                .inc();
        }
    }
}

/// One access-log line (`maple_common::telemetry::access`), written off the request path;
/// nothing is built when the access log is off.
fn access_line(session: &Session, ctx: &RequestCtx) {
    use maple_common::telemetry::access::{self, Value};
    if !access::enabled() {
        return;
    }
    let attempts = ctx
        .attempts
        .as_ref()
        .map_or(0, |a| a.load(Ordering::Relaxed));
    access::write(&[
        (
            "method",
            Some(Value::Str(session.req_header().method.as_str())),
        ),
        ("route", Some(Value::Str(ctx.route.label()))),
        ("status", Some(Value::U64(u64::from(ctx.status)))),
        ("cache", ctx.cache.map(|c| Value::Str(c.label()))),
        ("stale_cause", ctx.stale_cause.map(Value::Str)),
        ("upstream_attempts", Some(Value::U64(u64::from(attempts)))),
        ("duration_ms", Some(Value::Millis(ctx.started.elapsed()))),
        ("trace_id", ctx.trace_id.as_deref().map(Value::Str)),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cause the proxy answers itself maps to a Nexon code a client knows, rate limits
    /// to Nexon's rate limit and upstream trouble to Nexon's retryable internal error.
    #[test]
    fn every_refusal_has_a_nexon_code() {
        for code in Failure::CODES {
            let nexon = nexon_code(code);
            assert!(nexon.is_retryable(), "{code}: {nexon:?}");
        }
        assert_eq!(
            nexon_code("rate_limited"),
            NexonErrorCode::RateLimitExceeded
        );
        assert_eq!(nexon_code("unauthorized"), NexonErrorCode::InvalidApiKey);
        assert_eq!(
            nexon_code("invalid_query"),
            NexonErrorCode::InvalidParameter
        );
        for code in ["not_found", "invalid_path", "method_not_allowed"] {
            assert_eq!(nexon_code(code), NexonErrorCode::InvalidPath);
        }
        let reply = error_reply(503, "breaker_open", "paused", None);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(body["error"]["name"], "OPENAPI00001");
        assert_eq!(body["error"]["code"], "breaker_open");
        assert_eq!(body["error"]["message"], "paused");
    }

    #[test]
    fn no_cache_is_recognised_in_either_header() {
        let mut header =
            pingora::http::RequestHeader::build("GET", b"/maplestory/v1/id", None).expect("valid");
        assert!(!wants_revalidation(&header));
        header
            .insert_header("cache-control", "max-age=0, No-Cache")
            .expect("valid");
        assert!(wants_revalidation(&header));
        let mut header =
            pingora::http::RequestHeader::build("GET", b"/maplestory/v1/id", None).expect("valid");
        header.insert_header("pragma", "no-cache").expect("valid");
        assert!(wants_revalidation(&header));
    }
}
