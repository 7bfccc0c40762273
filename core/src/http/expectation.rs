//! The engine's HTTP endpoints for a single question: potential probability, star-force
//! expectation and flame probability (a character's whole valuation is `valuation`).
//!
//! Rule: request bodies are decoded strictly (unknown fields refused) and every refusal names
//! the field; the engine itself never sees unvalidated input.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};

use super::client::ClientIp;
use super::state::AppState;
use crate::error::ApiError;
use maple_engine::flame;
use maple_engine::model::{Grade, ItemType, MainStat, Method};
use maple_engine::potential::{self, QUANTILES, Target, Term};
use maple_engine::starforce;
use maple_engine::tierup;

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(value)| value).map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(crate::config::Limits::default().max_body_bytes)
        } else {
            ApiError::InvalidRequest(e.body_text())
        }
    })
}

/// A term's minimum.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TermMin)]
struct Min {
    #[schema(minimum = 1, maximum = 1000)]
    min: u32,
}

/// The stat term's stat and minimum.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TermStatMin)]
struct StatMin {
    stat: MainStat,
    #[schema(minimum = 1, maximum = 1000)]
    min: u32,
}

/// The target: each present (non-null) key is one term; all must hold. At least one term is
/// required; `null` is the same as absent.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    /// Main-stat % plus all-stat % summed over the lines ≥ `min`. For Xenon (`stat: "ALL"`)
    /// `min` is in all-stat %, each STR, DEX or LUK % line counting a third of its value (the
    /// community convention).
    stat_pct: Option<StatMin>,
    /// ATT % summed ≥ `min`.
    att_pct: Option<Min>,
    /// MATT % summed ≥ `min`.
    matt_pct: Option<Min>,
    /// At least `min` boss-damage lines.
    boss_lines: Option<Min>,
    /// Boss damage % summed over the lines ≥ `min` (by value: 40+30 is 70).
    boss_pct: Option<Min>,
    /// At least `min` ignore-defense lines.
    ied_lines: Option<Min>,
    /// Ignore-defense % summed over the lines ≥ `min` (by value; the game multiplies lines,
    /// the sum orders potentials the same way within a point).
    ied_pct: Option<Min>,
    /// At least `min` critical-damage lines.
    crit_damage_lines: Option<Min>,
    /// At least `min` item-drop lines.
    drop_lines: Option<Min>,
    /// At least `min` lines that are item drop or meso amount.
    meso_or_drop_lines: Option<Min>,
    /// Cooldown reduction seconds summed ≥ `min`.
    cooldown_seconds: Option<Min>,
    /// At least `min` lines that are ATT % (or MATT %) or boss damage.
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

/// Unknown fields are refused. `level` must be within the tables (120..=250 for most parts).
/// The (`cube`, `grade`) pair must have a rate table; the built-in tables cover red, black,
/// meso (black tables) and meister at unique/legendary; master at epic/unique; occult at
/// rare/epic (other pairs: 400).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbabilityRequest {
    item_type: ItemType,
    #[schema(maximum = 300)]
    level: u32,
    grade: Grade,
    cube: Method,
    target: TargetSpec,
    /// The item's grade now: tier-up is counted from here to `grade` (default rare). Above
    /// `grade` is a 400 naming `from_grade`.
    #[serde(default)]
    from_grade: Option<Grade>,
}

/// `POST /v1/potential/probability`.
pub(super) async fn probability(
    State(state): State<AppState>,
    request: Result<Json<ProbabilityRequest>, JsonRejection>,
) -> Result<Json<ProbabilityResponse>, ApiError> {
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
    let quantile = |q: f64| potential::resets_quantile(p, q);
    Ok(Json(ProbabilityResponse {
        probability: p,
        expected_resets,
        quantiles: ResetQuantiles {
            p50: quantile(QUANTILES[0].1),
            p75: quantile(QUANTILES[1].1),
            p90: quantile(QUANTILES[2].1),
            p95: quantile(QUANTILES[3].1),
            p99: quantile(QUANTILES[4].1),
        },
        cost_per_reset,
        expected_cost,
        tier_up_resets_from_rare: tierup::path(Grade::Rare, request.grade, request.cube, false)
            .map(|steps| steps.iter().map(|(_, r)| r).sum::<f64>()),
        from_grade,
        tier_up_resets: tier_up
            .as_ref()
            .map(|steps| steps.iter().map(|(_, r)| r).sum::<f64>()),
        tier_up_cost,
    }))
}

/// The odds of one potential and what reaching it costs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ProbabilityResponse {
    /// P(one reset meets the target).
    #[schema(minimum = 0, maximum = 1)]
    probability: f64,
    /// 1 / probability; null when the probability is 0.
    expected_resets: Option<f64>,
    quantiles: ResetQuantiles,
    /// Mesos per reset; null when no price is configured for the method (master, meister,
    /// occult).
    cost_per_reset: Option<u64>,
    /// expected_resets × cost_per_reset; null when either is null.
    expected_cost: Option<f64>,
    /// Expected resets to tier up from rare to `grade` (0 at rare); null for methods without
    /// tier-up rates (master, meister, occult).
    tier_up_resets_from_rare: Option<f64>,
    /// The grade tier-up is counted from (the request's `from_grade`, rare by default).
    from_grade: Grade,
    /// Expected resets to tier up from `from_grade` to `grade` (0 when they are equal); null
    /// for methods without tier-up rates.
    tier_up_resets: Option<f64>,
    /// Mesos of those resets, each step at its own grade's price; null without tier-up rates
    /// or prices.
    tier_up_cost: Option<f64>,
}

/// Resets needed to succeed with 50/75/90/95/99% confidence; each null when the probability
/// is 0.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ResetQuantiles {
    p50: Option<u64>,
    p75: Option<u64>,
    p90: Option<u64>,
    p95: Option<u64>,
    p99: Option<u64>,
}

/// The star-force answer: the exact means, their spread and the cost table used.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = StarforceResponse)]
pub(super) struct StarforceAnswer {
    #[serde(flatten)]
    expectation: starforce::Expectation,
    quantiles: starforce::Spread,
    /// The 0–14★ cost table the server is configured with (`MAPLE_STARFORCE_COSTS`).
    cost_table: starforce::CostTable,
}

/// `POST /v1/starforce/expectation`.
pub(super) async fn starforce(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    request: Result<Json<starforce::Request>, JsonRejection>,
) -> Result<Json<StarforceAnswer>, ApiError> {
    let request = body(request)?;
    let engine = state.pricing.engine.clone();
    // A spread not cached yet is milliseconds of simulation: off the async workers, with leave
    // from the pricing gate (bounded per client and overall).
    let permit = if engine.starforce.is_cached(&request) {
        None
    } else {
        Some(state.admission.pricing.admit(client).await?)
    };
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
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

/// `POST /v1/flames/probability`: a target the user picks.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FlameRequest {
    /// The item's base_equipment_level.
    #[schema(maximum = 300)]
    level: u32,
    #[serde(default)]
    weapon: bool,
    #[serde(default)]
    boss: bool,
    main_stat: MainStat,
    #[serde(default)]
    magician: bool,
    /// Armour and accessories: the score to reach.
    #[serde(default)]
    min_score: Option<f64>,
    /// Weapons: the ATT (MATT) line's tier to reach.
    #[serde(default)]
    min_tier: Option<u32>,
    #[serde(default)]
    flame: flame::FlameKind,
    /// Mesos per flame, for the flames the game sells no meso price for.
    #[serde(default)]
    flame_price: Option<u64>,
    /// A secondary stat's weight in the score, 0..=1 (hundredths).
    #[serde(default)]
    secondary_weight: Option<f64>,
}

/// The answer: the odds of one flame and the resets until success.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FlameResponse)]
pub(super) struct FlameAnswer {
    #[serde(flatten)]
    resets: flame::Resets,
    /// `expected_resets` × the price of one (null without a price for that flame).
    expected_mesos: Option<f64>,
    price_per_flame: Option<u64>,
    flame: flame::FlameKind,
}

/// `POST /v1/flames/probability`.
pub(super) async fn flames(
    State(state): State<AppState>,
    request: Result<Json<FlameRequest>, JsonRejection>,
) -> Result<Json<FlameAnswer>, ApiError> {
    let request = body(request)?;
    let invalid = |message: &str| ApiError::InvalidRequest(message.to_owned());
    if request.level > 300 {
        return Err(invalid("level: must be within 0..=300"));
    }
    if request.main_stat == MainStat::Hp {
        return Err(invalid(
            "main_stat: HP (Demon Avenger) has no sourced flame score; use STR, DEX, INT, LUK or ALL",
        ));
    }
    let secondary_per_mille = secondary_per_mille(request.secondary_weight)
        .map_err(|reason| ApiError::InvalidRequest(format!("secondary_weight: {reason}")))?;
    let item = flame::FlameItem {
        level: request.level,
        weapon: request.weapon,
        boss: request.boss,
        base_attack: 0,
        base_magic: 0,
    };
    let probability = match (request.weapon, request.min_score, request.min_tier) {
        (true, None, Some(tier)) if (1..=7).contains(&tier) => {
            flame::weapon_probability(&item, request.flame, tier)
        }
        (true, None, Some(_)) => return Err(invalid("min_tier: must be within 1..=7")),
        (true, _, _) => {
            return Err(invalid(
                "a weapon takes min_tier (its ATT/MATT line's tier), not min_score",
            ));
        }
        (false, Some(score), None) if score.is_finite() && (0.0..=100_000.0).contains(&score) => {
            let scorer = flame::Scorer {
                main: request.main_stat,
                magician: request.magician,
                secondary_per_mille,
            };
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "within 0..=1e8"
            )]
            let milli = (score * 1000.0).ceil() as u64;
            let engine = state.pricing.engine.clone();
            tokio::task::spawn_blocking(move || {
                engine
                    .flames
                    .probability(&item, &scorer, request.flame, milli)
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
        }
        (false, Some(_), None) => return Err(invalid("min_score: must be within 0..=100000")),
        (false, _, _) => {
            return Err(invalid(
                "armour and accessories take min_score, not min_tier",
            ));
        }
    };
    let price = request.flame_price.or(request.flame.price());
    let resets = flame::Resets::of(probability);
    #[expect(clippy::cast_precision_loss, reason = "meso prices are far below 2^53")]
    let expected_mesos = resets
        .expected_resets
        .zip(price)
        .map(|(n, price)| n * price as f64);
    Ok(Json(FlameAnswer {
        resets,
        expected_mesos,
        price_per_flame: price,
        flame: request.flame,
    }))
}

/// A secondary stat's weight (0..=1, rounded to hundredths) in thousandths.
pub(super) fn secondary_per_mille(weight: Option<f64>) -> Result<u16, String> {
    match weight {
        None => Ok(0),
        Some(weight) if (0.0..=1.0).contains(&weight) => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "within 0..=100"
            )]
            let hundredths = (weight * 100.0).round() as u16;
            Ok(hundredths * 10)
        }
        Some(weight) => Err(format!("must be within 0..=1 (got {weight})")),
    }
}
