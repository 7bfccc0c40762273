//! Star force: exact expected mesos, destructions and attempts from star a to b, and their
//! spread.
//!
//! KMS rates since 2025-03 (DOMAIN.md §6): failure keeps the star; destruction returns the
//! item to 12★. With C[s] the expected cost of going from s to s+1,
//! C[s] = (cost_s + d_s · Σ_{t=12}^{s−1} C[t]) / p_s — the same recursion gives destructions
//! and attempts. No simulation for the means.
//!
//! The spread ([`Spread`]): destructions are exact (their count is a zero-modified geometric
//! law, see [`destroy_quantile`]); mesos come from a seeded simulation of
//! [`SPREAD_TRIALS`] climbs, deterministic for a request (same seed, same figures on every
//! machine) and cached per (level band, stars, options) in [`Starforce`]. Its error against
//! a million-climb reference is measured by `examples/starforce_spread_error.rs` and stated in
//! `docs/benchmarks.md`.

use std::fmt;
use std::str::FromStr;

use maple_common::splitmix::SplitMix64;
use serde::{Deserialize, Serialize};

/// Success rates (percent) from 0★ to 29★.
const SUCCESS: [f64; 30] = [
    95.0, 90.0, 85.0, 85.0, 80.0, 75.0, 70.0, 65.0, 60.0, 55.0, 50.0, 45.0, 40.0, 35.0, 30.0, 30.0,
    30.0, 15.0, 15.0, 15.0, 30.0, 15.0, 15.0, 10.0, 10.0, 10.0, 7.0, 5.0, 3.0, 1.0,
];
/// Destruction rates (percent) from 0★ to 29★.
const DESTROY: [f64; 30] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.1, 2.1, 6.8, 6.8,
    8.5, 10.5, 12.75, 17.0, 18.0, 18.0, 18.0, 18.6, 19.0, 19.4, 19.8,
];
/// Where a destroyed item restarts.
const RESTART_STAR: usize = 12;

/// MVP grades' discount on attempts below 17★ (silver 3%, gold 5%, diamond and red 10%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mvp {
    Silver,
    Gold,
    Diamond,
}

impl Mvp {
    fn discount(self) -> f64 {
        match self {
            Self::Silver => 0.03,
            Self::Gold => 0.05,
            Self::Diamond => 0.10,
        }
    }
}

/// The PC-room discount on attempts below 17★.
const PC_ROOM_DISCOUNT: f64 = 0.05;
/// The discount event's share off every attempt's base cost.
const EVENT_DISCOUNT: f64 = 0.30;
/// Attempts at these stars always succeed during the 5/10/15 event.
const SURE_STARS_IN_EVENT: [usize; 3] = [5, 10, 15];
/// The MVP and PC-room discounts apply to attempts below this star.
const MEMBER_DISCOUNT_BELOW: usize = 17;

/// What the user asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub level: u32,
    pub from: u32,
    pub to: u32,
    #[serde(default)]
    pub star_catch: bool,
    #[serde(default)]
    pub safeguard: bool,
    #[serde(default)]
    pub discount_30: bool,
    #[serde(default)]
    pub destroy_reduction: bool,
    /// The 5/10/15 event: attempts at 5★, 10★ and 15★ always succeed.
    #[serde(default)]
    pub event_5_10_15: bool,
    /// The player's MVP grade (discount below 17★, added to the 30% event).
    #[serde(default)]
    pub mvp: Option<Mvp>,
    /// Enhancing from a PC room (5% below 17★, added to the others).
    #[serde(default)]
    pub pc_room: bool,
    /// What a replacement item costs; each expected destruction adds it to the cost.
    #[serde(default)]
    pub replacement_mesos: Option<u64>,
}

impl Request {
    /// From `from` to `to` on an item of `level`, with no option.
    pub fn plain(level: u32, from: u32, to: u32) -> Self {
        Self {
            level,
            from,
            to,
            star_catch: false,
            safeguard: false,
            discount_30: false,
            destroy_reduction: false,
            event_5_10_15: false,
            mvp: None,
            pc_room: false,
            replacement_mesos: None,
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Expectation {
    /// Enhancement mesos plus, when `replacement_mesos` was given, replacements.
    pub expected_mesos: f64,
    pub expected_destroys: f64,
    pub expected_attempts: f64,
    /// The replacements' part of `expected_mesos` (0 without `replacement_mesos`).
    pub expected_replacement_mesos: f64,
}

/// A request that makes no sense; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarforceError {
    #[error("level: must be within 0..=300 (got {0})")]
    Level(u32),
    #[error("from: must not exceed to ({from} > {to})")]
    Order { from: u32, to: u32 },
    #[error("to: {to} stars exceed the maximum of {max} for level {level}")]
    AboveMaximum { to: u32, max: u32, level: u32 },
}

/// Which 0–14★ cost table prices an attempt (from 15★ both agree).
///
/// Sources disagree (DOMAIN.md §6): a maintained calculator divides by 2500 (0–9★) and by
/// 40000, 22000, 15000, 11000, 7500 (10–14★) — the table GMS uses; two KMS sites (2025–2026)
/// give `1000 + L³·(s+1)/36` and `/571, /314, /214, /157, /107`, which is exactly the first
/// table at 70% (25/0.7 ≈ 36, 400/0.7 ≈ 571, …): KMS's permanent 30% cut below 15★. We price
/// KMS (meso resets, Korean names), so [`CostTable::Kms`] is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostTable {
    /// The KMS sites' table (default).
    #[default]
    Kms,
    /// The calculator's (GMS) divisors below 15★.
    Calculator,
}

impl CostTable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kms => "kms",
            Self::Calculator => "calculator",
        }
    }
}

impl fmt::Display for CostTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CostTable {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kms" => Ok(Self::Kms),
            "calculator" => Ok(Self::Calculator),
            _ => Err("must be kms or calculator".to_owned()),
        }
    }
}

/// Most stars an item of `level` can have (KMS, 30★ cap since 2025).
pub fn max_stars(level: u32) -> u32 {
    match level {
        0..=94 => 5,
        95..=107 => 8,
        108..=117 => 10,
        118..=127 => 15,
        128..=137 => 20,
        _ => 30,
    }
}

/// Mesos per attempt at `star` on an item of `level`, before options: 100 · round(m · L³ ·
/// (s+1)^e / D + 10), L floored to a multiple of 10, D by star and [`CostTable`] (the KMS
/// table's `1000 + L³·(s+1)^e / D'` is the same form with D = 100 · D', also rounded to 100).
pub fn base_cost(table: CostTable, level: u32, star: u32) -> f64 {
    let l = f64::from(level / 10 * 10);
    let s = f64::from(star);
    let (exponent, divisor) = match (table, star) {
        (CostTable::Calculator, 0..=9) => (1.0, 2500.0),
        (CostTable::Calculator, 10) => (2.7, 40_000.0),
        (CostTable::Calculator, 11) => (2.7, 22_000.0),
        (CostTable::Calculator, 12) => (2.7, 15_000.0),
        (CostTable::Calculator, 13) => (2.7, 11_000.0),
        (CostTable::Calculator, 14) => (2.7, 7_500.0),
        (CostTable::Kms, 0..=9) => (1.0, 3_600.0),
        (CostTable::Kms, 10) => (2.7, 57_100.0),
        (CostTable::Kms, 11) => (2.7, 31_400.0),
        (CostTable::Kms, 12) => (2.7, 21_400.0),
        (CostTable::Kms, 13) => (2.7, 15_700.0),
        (CostTable::Kms, 14) => (2.7, 10_700.0),
        (_, _) => (2.7, 20_000.0),
    };
    let multiplier = match star {
        17 => 4.0 / 3.0,
        18 => 20.0 / 7.0,
        19 => 40.0 / 9.0,
        21 => 8.0 / 5.0,
        _ => 1.0,
    };
    100.0 * (multiplier * l.powi(3) * (s + 1.0).powf(exponent) / divisor + 10.0).round()
}

/// Success, keep and destroy probabilities (fractions) and the cost of one attempt.
fn attempt(table: CostTable, request: &Request, star: usize) -> (f64, f64, f64) {
    let mut success = SUCCESS[star] / 100.0;
    let mut destroy = DESTROY[star] / 100.0;
    if request.event_5_10_15 && SURE_STARS_IN_EVENT.contains(&star) {
        success = 1.0;
        destroy = 0.0;
    }
    if request.star_catch {
        // Success ×1.05; destroy and keep shrink in proportion to fill the rest.
        let caught = (success * 1.05).min(1.0);
        let rest = 1.0 - success;
        if rest > 0.0 {
            destroy *= (1.0 - caught) / rest;
        }
        success = caught;
    }
    if request.destroy_reduction && star <= 21 {
        destroy *= 0.7;
    }
    let star_u32 = u32::try_from(star).unwrap_or(u32::MAX);
    let base = base_cost(table, request.level, star_u32);
    // The discounts add up (30% event + MVP + PC room), the member ones below 17★ only.
    let mut discount = if request.discount_30 {
        EVENT_DISCOUNT
    } else {
        0.0
    };
    if star < MEMBER_DISCOUNT_BELOW {
        discount += request.mvp.map_or(0.0, Mvp::discount);
        if request.pc_room {
            discount += PC_ROOM_DISCOUNT;
        }
    }
    let mut cost = base * (1.0 - discount);
    if request.safeguard && (15..=17).contains(&star) {
        destroy = 0.0;
        cost += 2.0 * base;
    }
    (success, destroy, cost)
}

/// Refuses a request that makes no sense.
fn validate(request: &Request) -> Result<(), StarforceError> {
    if request.level > 300 {
        return Err(StarforceError::Level(request.level));
    }
    if request.from > request.to {
        return Err(StarforceError::Order {
            from: request.from,
            to: request.to,
        });
    }
    let max = max_stars(request.level);
    if request.to > max {
        return Err(StarforceError::AboveMaximum {
            to: request.to,
            max,
            level: request.level,
        });
    }
    Ok(())
}

/// Exact expectations for `request`, attempts priced with `table`.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn expect(table: CostTable, request: &Request) -> Result<Expectation, StarforceError> {
    validate(request)?;
    let to = request.to as usize;
    let mut cost = [0.0_f64; 30];
    let mut destroys = [0.0_f64; 30];
    let mut attempts = [0.0_f64; 30];
    for star in 0..to {
        let (p, d, c) = attempt(table, request, star);
        // A destroyed item climbs back from 12★ to `star` first.
        let climb = |v: &[f64; 30]| -> f64 {
            if star > RESTART_STAR {
                v[RESTART_STAR..star].iter().sum()
            } else {
                0.0
            }
        };
        cost[star] = (c + d * climb(&cost)) / p;
        destroys[star] = d * (1.0 + climb(&destroys)) / p;
        attempts[star] = (1.0 + d * climb(&attempts)) / p;
    }
    let from = request.from as usize;
    let expected_destroys: f64 = destroys[from..to].iter().sum();
    #[expect(clippy::cast_precision_loss, reason = "meso prices are far below 2^53")]
    let expected_replacement_mesos =
        request.replacement_mesos.map_or(0.0, |price| price as f64) * expected_destroys;
    // `+ 0.0`: an empty sum is −0.0, which JSON would show as `-0.0`.
    Ok(Expectation {
        expected_mesos: cost[from..to].iter().sum::<f64>() + expected_replacement_mesos + 0.0,
        expected_destroys: expected_destroys + 0.0,
        expected_attempts: attempts[from..to].iter().sum::<f64>() + 0.0,
        expected_replacement_mesos: expected_replacement_mesos + 0.0,
    })
}

/// Climbs simulated for the mesos quantiles of one request.
pub const SPREAD_TRIALS: usize = 10_000;
/// Most attempt outcomes (leaving a star, up or destroyed) one spread may simulate; a chain
/// that needs more gets fewer climbs, down to [`MIN_SPREAD_TRIALS`], or no mesos quantiles.
pub const SPREAD_WORK: f64 = 4.0e6;
/// Fewest climbs whose quantiles are still reported.
pub const MIN_SPREAD_TRIALS: usize = 3_000;
/// The simulation's seed: the same figures for the same request, everywhere, always.
const SPREAD_SEED: u64 = 0x4d61_706c_6553_7461;

/// The five quantiles players read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles<T> {
    pub p50: T,
    pub p75: T,
    pub p90: T,
    pub p95: T,
    pub p99: T,
}

impl<T> Quantiles<T> {
    /// The levels, in field order.
    pub const LEVELS: [f64; 5] = [0.50, 0.75, 0.90, 0.95, 0.99];

    fn from_fn(mut f: impl FnMut(f64) -> T) -> Self {
        let [a, b, c, d, e] = Self::LEVELS;
        Self {
            p50: f(a),
            p75: f(b),
            p90: f(c),
            p95: f(d),
            p99: f(e),
        }
    }
}

/// How far the outcome of a climb may stray from its mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mesos spent (replacements included when `replacement_mesos` is given), from a seeded
    /// simulation; `None` when the chain is too long to simulate (see `trials`).
    pub mesos: Option<Quantiles<f64>>,
    /// Destructions, exact.
    pub destroys: Quantiles<u64>,
    /// Climbs simulated for `mesos` (0 when it is `None`).
    pub trials: usize,
}

impl Spread {
    /// Nothing to climb: every quantile is 0.
    pub fn zero() -> Self {
        Self {
            mesos: Some(Quantiles::from_fn(|_| 0.0)),
            destroys: Quantiles::from_fn(|_| 0),
            trials: 0,
        }
    }
}

/// One star's odds and cost, as the simulation uses them.
#[derive(Debug, Clone, Copy)]
struct Step {
    cost: f64,
    /// ln(1 − P(leave)) for the geometric count of attempts; `None` when every attempt leaves.
    ln_stay: Option<f64>,
    /// P(success | the attempt leaves the star).
    up: f64,
}

/// P(leaving `star` upwards before a destruction) for each star below `to`.
fn up_odds(table: CostTable, request: &Request) -> Vec<f64> {
    (0..request.to as usize)
        .map(|star| {
            let (p, d, _) = attempt(table, request, star);
            p / (p + d)
        })
        .collect()
}

/// The smallest k with P(destructions ≤ k) ≥ q.
///
/// From `from` the item reaches `to` without a destruction with probability a = Π r_s over
/// `from..to` (r_s: leaving s upwards rather than destroyed); after a destruction each climb
/// from 12★ succeeds with b = Π r_s over `12..to`. So P(D = 0) = a and
/// P(D = k) = (1 − a)(1 − b)^(k−1) b for k ≥ 1.
pub fn destroy_quantile(a: f64, b: f64, q: f64) -> u64 {
    if q <= a || b >= 1.0 {
        return u64::from(q > a);
    }
    // (1 − b)^k ≤ (1 − q) / (1 − a)
    let k = ((1.0 - q) / (1.0 - a)).ln() / (1.0 - b).ln();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "k is positive and far below 2^64 for any b the tables give"
    )]
    let k = k.ceil().max(1.0) as u64;
    k
}

/// The spread of `request`: exact destruction quantiles, simulated mesos quantiles.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn spread(table: CostTable, request: &Request) -> Result<Spread, StarforceError> {
    validate(request)?;
    Ok(spread_unchecked(table, request))
}

/// [`spread`] of a request already validated (the cache's key has its level floored, which
/// may sit in a lower band of [`max_stars`] than the request itself).
fn spread_unchecked(table: CostTable, request: &Request) -> Spread {
    let (from, to) = (request.from as usize, request.to as usize);
    let up = up_odds(table, request);
    let a: f64 = up[from..to].iter().product();
    let b: f64 = up[RESTART_STAR.min(to)..to].iter().product();
    let destroys = Quantiles::from_fn(|q| destroy_quantile(a, b, q));
    if from == to {
        return Spread::zero();
    }
    // Work per climb: each leave is one loop turn; E[leaves] by the same recursion as the
    // means (L[s] = (1 + (1 − r_s) Σ_{12..s} L) / r_s).
    let mut leaves = vec![0.0_f64; to];
    for star in 0..to {
        let climb: f64 = if star > RESTART_STAR {
            leaves[RESTART_STAR..star].iter().sum()
        } else {
            0.0
        };
        leaves[star] = (1.0 + (1.0 - up[star]) * climb) / up[star];
    }
    let per_climb: f64 = leaves[from..to].iter().sum();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive count, clamped below"
    )]
    let affordable = (SPREAD_WORK / per_climb).min(SPREAD_TRIALS as f64) as usize;
    if affordable < MIN_SPREAD_TRIALS {
        return Spread {
            mesos: None,
            destroys,
            trials: 0,
        };
    }
    Spread {
        mesos: Some(sampled_quantiles(table, request, affordable, SPREAD_SEED)),
        destroys,
        trials: affordable,
    }
}

/// One simulated climb's outcome.
#[derive(Debug, Clone, Copy)]
struct Climb {
    mesos: f64,
    destroys: u64,
}

/// `trials` climbs of a validated `request` from `seed`.
fn climbs(table: CostTable, request: &Request, trials: usize, seed: u64) -> Vec<Climb> {
    let (from, to) = (request.from as usize, request.to as usize);
    let steps: Vec<Step> = (0..to)
        .map(|star| {
            let (p, d, cost) = attempt(table, request, star);
            let leave = p + d;
            Step {
                cost,
                ln_stay: (leave < 1.0).then(|| (1.0 - leave).ln()),
                up: p / leave,
            }
        })
        .collect();
    #[expect(clippy::cast_precision_loss, reason = "meso prices are far below 2^53")]
    let replacement = request.replacement_mesos.map_or(0.0, |price| price as f64);
    let mut rng = SplitMix64::new(seed);
    (0..trials)
        .map(|_| {
            let mut climb = Climb {
                mesos: 0.0,
                destroys: 0,
            };
            let mut star = from;
            while star < to {
                let step = steps[star];
                // Attempts until one leaves the star: geometric, drawn at once.
                let attempts = step
                    .ln_stay
                    .map_or(1.0, |ln_stay| 1.0 + (rng.open01().ln() / ln_stay).floor());
                climb.mesos += attempts * step.cost;
                if rng.open01() < step.up {
                    star += 1;
                } else {
                    star = RESTART_STAR;
                    climb.destroys += 1;
                    climb.mesos += replacement;
                }
            }
            climb
        })
        .collect()
}

/// Mesos quantiles of `trials` simulated climbs from `seed` (nearest rank). [`spread`] uses
/// [`SPREAD_TRIALS`] and a fixed seed; the error example compares it with a million climbs.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn mesos_quantiles(
    table: CostTable,
    request: &Request,
    trials: usize,
    seed: u64,
) -> Result<Quantiles<f64>, StarforceError> {
    validate(request)?;
    Ok(sampled_quantiles(table, request, trials, seed))
}

fn sampled_quantiles(
    table: CostTable,
    request: &Request,
    trials: usize,
    seed: u64,
) -> Quantiles<f64> {
    let mut samples: Vec<f64> = climbs(table, request, trials.max(1), seed)
        .into_iter()
        .map(|climb| climb.mesos)
        .collect();
    samples.sort_unstable_by(f64::total_cmp);
    Quantiles::from_fn(|q| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index below the sample count"
        )]
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    })
}

/// Star force as the service prices it: the configured cost table and a cache of spreads.
///
/// A spread costs milliseconds to simulate and never changes for the same input, so each is
/// kept per (level band, from, to, options); a character's items share a handful of them.
#[derive(Debug, Clone)]
pub struct Starforce {
    table: CostTable,
    spreads: moka::sync::Cache<Request, Spread>,
    /// One simulation at a time per process: a burst of uncached requests (each distinct
    /// `replacement_mesos` is one) takes one core, not all of them.
    simulating: std::sync::Arc<std::sync::Mutex<()>>,
}

/// Spreads kept (each a few dozen bytes).
const SPREAD_CACHE_ENTRIES: u64 = 16_384;

impl Starforce {
    pub fn new(table: CostTable) -> Self {
        Self {
            table,
            spreads: moka::sync::Cache::new(SPREAD_CACHE_ENTRIES),
            simulating: std::sync::Arc::default(),
        }
    }

    pub fn table(&self) -> CostTable {
        self.table
    }

    /// # Errors
    /// [`StarforceError`] naming the field that is out of range.
    pub fn expect(&self, request: &Request) -> Result<Expectation, StarforceError> {
        expect(self.table, request)
    }

    /// [`spread`], cached: requests that only differ by the level within its band of ten
    /// (the cost formula floors it) share one entry once validated. Concurrent misses on one
    /// key simulate once; misses on different keys simulate one after the other.
    ///
    /// # Errors
    /// [`StarforceError`] naming the field that is out of range.
    pub fn spread(&self, request: &Request) -> Result<Spread, StarforceError> {
        validate(request)?;
        let key = Request {
            level: request.level / 10 * 10,
            ..*request
        };
        Ok(self.spreads.get_with(key, || {
            // A poisoned lock only means another simulation panicked; the guard holds no data.
            let _one_at_a_time = self
                .simulating
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            spread_unchecked(self.table, &key)
        }))
    }
}

#[cfg(test)]
mod tests;
