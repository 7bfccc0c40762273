//! Star force: exact expected mesos, destructions and attempts from star a to b.
//!
//! KMS rates since 2025-03 (DOMAIN.md §6): failure keeps the star; destruction returns the
//! item to 12★. With C[s] the expected cost of going from s to s+1,
//! C[s] = (cost_s + d_s · Σ_{t=12}^{s−1} C[t]) / p_s — the same recursion gives destructions
//! and attempts. No simulation.

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

/// Mesos per attempt at `star` on an item of `level`, before options.
pub fn base_cost(level: u32, star: u32) -> f64 {
    let l = f64::from(level / 10 * 10);
    let s = f64::from(star);
    let (exponent, divisor) = match star {
        0..=9 => (1.0, 2500.0),
        10 => (2.7, 40_000.0),
        11 => (2.7, 22_000.0),
        12 => (2.7, 15_000.0),
        13 => (2.7, 11_000.0),
        14 => (2.7, 7_500.0),
        _ => (2.7, 20_000.0),
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
fn attempt(request: &Request, star: usize) -> (f64, f64, f64) {
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
    let base = base_cost(request.level, star_u32);
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

/// Exact expectations for `request`.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn expect(request: &Request) -> Result<Expectation, StarforceError> {
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
    let to = request.to as usize;
    let mut cost = [0.0_f64; 30];
    let mut destroys = [0.0_f64; 30];
    let mut attempts = [0.0_f64; 30];
    for star in 0..to {
        let (p, d, c) = attempt(request, star);
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
    Ok(Expectation {
        expected_mesos: cost[from..to].iter().sum::<f64>() + expected_replacement_mesos,
        expected_destroys,
        expected_attempts: attempts[from..to].iter().sum(),
        expected_replacement_mesos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(level: u32, from: u32, to: u32) -> Request {
        Request::plain(level, from, to)
    }

    #[test]
    fn events_discounts_and_replacements() {
        let base = expect(&plain(200, 0, 22)).expect("valid");
        // 5/10/15: those attempts always succeed, so fewer attempts, mesos and destructions.
        let event = expect(&Request {
            event_5_10_15: true,
            ..plain(200, 0, 22)
        })
        .expect("valid");
        assert!(event.expected_attempts < base.expected_attempts);
        assert!(event.expected_mesos < base.expected_mesos);
        assert!(event.expected_destroys < base.expected_destroys);
        // At 15★ itself the event leaves nothing to chance.
        let at_15 = expect(&Request {
            event_5_10_15: true,
            ..plain(200, 15, 16)
        })
        .expect("valid");
        assert_eq!(at_15.expected_attempts, 1.0);
        assert_eq!(at_15.expected_destroys, 0.0);
        assert_eq!(at_15.expected_mesos, base_cost(200, 15));
        // MVP diamond + PC room + the 30% event: 45% off below 17★, only the 30% above.
        let members = |from, to| Request {
            discount_30: true,
            mvp: Some(Mvp::Diamond),
            pc_room: true,
            ..plain(200, from, to)
        };
        let low = expect(&members(11, 12)).expect("valid");
        let plain_low = expect(&plain(200, 11, 12)).expect("valid");
        assert!((low.expected_mesos - 0.55 * plain_low.expected_mesos).abs() < 1e-6);
        // From 17★ the attempts themselves get the 30% only; the climb back from 12★ after a
        // destruction still gets the member discounts.
        let high = expect(&members(17, 18)).expect("valid");
        let event_only = expect(&Request {
            discount_30: true,
            ..plain(200, 17, 18)
        })
        .expect("valid");
        let plain_high = expect(&plain(200, 17, 18)).expect("valid");
        assert!((event_only.expected_mesos - 0.70 * plain_high.expected_mesos).abs() < 1e-3);
        assert!(high.expected_mesos < event_only.expected_mesos);
        assert!(high.expected_mesos > 0.55 * plain_high.expected_mesos);
        // A replacement price adds destructions × price.
        let replaced = expect(&Request {
            replacement_mesos: Some(1_000_000_000),
            ..plain(200, 15, 22)
        })
        .expect("valid");
        let unreplaced = expect(&plain(200, 15, 22)).expect("valid");
        let extra = unreplaced.expected_destroys * 1e9;
        assert!((replaced.expected_replacement_mesos - extra).abs() < 1e-3);
        assert!((replaced.expected_mesos - unreplaced.expected_mesos - extra).abs() < 1e-3);
        assert_eq!(unreplaced.expected_replacement_mesos, 0.0);
    }

    #[test]
    fn domain_check_15_to_22_destroys() {
        let e = expect(&plain(200, 15, 22)).expect("valid");
        assert!(
            (e.expected_destroys - 8.46).abs() < 0.005,
            "{}",
            e.expected_destroys
        );
    }

    #[test]
    fn hand_checked_small_cases() {
        // 0→1 at level 150: one attempt succeeds with 95%: 1/0.95 attempts, no destruction.
        let e = expect(&plain(150, 0, 1)).expect("valid");
        assert!((e.expected_attempts - 1.0 / 0.95).abs() < 1e-12);
        assert_eq!(e.expected_destroys, 0.0);
        // cost at 0★, level 150: 100·round(150³·1/2500 + 10) = 100·1360 = 136,000.
        assert_eq!(base_cost(150, 0), 136_000.0);
        assert!((e.expected_mesos - 136_000.0 / 0.95).abs() < 1e-6);
        // Level is floored to a multiple of 10.
        assert_eq!(base_cost(159, 5), base_cost(150, 5));
        assert_eq!(
            expect(&plain(200, 17, 17)).expect("valid").expected_mesos,
            0.0
        );
    }

    #[test]
    fn options_move_the_numbers_the_right_way() {
        let base = expect(&plain(200, 12, 22)).expect("valid");
        let with = |f: fn(&mut Request)| {
            let mut r = plain(200, 12, 22);
            f(&mut r);
            expect(&r).expect("valid")
        };
        let catch = with(|r| r.star_catch = true);
        assert!(catch.expected_mesos < base.expected_mesos);
        assert!(catch.expected_destroys < base.expected_destroys);
        let guard = with(|r| r.safeguard = true);
        assert!(guard.expected_destroys < base.expected_destroys);
        let discount = with(|r| r.discount_30 = true);
        assert!(discount.expected_mesos < base.expected_mesos);
        assert_eq!(discount.expected_destroys, base.expected_destroys);
        let event = with(|r| r.destroy_reduction = true);
        assert!(event.expected_destroys < base.expected_destroys);
    }

    #[test]
    fn expectations_add_up_over_a_split() {
        let whole = expect(&plain(160, 10, 20)).expect("valid");
        let a = expect(&plain(160, 10, 16)).expect("valid");
        let b = expect(&plain(160, 16, 20)).expect("valid");
        assert!((whole.expected_mesos - a.expected_mesos - b.expected_mesos).abs() < 1e-3);
    }

    #[test]
    fn invalid_requests_name_the_field() {
        assert_eq!(expect(&plain(301, 0, 1)), Err(StarforceError::Level(301)));
        assert!(matches!(
            expect(&plain(200, 5, 3)),
            Err(StarforceError::Order { .. })
        ));
        assert!(matches!(
            expect(&plain(100, 0, 10)),
            Err(StarforceError::AboveMaximum { max: 8, .. })
        ));
        assert!(expect(&plain(200, 0, 30)).is_ok());
    }
}
