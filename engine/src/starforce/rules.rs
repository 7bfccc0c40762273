//! Star force's rules: the odds, the costs and the options of one attempt, and what a request
//! may ask (DOMAIN.md §6). A leaf of `starforce`: the chain and the spread build on it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::recovery;

/// Base success rates (percent) from 0★ to 29★ (Update/767; before the × 1.05).
pub(super) const SUCCESS: [f64; 30] = [
    95.0, 90.0, 85.0, 85.0, 80.0, 75.0, 70.0, 65.0, 60.0, 55.0, 50.0, 45.0, 40.0, 35.0, 30.0, 30.0,
    30.0, 15.0, 15.0, 15.0, 30.0, 15.0, 15.0, 10.0, 10.0, 10.0, 7.0, 5.0, 3.0, 1.0,
];
/// Base destruction rates (percent) from 0★ to 29★.
const DESTROY: [f64; 30] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.1, 2.1, 6.8, 6.8,
    8.5, 10.5, 12.75, 17.0, 18.0, 18.0, 18.0, 18.6, 19.0, 19.4, 19.8,
];
/// Where the basic repair (and every destruction under kms-2025) brings an item back.
pub(super) const RESTART_STAR: usize = 12;
/// A trace never sits above this star (destroyed at 23★ or more → 22★).
pub(super) const HIGHEST_TRACE: usize = 22;
/// The star-catch bonus on success (always on under kms-2026).
const CATCH_BONUS: f64 = 1.05;
/// Shining Star Force and the destroy-reduction event: 30% less destruction up to this star.
const DESTROY_REDUCTION_UP_TO: usize = 21;
/// The Shining event's share off recovery mesos (not off the items).
pub(super) const SHINING_RECOVERY_DISCOUNT: f64 = 0.20;
/// The 1+1 event: a success at this star or below adds a second star.
const ONE_PLUS_ONE_UP_TO: usize = 10;

/// Which game rules price the stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StarforceRules))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RepairChoice {
    Twelve,
    Keep,
}

/// MVP grades' discount on attempts below 17★ (silver 3%, gold 5%, diamond 10%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StarforceRequest))]
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
    pub(super) fn spare_price(&self) -> f64 {
        self.spare_mesos.map_or(0.0, |price| price as f64)
    }

    pub(super) fn destroy_reduced(&self) -> bool {
        self.destroy_reduction || self.shining
    }

    pub(super) fn discounted(&self) -> bool {
        self.discount_30 || self.shining
    }
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
pub(super) fn attempt(table: CostTable, request: &Request, star: usize) -> (f64, f64, f64) {
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
pub(super) fn next_star(request: &Request, star: usize) -> usize {
    let step = if request.one_plus_one && star <= ONE_PLUS_ONE_UP_TO {
        2
    } else {
        1
    };
    (star + step).min(request.to as usize)
}

/// Refuses a request that makes no sense.
pub(super) fn validate(request: &Request) -> Result<(), StarforceError> {
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
