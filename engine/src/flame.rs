//! Flames (추가옵션, 환생의 불꽃): the expected mesos of resetting an item's bonus stats until
//! they are at least as good as now (DOMAIN.md §6d).
//!
//! Since 2026-03-19 (Update/799) KMS resets flames for [`MESO_RESET_PRICE`] mesos with the odds
//! of the black flame. Nexon's response gives the totals per stat (`item_add_option`), not the
//! lines; the score players compare is linear in the totals, so it needs no lines:
//! main stat + 10 × all stat % + 4 × ATT (MATT for magicians), a secondary stat weighted 0 by
//! default. Weapons are compared by the tier of their ATT (MATT) line instead.
//!
//! One reset draws its lines uniformly without repeats from the pool (19 types, fewer on
//! low-level items), each line's tier independently: boss items always 4 lines at tiers 3–7,
//! other items 1–4 lines (40/40/16/4 %) at tiers 1–5. P(score ≥ now) is exact: a small
//! dynamic programme over the types that score, by how many of them a reset draws
//! ([`Distribution`]). Resets until success are geometric: mean 1/p, quantiles
//! ⌈ln(1 − q)/ln(1 − p)⌉.
//!
//! [`split`] recovers a set of lines that adds up to the totals. It is the consistency check
//! (totals that split into no valid lines are reported, not priced) and tells a boss item
//! from another where the catalogue (`data/flame_boss_items.csv`) does not know it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::gear::AddOption;
use crate::model::MainStat;
use crate::starforce::Quantiles;

mod catalogue;

pub use self::catalogue::catalogue_says_boss;

/// Mesos per meso reset of flames, at every item level (Update/799).
pub const MESO_RESET_PRICE: u64 = 3_000_000;

/// Which flame's odds a reset draws with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FlameKind {
    /// The meso reset (추가옵션 재설정), with the black/eternal flame's odds.
    #[default]
    Reset,
    /// 검은 환생의 불꽃 (same odds as the reset).
    Black,
    /// 영원한 환생의 불꽃 (same odds as the reset).
    Eternal,
    /// 강력한 환생의 불꽃.
    Powerful,
    /// 타오르는 환생의 불꽃 (same odds as 강력한).
    Burning,
    /// 심연의 환생의 불꽃.
    Abyss,
}

impl FlameKind {
    /// Tier odds (fractions) for tiers 1–5 (boss items: 3–7), the official probability page.
    pub fn tier_odds(self) -> [f64; 5] {
        match self {
            Self::Reset | Self::Black | Self::Eternal => [0.0, 0.29, 0.45, 0.25, 0.01],
            Self::Powerful | Self::Burning => [0.20, 0.30, 0.36, 0.14, 0.0],
            Self::Abyss => [0.0, 0.0, 0.63, 0.34, 0.03],
        }
    }

    /// The price of one, when the game sets one (the meso reset only).
    pub fn price(self) -> Option<u64> {
        (self == Self::Reset).then_some(MESO_RESET_PRICE)
    }
}

/// Lines drawn by a non-boss reset: 1, 2, 3 or 4 with these odds (환생의 불꽃류 row).
const LINE_COUNT_ODDS: [f64; 4] = [0.40, 0.40, 0.16, 0.04];
/// Boss items count two tiers higher.
const BOSS_TIER_SHIFT: u32 = 2;

/// The stats a line can add to (the four flat stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stat {
    Str,
    Dex,
    Int,
    Luk,
}

const STATS: [Stat; 4] = [Stat::Str, Stat::Dex, Stat::Int, Stat::Luk];

/// One of the 19 option types of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LineType {
    Single(Stat),
    Double(Stat, Stat),
    MaxHp,
    MaxMp,
    LevelDecrease,
    Defense,
    Attack,
    Magic,
    Speed,
    Jump,
    BossDamage,
    Damage,
    AllStat,
}

const DOUBLES: [(Stat, Stat); 6] = [
    (Stat::Str, Stat::Dex),
    (Stat::Str, Stat::Int),
    (Stat::Str, Stat::Luk),
    (Stat::Dex, Stat::Int),
    (Stat::Dex, Stat::Luk),
    (Stat::Int, Stat::Luk),
];

/// The option types one reset can draw for an item (official page, "장비분류 별 옵션의 종류"):
/// weapons trade speed and jump for boss damage (from level 90) and damage; other items get
/// ATT/MATT from level 60 and all stat % from level 70.
fn pool(level: u32, weapon: bool) -> Vec<LineType> {
    let mut types: Vec<LineType> = STATS.iter().map(|&s| LineType::Single(s)).collect();
    types.extend(DOUBLES.iter().map(|&(a, b)| LineType::Double(a, b)));
    types.extend([
        LineType::MaxHp,
        LineType::MaxMp,
        LineType::LevelDecrease,
        LineType::Defense,
    ]);
    if weapon {
        types.extend([
            LineType::Attack,
            LineType::Magic,
            LineType::Damage,
            LineType::AllStat,
        ]);
        if level >= 90 {
            types.push(LineType::BossDamage);
        }
    } else {
        if level >= 60 {
            types.extend([LineType::Attack, LineType::Magic]);
        }
        types.extend([LineType::Speed, LineType::Jump]);
        if level >= 70 {
            types.push(LineType::AllStat);
        }
    }
    types
}

/// Flat stat per tier of a single-stat line: ⌊L/20⌋ + 1, and 12 at level 250 ("250 counts
/// as 220").
fn single_per_tier(level: u32) -> u32 {
    if level >= 250 { 12 } else { level / 20 + 1 }
}

/// Flat stat per tier added to both stats of a double-stat line.
fn double_per_tier(level: u32) -> u32 {
    level / 40 + 1
}

/// Max HP (MP) per tier: ⌊L/10⌋·30 below 200, 600 at 200–249 and 700 from 250. Sources
/// disagree at 210–249 (research/flames.md §3); no flamed item of the references sits there.
fn hp_per_tier(level: u32) -> u32 {
    match level {
        0..=199 => level / 10 * 30,
        200..=249 => 600,
        _ => 700,
    }
}

/// A weapon's ATT (MATT) line at `tier`: ⌈base·(⌊L/40⌋+1)·tier·1.1^(tier−k) %⌉ with k = 3 on
/// boss weapons and 1 on others, computed in integers (1.1^n = 11^n / 10^n).
fn weapon_attack(base: u32, level: u32, tier: u32, boss: bool) -> u32 {
    let shift = if boss { 3 } else { 1 };
    let power = tier.saturating_sub(shift);
    // u128: no product of u32 inputs overflows it.
    let numerator =
        u128::from(base) * u128::from(level / 40 + 1) * u128::from(tier) * 11_u128.pow(power);
    let denominator = 100 * 10_u128.pow(power);
    u32::try_from(numerator.div_ceil(denominator)).unwrap_or(u32::MAX)
}

/// A flat stat's total in `totals`.
fn stat_total(totals: &AddOption, stat: Stat) -> u32 {
    match stat {
        Stat::Str => totals.str,
        Stat::Dex => totals.dex,
        Stat::Int => totals.int,
        Stat::Luk => totals.luk,
    }
}

/// What one item is, for its flames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlameItem {
    /// `base_equipment_level` (before any level reduction).
    pub level: u32,
    pub weapon: bool,
    pub boss: bool,
    /// A weapon's own ATT and MATT (`item_base_option`), for its ATT/MATT line.
    pub base_attack: u32,
    pub base_magic: u32,
}

/// Whose score: the class's main stat, whether it is a magician, a secondary stat's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scorer {
    pub main: MainStat,
    pub magician: bool,
    /// The secondary stat's weight in thousandths (0 by default).
    pub secondary_per_mille: u16,
}

impl Scorer {
    /// A flat stat's weight in thousandths.
    fn weight(&self, stat: Stat) -> u32 {
        let secondary = u32::from(self.secondary_per_mille);
        match (self.main, stat) {
            (MainStat::All, Stat::Int) => 0,
            (MainStat::All, _) => 1000,
            (MainStat::Str, Stat::Str)
            | (MainStat::Dex, Stat::Dex)
            | (MainStat::Int, Stat::Int)
            | (MainStat::Luk, Stat::Luk) => 1000,
            (MainStat::Str, Stat::Dex)
            | (MainStat::Dex, Stat::Str)
            | (MainStat::Int, Stat::Luk)
            | (MainStat::Luk, Stat::Dex) => secondary,
            _ => 0,
        }
    }

    /// The score of `totals` in thousandths of a point.
    pub fn score_milli(&self, totals: &AddOption) -> u64 {
        let stats: u64 = STATS
            .iter()
            .map(|&s| u64::from(self.weight(s)) * u64::from(stat_total(totals, s)))
            .sum();
        let attack = if self.magician {
            totals.magic_power
        } else {
            totals.attack_power
        };
        stats + 10_000 * u64::from(totals.all_stat) + 4_000 * u64::from(attack)
    }

    /// A line type's score in thousandths at `tier` on `item` (weapons are not scored).
    fn line_milli(&self, item: &FlameItem, line: LineType, tier: u32) -> u64 {
        let tier = u64::from(tier);
        match line {
            LineType::Single(s) => {
                u64::from(self.weight(s)) * u64::from(single_per_tier(item.level)) * tier
            }
            LineType::Double(a, b) => {
                u64::from(self.weight(a) + self.weight(b))
                    * u64::from(double_per_tier(item.level))
                    * tier
            }
            LineType::AllStat => 10_000 * tier,
            LineType::Attack if !self.magician => 4_000 * tier,
            LineType::Magic if self.magician => 4_000 * tier,
            _ => 0,
        }
    }
}

/// The tiers a line can have on an item: 1–5, or 3–7 on a boss item.
fn tiers(boss: bool) -> std::ops::RangeInclusive<u32> {
    if boss { 3..=7 } else { 1..=5 }
}

/// P(a reset draws `tier` on a line).
fn tier_odds(kind: FlameKind, boss: bool, tier: u32) -> f64 {
    let shift = if boss { BOSS_TIER_SHIFT } else { 0 };
    tier.checked_sub(shift + 1)
        .and_then(|i| kind.tier_odds().get(i as usize).copied())
        .unwrap_or(0.0)
}

/// How many lines a reset draws, with their odds.
fn line_counts(boss: bool) -> Vec<(usize, f64)> {
    if boss {
        vec![(4, 1.0)]
    } else {
        (1..=4).zip(LINE_COUNT_ODDS).collect()
    }
}

/// C(n, k) as a float (n ≤ 19).
fn choose(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| {
        #[expect(clippy::cast_precision_loss, reason = "n ≤ 19")]
        let (n, i) = ((n - i) as f64, (i + 1) as f64);
        acc * n / i
    })
}

/// The law of one reset's score on an item: P(score ≥ s) for every s, in units of the
/// scores' greatest common divisor.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Thousandths of a point per unit.
    unit: u64,
    /// at_least[i] = P(score ≥ i·unit); beyond the end, 0.
    at_least: Vec<f64>,
}

impl Distribution {
    /// The exact law for `item` scored by `scorer` under `kind`'s odds (§4.3 of the research
    /// note): fold the scoring types one at a time into dp[k] (mass of every k-subset of them,
    /// by score), then mix over the line counts, the other lines drawn from the types that
    /// score nothing.
    fn of(item: &FlameItem, scorer: &Scorer, kind: FlameKind) -> Self {
        let pool = pool(item.level, item.weapon);
        let scoring: Vec<Vec<(u64, f64)>> = pool
            .iter()
            .map(|&line| {
                tiers(item.boss)
                    .map(|t| {
                        (
                            scorer.line_milli(item, line, t),
                            tier_odds(kind, item.boss, t),
                        )
                    })
                    .filter(|&(_, p)| p > 0.0)
                    .collect::<Vec<_>>()
            })
            .filter(|outcomes| outcomes.iter().any(|&(score, _)| score > 0))
            .collect();
        let unit = scoring
            .iter()
            .flatten()
            .map(|&(score, _)| score)
            .fold(0, gcd)
            .max(1);
        let max_line = scoring
            .iter()
            .flatten()
            .map(|&(score, _)| score / unit)
            .max()
            .unwrap_or(0);
        let size = usize::try_from(4 * max_line + 1).unwrap_or(usize::MAX);
        // dp[k][s]: the summed probability, over the k-subsets of scoring types, of their
        // lines scoring s units.
        let mut dp = vec![vec![0.0_f64; size]; 5];
        dp[0][0] = 1.0;
        for outcomes in &scoring {
            for k in (1..=4).rev() {
                let (lower, upper) = dp.split_at_mut(k);
                let (from, to) = (&lower[k - 1], &mut upper[0]);
                for (s, &mass) in from.iter().enumerate() {
                    if mass == 0.0 {
                        continue;
                    }
                    for &(score, p) in outcomes {
                        let target = s + usize::try_from(score / unit).unwrap_or(usize::MAX);
                        if let Some(cell) = to.get_mut(target) {
                            *cell += mass * p;
                        }
                    }
                }
            }
        }
        let (types, scoring_types) = (pool.len(), scoring.len());
        let zero_types = types - scoring_types;
        let mut density = vec![0.0_f64; size];
        for (lines, odds) in line_counts(item.boss) {
            let subsets = choose(types, lines);
            for (k, layer) in dp.iter().enumerate().take(lines.min(scoring_types) + 1) {
                let weight = odds * choose(zero_types, lines - k) / subsets;
                if weight == 0.0 {
                    continue;
                }
                for (cell, &mass) in density.iter_mut().zip(layer) {
                    *cell += weight * mass;
                }
            }
        }
        let mut at_least = density;
        let mut tail = 0.0;
        for cell in at_least.iter_mut().rev() {
            tail += *cell;
            *cell = tail.min(1.0);
        }
        Self { unit, at_least }
    }

    /// P(score ≥ `milli` thousandths).
    pub fn at_least(&self, milli: u64) -> f64 {
        let index = milli.div_ceil(self.unit);
        usize::try_from(index)
            .ok()
            .and_then(|i| self.at_least.get(i))
            .copied()
            .unwrap_or(0.0)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// P(a weapon's reset draws its ATT (MATT) line at `min_tier` or above).
pub fn weapon_probability(item: &FlameItem, kind: FlameKind, min_tier: u32) -> f64 {
    let types = pool(item.level, item.weapon).len();
    #[expect(clippy::cast_precision_loss, reason = "tiny counts")]
    let drawn: f64 = line_counts(item.boss)
        .iter()
        .map(|&(lines, odds)| odds * lines as f64 / types as f64)
        .sum();
    let tier: f64 = tiers(item.boss)
        .filter(|&t| t >= min_tier)
        .map(|t| tier_odds(kind, item.boss, t))
        .sum();
    drawn * tier
}

/// Resets until success, from the probability of one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = FlameResets))]
pub struct Resets {
    pub probability: f64,
    /// 1/p; `None` when the target cannot be reached (p = 0).
    pub expected_resets: Option<f64>,
    /// Resets at the five quantiles (geometric law); `None` when p = 0.
    pub quantiles: Option<Quantiles<u64>>,
}

impl Resets {
    pub fn of(probability: f64) -> Self {
        if probability <= 0.0 {
            return Self {
                probability: 0.0,
                expected_resets: None,
                quantiles: None,
            };
        }
        let quantile = |q: f64| -> u64 {
            if probability >= 1.0 {
                return 1;
            }
            // ln_1p keeps a tiny p exact where 1 − p would round to 1.
            let n = ((1.0 - q).ln() / (-probability).ln_1p()).ceil().max(1.0);
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a positive count"
            )]
            let n = n as u64;
            n
        };
        Self {
            probability,
            expected_resets: Some(1.0 / probability),
            quantiles: Some(Quantiles {
                p50: quantile(0.50),
                p75: quantile(0.75),
                p90: quantile(0.90),
                p95: quantile(0.95),
                p99: quantile(0.99),
            }),
        }
    }
}

/// The lines found for a set of totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Lines the totals split into.
    pub lines: u32,
    /// A weapon's ATT (MATT) line's tier, if it has one.
    pub attack_tier: Option<u32>,
    pub magic_tier: Option<u32>,
}

/// A split of `totals` into valid lines for `item` (boss: exactly 4 lines at tiers 3–7;
/// others 1–4 lines at tiers 1–5; on a weapon without MATT or ATT of its own, one of them may
/// be a line that adds 0), if one exists. The split of the four stats may be
/// ambiguous; any one is returned (the score depends on the totals only).
pub fn split(item: &FlameItem, totals: &AddOption) -> Option<Split> {
    let pool = pool(item.level, item.weapon);
    let allowed = |line: LineType| pool.contains(&line);
    let mut lines = 0_u32;
    // The lines each non-stat field comes from: one line, its tier read from its value.
    let fixed =
        |value: u32, line: LineType, per_tier: &dyn Fn(u32) -> u32| -> Option<Option<u32>> {
            if value == 0 {
                return Some(None);
            }
            if !allowed(line) {
                return None;
            }
            tiers(item.boss).find(|&t| per_tier(t) == value).map(Some)
        };
    let level = item.level;
    let mut count = |found: Option<Option<u32>>| -> Option<Option<u32>> {
        let found = found?;
        lines += u32::from(found.is_some());
        Some(found)
    };
    count(fixed(totals.max_hp, LineType::MaxHp, &|t| {
        hp_per_tier(level) * t
    }))?;
    count(fixed(totals.max_mp, LineType::MaxMp, &|t| {
        hp_per_tier(level) * t
    }))?;
    count(fixed(totals.armor, LineType::Defense, &|t| {
        single_per_tier(level) * t
    }))?;
    count(fixed(totals.speed, LineType::Speed, &|t| t))?;
    count(fixed(totals.jump, LineType::Jump, &|t| t))?;
    count(fixed(totals.boss_damage, LineType::BossDamage, &|t| 2 * t))?;
    count(fixed(totals.damage, LineType::Damage, &|t| t))?;
    count(fixed(totals.all_stat, LineType::AllStat, &|t| t))?;
    count(fixed(
        totals.equipment_level_decrease,
        LineType::LevelDecrease,
        &|t| 5 * t,
    ))?;
    let (attack_tier, magic_tier) = if item.weapon {
        let attack = count(fixed(totals.attack_power, LineType::Attack, &|t| {
            weapon_attack(item.base_attack, level, t, item.boss)
        }))?;
        let magic = count(fixed(totals.magic_power, LineType::Magic, &|t| {
            weapon_attack(item.base_magic, level, t, item.boss)
        }))?;
        (attack, magic)
    } else {
        count(fixed(totals.attack_power, LineType::Attack, &|t| t))?;
        count(fixed(totals.magic_power, LineType::Magic, &|t| t))?;
        (None, None)
    };
    let remaining = [totals.str, totals.dex, totals.int, totals.luk];
    let candidates: Vec<LineType> = pool
        .iter()
        .copied()
        .filter(|line| matches!(line, LineType::Single(_) | LineType::Double(..)))
        .collect();
    // A weapon's ATT (MATT) line is a share of its own ATT (MATT): on a weapon with none it
    // adds 0 and does not show in the totals.
    let invisible = item.weapon
        && ((item.base_attack == 0 && totals.attack_power == 0)
            || (item.base_magic == 0 && totals.magic_power == 0));
    let budget = 4_u32.checked_sub(lines)?;
    let stat_lines = (0..=budget).find(|&n| {
        let total = lines + n;
        let count_ok = if item.boss {
            total == 4 || (invisible && total == 3)
        } else {
            (1..=4).contains(&total) || (invisible && total == 0)
        };
        count_ok && stats_split(item, &candidates, remaining, n)
    })?;
    Some(Split {
        lines: lines + stat_lines,
        attack_tier,
        magic_tier,
    })
}

/// Whether exactly `n` distinct stat lines from `candidates` add up to `remaining`.
fn stats_split(item: &FlameItem, candidates: &[LineType], remaining: [u32; 4], n: u32) -> bool {
    if n == 0 {
        return remaining == [0; 4];
    }
    let index = |s: Stat| STATS.iter().position(|&x| x == s).unwrap_or(0);
    candidates.iter().enumerate().any(|(i, &line)| {
        tiers(item.boss).any(|t| {
            let mut left = remaining;
            let ok = match line {
                LineType::Single(s) => {
                    let v = single_per_tier(item.level) * t;
                    left[index(s)]
                        .checked_sub(v)
                        .map(|r| left[index(s)] = r)
                        .is_some()
                }
                LineType::Double(a, b) => {
                    let v = double_per_tier(item.level) * t;
                    match (left[index(a)].checked_sub(v), left[index(b)].checked_sub(v)) {
                        (Some(ra), Some(rb)) => {
                            left[index(a)] = ra;
                            left[index(b)] = rb;
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            ok && stats_split(item, &candidates[i + 1..], left, n - 1)
        })
    })
}

/// What a law depends on: the item's class, whose score, which flame.
type LawKey = (FlameItem, Scorer, FlameKind);

/// The laws already computed, by [`LawKey`], bounded by their size: a law holds one float per
/// score unit (a few hundred for whole-point weights, tens of thousands for a secondary weight
/// in hundredths), and the key is the client's to choose.
#[derive(Debug, Clone)]
pub struct Flames {
    laws: moka::sync::Cache<LawKey, Arc<Distribution>>,
}

/// Bytes of laws kept.
const LAWS_BYTES: u64 = 64 << 20;

impl Default for Flames {
    fn default() -> Self {
        Self {
            laws: moka::sync::Cache::builder()
                .max_capacity(LAWS_BYTES)
                .weigher(|_, law: &Arc<Distribution>| {
                    u32::try_from(law.at_least.len() * std::mem::size_of::<f64>() + 64)
                        .unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

impl Flames {
    /// Laws kept and their weighed bytes.
    pub fn usage(&self) -> (u64, u64) {
        self.laws.run_pending_tasks();
        (self.laws.entry_count(), self.laws.weighted_size())
    }

    /// P(one reset scores ≥ `milli` thousandths) on `item`.
    pub fn probability(
        &self,
        item: &FlameItem,
        scorer: &Scorer,
        kind: FlameKind,
        milli: u64,
    ) -> f64 {
        // A weapon's own ATT does not enter an armour score.
        let key = (
            FlameItem {
                base_attack: 0,
                base_magic: 0,
                ..*item
            },
            *scorer,
            kind,
        );
        let law = self
            .laws
            .get_with(key, || Arc::new(Distribution::of(&key.0, scorer, kind)));
        law.at_least(milli)
    }
}

#[cfg(test)]
mod tests;
