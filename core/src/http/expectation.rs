//! The engine's HTTP endpoints: potential probability, star-force expectation, and the
//! valuation of a character's equipment.
//!
//! Rule: request bodies are decoded strictly (unknown fields refused) and every refusal names
//! the field; the engine itself never sees unvalidated input.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::characters::{decompress, equipment_entry};
use super::client::ClientIp;
use super::extract::parse_name;
use super::state::AppState;
use crate::engine::model::{Grade, ItemType, MainStat, Method};
use crate::engine::potential::{self, QUANTILES, Target, Term};
use crate::engine::starforce;
use crate::engine::tierup;
use crate::engine::valuation::{self, Equipment, Options};
use crate::error::ApiError;

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(value)| value).map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(crate::config::Limits::default().max_body_bytes)
        } else {
            ApiError::InvalidRequest(e.body_text())
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Min {
    min: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatMin {
    stat: MainStat,
    min: u32,
}

/// The target object: each present key is one term; all must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    stat_pct: Option<StatMin>,
    att_pct: Option<Min>,
    matt_pct: Option<Min>,
    boss_lines: Option<Min>,
    boss_pct: Option<Min>,
    ied_lines: Option<Min>,
    ied_pct: Option<Min>,
    crit_damage_lines: Option<Min>,
    drop_lines: Option<Min>,
    meso_or_drop_lines: Option<Min>,
    cooldown_seconds: Option<Min>,
    att_or_boss_lines: Option<Min>,
}

impl TargetSpec {
    fn terms(self) -> Vec<Term> {
        let min = |spec: Option<Min>, make: fn(u32) -> Term| spec.map(|s| make(s.min));
        [
            self.stat_pct.map(|s| Term::StatPct {
                stat: s.stat,
                min: s.min,
            }),
            min(self.att_pct, |min| Term::AttPct { min }),
            min(self.matt_pct, |min| Term::MattPct { min }),
            min(self.boss_lines, |min| Term::BossLines { min }),
            min(self.boss_pct, |min| Term::BossPct { min }),
            min(self.ied_lines, |min| Term::IedLines { min }),
            min(self.ied_pct, |min| Term::IedPct { min }),
            min(self.crit_damage_lines, |min| Term::CritDamageLines { min }),
            min(self.drop_lines, |min| Term::DropLines { min }),
            min(self.meso_or_drop_lines, |min| Term::MesoOrDropLines { min }),
            min(self.cooldown_seconds, |min| Term::CooldownSeconds { min }),
            min(self.att_or_boss_lines, |min| Term::AttOrBossLines { min }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbabilityRequest {
    item_type: ItemType,
    level: u32,
    grade: Grade,
    cube: Method,
    target: TargetSpec,
    /// The item's grade now: tier-up is counted from here to `grade` (default rare).
    #[serde(default)]
    from_grade: Option<Grade>,
}

/// `POST /v1/potential/probability`.
pub(super) async fn probability(
    State(state): State<AppState>,
    request: Result<Json<ProbabilityRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(request)?;
    if request.level > 300 {
        return Err(ApiError::InvalidRequest(format!(
            "level: must be within 0..=300 (got {})",
            request.level
        )));
    }
    let from_grade = request.from_grade.unwrap_or(Grade::Rare);
    if from_grade > request.grade {
        return Err(ApiError::InvalidRequest(format!(
            "from_grade: {from_grade} is above grade {} (tier-up only goes up)",
            request.grade
        )));
    }
    let target =
        Target::new(request.target.terms()).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let engine = &state.pricing.engine;
    let p = potential::probability(
        &engine.tables,
        request.item_type,
        request.level,
        request.grade,
        request.cube.tables(),
        &target,
    )
    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let expected_resets = (p > 0.0).then(|| 1.0 / p);
    let quantiles: BTreeMap<&str, Option<u64>> = QUANTILES
        .iter()
        .map(|(name, q)| (*name, potential::resets_quantile(p, *q)))
        .collect();
    let cost_per_reset = engine
        .prices
        .per_reset(request.cube, request.level, request.grade);
    let expected_cost = expected_resets
        .zip(cost_per_reset)
        .map(|(resets, price)| resets * price as f64);
    // Tier-up from the item's grade now: each step's expected resets at that step's price.
    let tier_up = tierup::path(from_grade, request.grade, request.cube, false);
    let tier_up_cost: Option<f64> = tier_up.as_ref().and_then(|steps| {
        steps
            .iter()
            .map(|(grade, resets)| {
                engine
                    .prices
                    .per_reset(request.cube, request.level, *grade)
                    .map(|price| price as f64 * resets)
            })
            .sum()
    });
    Ok(Json(json!({
        "probability": p,
        "expected_resets": expected_resets,
        "quantiles": quantiles,
        "cost_per_reset": cost_per_reset,
        "expected_cost": expected_cost,
        "tier_up_resets_from_rare": tierup::path(Grade::Rare, request.grade, request.cube, false)
            .map(|steps| steps.iter().map(|(_, r)| r).sum::<f64>()),
        "from_grade": from_grade,
        "tier_up_resets": tier_up.as_ref().map(|steps| steps.iter().map(|(_, r)| r).sum::<f64>()),
        "tier_up_cost": tier_up_cost,
    })))
}

/// The star-force answer: the exact means, their spread and the cost table used.
#[derive(Debug, serde::Serialize)]
pub(super) struct StarforceAnswer {
    #[serde(flatten)]
    expectation: starforce::Expectation,
    quantiles: starforce::Spread,
    cost_table: starforce::CostTable,
}

/// `POST /v1/starforce/expectation`.
pub(super) async fn starforce(
    State(state): State<AppState>,
    request: Result<Json<starforce::Request>, JsonRejection>,
) -> Result<Json<StarforceAnswer>, ApiError> {
    let request = body(request)?;
    let engine = state.pricing.engine.clone();
    // A spread not cached yet is milliseconds of simulation: off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        let expectation = engine.starforce.expect(&request)?;
        let quantiles = engine.starforce.spread(&request)?;
        Ok::<_, starforce::StarforceError>(StarforceAnswer {
            expectation,
            quantiles,
            cost_table: engine.starforce.table(),
        })
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    answer
        .map(Json)
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// Says whether a valuation was `computed` now or `cached` for the same equipment content.
pub const VALUATION_HEADER: &str = "x-maple-valuation";

/// Pricing choices a client may make per request; the rest come from configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValuationQuery {
    method: Option<Method>,
    miracle_time: Option<bool>,
    star_catch: Option<bool>,
    safeguard: Option<bool>,
    discount_30: Option<bool>,
    destroy_reduction: Option<bool>,
    event_5_10_15: Option<bool>,
    mvp: Option<starforce::Mvp>,
    pc_room: Option<bool>,
    replacement_mesos: Option<u64>,
}

/// `GET /v1/characters/{name}/expectation`.
pub(super) async fn character(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ValuationQuery>, QueryRejection>,
) -> Result<([(&'static str, &'static str); 1], Json<Value>), ApiError> {
    let name = parse_name(path)?;
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery {
        field: "query",
        reason: e.body_text(),
    })?;
    let defaults = state.pricing.engine.defaults;
    let options = Options {
        method: query.method.unwrap_or(defaults.method),
        miracle_time: query.miracle_time.unwrap_or(defaults.miracle_time),
        star_catch: query.star_catch.unwrap_or(defaults.star_catch),
        safeguard: query.safeguard.unwrap_or(defaults.safeguard),
        discount_30: query.discount_30.unwrap_or(defaults.discount_30),
        destroy_reduction: query
            .destroy_reduction
            .unwrap_or(defaults.destroy_reduction),
        event_5_10_15: query.event_5_10_15.unwrap_or(defaults.event_5_10_15),
        mvp: query.mvp.or(defaults.mvp),
        pc_room: query.pc_room.unwrap_or(defaults.pc_room),
        replacement_mesos: query.replacement_mesos.or(defaults.replacement_mesos),
    };
    let (ocid, entry) = equipment_entry(&state, client, &name).await?;
    let key = (entry.sha256, options);
    let (valuation, source) = match state.pricing.valuations.get(&key).await {
        Some(cached) => (cached, "cached"),
        None => {
            // Only a valuation not seen before needs the body itself.
            let body = decompress(&state, entry, ocid.clone()).await?;
            let engine = state.pricing.engine.clone();
            // Decoding 350 KB and pricing 24 items is CPU work: off the async workers.
            let computed = tokio::task::spawn_blocking(move || {
                serde_json::from_slice::<Equipment>(&body).map(|equipment| {
                    let valued = valuation::value_character(&engine, &equipment, options);
                    serde_json::to_value(valued).unwrap_or(Value::Null)
                })
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::UpstreamUnavailable {
                cause: format!("malformed equipment response: {e}"),
            })?;
            let computed = std::sync::Arc::new(computed);
            state.pricing.valuations.insert(key, computed.clone()).await;
            (computed, "computed")
        }
    };
    Ok((
        [(VALUATION_HEADER, source)],
        Json(json!({
            "name": name.as_str(),
            "ocid": ocid,
            "valuation": *valuation,
        })),
    ))
}
