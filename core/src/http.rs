//! The HTTP surface of core: the routes and the one middleware stack ([`router`]).
//!
//! Rule: handlers return `Result<_, ApiError>`; nothing else in the crate builds an error
//! response. Every request passes the stack in [`router`], which bounds its time.
//!
//! # Layout
//! - [`state`]: [`AppState`], what handlers share, grouped by concern.
//! - `middleware`: `observe` (metrics, access log), `guard` (sizes, load, rates), the span.
//! - `client`: the client's address and its token buckets.
//! - `extract`: the name in the path, content negotiation.
//! - `ready`: answers kept as bytes in both encodings, with their ETags.
//! - Handlers by resource: `characters` (the character, its equipment), `valuation` (a
//!   character's priced equipment), `likes`, `expectation` (one potential, star-force or
//!   flame question), `admin`, `ops` (health, metrics, the OpenAPI document).

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;

mod admin;
mod characters;
mod client;
mod expectation;
mod extract;
pub mod gate;
mod likes;
mod middleware;
pub mod openapi;
mod ops;
pub mod ready;
pub mod state;
mod valuation;

pub use self::client::{ClientLimits, KeyAllowance};
pub use self::state::AppState;
// For the end-to-end tests.
#[cfg(feature = "test-hooks")]
pub use self::{
    characters::SOURCE_HEADER,
    client::ClientIp,
    likes::{IDEMPOTENCY_KEY, REPLAYED},
};

/// Every route but the admin ones (`admin::routes`): its path template and its handlers.
fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/v1/characters/{name}", get(characters::character)),
        (
            "/v1/characters/{name}/equipment",
            get(characters::equipment),
        ),
        (
            "/v1/characters/{name}/likes",
            get(likes::count).post(likes::add),
        ),
        (
            "/v1/characters/{name}/expectation",
            get(valuation::character),
        ),
        ("/v1/potential/probability", post(expectation::probability)),
        ("/v1/starforce/expectation", post(expectation::starforce)),
        ("/v1/flames/probability", post(expectation::flames)),
        ("/health/live", get(ops::live)),
        ("/health/ready", get(ops::ready)),
        ("/metrics", get(ops::metrics)),
        ("/openapi.json", get(openapi::serve)),
    ]
}

/// The path templates the router serves, the admin routes included (for the test that holds
/// them against the OpenAPI description).
#[cfg(feature = "test-hooks")]
pub fn route_templates() -> Vec<&'static str> {
    routes()
        .into_iter()
        .map(|(path, _)| path)
        .chain(admin::routes().into_iter().map(|route| route.path))
        .collect()
}

/// The application's routes behind its middleware stack.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        // `/v1/admin/…`: each route behind authentication and the audit (`admin`).
        .merge(admin::router(&state))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost first:
        .layer(
            ServiceBuilder::new()
                // 1. A panic becomes a 500 JSON answer instead of a dropped connection.
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("handler panicked".into()).into_response()
                }))
                // 2. A span per request (continuing the caller's trace: every log line below,
                //    the error line included, carries its trace id), RED metrics per route
                //    template, each error logged exactly once, the access line.
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    middleware::observe,
                ))
                // 3. Sizes, load shedding, per-client rate: before any work.
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    middleware::guard,
                ))
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.config.limits.max_body_bytes,
                ))
                // 4. Every request ends within the timeout (503 JSON), so a drain always ends.
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::Timeout
                }))
                .timeout(request_timeout),
        )
        .with_state(state)
}
