//! Targets over the three lines of a potential, and the exact probability that one reset
//! reaches a target.
//!
//! Method: each line's options are first merged into classes that are alike for the target
//! (same contribution to every term, same capped category), then every combination of
//! classes over the three lines is enumerated with Nexon's cap-and-renormalise rule. The work
//! is at most (options per line)³ with no allocation per combination, whatever the input.

use serde::{Deserialize, Serialize};

use crate::model::{CAPPED, Category, Cube, Grade, ItemType, MainStat};
use crate::tables::{GroupKey, LineOption, RateTables};

/// Most terms one target may have: one of each of [`Term`]'s 12 kinds (a test holds the two
/// together).
pub const MAX_TERMS: usize = 12;

/// One condition on the three lines. Several terms are ANDed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Term {
    /// Main-stat % plus all-stat % summed over the lines ≥ `min`. For Xenon (`ALL`) `min` is
    /// in all-stat %: each STR, DEX or LUK % line counts a third of its value (the community
    /// convention: Xenon's stat is all three), an all-stat line its whole value.
    StatPct { stat: MainStat, min: u32 },
    /// ATT % summed ≥ `min`.
    AttPct { min: u32 },
    /// MATT % summed ≥ `min`.
    MattPct { min: u32 },
    /// At least `min` boss-damage lines.
    BossLines { min: u32 },
    /// Boss damage % summed over the lines ≥ `min`.
    BossPct { min: u32 },
    /// At least `min` ignore-defense lines.
    IedLines { min: u32 },
    /// Ignore-defense % summed over the lines ≥ `min` (the game multiplies the lines; the
    /// sum orders two potentials the same way for the 1–3 lines one item has, within a
    /// point).
    IedPct { min: u32 },
    /// At least `min` critical-damage lines.
    CritDamageLines { min: u32 },
    /// At least `min` item-drop lines.
    DropLines { min: u32 },
    /// At least `min` lines that are item drop or meso amount.
    MesoOrDropLines { min: u32 },
    /// Cooldown reduction seconds summed ≥ `min`.
    CooldownSeconds { min: u32 },
    /// At least `min` lines that are ATT % (or MATT %) or boss damage.
    AttOrBossLines { min: u32 },
}

impl Term {
    fn min(self) -> u32 {
        match self {
            Self::StatPct { min, .. }
            | Self::AttPct { min }
            | Self::MattPct { min }
            | Self::BossLines { min }
            | Self::BossPct { min }
            | Self::IedLines { min }
            | Self::IedPct { min }
            | Self::CritDamageLines { min }
            | Self::DropLines { min }
            | Self::MesoOrDropLines { min }
            | Self::CooldownSeconds { min }
            | Self::AttOrBossLines { min } => min,
        }
    }

    fn kind(self) -> std::mem::Discriminant<Self> {
        std::mem::discriminant(&self)
    }

    /// The sum of [`Self::contribution`]s that meets the term: `min`, in thirds for Xenon's
    /// stat.
    pub fn threshold(self) -> u32 {
        match self {
            Self::StatPct {
                stat: MainStat::All,
                min,
            } => min.saturating_mul(3),
            other => other.min(),
        }
    }

    /// The `min` that a score of [`Self::contribution`]s meets: the score itself, or for
    /// Xenon's stat the whole all-stat % below it (a score in thirds, rounded down).
    pub fn min_for_score(self, score: u32) -> u32 {
        match self {
            Self::StatPct {
                stat: MainStat::All,
                ..
            } => score / 3,
            _ => score,
        }
    }

    /// What one line with this option adds to the term (value already level-bumped); for
    /// Xenon's stat, in thirds of all-stat %.
    pub fn contribution(self, category: Category, value: u32) -> u32 {
        use Category as C;
        let line = u32::from;
        let valued = |wanted: bool| if wanted { value } else { 0 };
        match self {
            Self::StatPct {
                stat: MainStat::All,
                ..
            } => match category {
                C::AllStatsPct => 3 * value,
                C::StrPct | C::DexPct | C::LukPct => value,
                _ => 0,
            },
            Self::StatPct { stat, .. } => {
                let own = Category::stat_pct(stat) == Some(category);
                let all = category == C::AllStatsPct && stat != MainStat::Hp;
                valued(own || all)
            }
            Self::BossPct { .. } => valued(category == C::BossDamage),
            Self::IedPct { .. } => valued(category == C::IgnoreDefense),
            Self::AttPct { .. } => {
                if category == C::AttPct {
                    value
                } else {
                    0
                }
            }
            Self::MattPct { .. } => {
                if category == C::MattPct {
                    value
                } else {
                    0
                }
            }
            Self::BossLines { .. } => line(category == C::BossDamage),
            Self::IedLines { .. } => line(category == C::IgnoreDefense),
            Self::CritDamageLines { .. } => line(category == C::CritDamage),
            Self::DropLines { .. } => line(category == C::ItemDrop),
            Self::MesoOrDropLines { .. } => line(matches!(category, C::ItemDrop | C::MesoAmount)),
            Self::CooldownSeconds { .. } => {
                if category == C::Cooldown {
                    value
                } else {
                    0
                }
            }
            Self::AttOrBossLines { .. } => {
                line(matches!(category, C::AttPct | C::MattPct | C::BossDamage))
            }
        }
    }
}

/// A conjunction of terms: non-empty, each kind at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    terms: Vec<Term>,
}

/// Why a target or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PotentialError {
    #[error("target: at least one term is required")]
    EmptyTarget,
    #[error("target: each kind of term may appear once")]
    RepeatedTerm,
    #[error("target: a minimum must be within 1..=1000")]
    MinOutOfRange,
    #[error(
        "level: the potential tables for {item_type} on {cube} cover item levels {lowest}..=250 (got {level})"
    )]
    LevelOutOfTables {
        item_type: ItemType,
        cube: Cube,
        level: u32,
        lowest: u32,
    },
    #[error("the tables have no {item_type} / {cube} / {grade} table")]
    NoTable {
        item_type: ItemType,
        cube: Cube,
        grade: Grade,
    },
}

impl Target {
    /// # Errors
    /// [`PotentialError`] for an empty target, a repeated kind or a silly minimum.
    pub fn new(terms: Vec<Term>) -> Result<Self, PotentialError> {
        if terms.is_empty() {
            return Err(PotentialError::EmptyTarget);
        }
        for (i, term) in terms.iter().enumerate() {
            if !(1..=1000).contains(&term.min()) {
                return Err(PotentialError::MinOutOfRange);
            }
            if terms[..i].iter().any(|t| t.kind() == term.kind()) {
                return Err(PotentialError::RepeatedTerm);
            }
        }
        Ok(Self { terms })
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }
}

/// Options of one line that are alike for a target, merged.
#[derive(Debug, Clone, Copy)]
struct Class {
    contribution: [u32; MAX_TERMS],
    cap: Option<usize>,
    rate_pct: f64,
}

fn classes(options: &[LineOption], target: &Target, bump: u32) -> Vec<Class> {
    let mut out: Vec<Class> = Vec::with_capacity(8);
    for option in options {
        let value = option.value
            + if option.category.has_level_bump() {
                bump
            } else {
                0
            };
        let mut contribution = [0; MAX_TERMS];
        for (slot, term) in contribution.iter_mut().zip(&target.terms) {
            *slot = term.contribution(option.category, value);
        }
        let cap = option.category.cap_index().filter(|&i| CAPPED[i].1 < 3);
        match out
            .iter_mut()
            .find(|c| c.contribution == contribution && c.cap == cap)
        {
            Some(class) => class.rate_pct += option.rate_pct,
            None => out.push(Class {
                contribution,
                cap,
                rate_pct: option.rate_pct,
            }),
        }
    }
    out
}

/// The rate of the options a line may no longer roll, given the caps used so far.
fn dropped_rate(classes: &[Class], used: &[u8; CAPPED.len()]) -> f64 {
    classes
        .iter()
        .filter(|c| c.cap.is_some_and(|i| used[i] >= CAPPED[i].1))
        .map(|c| c.rate_pct)
        .sum()
}

fn allowed(class: &Class, used: &[u8; CAPPED.len()]) -> bool {
    class.cap.is_none_or(|i| used[i] < CAPPED[i].1)
}

/// The lowest item level whose lines the shipped tables hold for `item_type` on `cube`.
///
/// The tables are Nexon's for levels 120–200, and hold to 249 ([`level_bump`]). Below 120 an
/// item's options are another band's, and Nexon's pages for two parts are the same as at 120,
/// so those are priced with the shipped table (black cube, i.e. the meso reset, only):
/// - the heart (기계 심장), legendary and unique: the level-80 pools on Nexon's page
///   (nam3856/DobakSimulator `public/rules/potential.json`, rule `kms-potential-2026-09-17`)
///   equal the shipped level-120 line 1 option for option and rate for rate;
/// - the secondary weapon (보조무기), legendary: Nexon's black-cube page at level 100 (Dae-Y/maple_tools
///   `data/cube-simulator/bcprobs.json`, commit f5369b3f) equals its level-120 table.
///
/// Only the grades those pages were compared at; other parts, grades and cubes below 120 are
/// not shipped.
pub fn lowest_level(item_type: ItemType, cube: Cube, grade: Grade) -> u32 {
    match (item_type, cube, grade) {
        (ItemType::Heart, Cube::Black, Grade::Legendary | Grade::Unique) => 80,
        (ItemType::Secondary, Cube::Black, Grade::Legendary) => 100,
        _ => 120,
    }
}

/// The +1 that items of level 250 get on stat, attack and HP percentages (KMS), for an item
/// of `item_type`, `grade` and `level` priced on `cube`.
///
/// KMS's tables hold as they are for item levels 120–249: a level-160 or level-200 item rolls
/// the same 12/9/6 main-stat and 9/6 all-stat values as a level-150 one. Evidence: every
/// legendary stat line of the level-160 and level-200 items in the two real Nexon responses
/// (`data/*_equip.json`) is 12 or 9, and only the level-250 items show 13/10 (a test reads
/// them all). A +1 from level 160 is a GMS-calculator convention, not KMS.
///
/// # Errors
/// [`PotentialError::LevelOutOfTables`] below [`lowest_level`] or above 250.
pub fn level_bump(
    item_type: ItemType,
    cube: Cube,
    grade: Grade,
    level: u32,
) -> Result<u32, PotentialError> {
    let lowest = lowest_level(item_type, cube, grade);
    match level {
        250 => Ok(1),
        level if (lowest..250).contains(&level) => Ok(0),
        level => Err(PotentialError::LevelOutOfTables {
            item_type,
            cube,
            level,
            lowest,
        }),
    }
}

/// P(one reset of an item of this type, level and grade, on these tables, meets `target`).
///
/// # Errors
/// [`PotentialError`] when the level is outside the tables or the table does not exist.
pub fn probability(
    tables: &RateTables,
    item_type: ItemType,
    level: u32,
    grade: Grade,
    cube: Cube,
    target: &Target,
) -> Result<f64, PotentialError> {
    let bump = level_bump(item_type, cube, grade, level)?;
    let lines = tables
        .lines(GroupKey {
            item_type,
            cube,
            grade,
        })
        .ok_or(PotentialError::NoTable {
            item_type,
            cube,
            grade,
        })?;
    Ok(probability_over(lines, bump, target))
}

/// P(three lines drawn from `lines` meet `target`), `bump` added to the values of the
/// categories that take the level bump. The main and the additional potential share it.
pub fn probability_over(lines: &[Vec<LineOption>; 3], bump: u32, target: &Target) -> f64 {
    let [one, two, three] = [0, 1, 2].map(|i| classes(&lines[i], target, bump));
    let terms = target.terms.len();
    let mins: Vec<u32> = target.terms.iter().map(|t| t.threshold()).collect();
    let mut total = 0.0;
    let take = |used: &mut [u8; CAPPED.len()], class: &Class| {
        if let Some(i) = class.cap {
            used[i] += 1;
        }
    };
    for c1 in &one {
        let p1 = c1.rate_pct / 100.0;
        let mut used1 = [0_u8; CAPPED.len()];
        take(&mut used1, c1);
        let denominator2 = 100.0 - dropped_rate(&two, &used1);
        for c2 in two.iter().filter(|c| allowed(c, &used1)) {
            let p2 = c2.rate_pct / denominator2;
            let mut used2 = used1;
            take(&mut used2, c2);
            let denominator3 = 100.0 - dropped_rate(&three, &used2);
            for c3 in three.iter().filter(|c| allowed(c, &used2)) {
                let met = (0..terms).all(|t| {
                    c1.contribution[t] + c2.contribution[t] + c3.contribution[t] >= mins[t]
                });
                if met {
                    total += p1 * p2 * c3.rate_pct / denominator3;
                }
            }
        }
    }
    total.clamp(0.0, 1.0)
}

/// Resets needed for a geometric success of probability `p` with confidence `q`:
/// ⌈ln(1−q) / ln(1−p)⌉. `None` when `p` is 0 (never).
pub fn resets_quantile(p: f64, q: f64) -> Option<u64> {
    if p <= 0.0 {
        return None;
    }
    if p >= 1.0 {
        return Some(1);
    }
    let n = ((1.0 - q).ln() / (1.0 - p).ln()).ceil();
    Some(n.max(1.0) as u64)
}

/// Quantiles reported to users.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::tests::built_in;

    fn stat(min: u32) -> Target {
        Target::new(vec![Term::StatPct {
            stat: MainStat::Str,
            min,
        }])
        .expect("valid")
    }

    /// Every kind at once is a valid target, and each term has its slot: none is dropped
    /// from the classes' contributions.
    #[test]
    fn a_target_may_hold_one_term_of_every_kind() {
        let min = 1;
        let every = vec![
            Term::StatPct {
                stat: MainStat::Str,
                min,
            },
            Term::AttPct { min },
            Term::MattPct { min },
            Term::BossLines { min },
            Term::BossPct { min },
            Term::IedLines { min },
            Term::IedPct { min },
            Term::CritDamageLines { min },
            Term::DropLines { min },
            Term::MesoOrDropLines { min },
            Term::CooldownSeconds { min },
            Term::AttOrBossLines { min },
        ];
        assert_eq!(every.len(), MAX_TERMS);
        let target = Target::new(every).expect("one of each kind");
        let p = probability(
            built_in(),
            ItemType::Hat,
            150,
            Grade::Legendary,
            Cube::Red,
            &target,
        )
        .expect("table exists");
        assert!(
            p.abs() < f64::EPSILON,
            "three lines cannot meet twelve terms: {p}"
        );
    }

    #[test]
    fn domain_worked_check() {
        let p = probability(
            built_in(),
            ItemType::Hat,
            150,
            Grade::Legendary,
            Cube::Red,
            &stat(21),
        )
        .expect("table exists");
        assert!((p - 0.022_868_727).abs() < 1e-9, "p = {p}");
        assert!((1.0 / p - 43.73).abs() < 0.01);
    }

    /// The regression case of the KMS level rule: a level-200 ring, meso reset (the black
    /// cube's tables), INT % ≥ 33 (12/12/9). With the old +1 from level 160 it read 0.00227
    /// (441 resets, 6.7× too cheap); the KMS tables give 0.000337496 (2,963 resets).
    #[test]
    fn a_level_200_ring_needs_kms_values_for_int_33() {
        let int = |min| {
            Target::new(vec![Term::StatPct {
                stat: MainStat::Int,
                min,
            }])
            .expect("valid")
        };
        let p = probability(
            built_in(),
            ItemType::Ring,
            200,
            Grade::Legendary,
            Cube::Black,
            &int(33),
        )
        .expect("table exists");
        // 0.000337496 as the issue states it (6 significant digits); to 1e-9 relative, the
        // exact sum over the table's line combinations.
        assert!((p - 0.000_337_496).abs() < 5e-10, "p = {p:.18}");
        assert!((p - 0.000_337_496_040_965).abs() / p < 1e-9, "p = {p:.18}");
        assert_eq!((1.0 / p).round(), 2_963.0);
    }

    #[test]
    fn probabilities_are_probabilities_and_monotone() {
        let tables = built_in();
        for item_type in ItemType::ALL {
            for cube in Cube::ALL {
                let mut last = 1.0_f64;
                for min in [1, 3, 6, 9, 12, 18, 21, 24, 30, 33, 36, 40] {
                    let Ok(p) =
                        probability(tables, *item_type, 200, Grade::Legendary, *cube, &stat(min))
                    else {
                        continue;
                    };
                    assert!((0.0..=1.0).contains(&p), "{item_type}/{cube} ≥{min}: {p}");
                    assert!(p <= last + 1e-12, "monotone in the threshold");
                    last = p;
                }
            }
        }
    }

    #[test]
    fn a_partition_sums_to_one() {
        // Boss lines: exactly 0, 1, 2 or 3 — P(≥1) + P(0) = 1 and the tail differences add up.
        let tables = built_in();
        let at_least = |min| {
            probability(
                tables,
                ItemType::Weapon,
                200,
                Grade::Legendary,
                Cube::Black,
                &Target::new(vec![Term::BossLines { min }]).expect("valid"),
            )
            .expect("table")
        };
        let (p1, p2, p3) = (at_least(1), at_least(2), at_least(3));
        let exactly = [1.0 - p1, p1 - p2, p2 - p3, p3];
        assert!(exactly.iter().all(|p| *p >= -1e-12));
        assert!((exactly.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p3 > 0.0, "three boss lines are possible (cap 3)");
    }

    #[test]
    fn caps_make_impossible_combinations_impossible() {
        // Decent skills are capped at 1 per item, so no item has two; hats may have two
        // "ignore damage" lines (cap 2) but not three. Checked through the drop rule: the
        // probability of two cooldown-2 lines exists, three does not exceed two.
        let tables = built_in();
        let cd = |min| {
            probability(
                tables,
                ItemType::Hat,
                200,
                Grade::Legendary,
                Cube::Red,
                &Target::new(vec![Term::CooldownSeconds { min }]).expect("valid"),
            )
            .expect("table")
        };
        assert!(cd(2) > cd(4) && cd(4) > cd(6) && cd(6) > 0.0);
        assert_eq!(cd(7), 0.0, "at most 2 seconds per line");
    }

    #[test]
    fn level_bump_raises_the_odds() {
        let tables = built_in();
        let at = |level| {
            probability(
                tables,
                ItemType::Top,
                level,
                Grade::Legendary,
                Cube::Red,
                &stat(33),
            )
            .expect("table")
        };
        // 33 below 250 needs two prime lines (12+12+9); at 250, 13+10+10 will do.
        assert!(at(150) > 0.0);
        assert_eq!(at(160), at(150), "no bump from 160 (KMS)");
        assert_eq!(at(249), at(150), "no bump below 250");
        assert!(at(250) > 5.0 * at(249), "{} vs {}", at(250), at(249));
        let out = |item_type, cube, level, lowest| {
            Err(PotentialError::LevelOutOfTables {
                item_type,
                cube,
                level,
                lowest,
            })
        };
        assert_eq!(
            level_bump(ItemType::Top, Cube::Red, Grade::Legendary, 119),
            out(ItemType::Top, Cube::Red, 119, 120)
        );
        assert_eq!(
            level_bump(ItemType::Top, Cube::Red, Grade::Legendary, 251),
            out(ItemType::Top, Cube::Red, 251, 120)
        );
        // The heart from 80 and the secondary from 100 on the black cube only.
        assert_eq!(
            level_bump(ItemType::Heart, Cube::Black, Grade::Legendary, 80),
            Ok(0)
        );
        assert_eq!(
            level_bump(ItemType::Heart, Cube::Black, Grade::Legendary, 79),
            out(ItemType::Heart, Cube::Black, 79, 80)
        );
        assert_eq!(
            level_bump(ItemType::Heart, Cube::Red, Grade::Legendary, 100),
            out(ItemType::Heart, Cube::Red, 100, 120)
        );
        assert_eq!(
            level_bump(ItemType::Secondary, Cube::Black, Grade::Legendary, 100),
            Ok(0)
        );
        assert_eq!(
            level_bump(ItemType::Secondary, Cube::Black, Grade::Legendary, 99),
            out(ItemType::Secondary, Cube::Black, 99, 100)
        );
        // Only the grades the pages were compared at.
        assert_eq!(
            level_bump(ItemType::Secondary, Cube::Black, Grade::Unique, 100),
            out(ItemType::Secondary, Cube::Black, 100, 120)
        );
        assert_eq!(
            level_bump(ItemType::Heart, Cube::Black, Grade::Epic, 80),
            out(ItemType::Heart, Cube::Black, 80, 120)
        );
        assert_eq!(
            level_bump(ItemType::Heart, Cube::Black, Grade::Unique, 80),
            Ok(0)
        );
    }

    /// P(a level-200 legendary item of `item_type` meets `terms` in one meso reset).
    fn legendary_black(item_type: ItemType, terms: Vec<Term>) -> f64 {
        let target = Target::new(terms).expect("valid");
        probability(
            built_in(),
            item_type,
            200,
            Grade::Legendary,
            Cube::Black,
            &target,
        )
        .expect("table")
    }

    /// Boss and ignore-defense targets by value: a sum the lines must reach, so "two lines"
    /// is looser than "two 40% lines", and the value targets are monotone.
    #[test]
    fn boss_and_ied_by_value() {
        let p = |terms| legendary_black(ItemType::Weapon, terms);
        let two_lines = p(vec![Term::BossLines { min: 2 }]);
        let boss_70 = p(vec![Term::BossPct { min: 70 }]);
        let boss_30 = p(vec![Term::BossPct { min: 30 }]);
        assert!(
            boss_70 > 0.0 && boss_70 < two_lines,
            "{boss_70} vs {two_lines}"
        );
        assert!(boss_30 > boss_70);
        // At least one boss line of any value is the same event as boss % ≥ the smallest.
        let one_line = p(vec![Term::BossLines { min: 1 }]);
        assert!((p(vec![Term::BossPct { min: 1 }]) - one_line).abs() < 1e-12);
        let mut last = 1.0;
        for min in [1, 20, 30, 35, 40, 60, 70, 80, 100] {
            let now = p(vec![Term::IedPct { min }]);
            assert!(now <= last + 1e-12, "IED ≥ {min}: monotone");
            last = now;
        }
        assert!(p(vec![Term::IedPct { min: 70 }]) < p(vec![Term::IedLines { min: 2 }]));
    }

    /// Xenon: STR, DEX and LUK % lines count a third each toward all-stat %, so the odds of
    /// reaching 9 all-stat equivalents exceed those of all-stat lines alone, and 12+12+12 is
    /// exactly 12.
    #[test]
    fn xenon_counts_single_stats_as_a_third() {
        let xenon = |min| Term::StatPct {
            stat: MainStat::All,
            min,
        };
        assert_eq!(xenon(12).threshold(), 36);
        assert_eq!(xenon(0).contribution(Category::AllStatsPct, 9), 27);
        assert_eq!(xenon(0).contribution(Category::LukPct, 12), 12);
        assert_eq!(xenon(0).contribution(Category::IntPct, 12), 0);
        assert_eq!(xenon(0).min_for_score(12 + 12 + 12), 12);
        let p = |term| legendary_black(ItemType::Top, vec![term]);
        assert!(p(xenon(9)) > 0.0);
        assert!(p(xenon(12)) < p(xenon(9)));
        assert!(p(xenon(4)) > p(xenon(9)));
    }

    #[test]
    fn targets_are_validated() {
        assert_eq!(Target::new(vec![]), Err(PotentialError::EmptyTarget));
        assert_eq!(
            Target::new(vec![Term::AttPct { min: 9 }, Term::AttPct { min: 12 }]),
            Err(PotentialError::RepeatedTerm)
        );
        assert_eq!(
            Target::new(vec![Term::AttPct { min: 0 }]),
            Err(PotentialError::MinOutOfRange)
        );
    }

    #[test]
    fn quantiles_follow_the_geometric_law() {
        assert_eq!(resets_quantile(0.0, 0.5), None);
        assert_eq!(resets_quantile(1.0, 0.99), Some(1));
        assert_eq!(resets_quantile(0.5, 0.5), Some(1));
        assert_eq!(resets_quantile(0.5, 0.75), Some(2));
        let p = 0.022_868_727;
        let p50 = resets_quantile(p, 0.5).expect("finite");
        assert_eq!(p50, 30, "ln 0.5 / ln(1 − p) = 29.96");
    }
}
