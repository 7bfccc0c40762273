//! `GET /v1/characters/{name}/expectation`: a character's whole valuation, served like the
//! equipment it prices. A valuation is kept as a ready answer ([`Valued`]: JSON and gzip, a
//! strong ETag each) by (equipment content hash, options): a repeat sends bytes, honours
//! `Accept-Encoding: gzip` and answers a matching `If-None-Match` with 304. A new option set
//! for a body seen before starts from the body's parsed form ([`Gear`], kept by content hash)
//! and costs the pricing only.
//!
//! Rule: everything cached is keyed by the equipment's content hash, so a changed body can
//! never be answered with an old valuation: a body Nexon changed has a new hash, a new
//! valuation and a new ETag.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maple_common::nexon::Ocid;
use serde::Deserialize;

use super::characters::{resolve, tier_headers};
use super::client::ClientIp;
use super::extract::{accepts_gzip, etag_matches, parse_name};
use super::ready::{Ready, Valued};
use super::state::AppState;
use crate::equipment::Entry;
use crate::error::ApiError;
use maple_engine::model::Method;
use maple_engine::starforce;
use maple_engine::valuation::{self, Gear, Options};

/// Says whether a valuation was `computed` now or `cached` for the same equipment content.
pub const VALUATION_HEADER: &str = "x-maple-valuation";

/// Pricing choices a client may make per request; the rest come from configuration.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ValuationQuery {
    /// Reset method used to price potentials (default: configuration, `meso`). KMS sells no
    /// cubes since the meso reset (2024-01-25): `meso` is what a KMS player pays; `red` and
    /// `black` price with configured market cube prices and KMS tier-up rates.
    method: Option<Method>,
    /// Miracle time (doubled tier-up rates) (default: configuration, `false`).
    miracle_time: Option<bool>,
    /// Star-force rules, `kms-2026` (default) or `kms-2025`.
    rules: Option<starforce::Rules>,
    /// Under kms-2025 only: star catch on every attempt (default `false`); under kms-2026 its
    /// bonus always applies.
    star_catch: Option<bool>,
    /// Safeguard at 15–17★ (default: configuration, `false`).
    safeguard: Option<bool>,
    /// 30% star-force discount event (default: configuration, `false`).
    discount_30: Option<bool>,
    /// 30% destruction reduction event (up to 21★) (default: configuration, `false`).
    destroy_reduction: Option<bool>,
    /// Shining Star Force: 30% off attempts, 30% less destruction at ≤ 21★, 20% off recovery
    /// mesos (default `false`).
    shining: Option<bool>,
    /// The 5/10/15 event: attempts at 5★, 10★ and 15★ always succeed.
    event_5_10_15: Option<bool>,
    /// The 1+1 event: a success at ≤ 10★ adds a second star (default `false`).
    one_plus_one: Option<bool>,
    /// MVP grade: 3% / 5% / 10% off attempts below 17★, added to the 30% event.
    mvp: Option<starforce::Mvp>,
    /// PC room: 5% off attempts below 17★, added to the others.
    pc_room: Option<bool>,
    /// How a destroyed item is repaired under kms-2026: `cheapest` (default), `twelve` or
    /// `keep` (refused under kms-2025).
    repair: Option<starforce::Repair>,
    /// Price of one identical item, taken by every star-force repair (default: free).
    /// `replacement_mesos` is its older name; give one of the two.
    #[serde(alias = "replacement_mesos")]
    spare_mesos: Option<u64>,
    /// The flame score's weight of a secondary stat, 0..=1, rounded to hundredths (default 0:
    /// the KMS community score counts the main stat only).
    #[param(minimum = 0, maximum = 1)]
    flame_secondary_weight: Option<f64>,
}

impl ValuationQuery {
    /// The options asked for, the configured defaults for the rest.
    fn options(self, defaults: Options) -> Result<Options, ApiError> {
        let flame_secondary_per_mille = match self.flame_secondary_weight {
            None => defaults.flame_secondary_per_mille,
            weight => super::expectation::secondary_per_mille(weight).map_err(|reason| {
                ApiError::InvalidQuery {
                    field: "flame_secondary_weight",
                    reason,
                }
            })?,
        };
        let rules = self.rules.unwrap_or(defaults.rules);
        let repair = self.repair.unwrap_or(defaults.repair);
        if rules == starforce::Rules::Kms2025 && repair == starforce::Repair::Keep {
            return Err(ApiError::InvalidQuery {
                field: "repair",
                reason: starforce::StarforceError::RepairUnderOldRules.to_string(),
            });
        }
        Ok(Options {
            method: self.method.unwrap_or(defaults.method),
            miracle_time: self.miracle_time.unwrap_or(defaults.miracle_time),
            rules,
            star_catch: self.star_catch.unwrap_or(defaults.star_catch),
            safeguard: self.safeguard.unwrap_or(defaults.safeguard),
            discount_30: self.discount_30.unwrap_or(defaults.discount_30),
            destroy_reduction: self.destroy_reduction.unwrap_or(defaults.destroy_reduction),
            shining: self.shining.unwrap_or(defaults.shining),
            event_5_10_15: self.event_5_10_15.unwrap_or(defaults.event_5_10_15),
            one_plus_one: self.one_plus_one.unwrap_or(defaults.one_plus_one),
            mvp: self.mvp.or(defaults.mvp),
            pc_room: self.pc_room.unwrap_or(defaults.pc_room),
            repair,
            spare_mesos: self.spare_mesos.or(defaults.spare_mesos),
            flame_secondary_per_mille,
        })
    }
}

/// `GET /v1/characters/{name}/expectation`.
pub(super) async fn character(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ValuationQuery>, QueryRejection>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = parse_name(path)?;
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery {
        field: "query",
        reason: e.body_text(),
    })?;
    let options = query.options(state.pricing.engine.defaults)?;
    let ocid = resolve(&state, client, &name).await?;
    let served = state.characters.equipment.get(&ocid).await?;
    let key = (served.entry.sha256, options);
    let (valued, outcome) = match state.pricing.valuations.get(&key) {
        Some(valued) if valued.is_for(&name, &ocid) => (valued, "cached"),
        cached => {
            let (valued, outcome) = match cached {
                // The same content under another name or ocid: its valuation holds as it is.
                Some(other) => {
                    let valuation = other.valuation();
                    let valued = offload(move || Ok(Valued::new(name, ocid, &valuation))).await?;
                    (valued, "cached")
                }
                None => {
                    // Pricing no cache answers: leave from the gate first (bounded per client
                    // and overall); the work stops if this request goes away.
                    let permit = state.admission.pricing.admit(client).await?;
                    let watch = permit.watch();
                    let gear = gear(&state, &served.entry, &ocid).await?;
                    let engine = Arc::clone(&state.pricing.engine);
                    let metrics = state.metrics.clone();
                    let valued = offload(move || {
                        let abandoned = permit.abandoned();
                        let stop = || abandoned.load(std::sync::atomic::Ordering::Relaxed);
                        let Some(valuation) =
                            valuation::value_character_unless(&engine, &gear, options, &stop)
                        else {
                            metrics
                                .pricing_admissions_total
                                .inc(crate::metrics::PricingAdmission::Abandoned);
                            return Err(ApiError::Timeout);
                        };
                        drop(permit);
                        let json = serde_json::to_vec(&valuation).map_err(|e| {
                            ApiError::Internal(format!("encoding a valuation: {e}"))
                        })?;
                        Ok(Valued::new(name, ocid, &json))
                    })
                    .await?;
                    watch.done();
                    (valued, "computed")
                }
            };
            let valued = Arc::new(valued);
            state.pricing.valuations.insert(key, Arc::clone(&valued));
            (valued, outcome)
        }
    };
    let mut headers = tier_headers(&served);
    headers.insert(VALUATION_HEADER, HeaderValue::from_static(outcome));
    Ok(respond(&valued.ready, &request_headers, headers))
}

/// The parsed form of `entry`'s body: kept by content hash, else made from the body (the
/// recently decompressed copy when there is one) off the async workers. Concurrent requests
/// for one body parse it once: the others wait for that parse.
async fn gear(state: &AppState, entry: &Arc<Entry>, ocid: &Ocid) -> Result<Arc<Gear>, ApiError> {
    if let Some(gear) = state.pricing.gear.get(&entry.sha256) {
        return Ok(gear);
    }
    let gears = state.pricing.gear.clone();
    let bodies = state.characters.bodies.clone();
    let (entry, ocid) = (Arc::clone(entry), ocid.clone());
    offload(move || {
        gears
            .try_get_with(entry.sha256, || {
                let parsed = match bodies.get(&entry.sha256) {
                    Some(body) => Gear::parse(&body),
                    None => Gear::parse(&entry.decompress(&ocid)?),
                };
                parsed
                    .map(Arc::new)
                    .map_err(|e| ApiError::UpstreamUnavailable {
                        cause: format!("malformed equipment response: {e}"),
                    })
            })
            // The parse's own error for the request that ran it; its text for those waiting.
            .map_err(|shared| {
                Arc::try_unwrap(shared).unwrap_or_else(|shared| ApiError::UpstreamUnavailable {
                    cause: shared.to_string(),
                })
            })
    })
    .await
}

/// `work` (CPU: decoding, pricing, compressing) on the blocking pool.
async fn offload<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("valuation task: {e}")))?
}

/// `ready` in the representation the client takes, or 304 when its `If-None-Match` names it.
fn respond(ready: &Ready, request_headers: &HeaderMap, mut headers: HeaderMap) -> Response {
    let gzip = accepts_gzip(request_headers);
    if let Ok(etag) = HeaderValue::from_str(ready.etag(gzip)) {
        headers.insert(header::ETAG, etag);
    }
    if etag_matches(request_headers, &ready.etags) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (headers, ready.body(gzip)).into_response()
}
