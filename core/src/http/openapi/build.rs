//! The building blocks of the description's operations: what the middleware may answer by
//! where a route sits, the error responses grouped by status from the codes an operation
//! declares, parameters and headers.

use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Schema};

use super::schemas::{EquipmentSourceSchema, ErrorBodySchema};
use crate::character::CharacterName;
use crate::equipment::StaleCause;
use crate::error::ErrorCode::{self, *};
use crate::http::ops::Readiness;
use maple_common::metrics::Label as _;

/// Error responses every operation shares, kept once under `components/responses`.
pub(super) const SHARED: &[(&str, ErrorCode, &str)] = &[
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
pub(super) enum Guard {
    /// `/v1/…`: the per-client rate and load shedding apply.
    V1,
    /// `/health/*` and `/metrics`: exempt from both.
    Exempt,
    /// `/openapi.json`: load shedding applies, the `/v1/` rate does not.
    Shed,
}

/// What the middleware may answer for a route (sizes, panics, the timeout, and by `guard`
/// the rate and load shedding).
pub(super) fn guard(guard: Guard) -> Vec<ErrorCode> {
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
pub(super) const NAMED: &[ErrorCode] = &[
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
pub(super) const ADMIN: &[ErrorCode] = &[Unauthorized, KeyExpired, Forbidden];

/// One operation: a route and method, what it takes and what it answers.
pub(super) struct Operation {
    pub(super) method: HttpMethod,
    pub(super) path: &'static str,
    pub(super) id: &'static str,
    pub(super) tag: &'static str,
    pub(super) summary: &'static str,
    pub(super) description: &'static str,
    pub(super) parameters: Vec<utoipa::openapi::path::Parameter>,
    pub(super) body: Option<&'static str>,
    /// The answers that are not errors, by status.
    pub(super) answers: Vec<(&'static str, Response)>,
    /// Every error code the handler and the middleware may answer.
    pub(super) errors: Vec<ErrorCode>,
    /// Admin routes: the bearer key.
    pub(super) admin: bool,
    /// `/health/ready`: its 503 while draining is a `Readiness`, not an error.
    pub(super) draining_503: bool,
}

impl Operation {
    pub(super) fn build(self) -> utoipa::openapi::path::Operation {
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
pub(super) fn status_meaning(status: u16) -> &'static str {
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
pub(super) fn error_response(description: &str, codes: &[ErrorCode]) -> Response {
    let listed = codes
        .iter()
        .map(|code| format!("`{}`", code.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = ResponseBuilder::new()
        .description(format!("{description} Codes: {listed}."))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(error_with(codes)))
                .build(),
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
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some(
                    "Seconds to wait before retrying: `1` for `overloaded` and `outcome_unknown`; \
                     for `rate_limited`, and for `upstream_rate_limited` / \
                     `upstream_circuit_open` when the upstream said how long.",
                ))
                .build(),
        );
    }
    if codes
        .iter()
        .any(|code| matches!(code, Unauthorized | KeyExpired))
    {
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
pub(super) fn error_with(codes: &[ErrorCode]) -> Schema {
    let code = string().enum_values(Some(codes.iter().map(|code| code.as_str())));
    let narrowed =
        ObjectBuilder::new().property("error", ObjectBuilder::new().property("code", code));
    AllOfBuilder::new()
        .item(Ref::from_schema_name(ErrorBodySchema::name()))
        .item(narrowed)
        .into()
}

/// `/health/ready`'s 503: `Readiness` while draining, or an error.
pub(super) fn draining(codes: &[ErrorCode]) -> Response {
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
pub(super) fn json(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// A 200 (or other) answer with a JSON body of `T`.
pub(super) fn answer<T: ToSchema>(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json(&T::name()))
        .build()
}

/// The `{name}` path parameter.
pub(super) fn name_parameter() -> utoipa::openapi::path::Parameter {
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
pub(super) fn header_parameter(
    name: &str,
    description: &str,
    schema: ObjectBuilder,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

pub(super) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The headers of a tiered answer (equipment, valuation): which tier, the ETag, `Vary`, `Age`.
pub(super) fn tier_headers(
    response: utoipa::openapi::ResponseBuilder,
    etag: &str,
) -> utoipa::openapi::ResponseBuilder {
    response
        .header(
            crate::http::characters::SOURCE_HEADER,
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
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some(
                    "Seconds since Nexon produced the data; only on a `stale` answer.",
                ))
                .build(),
        )
        .header(
            crate::http::characters::STALE_CAUSE_HEADER,
            HeaderBuilder::new()
                .schema(string().enum_values(Some(StaleCause::ALL.iter().map(|c| c.as_str()))))
                .description(Some(
                    "Why a `stale` answer is stale: `refreshing` or `upstream_failed`; only on \
                     a `stale` answer.",
                ))
                .build(),
        )
}

pub(super) fn gzip_header(
    response: utoipa::openapi::ResponseBuilder,
) -> utoipa::openapi::ResponseBuilder {
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

pub(super) fn negotiation_parameters() -> Vec<utoipa::openapi::path::Parameter> {
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

pub(super) const EQUIPMENT_ETAG: &str = "Strong ETag of this representation: `\"<sha256 hex>\"` for the \
JSON, `\"<sha256 hex>-gz\"` for the gzip bytes.";

pub(super) const VALUATION_ETAG: &str = "Strong ETag of this representation: `\"<sha256 of the JSON>\"` \
for the JSON, `\"<sha256 of the JSON>-gz\"` for the gzip bytes. The same content and options \
give the same tags on every instance.";
