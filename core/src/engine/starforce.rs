//! Star force: exact expected mesos, destructions, spare items and attempts from star a to
//! b, and their spread.
//!
//! Two rule sets (DOMAIN.md §6), chosen per request by [`Rules`]:
//! - **kms-2026** (the default; KMS since 2026-03-19, Update/799): star catch is gone and its
//!   bonus always applies (success × 1.05, keep and destroy shrunk in proportion); a destroyed
//!   item becomes a trace at min(star, 22), repaired either back to 12★ with one identical
//!   item, or at its own star with 1–4 identical items and recovery mesos ([`recovery`]). Which
//!   repair, per star, is [`Repair`]: the cheapest by default.
//! - **kms-2025** (2025-03-20 to 2026-03-18): star catch optional, a destroyed item goes back
//!   to 12★ and is replaced by one item.
//!
//! Failure keeps the star under both. With C[s] the expected cost of going from s to s+1 and
//! r(s) the star a destroyed item comes back at, C[s] = (cost_s + d_s·(R_s + Σ_{t=r(s)}^{s−1}
//! C[t])) / p_s, R_s the repair's own price. A destroyed item only ever comes back lower, so
//! C[s] depends on the stars below alone, and choosing the cheaper repair star by star is the
//! optimal policy of the decision problem E(s) = c + p·E(s+1) + k·E(s) + d·min(R + E(r)).
//! The same recursion gives destructions, items, recovery mesos and attempts. No simulation
//! for the means.
//!
//! The spread ([`Spread`]): destructions are exact (a zero-modified geometric law when every
//! repair goes to 12★, see [`destroy_quantile`]; a small dynamic programme otherwise); mesos
//! come from a seeded simulation of [`SPREAD_TRIALS`] climbs, deterministic for a request and
//! cached per (level band, stars, options) in [`Starforce`]. Its error against a
//! million-climb reference is measured by `examples/starforce_spread_error.rs` and stated in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use maple_common::splitmix::SplitMix64;
use serde::{Deserialize, Serialize};

pub mod recovery;

/// Base success rates (percent) from 0★ to 29★ (Update/767; before the × 1.05).
const SUCCESS: [f64; 30] = [
    95.0, 90.0, 85.0, 85.0, 80.0, 75.0, 70.0, 65.0, 60.0, 55.0, 50.0, 45.0, 40.0, 35.0, 30.0, 30.0,
    30.0, 15.0, 15.0, 15.0, 30.0, 15.0, 15.0, 10.0, 10.0, 10.0, 7.0, 5.0, 3.0, 1.0,
];
/// Base destruction rates (percent) from 0★ to 29★.
const DESTROY: [f64; 30] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.1, 2.1, 6.8, 6.8,
    8.5, 10.5, 12.75, 17.0, 18.0, 18.0, 18.0, 18.6, 19.0, 19.4, 19.8,
];
/// Where the basic repair (and every destruction under kms-2025) brings an item back.
const RESTART_STAR: usize = 12;
/// A trace never sits above this star (destroyed at 23★ or more → 22★).
const HIGHEST_TRACE: usize = 22;
/// The star-catch bonus on success (always on under kms-2026).
const CATCH_BONUS: f64 = 1.05;
/// Shining Star Force and the destroy-reduction event: 30% less destruction up to this star.
const DESTROY_REDUCTION_UP_TO: usize = 21;
/// The Shining event's share off recovery mesos (not off the items).
const SHINING_RECOVERY_DISCOUNT: f64 = 0.20;
/// The 1+1 event: a success at this star or below adds a second star.
const ONE_PLUS_ONE_UP_TO: usize = 10;

/// Which game rules price the stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Rules {
    /// KMS since 2026-03-19 (Update/799): star catch always applied, traces and two repairs.
    #[default]
    #[serde(rename = "kms-2026")]
    Kms2026,
    /// KMS 2025-03-20 to 2026-03-18 (Update/767): optional star catch, back to 12★.
    #[serde(rename = "kms-2025")]
    Kms2025,
}

impl Rules {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kms2026 => "kms-2026",
            Self::Kms2025 => "kms-2025",
        }
    }
}

impl FromStr for Rules {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kms-2026" => Ok(Self::Kms2026),
            "kms-2025" => Ok(Self::Kms2025),
            _ => Err("must be kms-2026 or kms-2025".to_owned()),
        }
    }
}

/// How a destroyed item is repaired (kms-2026).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repair {
    /// Per star, whichever of the two costs less in expectation (items at `spare_mesos`).
    #[default]
    Cheapest,
    /// Always back to 12★ with one identical item.
    Twelve,
    /// Always at the trace's own star, with 1–4 identical items and recovery mesos.
    Keep,
}

/// The repair chosen at one star.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepairChoice {
    Twelve,
    Keep,
}

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
    /// The rule set; kms-2026 unless asked.
    #[serde(default)]
    pub rules: Rules,
    /// Under kms-2025, the star-catch bonus (success × 1.05). Under kms-2026 the bonus always
    /// applies: the field is accepted and changes nothing.
    #[serde(default)]
    pub star_catch: bool,
    /// Safeguard at 15–17★: destruction becomes keep for +200% of the undiscounted cost.
    #[serde(default)]
    pub safeguard: bool,
    /// The 30% discount event on attempts (part of Shining Star Force).
    #[serde(default)]
    pub discount_30: bool,
    /// 30% less destruction at ≤ 21★ (part of Shining Star Force).
    #[serde(default)]
    pub destroy_reduction: bool,
    /// Shining Star Force: 30% off attempts, 30% less destruction at ≤ 21★, 20% off
    /// recovery mesos.
    #[serde(default)]
    pub shining: bool,
    /// The 5/10/15 event: attempts at 5★, 10★ and 15★ always succeed (not run since
    /// 2025-07-20).
    #[serde(default)]
    pub event_5_10_15: bool,
    /// The 1+1 event: a success at ≤ 10★ adds a second star.
    #[serde(default)]
    pub one_plus_one: bool,
    /// The player's MVP grade (discount on attempts at 0–16★).
    #[serde(default)]
    pub mvp: Option<Mvp>,
    /// Enhancing from a PC room (5% off attempts at 0–16★).
    #[serde(default)]
    pub pc_room: bool,
    /// How a destroyed item is repaired (kms-2026 only).
    #[serde(default)]
    pub repair: Repair,
    /// The price of one identical item (a spare); every item a repair takes costs it.
    /// `replacement_mesos` is the same field's older name. Free when absent.
    #[serde(default, alias = "replacement_mesos")]
    pub spare_mesos: Option<u64>,
}

impl Request {
    /// From `from` to `to` on an item of `level`, by today's rules, with no option.
    pub fn plain(level: u32, from: u32, to: u32) -> Self {
        Self {
            level,
            from,
            to,
            rules: Rules::Kms2026,
            star_catch: false,
            safeguard: false,
            discount_30: false,
            destroy_reduction: false,
            shining: false,
            event_5_10_15: false,
            one_plus_one: false,
            mvp: None,
            pc_room: false,
            repair: Repair::Cheapest,
            spare_mesos: None,
        }
    }

    #[expect(clippy::cast_precision_loss, reason = "meso prices are far below 2^53")]
    fn spare_price(&self) -> f64 {
        self.spare_mesos.map_or(0.0, |price| price as f64)
    }

    fn destroy_reduced(&self) -> bool {
        self.destroy_reduction || self.shining
    }

    fn discounted(&self) -> bool {
        self.discount_30 || self.shining
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    /// Everything the stars cost: attempts, recovery mesos and the spare items at
    /// `spare_mesos` (0 each when no price was given).
    pub expected_mesos: f64,
    /// The attempts' part of `expected_mesos`.
    pub expected_attempt_mesos: f64,
    /// The recovery mesos' part (star-keeping repairs).
    pub expected_recovery_mesos: f64,
    /// The spare items' part: `expected_spares` × `spare_mesos`.
    pub expected_spare_mesos: f64,
    /// `expected_spare_mesos` under its older name.
    pub expected_replacement_mesos: f64,
    pub expected_destroys: f64,
    /// Identical items the repairs take.
    pub expected_spares: f64,
    pub expected_attempts: f64,
    pub rules: Rules,
    /// The repair taken at each star where the item can be destroyed on the way.
    pub repair_policy: BTreeMap<u32, RepairChoice>,
    /// Whether a star-keeping repair in `repair_policy` is priced with extrapolated recovery
    /// mesos (the item's level has no published row; see [`recovery_model`]).
    pub recovery_extrapolated: bool,
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
    #[error("repair: kms-2025 has one repair only (back to 12★); keep exists from kms-2026")]
    RepairUnderOldRules,
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
    cost_at(table, level / 10 * 10, star)
}

/// [`base_cost`]'s formula at `level` as it is (not floored to a multiple of 10).
fn cost_at(table: CostTable, level: u32, star: u32) -> f64 {
    let l = f64::from(level);
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

/// Success and destroy probabilities (fractions) and the cost of one attempt.
fn attempt(table: CostTable, request: &Request, star: usize) -> (f64, f64, f64) {
    let mut success = SUCCESS[star] / 100.0;
    let mut destroy = DESTROY[star] / 100.0;
    if request.event_5_10_15 && SURE_STARS_IN_EVENT.contains(&star) {
        success = 1.0;
        destroy = 0.0;
    }
    if request.rules == Rules::Kms2026 || request.star_catch {
        // Success ×1.05; destroy and keep shrink in proportion to fill the rest.
        let caught = (success * CATCH_BONUS).min(1.0);
        let rest = 1.0 - success;
        if rest > 0.0 {
            destroy *= (1.0 - caught) / rest;
        }
        success = caught;
    }
    if request.destroy_reduced() && star <= DESTROY_REDUCTION_UP_TO {
        destroy *= 0.7;
    }
    let star_u32 = u32::try_from(star).unwrap_or(u32::MAX);
    let base = base_cost(table, request.level, star_u32);
    let member = if star < MEMBER_DISCOUNT_BELOW {
        request.mvp.map_or(0.0, Mvp::discount)
            + if request.pc_room {
                PC_ROOM_DISCOUNT
            } else {
                0.0
            }
    } else {
        0.0
    };
    let event = if request.discounted() {
        EVENT_DISCOUNT
    } else {
        0.0
    };
    let mut cost = match request.rules {
        // MVP and PC room add up; the 30% event then multiplies (research §3).
        Rules::Kms2026 => base * (1.0 - member) * (1.0 - event),
        // As priced until 2026: every discount added up.
        Rules::Kms2025 => base * (1.0 - member - event),
    };
    // Safeguard where the attempt could destroy the item (not a sure 15★ of the 5/10/15 event).
    if request.safeguard && (15..=17).contains(&star) && destroy > 0.0 {
        destroy = 0.0;
        // The surcharge is never discounted.
        cost += 2.0 * base;
    }
    (success, destroy, cost)
}

/// Recovery mesos at `trace_star` (15..=22) for an item of `level`, and whether the figure is
/// extrapolated: the published row ([`recovery`]) when there is one, else [`recovery_model`].
pub fn recovery_mesos(table: CostTable, level: u32, trace_star: u32) -> (f64, bool) {
    match recovery::published(level, trace_star) {
        Some(mesos) => (mesos, false),
        None => (recovery_model(table, level, trace_star), true),
    }
}

/// The model both published recovery tables follow (it reproduces the 140/160/200/250 rows
/// to the 0.01억 they are printed with, and the 130/135/145/150 rows within 0.5%): the
/// expected mesos of climbing from 12★ back to the trace's star during a Shining Star Force
/// event (30% off the attempts, 30% less destruction at ≤ 21★), safeguard bought at 15–17★, a
/// destruction on the way repaired at its own star: F(12) = 0, F(s+1) = F(s) + (c_s +
/// d_s·F(s)) / p_s, with the attempt costs at the item's own level (the 135 and 145 rows scale
/// with 135³ and 145³, not with the floored 130³ and 140³ the attempts are charged at).
pub fn recovery_model(table: CostTable, level: u32, trace_star: u32) -> f64 {
    let mut climbed = 0.0;
    for star in 12..trace_star {
        let index = star as usize;
        let success = (SUCCESS[index] / 100.0 * CATCH_BONUS).min(1.0);
        let base = cost_at(table, level, star);
        let (cost, destroy) = if (15..=17).contains(&star) {
            (base * (1.0 - EVENT_DISCOUNT) + 2.0 * base, 0.0)
        } else {
            let raw = DESTROY[index] / 100.0;
            let scaled = raw * (1.0 - success) / (1.0 - SUCCESS[index] / 100.0);
            let reduced = if index <= DESTROY_REDUCTION_UP_TO {
                scaled * 0.7
            } else {
                scaled
            };
            (base * (1.0 - EVENT_DISCOUNT), reduced)
        };
        climbed += (cost + destroy * climbed) / success;
    }
    climbed
}

/// The star after a success at `star`.
fn next_star(request: &Request, star: usize) -> usize {
    let step = if request.one_plus_one && star <= ONE_PLUS_ONE_UP_TO {
        2
    } else {
        1
    };
    (star + step).min(request.to as usize)
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
    if request.rules == Rules::Kms2025 && request.repair == Repair::Keep {
        return Err(StarforceError::RepairUnderOldRules);
    }
    Ok(())
}

/// What a destruction at one star leads to.
#[derive(Debug, Clone, Copy)]
struct Destruction {
    /// The star the item comes back at.
    back: usize,
    /// Recovery mesos (after the Shining discount).
    recovery: f64,
    /// Identical items taken.
    spares: f64,
    choice: RepairChoice,
    /// The recovery mesos are extrapolated (no published row).
    extrapolated: bool,
}

/// One star of the chain: the attempt's odds and cost and what a destruction leads to.
#[derive(Debug, Clone, Copy)]
struct Link {
    success: f64,
    destroy: f64,
    cost: f64,
    /// `None` where the item cannot be destroyed.
    destruction: Option<Destruction>,
}

/// Per star s, the expected amounts spent going from s to s+1 (re-climbs included).
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    attempt_mesos: f64,
    recovery_mesos: f64,
    spares: f64,
    destroys: f64,
    attempts: f64,
}

impl Step {
    fn total(&self, spare_price: f64) -> f64 {
        self.attempt_mesos + self.recovery_mesos + self.spares * spare_price
    }

    fn add(&mut self, other: &Self) {
        self.attempt_mesos += other.attempt_mesos;
        self.recovery_mesos += other.recovery_mesos;
        self.spares += other.spares;
        self.destroys += other.destroys;
        self.attempts += other.attempts;
    }
}

/// The chain of a validated request: each star's link (repairs chosen) and step.
struct Chain {
    links: Vec<Link>,
    steps: Vec<Step>,
}

impl Chain {
    fn of(table: CostTable, request: &Request) -> Self {
        let to = request.to as usize;
        let price = request.spare_price();
        let mut links = Vec::with_capacity(to);
        let mut steps: Vec<Step> = Vec::with_capacity(to);
        let climb = |steps: &[Step], back: usize, star: usize| -> Step {
            let mut sum = Step::default();
            for step in &steps[back.min(star)..star] {
                sum.add(step);
            }
            sum
        };
        for star in 0..to {
            let (success, destroy, cost) = attempt(table, request, star);
            let destruction = (destroy > 0.0).then(|| {
                let twelve = Destruction {
                    back: RESTART_STAR,
                    recovery: 0.0,
                    spares: 1.0,
                    choice: RepairChoice::Twelve,
                    extrapolated: false,
                };
                if request.rules == Rules::Kms2025 || request.repair == Repair::Twelve {
                    return twelve;
                }
                let trace = star.min(HIGHEST_TRACE);
                let trace_u32 = u32::try_from(trace).unwrap_or(u32::MAX);
                let (mesos, extrapolated) = recovery_mesos(table, request.level, trace_u32);
                let shining = if request.shining {
                    1.0 - SHINING_RECOVERY_DISCOUNT
                } else {
                    1.0
                };
                let keep = Destruction {
                    back: trace,
                    recovery: mesos * shining,
                    spares: f64::from(recovery::items_needed(trace_u32)),
                    choice: RepairChoice::Keep,
                    extrapolated,
                };
                if request.repair == Repair::Keep {
                    return keep;
                }
                let after = |d: &Destruction| {
                    d.recovery + d.spares * price + climb(&steps, d.back, star).total(price)
                };
                if after(&keep) < after(&twelve) {
                    keep
                } else {
                    twelve
                }
            });
            let mut step = Step {
                attempt_mesos: cost,
                attempts: 1.0,
                ..Step::default()
            };
            if let Some(d) = destruction {
                let back = climb(&steps, d.back, star);
                step.attempt_mesos += destroy * back.attempt_mesos;
                step.recovery_mesos = destroy * (d.recovery + back.recovery_mesos);
                step.spares = destroy * (d.spares + back.spares);
                step.destroys = destroy * (1.0 + back.destroys);
                step.attempts += destroy * back.attempts;
            }
            step.attempt_mesos /= success;
            step.recovery_mesos /= success;
            step.spares /= success;
            step.destroys /= success;
            step.attempts /= success;
            links.push(Link {
                success,
                destroy,
                cost,
                destruction,
            });
            steps.push(step);
        }
        Self { links, steps }
    }

    /// The stars a climb from `from` tries (each until it leaves it upwards).
    fn path(&self, request: &Request) -> impl Iterator<Item = usize> {
        let request = *request;
        let to = request.to as usize;
        std::iter::successors(Some(request.from as usize), move |&star| {
            Some(next_star(&request, star))
        })
        .take_while(move |&star| star < to)
    }

    /// Whether every repair goes back to 12★.
    fn all_twelve(&self) -> bool {
        self.links
            .iter()
            .filter_map(|link| link.destruction)
            .all(|d| d.choice == RepairChoice::Twelve)
    }

    /// P(leaving `star` upwards rather than destroyed).
    fn up(&self, star: usize) -> f64 {
        let link = self.links[star];
        link.success / (link.success + link.destroy)
    }
}

/// Exact expectations for `request`, attempts priced with `table`.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn expect(table: CostTable, request: &Request) -> Result<Expectation, StarforceError> {
    validate(request)?;
    let chain = Chain::of(table, request);
    let mut sum = Step::default();
    for star in chain.path(request) {
        sum.add(&chain.steps[star]);
    }
    // The repairs a climb may meet: every destructible star from the lowest it can come back
    // to (or `from`) up to `to`.
    let lowest = chain
        .path(request)
        .filter_map(|star| chain.links[star].destruction.map(|d| d.back.min(star)))
        .min();
    let reachable: Vec<(usize, Destruction)> = lowest
        .map(|lowest| {
            (lowest..request.to as usize)
                .filter_map(|star| Some((star, chain.links[star].destruction?)))
                .collect()
        })
        .unwrap_or_default();
    let repair_policy = reachable
        .iter()
        .filter_map(|&(star, d)| Some((u32::try_from(star).ok()?, d.choice)))
        .collect();
    let recovery_extrapolated = reachable
        .iter()
        .any(|(_, d)| d.choice == RepairChoice::Keep && d.extrapolated);
    let spare_mesos = sum.spares * request.spare_price();
    // `+ 0.0`: an empty sum is −0.0, which JSON would show as `-0.0`.
    Ok(Expectation {
        expected_mesos: sum.attempt_mesos + sum.recovery_mesos + spare_mesos + 0.0,
        expected_attempt_mesos: sum.attempt_mesos + 0.0,
        expected_recovery_mesos: sum.recovery_mesos + 0.0,
        expected_spare_mesos: spare_mesos + 0.0,
        expected_replacement_mesos: spare_mesos + 0.0,
        expected_destroys: sum.destroys + 0.0,
        expected_spares: sum.spares + 0.0,
        expected_attempts: sum.attempts + 0.0,
        rules: request.rules,
        repair_policy,
        recovery_extrapolated,
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
    /// Mesos spent (recovery mesos and spare items at `spare_mesos` included), from a seeded
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
struct Move {
    cost: f64,
    /// ln(1 − P(leave)) for the geometric count of attempts; `None` when every attempt leaves.
    ln_stay: Option<f64>,
    /// P(success | the attempt leaves the star).
    up: f64,
    /// Where a success lands.
    next: usize,
    /// Where a destroyed item comes back, and what its repair costs (recovery and items).
    back: usize,
    repair_mesos: f64,
}

/// The smallest k with P(destructions ≤ k) ≥ q.
///
/// From `from` the item reaches `to` without a destruction with probability a = Π r_s over
/// `from..to` (r_s: leaving s upwards rather than destroyed); after a destruction each climb
/// from 12★ succeeds with b = Π r_s over `12..to`. So P(D = 0) = a and
/// P(D = k) = (1 − a)(1 − b)^(k−1) b for k ≥ 1. Holds when every repair goes back to 12★.
pub fn destroy_quantile(a: f64, b: f64, q: f64) -> u64 {
    if q <= a || b >= 1.0 {
        return u64::from(q > a);
    }
    // (1 − b)^k ≤ (1 − q) / (1 − a)
    let k = ((1.0 - q) / (1.0 - a)).ln() / (-b).ln_1p();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "k is positive and far below 2^64 for any b the tables give"
    )]
    let k = k.ceil().max(1.0) as u64;
    k
}

/// Destruction quantiles of any repair policy: f_k(s) = P(at most k destructions from s to
/// `to`) = r_s·f_k(next(s)) + (1 − r_s)·f_{k−1}(back(s)), layer by layer until the highest
/// quantile is reached (or `max_layers`, which then stands for every quantile not reached).
fn destroy_quantiles_by_layers(
    chain: &Chain,
    request: &Request,
    max_layers: u64,
) -> Quantiles<u64> {
    let (from, to) = (request.from as usize, request.to as usize);
    let mut previous = vec![0.0_f64; to + 1];
    let mut current = vec![0.0_f64; to + 1];
    let mut reached: [Option<u64>; 5] = [None; 5];
    for k in 0..=max_layers {
        current[to] = 1.0;
        for star in (0..to).rev() {
            let up = chain.up(star);
            let next = next_star(request, star);
            let destroyed = chain.links[star]
                .destruction
                .map_or(0.0, |d| previous[d.back]);
            current[star] = up * current[next] + (1.0 - up) * destroyed;
        }
        for (slot, level) in reached.iter_mut().zip(Quantiles::<u64>::LEVELS) {
            if slot.is_none() && current[from] >= level - 1e-12 {
                *slot = Some(k);
            }
        }
        if reached[4].is_some() {
            break;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let [a, b, c, d, e] = reached.map(|k| k.unwrap_or(max_layers));
    Quantiles {
        p50: a,
        p75: b,
        p90: c,
        p95: d,
        p99: e,
    }
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
    if from == to {
        return Spread::zero();
    }
    let chain = Chain::of(table, request);
    let destroys = if chain.all_twelve() {
        let a: f64 = (from..to).map(|star| chain.up(star)).product();
        let b: f64 = (RESTART_STAR.min(to)..to)
            .map(|star| chain.up(star))
            .product();
        Quantiles::from_fn(|q| destroy_quantile(a, b, q))
    } else {
        let mean: f64 = chain
            .path(request)
            .map(|star| chain.steps[star].destroys)
            .sum();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive bound far below 2^64"
        )]
        let bound = (100.0 + 50.0 * mean).min(1.0e6) as u64;
        destroy_quantiles_by_layers(&chain, request, bound)
    };
    // Work per climb: each leave is one loop turn; E[leaves] by the same recursion as the
    // means, a leave counted like an attempt with certain departure.
    let per_climb: f64 = {
        let mut leaves = vec![0.0_f64; to];
        for star in 0..to {
            let up = chain.up(star);
            let climb: f64 = chain.links[star]
                .destruction
                .map_or(0.0, |d| leaves[d.back.min(star)..star].iter().sum());
            leaves[star] = (1.0 + (1.0 - up) * climb) / up;
        }
        chain.path(request).map(|star| leaves[star]).sum()
    };
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
    let chain = Chain::of(table, request);
    let price = request.spare_price();
    let moves: Vec<Move> = (0..to)
        .map(|star| {
            let link = chain.links[star];
            let leave = link.success + link.destroy;
            let (back, repair_mesos) = link
                .destruction
                .map_or((star, 0.0), |d| (d.back, d.recovery + d.spares * price));
            Move {
                cost: link.cost,
                ln_stay: (leave < 1.0).then(|| (-leave).ln_1p()),
                up: link.success / leave,
                next: next_star(request, star),
                back,
                repair_mesos,
            }
        })
        .collect();
    let mut rng = SplitMix64::new(seed);
    (0..trials)
        .map(|_| {
            let mut climb = Climb {
                mesos: 0.0,
                destroys: 0,
            };
            let mut star = from;
            while star < to {
                let step = moves[star];
                // Attempts until one leaves the star: geometric, drawn at once.
                let attempts = step
                    .ln_stay
                    .map_or(1.0, |ln_stay| 1.0 + (rng.open01().ln() / ln_stay).floor());
                climb.mesos += attempts * step.cost;
                if rng.open01() < step.up {
                    star = step.next;
                } else {
                    star = step.back;
                    climb.destroys += 1;
                    climb.mesos += step.repair_mesos;
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
    /// `spare_mesos` is one) takes one core, not all of them.
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
    /// (the cost formula floors it) share one entry once validated, unless a star-keeping
    /// repair may price their recovery mesos at their own level. Concurrent misses on one
    /// key simulate once; misses on different keys simulate one after the other.
    ///
    /// # Errors
    /// [`StarforceError`] naming the field that is out of range.
    pub fn spread(&self, request: &Request) -> Result<Spread, StarforceError> {
        validate(request)?;
        // The attempts' cost formula floors the level; recovery mesos do not (a published row
        // or the model at the exact level), so a request that may repair at the trace's star
        // keeps its own level.
        let recovery_matters =
            request.rules == Rules::Kms2026 && request.repair != Repair::Twelve && request.to > 15;
        let level = if recovery_matters {
            request.level
        } else {
            request.level / 10 * 10
        };
        let key = Request { level, ..*request };
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
