//! The API description (OpenAPI 3.1, `/openapi.json`), built from the code once.
//!
//! - **Schemas** are the types the handlers take and answer (`utoipa::ToSchema`, derived next
//!   to each type; the engine's and the shared types' under their `openapi` feature), so a
//!   field added to an answer is in the description.
//! - **Operations** are listed in `operations.rs`, one per route and method; the e2e test
//!   `openapi` holds them to the router both ways.
//! - **Error responses** come from the [`ErrorCode`]s an operation declares: grouped by the
//!   status each code is answered with, each status listing its codes. Every operation also
//!   gets what the middleware may answer before the handler runs (`build.rs`).
//!
//! A snapshot test (`core/tests/openapi.rs`) fails when the document changes and the
//! snapshot in `core/openapi.snapshot.json` was not updated with it: a change to the API is
//! a reviewed diff.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::response::IntoResponse as _;
use bytes::Bytes;
use utoipa::ToSchema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr, Schema, ServerBuilder,
};

mod build;
mod operations;
mod schemas;

use self::build::{SHARED, error_response};
use self::operations::operations;
use self::schemas::{
    AdminConfigSchema, EquipmentSchema, EquipmentSourceSchema, ErrorBodySchema, ErrorCodeSchema,
};
use super::admin::{
    AdminState, ApplyBackupsResponse, AuditResponse, BackupsResponse, PurgeResponse, SyncResponse,
};
use super::characters::CharacterBasic;
use super::expectation::{
    FlameAnswer, FlameRequest, ProbabilityRequest, ProbabilityResponse, StarforceAnswer,
};
use super::likes::{LikeAdded, LikeCountAnswer};
use super::ops::{Liveness, Readiness};
use super::ready::CharacterExpectation;
use crate::character::CharacterName;
use maple_engine::starforce;

/// `GET /openapi.json`: the document, built and serialised on first use.
pub(super) async fn serve() -> axum::response::Response {
    static SERVED: LazyLock<Bytes> = LazyLock::new(|| {
        // Serialising the document's own types cannot fail.
        Bytes::from(serde_json::to_vec(&document()).unwrap_or_default())
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        SERVED.clone(),
    )
        .into_response()
}

const INFO: &str = "HTTP API of `maple-core`: MapleStory character data (through the Nexon Open \
API proxy, cached in tiers), likes, the expectation engine (potential probability, star force, \
flames, whole-character valuation), admin operations, health and metrics.

**Errors.** Every error response is JSON `{\"error\":{\"code\":\"…\",\"message\":\"…\"}}` \
(schema `Error`); `code` is one of `ErrorCode` (see its table). Unknown paths answer 404 \
`not_found`; known paths with another method answer 405 `method_not_allowed` (not listed per \
operation).

**Guard (every route, before anything else).** Request target longer than 2048 bytes → 414 \
`uri_too_long`; headers over 16 KiB or more than 64 fields → 431 `headers_too_large`; declared \
`Content-Length` over 64 KiB → 413 `payload_too_large`; more requests in flight than the \
instance takes → 503 `overloaded` with `Retry-After: 1` (except `/health/*` and `/metrics`); on \
`/v1/` a per-client token bucket (200/s, burst 400 by default) → 429 `rate_limited` with \
`Retry-After`. Every request ends within the request timeout (10 s) or gets 503 \
`request_timeout`. A panic is 500 `internal_error`. (All limits are configurable; the numbers \
are the defaults.)

**Content types.** Requests with bodies must be `application/json` (anything else is 400 \
`invalid_request`). Responses are `application/json` except `/metrics` (`text/plain; \
version=0.0.4`). `/v1/characters/{name}/equipment` and `/v1/characters/{name}/expectation` \
negotiate: they send their stored gzip bytes with `Content-Encoding: gzip` when \
`Accept-Encoding` allows gzip, answer `ETag`/`If-None-Match` with 304, and send `Vary: \
accept-encoding`.

**Admin.** `/v1/admin/*` needs `Authorization: Bearer <key>` with the route's scope: 401 \
`unauthorized`/`key_expired` (with `WWW-Authenticate: Bearer realm=\"maple-admin\"`), 403 \
`forbidden`.";

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for operation in operations() {
        let (method, path) = (operation.method.clone(), operation.path);
        paths.add_path_operation(path, vec![method], operation.build());
    }
    let mut schemas = Vec::new();
    collect::<ErrorBodySchema>(&mut schemas);
    collect::<ErrorCodeSchema>(&mut schemas);
    collect::<CharacterName>(&mut schemas);
    collect::<EquipmentSchema>(&mut schemas);
    collect::<EquipmentSourceSchema>(&mut schemas);
    collect::<AdminConfigSchema>(&mut schemas);
    collect::<CharacterBasic>(&mut schemas);
    collect::<LikeCountAnswer>(&mut schemas);
    collect::<LikeAdded>(&mut schemas);
    collect::<CharacterExpectation>(&mut schemas);
    collect::<ProbabilityRequest>(&mut schemas);
    collect::<ProbabilityResponse>(&mut schemas);
    collect::<starforce::Request>(&mut schemas);
    collect::<StarforceAnswer>(&mut schemas);
    collect::<FlameRequest>(&mut schemas);
    collect::<FlameAnswer>(&mut schemas);
    collect::<AdminState>(&mut schemas);
    collect::<PurgeResponse>(&mut schemas);
    collect::<SyncResponse>(&mut schemas);
    collect::<BackupsResponse>(&mut schemas);
    collect::<ApplyBackupsResponse>(&mut schemas);
    collect::<AuditResponse>(&mut schemas);
    collect::<Liveness>(&mut schemas);
    collect::<Readiness>(&mut schemas);
    // One entry per name, in name order.
    let schemas: BTreeMap<String, RefOr<Schema>> = schemas.into_iter().collect();
    let mut components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin API key (`mk_…`), checked by SHA-256 against the admin keys \
                         file; each route needs one scope (`admin:read`, `cache:purge`, \
                         `likes:sync`, `likes:backup`, `config:read`).",
                    ))
                    .build(),
            ),
        );
    for (name, code, description) in SHARED {
        components = components.response(*name, error_response(description, &[*code]));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("MapleExpectation core")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(INFO))
                .build(),
        )
        .servers(Some(vec![
            ServerBuilder::new().url("http://127.0.0.1:8080").build(),
        ]))
        .tags(Some(
            ["characters", "likes", "engine", "admin", "health"]
                .map(|name| TagBuilder::new().name(name).build())
                .to_vec(),
        ))
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// `T`'s schema and every schema it refers to.
fn collect<T: ToSchema>(into: &mut Vec<(String, RefOr<Schema>)>) {
    into.push((T::name().into_owned(), T::schema()));
    T::schemas(into);
}
