//! The admin listener, on its own port so it can be firewalled apart from the traffic:
//! `GET /metrics` (Prometheus text), `GET /health`, `GET /breaker` (state and counts),
//! `GET /cache` (entries, bytes, fetches in flight) and `POST /cache/purge[?prefix=/path]`,
//! which needs `Authorization: Bearer <admin token>` and is refused when no token is configured.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode, header};
use maple_common::breaker::Breaker;
use maple_common::error::ErrorBody;
use maple_common::flight::Flights;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::cache::ResponseCache;
use crate::config::ProxyConfig;
use crate::metrics::ProxyMetrics;
use crate::upstream::Fetched;

/// Serves the admin endpoints.
#[derive(Debug)]
pub struct AdminApp {
    config: Arc<ProxyConfig>,
    metrics: ProxyMetrics,
    breaker: Arc<Breaker>,
    cache: ResponseCache,
    flights: Arc<Flights<Fetched>>,
}

impl AdminApp {
    pub fn new(
        config: Arc<ProxyConfig>,
        metrics: ProxyMetrics,
        breaker: Arc<Breaker>,
        cache: ResponseCache,
        flights: Arc<Flights<Fetched>>,
    ) -> Self {
        Self {
            config,
            metrics,
            breaker,
            cache,
            flights,
        }
    }

    fn cache_usage(&self) -> (u64, u64) {
        let (entries, bytes) = self.cache.usage();
        self.metrics
            .cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.metrics
            .cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        (entries, bytes)
    }

    fn purge(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let Some(token) = &self.config.admin_token else {
            return error(
                StatusCode::FORBIDDEN,
                "purge_disabled",
                "set MAPLE_PROXY_ADMIN_TOKEN to enable purging",
            );
        };
        let presented = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(maple_common::contract::bearer_token)
            .unwrap_or_default();
        if !token.matches(presented.as_bytes()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <admin token>",
            );
        }
        let prefix = session
            .req_header()
            .uri
            .query()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "prefix")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        let purged = self.cache.purge(&prefix);
        tracing::info!(prefix, purged, "cache purged");
        let body = serde_json::json!({ "purged": purged, "prefix": prefix });
        response(
            StatusCode::OK,
            "application/json",
            body.to_string().into_bytes(),
        )
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Vec<u8>> {
    response(
        status,
        "application/json",
        ErrorBody::new(code, message).to_json_bytes(),
    )
}

fn response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    let length = response.body().len();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length.into());
    response
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        match (method, path.as_str()) {
            (http::Method::POST, "/cache/purge") => self.purge(session),
            (_, "/cache/purge") => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "purge with POST",
            ),
            (_, "/metrics") => {
                self.cache_usage();
                response(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            (_, "/cache") => {
                let (entries, bytes) = self.cache_usage();
                let config = self.cache.config();
                let body = serde_json::json!({
                    "entries": entries,
                    "bytes": bytes,
                    "max_bytes": config.max_bytes,
                    "stale_for_s": config.stale_for.as_secs(),
                    "revalidate_for_s": config.revalidate_for.as_secs(),
                    "in_flight": self.flights.len(),
                });
                response(
                    StatusCode::OK,
                    "application/json",
                    body.to_string().into_bytes(),
                )
            }
            (_, "/health") => {
                let body = serde_json::json!({
                    "status": "ok",
                    "upstream": self.config.upstream.to_string(),
                });
                response(
                    StatusCode::OK,
                    "application/json",
                    body.to_string().into_bytes(),
                )
            }
            (_, "/breaker") => {
                let snapshot = self.breaker.snapshot(std::time::Instant::now());
                let body = serde_json::to_vec(&snapshot).unwrap_or_default();
                response(StatusCode::OK, "application/json", body)
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "admin endpoints are /metrics, /health, /breaker, /cache and POST /cache/purge",
            ),
        }
    }
}
