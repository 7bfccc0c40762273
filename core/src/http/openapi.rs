//! The API description (OpenAPI 3.1, `/openapi.json`), built from the code once.
//!
//! - **Schemas** are the types the handlers take and answer (`utoipa::ToSchema`, derived next
//!   to each type; the engine's and the shared types' under their `openapi` feature), so a
//!   field added to an answer is in the description.
//! - **Operations** are listed in [`operations`], one per route and method; the e2e test
//!   `openapi` holds them to the router both ways.
//! - **Error responses** come from the [`ErrorCode`]s an operation declares: grouped by the
//!   status each code is answered with, each status listing its codes. Every operation also
//!   gets what the middleware may answer before the handler runs ([`guard`]).
//!
//! A snapshot test (`core/tests/openapi.rs`) fails when the document changes and the
//! snapshot in `core/openapi.snapshot.json` was not updated with it: a change to the API is
//! a reviewed diff.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required, Response, ResponseBuilder, Schema, ServerBuilder,
};
use axum::response::IntoResponse as _;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::admin::{
    AdminState, ApplyBackupsResponse, AuditQuery, AuditResponse, BackupsResponse, PurgeResponse,
    SyncResponse,
};
use super::characters::CharacterBasic;
use super::expectation::{FlameAnswer, FlameRequest, ProbabilityRequest, ProbabilityResponse, StarforceAnswer};
use super::likes::{LikeAdded, LikeCountAnswer};
use super::ops::{Liveness, Readiness};
use super::ready::CharacterExpectation;
use super::valuation::ValuationQuery;
use crate::character::CharacterName;
use crate::equipment::{Source, StaleCause};
use crate::error::ErrorCode::{self, *};
use maple_common::metrics::Label as _;
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

/// Error responses every operation shares, kept once under `components/responses`.
const SHARED: &[(&str, ErrorCode, &str)] = &[
    (
        "PayloadTooLarge",
        PayloadTooLarge,
        "The request body is larger than the limit (64 KiB by default), by `Content-Length` or \
         as read.",
    ),
    (
        "UriTooLong",
        UriTooLong,
        "The request target is longer than the limit (2048 bytes by default).",
    ),
    (
        "HeadersTooLarge",
        HeadersTooLarge,
        "The headers exceed 16 KiB or 64 fields (defaults). (Beyond hyper's own bounds — 100 \
         fields or a 64 KiB head — the connection gets a bare 431 without a body.)",
    ),
    (
        "RateLimited",
        RateLimited,
        "This client sent too many requests to `/v1/`, or (on the routes taking a name) looked \
         up too many names no cache holds, each a Nexon call (`MAPLE_CORE_CLIENT_MISS_RATE`).",
    ),
    (
        "InternalError",
        InternalError,
        "A bug; details are logged, never sent.",
    ),
];

/// Where a route sits in the middleware, which decides what it may answer before its
/// handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// `/v1/…`: the per-client rate and load shedding apply.
    V1,
    /// `/health/*` and `/metrics`: exempt from both.
    Exempt,
    /// `/openapi.json`: load shedding applies, the `/v1/` rate does not.
    Shed,
}

/// What the middleware may answer for a route (sizes, panics, the timeout, and by `guard`
/// the rate and load shedding).
fn guard(guard: Guard) -> Vec<ErrorCode> {
    let mut codes = vec![
        PayloadTooLarge,
        UriTooLong,
        HeadersTooLarge,
        InternalError,
        RequestTimeout,
    ];
    match guard {
        Guard::V1 => codes.extend([RateLimited, Overloaded]),
        Guard::Shed => codes.push(Overloaded),
        Guard::Exempt => {}
    }
    codes
}

/// What a route taking a character name may answer besides its own errors.
const NAMED: &[ErrorCode] = &[
    InvalidCharacterName,
    InvalidPath,
    CharacterNotFound,
    NotFound,
    UpstreamRejected,
    UpstreamUnavailable,
    UpstreamRateLimited,
    UpstreamCircuitOpen,
];

/// What every admin route may answer before its handler runs.
const ADMIN: &[ErrorCode] = &[Unauthorized, KeyExpired, Forbidden];

/// One operation: a route and method, what it takes and what it answers.
struct Operation {
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    parameters: Vec<utoipa::openapi::path::Parameter>,
    body: Option<&'static str>,
    /// The answers that are not errors, by status.
    answers: Vec<(&'static str, Response)>,
    /// Every error code the handler and the middleware may answer.
    errors: Vec<ErrorCode>,
    /// Admin routes: the bearer key.
    admin: bool,
    /// `/health/ready`: its 503 while draining is a `Readiness`, not an error.
    draining_503: bool,
}

impl Operation {
    fn build(self) -> utoipa::openapi::path::Operation {
        let mut builder = OperationBuilder::new()
            .operation_id(Some(self.id))
            .summary(Some(self.summary))
            .description(Some(self.description))
            .tag(self.tag)
            .parameters(Some(self.parameters));
        if let Some(schema) = self.body {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(schema))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        if self.admin {
            builder = builder.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        for (status, answer) in self.answers {
            builder = builder.response(status, answer);
        }
        let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
        for code in self.errors {
            let codes = by_status.entry(code.status().as_u16()).or_default();
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        for (status, codes) in by_status {
            let shared = SHARED
                .iter()
                .find(|(_, code, _)| codes == [*code])
                .map(|(name, _, _)| *name);
            let response: RefOr<Response> = match shared {
                Some(name) => Ref::from_response_name(name).into(),
                None if status == 503 && self.draining_503 => draining(&codes).into(),
                None => error_response(status_meaning(status), &codes).into(),
            };
            builder = builder.response(status.to_string(), response);
        }
        builder.build()
    }
}

/// What an error status means, before its codes.
fn status_meaning(status: u16) -> &'static str {
    match status {
        400 => "The request is invalid.",
        401 => "No valid admin key.",
        403 => "The admin key lacks the route's scope.",
        404 => "Not found.",
        409 => "Conflict.",
        502 => "The Nexon API refused our request (our fault; logged).",
        503 => {
            "Service unavailable: this instance is overloaded, the request timed out, or a \
             dependency is down."
        }
        _ => "An error.",
    }
}

/// An error response with `codes`: the `Error` body, its code one of them.
fn error_response(description: &str, codes: &[ErrorCode]) -> Response {
    let listed = codes
        .iter()
        .map(|code| format!("`{}`", code.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = ResponseBuilder::new()
        .description(format!("{description} Codes: {listed}."))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(error_with(codes))).build(),
        );
    if codes.iter().any(|code| {
        matches!(
            code,
            RateLimited | Overloaded | UpstreamRateLimited | UpstreamCircuitOpen | OutcomeUnknown
        )
    }) {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                .description(Some(
                    "Seconds to wait before retrying: `1` for `overloaded` and `outcome_unknown`; \
                     for `rate_limited`, and for `upstream_rate_limited` / \
                     `upstream_circuit_open` when the upstream said how long.",
                ))
                .build(),
        );
    }
    if codes.iter().any(|code| matches!(code, Unauthorized | KeyExpired)) {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["Bearer realm=\"maple-admin\""])),
                )
                .description(Some("The scheme to authenticate with."))
                .build(),
        );
    }
    response.build()
}

/// `Error` with its code narrowed to `codes`.
fn error_with(codes: &[ErrorCode]) -> Schema {
    let code = string().enum_values(Some(codes.iter().map(|code| code.as_str())));
    let narrowed = ObjectBuilder::new().property(
        "error",
        ObjectBuilder::new().property("code", code),
    );
    AllOfBuilder::new()
        .item(Ref::from_schema_name(ErrorBodySchema::name()))
        .item(narrowed)
        .into()
}

/// `/health/ready`'s 503: `Readiness` while draining, or an error.
fn draining(codes: &[ErrorCode]) -> Response {
    ResponseBuilder::new()
        .description(
            "Draining: `{\"status\":\"draining\"}` once shutdown has begun, or an `Error` \
             (`request_timeout`).",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(
                    AnyOfBuilder::new()
                        .item(Ref::from_schema_name(Readiness::name()))
                        .item(error_with(codes)),
                ))
                .build(),
        )
        .build()
}

/// A JSON body of the named schema.
fn json(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// A 200 (or other) answer with a JSON body of `T`.
fn answer<T: ToSchema>(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json(&T::name()))
        .build()
}

/// The `{name}` path parameter.
fn name_parameter() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("name")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "Character name (NFC-normalised by the server, then validated: Hangul syllables \
             U+AC00–U+D7A3 and ASCII letters/digits only, weighted length 2..=12 where a Hangul \
             syllable counts 2). Matched case-insensitively.",
        ))
        .schema(Some(Ref::from_schema_name(CharacterName::name())))
        .build()
}

/// An optional request header.
fn header_parameter(name: &str, description: &str, schema: ObjectBuilder) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The headers of a tiered answer (equipment, valuation): which tier, the ETag, `Vary`, `Age`.
fn tier_headers(response: utoipa::openapi::ResponseBuilder, etag: &str) -> utoipa::openapi::ResponseBuilder {
    response
        .header(
            super::characters::SOURCE_HEADER,
            HeaderBuilder::new()
                .schema(Ref::from_schema_name(EquipmentSourceSchema::name()))
                .description(Some(
                    "Which tier answered: `l1` (in-process cache), `l2` (Redis), `db` \
                     (database), `upstream` (fetched from Nexon now) or `stale` (an expired \
                     copy, served because the upstream failed).",
                ))
                .build(),
        )
        .header(
            "ETag",
            HeaderBuilder::new()
                .schema(string().pattern(Some("^\"[0-9a-f]{64}(-gz)?\"$")))
                .description(Some(etag))
                .build(),
        )
        .header(
            "Vary",
            HeaderBuilder::new()
                .schema(string().enum_values(Some(["accept-encoding"])))
                .description(Some("Always `accept-encoding`."))
                .build(),
        )
        .header(
            "Age",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
                .description(Some(
                    "Seconds since Nexon produced the data; only on a `stale` answer.",
                ))
                .build(),
        )
        .header(
            super::characters::STALE_CAUSE_HEADER,
            HeaderBuilder::new()
                .schema(string().enum_values(Some(StaleCause::ALL.iter().map(|c| c.as_str()))))
                .description(Some(
                    "Why a `stale` answer is stale: `refreshing` or `upstream_failed`; only on \
                     a `stale` answer.",
                ))
                .build(),
        )
}

fn gzip_header(response: utoipa::openapi::ResponseBuilder) -> utoipa::openapi::ResponseBuilder {
    response.header(
        "Content-Encoding",
        HeaderBuilder::new()
            .schema(string().enum_values(Some(["gzip"])))
            .description(Some(
                "`gzip` when the client accepts gzip; absent otherwise.",
            ))
            .build(),
    )
}

fn negotiation_parameters() -> Vec<utoipa::openapi::path::Parameter> {
    vec![
        header_parameter(
            "Accept-Encoding",
            "`gzip` (or `*`) to receive the stored gzip bytes.",
            string(),
        ),
        header_parameter(
            "If-None-Match",
            "ETags from an earlier answer (comma-separated, `W/` ignored) or `*`.",
            string(),
        ),
    ]
}

const EQUIPMENT_ETAG: &str = "Strong ETag of this representation: `\"<sha256 hex>\"` for the \
JSON, `\"<sha256 hex>-gz\"` for the gzip bytes.";

const VALUATION_ETAG: &str = "Strong ETag of this representation: `\"<sha256 of the JSON>\"` \
for the JSON, `\"<sha256 of the JSON>-gz\"` for the gzip bytes. The same content and options \
give the same tags on every instance.";

/// Every operation the router serves.
fn operations() -> Vec<Operation> {
    let with = |extra: &[ErrorCode], guard_of: Guard| {
        let mut codes = extra.to_vec();
        codes.extend(guard(guard_of));
        codes
    };
    let named = |extra: &[ErrorCode]| {
        let mut codes = NAMED.to_vec();
        codes.extend_from_slice(extra);
        with(&codes, Guard::V1)
    };
    let admin = |extra: &[ErrorCode]| {
        let mut codes = ADMIN.to_vec();
        codes.extend_from_slice(extra);
        with(&codes, Guard::V1)
    };
    let admin_operation = |method, path, id, summary, scope: &'static str, extra: &[ErrorCode], answer: Response| Operation {
        method,
        path,
        id,
        tag: "admin",
        summary,
        description: scope,
        parameters: Vec::new(),
        body: None,
        answers: vec![("200", answer)],
        errors: admin(extra),
        admin: true,
        draining_503: false,
    };
    let engine_operation = |path, id, summary, description, body: &'static str, answer: Response| Operation {
        method: HttpMethod::Post,
        path,
        id,
        tag: "engine",
        summary,
        description,
        parameters: Vec::new(),
        body: Some(body),
        answers: vec![("200", answer)],
        errors: with(&[InvalidRequest], Guard::V1),
        admin: false,
        draining_503: false,
    };
    let not_modified = |etag| {
        tier_headers(
            ResponseBuilder::new().description("Not modified: `If-None-Match` matched."),
            etag,
        )
        .build()
    };
    let mut valuation_parameters = vec![name_parameter()];
    valuation_parameters.extend(negotiation_parameters());
    valuation_parameters.extend(ValuationQuery::into_params(|| Some(ParameterIn::Query)));
    let mut equipment_parameters = vec![name_parameter()];
    equipment_parameters.extend(negotiation_parameters());
    let valuation_header = |response: utoipa::openapi::ResponseBuilder| {
        response.header(
            super::valuation::VALUATION_HEADER,
            HeaderBuilder::new()
                .schema(string().enum_values(Some(["computed", "cached"])))
                .description(Some(
                    "`computed` now, or `cached` (same equipment content and options as an \
                     earlier request).",
                ))
                .build(),
        )
    };
    vec![
        Operation {
            method: HttpMethod::Get,
            path: "/v1/characters/{name}",
            id: "getCharacter",
            tag: "characters",
            summary: "A character's ocid and Nexon basic information",
            description: "Resolves the name to an ocid (memory, database, then Nexon) and \
                          returns Nexon's `character/basic` document.",
            parameters: vec![name_parameter()],
            body: None,
            answers: vec![("200", answer::<CharacterBasic>("The character."))],
            errors: named(&[]),
            admin: false,
            draining_503: false,
        },
        Operation {
            method: HttpMethod::Get,
            path: "/v1/characters/{name}/equipment",
            id: "getEquipment",
            tag: "characters",
            summary: "Nexon's item-equipment JSON for a character",
            description: "Served from the first tier holding a fresh copy (L1 → Redis → \
                          database → Nexon; an expired copy is served as `stale` when Nexon \
                          fails).\n\nContent negotiation: when `Accept-Encoding` allows gzip \
                          (an explicit `gzip`/`x-gzip` entry with q > 0, otherwise `*` with q > \
                          0) the stored gzip bytes are sent as-is with `Content-Encoding: gzip`; \
                          otherwise the identity JSON. Each representation has its own strong \
                          ETag; `If-None-Match` naming either ETag (weak comparison) or `*` \
                          gives 304. The query string is ignored.",
            parameters: equipment_parameters,
            body: None,
            answers: vec![
                (
                    "200",
                    gzip_header(tier_headers(
                        ResponseBuilder::new()
                            .description(
                                "The equipment document (`application/json; charset=utf-8`, \
                                 possibly `Content-Encoding: gzip`).",
                            )
                            .content("application/json", json(&EquipmentSchema::name())),
                        EQUIPMENT_ETAG,
                    ))
                    .build(),
                ),
                ("304", not_modified(EQUIPMENT_ETAG)),
            ],
            errors: named(&[InvalidQuery, StorageUnavailable]),
            admin: false,
            draining_503: false,
        },
        Operation {
            method: HttpMethod::Get,
            path: "/v1/characters/{name}/likes",
            id: "getLikes",
            tag: "likes",
            summary: "A character's like count",
            description: "Synced plus pending likes. `partial: true` (present only then) when a \
                          store could not be read and the count may be low.",
            parameters: vec![name_parameter()],
            body: None,
            answers: vec![("200", answer::<LikeCountAnswer>("The count."))],
            errors: named(&[StorageUnavailable]),
            admin: false,
            draining_503: false,
        },
        Operation {
            method: HttpMethod::Post,
            path: "/v1/characters/{name}/likes",
            id: "addLike",
            tag: "likes",
            summary: "Like a character",
            description: "Counts one like, once per `Idempotency-Key` (a repeated key is \
                          answered 202 with `counted: false` and `idempotent-replayed: true`). \
                          Answered once the like is stored. Has its own per-client rate (429) \
                          besides the `/v1/` rate. No request body.",
            parameters: vec![
                name_parameter(),
                header_parameter(
                    "Idempotency-Key",
                    "Makes a retried POST count once: 1 to 128 visible ASCII characters \
                     (0x21–0x7E).",
                    string().pattern(Some("^[!-~]{1,128}$")),
                ),
            ],
            body: None,
            answers: vec![(
                "202",
                ResponseBuilder::new()
                    .description("Stored.")
                    .content("application/json", json(&LikeAdded::name()))
                    .header(
                        super::likes::REPLAYED,
                        HeaderBuilder::new()
                            .schema(string().enum_values(Some(["true"])))
                            .description(Some(
                                "`true` when this key had been counted before (the like was \
                                 not counted again); absent otherwise.",
                            ))
                            .build(),
                    )
                    .build(),
            )],
            errors: named(&[
                InvalidHeader,
                LikesUnavailable,
                OutcomeUnknown,
                ShuttingDown,
            ]),
            admin: false,
            draining_503: false,
        },
        Operation {
            method: HttpMethod::Get,
            path: "/v1/characters/{name}/expectation",
            id: "getExpectation",
            tag: "engine",
            summary: "Price a character's equipped items",
            description: "For each equipped item (and, as totals, each preset): the target its \
                          current potential implies, the expected cost of reaching it (tier-up \
                          from rare, then rolls), the additional potential, the star force and \
                          the flames. Items that cannot be priced carry a reason. Unknown query \
                          parameters are refused (400 `invalid_query`). The answer is kept \
                          ready by (equipment content hash, options): a repeat sends the same \
                          bytes, gzip-compressed when `Accept-Encoding` allows gzip, with a \
                          strong ETag per representation (`If-None-Match` → 304). A changed \
                          equipment body has a new hash, so it is never answered with an \
                          earlier valuation.",
            parameters: valuation_parameters,
            body: None,
            answers: vec![
                (
                    "200",
                    gzip_header(valuation_header(tier_headers(
                        ResponseBuilder::new()
                            .description(
                                "The valuation (`application/json`, possibly \
                                 `Content-Encoding: gzip`).",
                            )
                            .content("application/json", json(&CharacterExpectation::name())),
                        VALUATION_ETAG,
                    )))
                    .build(),
                ),
                (
                    "304",
                    valuation_header(tier_headers(
                        ResponseBuilder::new().description("Not modified: `If-None-Match` matched."),
                        VALUATION_ETAG,
                    ))
                    .build(),
                ),
            ],
            errors: named(&[InvalidQuery, StorageUnavailable]),
            admin: false,
            draining_503: false,
        },
        engine_operation(
            "/v1/potential/probability",
            "potentialProbability",
            "Probability that one potential reset reaches a target",
            "Exact probability over the published per-line rate tables (no simulation), expected \
             resets, reset-count quantiles and meso cost. Requires `Content-Type: \
             application/json`; any decoding failure is 400 `invalid_request`.",
            "ProbabilityRequest",
            answer::<ProbabilityResponse>("The expectation."),
        ),
        engine_operation(
            "/v1/starforce/expectation",
            "starforceExpectation",
            "Expected mesos, destructions, spare items and attempts from star a to b, with their \
             quantiles",
            "Exact KMS star-force expectations by the rules asked for (`rules`, default \
             kms-2026: star catch always applied, a destroyed item becomes a trace repaired to \
             12★ or at its own star, chosen by `repair`) and their spread (`quantiles`: p50…p99 \
             of mesos and of destructions). Attempts below 15★ are priced with the configured \
             cost table (`cost_table`). Requires `Content-Type: application/json`.",
            "StarforceRequest",
            answer::<StarforceAnswer>("The expectation."),
        ),
        engine_operation(
            "/v1/flames/probability",
            "flameProbability",
            "The odds of one flame reaching a score (or a weapon's ATT tier), and the resets \
             until it does",
            "Exact P(one flame or meso reset scores at least `min_score`) on armour and \
             accessories (score = main stat + 10 × all stat % + 4 × ATT, MATT for magicians; \
             Xenon counts STR, DEX and LUK; a secondary stat at `secondary_weight`), or P(a \
             weapon's ATT/MATT line reaches `min_tier`); resets until success follow the \
             geometric law. Boss items draw 4 lines at tiers 3–7, others 1–4 lines (40/40/16/4 \
             %) at tiers 1–5. Requires `Content-Type: application/json`.",
            "FlameRequest",
            answer::<FlameAnswer>("The odds and the resets."),
        ),
        admin_operation(
            HttpMethod::Get,
            "/v1/admin/state",
            "adminState",
            "Breakers, caches, likes and this instance",
            "Scope `admin:read`. Every request (refusals included) is recorded in the audit log.",
            &[],
            answer::<AdminState>("The state."),
        ),
        Operation {
            parameters: vec![name_parameter()],
            ..admin_operation(
                HttpMethod::Post,
                "/v1/admin/characters/{name}/purge",
                "adminPurge",
                "Purge a character's cached equipment",
                "Scope `cache:purge`. Authentication is checked before the name. The name is \
                 looked up locally only (memory, database); unknown → 404. Every request \
                 (refusals included) is recorded in the audit log.",
                &[
                    InvalidCharacterName,
                    InvalidPath,
                    CharacterNotFound,
                    NotFound,
                    StorageUnavailable,
                ],
                answer::<PurgeResponse>("Purged."),
            )
        },
        admin_operation(
            HttpMethod::Post,
            "/v1/admin/likes/sync",
            "adminSync",
            "Run one like sync pass now",
            "Scope `likes:sync`. Every request (refusals included) is recorded in the audit log.",
            &[Conflict, LikesUnavailable],
            answer::<SyncResponse>(
                "`synced` with the likes moved, or `idle` (nothing to do / no Redis) with 0.",
            ),
        ),
        admin_operation(
            HttpMethod::Get,
            "/v1/admin/backups",
            "adminBackups",
            "Like backup files waiting to be applied",
            "Scope `likes:backup`. Every request (refusals included) is recorded in the audit \
             log.",
            &[],
            answer::<BackupsResponse>("The files."),
        ),
        admin_operation(
            HttpMethod::Post,
            "/v1/admin/backups/apply",
            "adminApplyBackups",
            "Apply the backup files that can be applied now",
            "Scope `likes:backup`. Every request (refusals included) is recorded in the audit \
             log.",
            &[],
            answer::<ApplyBackupsResponse>("What was applied and what is left."),
        ),
        admin_operation(
            HttpMethod::Get,
            "/v1/admin/config",
            "adminConfig",
            "The configuration, secrets redacted",
            "Scope `config:read`. Secrets appear only as whether they are set; URLs have their \
             passwords replaced. Every request (refusals included) is recorded in the audit log.",
            &[],
            answer::<AdminConfigSchema>("The configuration."),
        ),
        Operation {
            parameters: AuditQuery::into_params(|| Some(ParameterIn::Query)),
            ..admin_operation(
                HttpMethod::Get,
                "/v1/admin/audit",
                "adminAudit",
                "The newest audit entries",
                "Scope `admin:read`. Unknown query parameters are refused (400 \
                 `invalid_query`). Every request (refusals included) is recorded in the audit \
                 log; refused attempts (401, 403) are kept up to \
                 `MAPLE_CORE_AUDIT_REFUSED_KEEP` (the oldest beyond it are deleted), admitted \
                 ones all.",
                &[InvalidQuery, StorageUnavailable],
                answer::<AuditResponse>("Newest first."),
            )
        },
        Operation {
            method: HttpMethod::Get,
            path: "/health/live",
            id: "live",
            tag: "health",
            summary: "Liveness",
            description: "Always `{\"status\":\"ok\"}` while the process serves. Exempt from \
                          load shedding and the `/v1/` rate limit.",
            parameters: Vec::new(),
            body: None,
            answers: vec![("200", answer::<Liveness>("Alive."))],
            errors: guard(Guard::Exempt),
            admin: false,
            draining_503: false,
        },
        Operation {
            method: HttpMethod::Get,
            path: "/health/ready",
            id: "ready",
            tag: "health",
            summary: "Readiness",
            description: "Ready = started and not draining: 200 `ready`, or 200 `degraded` when \
                          the database or Redis does not answer within 250 ms (the service \
                          degrades instead of leaving the load balancer: stale answers, likes \
                          to Redis); 503 `draining` once shutdown has begun. Each dependency's \
                          state is in `checks` and in the metric `maple_core_dependency_up`. \
                          Exempt from load shedding and the `/v1/` rate limit.",
            parameters: Vec::new(),
            body: None,
            answers: vec![(
                "200",
                answer::<Readiness>(
                    "Serving (`status: ready`, or `degraded` with the failing dependency in \
                     `checks`).",
                ),
            )],
            errors: guard(Guard::Exempt),
            admin: false,
            draining_503: true,
        },
        Operation {
            method: HttpMethod::Get,
            path: "/metrics",
            id: "metrics",
            tag: "health",
            summary: "Prometheus metrics",
            description: "Prometheus text exposition format 0.0.4 (`text/plain; \
                          version=0.0.4`). Exempt from load shedding and the `/v1/` rate limit.",
            parameters: Vec::new(),
            body: None,
            answers: vec![(
                "200",
                ResponseBuilder::new()
                    .description("The metrics.")
                    .content(
                        "text/plain",
                        ContentBuilder::new().schema(Some(string())).build(),
                    )
                    .build(),
            )],
            errors: guard(Guard::Exempt),
            admin: false,
            draining_503: false,
        },
        Operation {
            method: HttpMethod::Get,
            path: "/openapi.json",
            id: "openapi",
            tag: "health",
            summary: "This document",
            description: "The OpenAPI 3.1 description of this service, generated from its code.",
            parameters: Vec::new(),
            body: None,
            answers: vec![(
                "200",
                ResponseBuilder::new()
                    .description("The document.")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                            .build(),
                    )
                    .build(),
            )],
            errors: guard(Guard::Shed),
            admin: false,
            draining_503: false,
        },
    ]
}

/// `Error`: the body of every error response.
struct ErrorBodySchema;

impl PartialSchema for ErrorBodySchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "The body of every error response: `{\"error\":{\"code\":…,\"message\":…}}`.",
            ))
            .property(
                "error",
                ObjectBuilder::new()
                    .property("code", Ref::from_schema_name(ErrorCodeSchema::name()))
                    .property(
                        "message",
                        string().description(Some("For humans; may change.")),
                    )
                    .required("code")
                    .required("message"),
            )
            .required("error")
            .into()
    }
}

impl ToSchema for ErrorBodySchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// `ErrorCode`: every code, with a table of statuses and meanings from [`ErrorCode`].
struct ErrorCodeSchema;

impl PartialSchema for ErrorCodeSchema {
    fn schema() -> RefOr<Schema> {
        let mut table = String::from(
            "Stable `error.code` values (clients may branch on them; `message` is for humans \
             and may change).\n\n| code | HTTP status | meaning |\n|---|---|---|\n",
        );
        for code in ErrorCode::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                code.meaning()
            ));
        }
        string()
            .description(Some(table.trim_end()))
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCodeSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

/// `EquipmentSource`: the tiers, from [`Source`].
struct EquipmentSourceSchema;

impl PartialSchema for EquipmentSourceSchema {
    fn schema() -> RefOr<Schema> {
        string()
            .enum_values(Some(Source::ALL.iter().map(|source| source.as_str())))
            .into()
    }
}

impl ToSchema for EquipmentSourceSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "EquipmentSource".into()
    }
}

/// `Equipment`: Nexon's document, passed through; a few fields described.
struct EquipmentSchema;

impl PartialSchema for EquipmentSchema {
    fn schema() -> RefOr<Schema> {
        let nullable = |kind: Type| {
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                kind,
                Type::Null,
            ]))
        };
        let item = ObjectBuilder::new()
            .description(Some(
                "One equipped item as Nexon describes it (many more fields than listed).",
            ))
            .property("item_equipment_part", nullable(Type::String))
            .property("item_equipment_slot", nullable(Type::String))
            .property("item_name", nullable(Type::String))
            .property("starforce", nullable(Type::String))
            .property("potential_option_grade", nullable(Type::String))
            .property("additional_potential_option_grade", nullable(Type::String));
        ObjectBuilder::new()
            .description(Some(
                "Nexon's `character/item-equipment` document, verbatim (~350 KB). Only a few \
                 key fields are described; every field Nexon sends is passed through.",
            ))
            .property("date", nullable(Type::String))
            .property("character_class", nullable(Type::String))
            .property("preset_no", nullable(Type::Integer))
            .property(
                "item_equipment",
                utoipa::openapi::schema::ArrayBuilder::new().items(item),
            )
            .into()
    }
}

impl ToSchema for EquipmentSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Equipment".into()
    }
}

/// `AdminConfig`: [`crate::config::CoreConfig::redacted`].
struct AdminConfigSchema;

impl PartialSchema for AdminConfigSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Every declared setting by its variable, as it was read (the default when \
                 unset): secrets only as `<set>`/`<unset>`, URLs with passwords replaced.",
            ))
            .additional_properties(Some(string()))
            .into()
    }
}

impl ToSchema for AdminConfigSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "AdminConfig".into()
    }
}
