//! Every operation the router serves: its summary, parameters, answers and the error codes it
//! may answer. The e2e test `openapi` holds this list to the router both ways.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Response, ResponseBuilder};
use utoipa::{IntoParams, ToSchema};

use super::build::*;
use super::schemas::{AdminConfigSchema, EquipmentSchema};
use crate::error::ErrorCode::{self, *};
use crate::http::admin::{
    AdminState, ApplyBackupsResponse, AuditQuery, AuditResponse, BackupsResponse, PurgeResponse,
    SyncResponse,
};
use crate::http::characters::CharacterBasic;
use crate::http::expectation::{FlameAnswer, ProbabilityResponse, StarforceAnswer};
use crate::http::likes::{LikeAdded, LikeCountAnswer};
use crate::http::ops::{Liveness, Readiness};
use crate::http::ready::CharacterExpectation;
use crate::http::valuation::ValuationQuery;

/// Every operation the router serves.
pub(super) fn operations() -> Vec<Operation> {
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
    let admin_operation =
        |method, path, id, summary, scope: &'static str, extra: &[ErrorCode], answer: Response| {
            Operation {
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
            }
        };
    let engine_operation =
        |path, id, summary, description, body: &'static str, answer: Response| Operation {
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
            crate::http::valuation::VALUATION_HEADER,
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
                        crate::http::likes::REPLAYED,
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
                        ResponseBuilder::new()
                            .description("Not modified: `If-None-Match` matched."),
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
