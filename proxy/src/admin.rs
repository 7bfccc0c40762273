//! The admin listener: `/metrics` (Prometheus text), `/health` and `/breaker` (the circuit
//! breaker's state and counts), on its own port so it can be firewalled apart from the traffic.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode, header};
use maple_common::error::ErrorBody;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::breaker::Breaker;
use crate::config::ProxyConfig;
use crate::metrics::ProxyMetrics;

/// Serves the admin endpoints.
#[derive(Debug)]
pub struct AdminApp {
    config: Arc<ProxyConfig>,
    metrics: ProxyMetrics,
    breaker: Arc<Breaker>,
}

impl AdminApp {
    pub fn new(config: Arc<ProxyConfig>, metrics: ProxyMetrics, breaker: Arc<Breaker>) -> Self {
        Self {
            config,
            metrics,
            breaker,
        }
    }
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
        match session.req_header().uri.path() {
            "/metrics" => response(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ),
            "/health" => {
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
            "/breaker" => {
                let snapshot = self.breaker.snapshot(std::time::Instant::now());
                let body = serde_json::to_vec(&snapshot).unwrap_or_default();
                response(StatusCode::OK, "application/json", body)
            }
            _ => response(
                StatusCode::NOT_FOUND,
                "application/json",
                ErrorBody::new(
                    "not_found",
                    "admin endpoints are /metrics, /health and /breaker",
                )
                .to_json_bytes(),
            ),
        }
    }
}
