//! Pricing a whole character: for each equipped item, the target its current potential
//! implies, the expected cost of reaching it (tier-up from rare, then rolls), the same for
//! its additional potential (its own tables, prices and tier-up), and the star force spent
//! on it with its spread; items the tables cannot price are listed with the reason. The
//! equipped set and each preset are priced alike.
//!
//! Rule: the equipment is only read here through [`Gear`], its parsed form (see `gear`); a
//! missing field makes that item unpriced, never the request fail.

use serde::Serialize;

use crate::Engine;
use crate::additional;
use crate::flame::{self, FlameItem, FlameKind, Resets, Scorer};
use crate::gear::AddOption;
pub use crate::gear::{BaseOption, Equipment, Gear, GearItem, Item};
use crate::model::{Grade, ItemType, MainStat};
use crate::option::ParsedOption;
pub use crate::options::Options;
use crate::potential::{self, Target, Term};
use crate::prices::Prices;
use crate::starforce::{self, Quantiles};
use crate::tables::RateTables;
use crate::tierup;

/// The priced potential of one item.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PotentialPrice {
    pub target: Vec<Term>,
    pub probability: f64,
    pub expected_resets: Option<f64>,
    pub tier_up_resets: f64,
    pub expected_mesos: Option<f64>,
    /// Why there is no meso figure (unreachable target, no price for the method).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
}

/// One item's line of the breakdown.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemValuation {
    pub slot: String,
    pub name: String,
    pub level: Option<u32>,
    pub grade: Option<Grade>,
    pub lines: Vec<ParsedOption>,
    pub stars: u32,
    pub potential: Option<PotentialPrice>,
    /// Why the potential is not priced (no potential, level outside the tables, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub potential_unpriced: Option<String>,
    /// The additional potential's grade and lines, as Nexon shows them.
    pub additional_grade: Option<Grade>,
    pub additional_lines: Vec<ParsedOption>,
    /// The additional potential priced with its own tables, meso-reset prices and tier-up.
    pub additional_potential: Option<PotentialPrice>,
    /// Why the additional potential is not priced (only when the item has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_unpriced: Option<String>,
    pub starforce_mesos: Option<f64>,
    pub starforce_destroys: Option<f64>,
    /// Quantiles of the mesos and destructions the stars took (with `starforce_mesos`).
    pub starforce_quantiles: Option<starforce::Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starforce_unpriced: Option<String>,
    /// How a priced figure was reached when the item's own rule applies (a Genesis weapon's
    /// granted stars).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starforce_note: Option<String>,
    /// The flames priced: meso resets until they are at least as good as now. `None` when
    /// the item has no flames (or they are not priced: see `flame_unpriced`).
    pub flame: Option<FlamePrice>,
    /// Why the flames are not priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flame_unpriced: Option<String>,
}

/// How a flame's boss class was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BossBy {
    /// The shipped catalogue names the item.
    Catalogue,
    /// Only one class's lines add up to the totals.
    Totals,
    /// Both classes fit and the catalogue does not know the item: priced as a normal item.
    Assumed,
}

/// One item's flames, priced (DOMAIN.md §6d).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlamePrice {
    /// Armour and accessories: the score to reach (main stat + 10 × all stat % + 4 × ATT or
    /// MATT, secondary stat at its weight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Weapons: the tier of the ATT (MATT) line to reach (0: the weapon has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<u32>,
    pub boss: bool,
    pub boss_by: BossBy,
    /// P(one meso reset is at least as good).
    pub probability: f64,
    /// 1/p (0 when there is nothing to reach).
    pub expected_resets: f64,
    /// `expected_resets` × 3,000,000 mesos.
    pub expected_mesos: f64,
    /// Resets at the five quantiles of the geometric law.
    pub resets: Quantiles<u64>,
}

/// Genesis weapons are granted this many stars when liberated: no meso is spent on them.
pub const GENESIS_GRANTED_STARS: u32 = 22;

/// Which star-force rule an item follows, by its name (Nexon's response has no flag for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StarforceRule {
    Normal,
    /// `제네시스 …` weapons: 22★ granted at liberation.
    Genesis,
    /// `슈페리얼 …` items (Tyrant gear, the superior hearts): their own table, at most 15★.
    Superior,
}

impl StarforceRule {
    fn of(slot: &str, name: &str) -> Self {
        if name.starts_with("슈페리얼") {
            Self::Superior
        } else if slot == "무기" && name.starts_with("제네시스") {
            Self::Genesis
        } else {
            Self::Normal
        }
    }
}

/// The whole character.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CharacterValuation {
    pub character_class: Option<String>,
    pub main_stat: Option<MainStat>,
    pub options: Options,
    pub items: Vec<ItemValuation>,
    pub total_potential_mesos: f64,
    /// The additional potentials' part of `total_mesos`.
    pub total_additional_mesos: f64,
    pub total_starforce_mesos: f64,
    /// The flames' part of `total_mesos`.
    pub total_flame_mesos: f64,
    pub total_mesos: f64,
    pub unpriced_items: usize,
    /// Each preset of the response priced the same way (players compare them; the totals
    /// above are the equipped set's). Empty when the response has no presets.
    pub presets: Vec<PresetValuation>,
}

/// One preset's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresetValuation {
    pub preset_no: u32,
    /// Whether this is the preset the character wears (`preset_no` of the response).
    pub in_use: bool,
    pub total_mesos: f64,
    pub total_potential_mesos: f64,
    pub total_additional_mesos: f64,
    pub total_starforce_mesos: f64,
    pub total_flame_mesos: f64,
    pub unpriced_items: usize,
}

/// Sums over a list of items.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Totals {
    potential: f64,
    additional: f64,
    starforce: f64,
    flame: f64,
    /// Items with some figure missing (potential, additional potential, star force, flames).
    unpriced: usize,
}

impl Totals {
    fn of(items: &[&ItemValuation]) -> Self {
        let mesos = |price: &Option<PotentialPrice>| price.as_ref().and_then(|p| p.expected_mesos);
        Self {
            potential: items.iter().filter_map(|i| mesos(&i.potential)).sum(),
            additional: items
                .iter()
                .filter_map(|i| mesos(&i.additional_potential))
                .sum(),
            starforce: items.iter().filter_map(|i| i.starforce_mesos).sum(),
            flame: items
                .iter()
                .filter_map(|i| i.flame.as_ref().map(|f| f.expected_mesos))
                .sum(),
            unpriced: items
                .iter()
                .filter(|i| {
                    i.potential_unpriced.is_some()
                        || i.additional_unpriced.is_some()
                        || i.starforce_unpriced.is_some()
                        || i.flame_unpriced.is_some()
                })
                .count(),
        }
    }

    fn mesos(self) -> f64 {
        self.potential + self.additional + self.starforce + self.flame
    }
}

/// Main stat and whether the class is a magician (MATT instead of ATT), by Korean class name.
pub fn class_profile(class: &str) -> Option<(MainStat, bool)> {
    use MainStat as S;
    let profile = match class {
        "히어로" | "팔라딘" | "다크나이트" | "소울마스터" | "미하일" | "블래스터"
        | "데몬슬레이어" | "아란" | "카이저" | "아델" | "제로" | "바이퍼" | "캐논마스터"
        | "캐논슈터" | "스트라이커" | "은월" | "아크" | "렌" => (S::Str, false),
        "보우마스터" | "신궁" | "패스파인더" | "윈드브레이커" | "와일드헌터" | "메르세데스"
        | "카인" | "캡틴" | "메카닉" | "엔젤릭버스터" => (S::Dex, false),
        "아크메이지(불,독)"
        | "아크메이지(썬,콜)"
        | "비숍"
        | "플레임위자드"
        | "배틀메이지"
        | "에반"
        | "루미너스"
        | "일리움"
        | "라라"
        | "키네시스" => (S::Int, true),
        "나이트로드" | "섀도어" | "듀얼블레이더" | "나이트워커" | "팬텀" | "카데나" | "칼리"
        | "호영" => (S::Luk, false),
        "제논" => (S::All, false),
        "데몬어벤져" => (S::Hp, false),
        _ => return None,
    };
    Some(profile)
}

/// Table item type for a Nexon equipment slot; `None` for slots without potential.
pub fn item_type_of_slot(slot: &str) -> Option<ItemType> {
    Some(match slot {
        "모자" => ItemType::Hat,
        "상의" => ItemType::Top,
        "하의" => ItemType::Bottom,
        "한벌옷" => ItemType::Overall,
        "신발" => ItemType::Shoes,
        "장갑" => ItemType::Gloves,
        "망토" => ItemType::Cape,
        "벨트" => ItemType::Belt,
        "어깨장식" => ItemType::Shoulder,
        "무기" => ItemType::Weapon,
        "보조무기" => ItemType::Secondary,
        "엠블렘" => ItemType::Emblem,
        "기계 심장" | "뱃지" => ItemType::Heart,
        "얼굴장식" | "눈장식" | "귀고리" | "반지1" | "반지2" | "반지3" | "반지4" | "펜던트"
        | "펜던트2" => ItemType::Ring,
        _ => return None,
    })
}

/// The target "at least as good as now" for an item's current lines (values as Nexon shows
/// them, level bump included, which is how the engine counts them too).
pub fn derive_target(
    item_type: ItemType,
    lines: &[ParsedOption],
    stat: MainStat,
    magician: bool,
) -> Vec<Term> {
    // What the current lines score on a term (its `min` is ignored here).
    let score = |term: Term| -> u32 {
        lines
            .iter()
            .filter_map(|line| match line {
                ParsedOption::Known { category, value } => {
                    Some(term.contribution(*category, *value))
                }
                _ => None,
            })
            .sum()
    };
    // Keep a term only when the item scores on it now.
    let at_least = |make: fn(u32) -> Term, scored: u32| (scored > 0).then(|| make(scored));
    let stat_pct = {
        let term = Term::StatPct { stat, min: 0 };
        let min = term.min_for_score(score(term));
        (min > 0).then_some(Term::StatPct { stat, min })
    };
    let mut terms = Vec::new();
    match item_type {
        ItemType::Weapon | ItemType::Secondary | ItemType::Emblem => {
            let attack: fn(u32) -> Term = if magician {
                |min| Term::MattPct { min }
            } else {
                |min| Term::AttPct { min }
            };
            terms.extend(at_least(attack, score(attack(0))));
            // Boss damage by value (emblems cannot roll it); ignore defense on all three.
            if item_type != ItemType::Emblem {
                let boss = |min| Term::BossPct { min };
                terms.extend(at_least(boss, score(boss(0))));
            }
            let ied = |min| Term::IedPct { min };
            terms.extend(at_least(ied, score(ied(0))));
        }
        ItemType::Hat => {
            let cooldown = |min| Term::CooldownSeconds { min };
            terms.extend(at_least(cooldown, score(cooldown(0))));
            terms.extend(stat_pct);
        }
        ItemType::Gloves => {
            let crit = |min| Term::CritDamageLines { min };
            terms.extend(at_least(crit, score(crit(0))));
            terms.extend(stat_pct);
        }
        ItemType::Ring => {
            let drop_meso = |min| Term::MesoOrDropLines { min };
            match at_least(drop_meso, score(drop_meso(0))) {
                Some(term) => terms.push(term),
                None => terms.extend(stat_pct),
            }
        }
        _ => terms.extend(stat_pct),
    }
    terms
}

/// Prices a character's equipped items and each preset.
pub fn value_character(engine: &Engine, gear: &Gear, options: Options) -> CharacterValuation {
    value_character_unless(engine, gear, options, &|| false)
        .unwrap_or_else(|| unreachable!("never stopped"))
}

/// [`value_character`], stopping before the next item once `stop` says so (the caller no longer
/// wants the answer): `None` then.
pub fn value_character_unless(
    engine: &Engine,
    gear: &Gear,
    options: Options,
    stop: &dyn Fn() -> bool,
) -> Option<CharacterValuation> {
    let profile = gear.character_class.as_deref().and_then(class_profile);
    // Presets mostly repeat equipped items (the same `Arc`): each distinct item is priced once.
    let mut priced: Vec<(std::sync::Arc<GearItem>, ItemValuation)> = Vec::new();
    let lists = std::iter::once(&gear.items[..])
        .chain(gear.presets.iter().filter_map(|list| list.as_deref()));
    for item in lists.flatten() {
        if priced
            .iter()
            .any(|(seen, _)| std::sync::Arc::ptr_eq(seen, item))
        {
            continue;
        }
        if stop() {
            return None;
        }
        let valuation = value_item(engine, item, profile, options);
        priced.push((std::sync::Arc::clone(item), valuation));
    }
    let price_all = |list: &[std::sync::Arc<GearItem>]| -> Vec<usize> {
        list.iter()
            .filter_map(|item| {
                priced
                    .iter()
                    .position(|(seen, _)| std::sync::Arc::ptr_eq(seen, item))
            })
            .collect()
    };
    let equipped = price_all(&gear.items);
    let preset_lists = gear
        .presets
        .each_ref()
        .map(|list| list.as_deref().map(price_all));
    let of = |indices: &[usize]| -> Vec<&ItemValuation> {
        indices.iter().map(|&i| &priced[i].1).collect()
    };
    let totals = Totals::of(&of(&equipped));
    let presets = preset_lists
        .iter()
        .zip(1..)
        .filter_map(|(indices, preset_no)| {
            let totals = Totals::of(&of(indices.as_deref()?));
            Some(PresetValuation {
                preset_no,
                in_use: gear.preset_no == Some(preset_no),
                total_mesos: totals.mesos(),
                total_potential_mesos: totals.potential,
                total_additional_mesos: totals.additional,
                total_starforce_mesos: totals.starforce,
                total_flame_mesos: totals.flame,
                unpriced_items: totals.unpriced,
            })
        })
        .collect();
    Some(CharacterValuation {
        character_class: gear.character_class.clone(),
        main_stat: profile.map(|(stat, _)| stat),
        options,
        items: equipped.iter().map(|&i| priced[i].1.clone()).collect(),
        total_potential_mesos: totals.potential,
        total_additional_mesos: totals.additional,
        total_starforce_mesos: totals.starforce,
        total_flame_mesos: totals.flame,
        total_mesos: totals.mesos(),
        unpriced_items: totals.unpriced,
        presets,
    })
}

fn value_item(
    engine: &Engine,
    item: &GearItem,
    profile: Option<(MainStat, bool)>,
    options: Options,
) -> ItemValuation {
    let GearItem {
        slot,
        name,
        level,
        grade,
        lines,
        additional_grade,
        additional_lines,
        stars,
        from_scroll,
        flames,
        base_attack,
        base_magic,
    } = item;
    let (level, grade, additional_grade, stars) = (*level, *grade, *additional_grade, *stars);

    let (potential, potential_unpriced) = match price_potential(
        &engine.tables,
        &engine.prices,
        slot,
        level,
        grade,
        lines,
        profile,
        options,
    ) {
        Ok(price) => (Some(price), None),
        Err(reason) => (None, Some(reason)),
    };
    let (additional_potential, additional_unpriced) = if additional_grade.is_none() {
        (None, None)
    } else {
        match price_additional(
            engine,
            slot,
            level,
            additional_grade,
            additional_lines,
            profile,
        ) {
            Ok(price) => (Some(price), None),
            Err(reason) => (None, Some(reason)),
        }
    };
    let rule = StarforceRule::of(slot, name);
    // A Genesis weapon's first 22 stars were granted; only stars beyond them were bought.
    let (from, starforce_note) = if rule == StarforceRule::Genesis {
        let note = format!(
            "Genesis weapon: {GENESIS_GRANTED_STARS}★ are granted when it is liberated, no meso is spent on them"
        );
        (stars.min(GENESIS_GRANTED_STARS), Some(note))
    } else {
        (0, None)
    };
    let request = level.map(|level| options.starforce(level, from, stars));
    let (starforce_mesos, starforce_destroys, starforce_quantiles, starforce_unpriced) = if stars
        == 0
    {
        (Some(0.0), Some(0.0), Some(starforce::Spread::zero()), None)
    } else if *from_scroll {
        let reason = "stars from a star-force scroll, not meso enhancement".to_owned();
        (None, None, None, Some(reason))
    } else if rule == StarforceRule::Superior {
        let reason = "superior item: it follows its own star-force table (at most 15★; no current KMS source for its rates and costs is shipped), and the normal table would misprice it".to_owned();
        (None, None, None, Some(reason))
    } else if from == stars {
        // Nothing bought (a Genesis weapon at its granted 22★), whatever else is missing.
        (Some(0.0), Some(0.0), Some(starforce::Spread::zero()), None)
    } else if let Some(request) = request {
        let priced = engine
            .starforce
            .expect(&request)
            .and_then(|expectation| Ok((expectation, engine.starforce.spread(&request)?)));
        match priced {
            Ok((e, spread)) => (
                Some(e.expected_mesos),
                Some(e.expected_destroys),
                Some(spread),
                None,
            ),
            Err(e) => (None, None, None, Some(e.to_string())),
        }
    } else {
        let reason = "the item level is missing".to_owned();
        (None, None, None, Some(reason))
    };
    let starforce_note = starforce_note.filter(|_| starforce_mesos.is_some());
    let (flame, flame_unpriced) = match flames {
        None => (None, None),
        Some(totals) => match price_flames(
            engine,
            slot,
            name,
            level,
            (*base_attack, *base_magic),
            totals,
            profile,
            options,
        ) {
            Ok(price) => (Some(price), None),
            Err(reason) => (None, Some(reason)),
        },
    };
    ItemValuation {
        slot: slot.clone(),
        name: name.clone(),
        level,
        grade,
        lines: lines.clone(),
        stars,
        potential,
        potential_unpriced,
        additional_grade,
        additional_lines: additional_lines.clone(),
        additional_potential,
        additional_unpriced,
        starforce_mesos,
        starforce_destroys,
        starforce_quantiles,
        starforce_unpriced,
        starforce_note,
        flame,
        flame_unpriced,
    }
}

/// Prices one item's flames: its class (catalogue, else its totals), the target it has
/// now, and the meso resets until one is at least as good.
#[expect(
    clippy::too_many_arguments,
    reason = "the item's facts, read once by value_item"
)]
fn price_flames(
    engine: &Engine,
    slot: &str,
    name: &str,
    level: Option<u32>,
    (base_attack, base_magic): (u32, u32),
    totals: &AddOption,
    profile: Option<(MainStat, bool)>,
    options: Options,
) -> Result<FlamePrice, String> {
    let level = level.ok_or("the item level is missing")?;
    let (main, magician) = profile.ok_or("the character's class is unknown: no flame score")?;
    if main == MainStat::Hp {
        return Err(
            "Demon Avenger's flames are scored by HP, and no community score for it is sourced"
                .to_owned(),
        );
    }
    let item = |boss| FlameItem {
        level,
        weapon: slot == "무기",
        boss,
        base_attack,
        base_magic,
    };
    let fits = |boss| flame::split(&item(boss), totals);
    let (boss, boss_by, split) = match flame::catalogue_says_boss(name) {
        Some(boss) => {
            let split = fits(boss).ok_or_else(|| {
                let class = if boss { "four boss lines (tiers 3–7)" } else { "1–4 lines of tiers 1–5" };
                format!("the flame totals do not split into {class}: not a normal flamed item, or the catalogue is wrong")
            })?;
            (boss, BossBy::Catalogue, split)
        }
        None => match (fits(true), fits(false)) {
            (Some(split), None) => (true, BossBy::Totals, split),
            (None, Some(split)) => (false, BossBy::Totals, split),
            (Some(_), Some(split)) => (false, BossBy::Assumed, split),
            (None, None) => {
                return Err("the flame totals split into no valid lines, boss or not".to_owned());
            }
        },
    };
    let item = item(boss);
    let kind = FlameKind::Reset;
    let (score, tier, probability) = if item.weapon {
        let tier = if magician {
            split.magic_tier
        } else {
            split.attack_tier
        }
        .unwrap_or(0);
        let probability = if tier == 0 {
            1.0
        } else {
            flame::weapon_probability(&item, kind, tier)
        };
        (None, Some(tier), probability)
    } else {
        let scorer = Scorer {
            main,
            magician,
            secondary_per_mille: options.flame_secondary_per_mille,
        };
        let milli = scorer.score_milli(totals);
        let probability = engine.flames.probability(&item, &scorer, kind, milli);
        #[expect(clippy::cast_precision_loss, reason = "a score far below 2^53")]
        let score = milli as f64 / 1000.0;
        (Some(score), None, probability)
    };
    let nothing_to_reach = score == Some(0.0) || tier == Some(0);
    let resets = Resets::of(probability);
    let (Some(expected), Some(quantiles)) = (resets.expected_resets, resets.quantiles) else {
        return Err("the current flames cannot be reached by a meso reset".to_owned());
    };
    let (expected_resets, quantiles) = if nothing_to_reach {
        (
            0.0,
            Quantiles {
                p50: 0,
                p75: 0,
                p90: 0,
                p95: 0,
                p99: 0,
            },
        )
    } else {
        (expected, quantiles)
    };
    #[expect(clippy::cast_precision_loss, reason = "a fixed price")]
    let price = flame::MESO_RESET_PRICE as f64;
    Ok(FlamePrice {
        score,
        tier,
        boss,
        boss_by,
        probability,
        expected_resets,
        expected_mesos: expected_resets * price,
        resets: quantiles,
    })
}

#[expect(
    clippy::too_many_arguments,
    reason = "one item's facts, passed once, internally"
)]
fn price_potential(
    tables: &RateTables,
    prices: &Prices,
    slot: &str,
    level: Option<u32>,
    grade: Option<Grade>,
    lines: &[ParsedOption],
    profile: Option<(MainStat, bool)>,
    options: Options,
) -> Result<PotentialPrice, String> {
    let item_type = item_type_of_slot(slot).ok_or("this slot has no potential")?;
    let grade = grade.ok_or("no potential on this item")?;
    let level = level.ok_or("the item level is missing")?;
    let method = options.method;
    potential::level_bump(item_type, method.tables(), grade, level).map_err(|e| e.to_string())?;
    let (stat, magician) = profile.ok_or("unknown class: main stat not known")?;
    let terms = derive_target(item_type, lines, stat, magician);
    let tier_steps = tierup::path(Grade::Rare, grade, method, options.miracle_time)
        .ok_or_else(|| format!("no tier-up rates for {method}"))?;
    price_target(
        terms,
        &tier_steps,
        |g| prices.per_reset(method, level, g),
        grade,
        |target| {
            potential::probability(tables, item_type, level, grade, method.tables(), target)
                .map_err(|e| e.to_string())
        },
        method.as_str(),
    )
}

/// The additional potential of one item: its own tables, the additional meso reset's prices
/// and tier-up (whatever method the request names: KMS sells no additional cubes either).
fn price_additional(
    engine: &Engine,
    slot: &str,
    level: Option<u32>,
    grade: Option<Grade>,
    lines: &[ParsedOption],
    profile: Option<(MainStat, bool)>,
) -> Result<PotentialPrice, String> {
    let item_type = item_type_of_slot(slot).ok_or("this slot has no additional potential")?;
    let part = additional::part_of_slot(slot).ok_or_else(|| {
        format!("Nexon publishes no additional-potential table for the {slot} slot")
    })?;
    let grade = grade.ok_or("no additional potential on this item")?;
    let level = level.ok_or("the item level is missing")?;
    let (stat, magician) = profile.ok_or("unknown class: main stat not known")?;
    let table = engine.additional.lines(part, level, grade)?;
    let terms = derive_target(item_type, lines, stat, magician);
    let tier_steps: Vec<(Grade, f64)> = Grade::ALL
        .iter()
        .copied()
        .filter(|g| *g < grade)
        .map(|g| {
            let (rate, pity) = additional::TIER_UP[g.index()];
            (g, tierup::expected_step_resets(rate, pity, false))
        })
        .collect();
    price_target(
        terms,
        &tier_steps,
        |g| Some(additional::reset_price(level, g)),
        grade,
        |target| Ok(potential::probability_over(table, 0, target)),
        "the additional meso reset",
    )
}

/// What reaching `terms` at `grade` costs: the tier-up steps at their own grade's price,
/// then 1/p rolls at `grade`'s price.
fn price_target(
    terms: Vec<Term>,
    tier_steps: &[(Grade, f64)],
    price: impl Fn(Grade) -> Option<u64>,
    grade: Grade,
    probability: impl FnOnce(&Target) -> Result<f64, String>,
    method: &str,
) -> Result<PotentialPrice, String> {
    let tier_up_resets: f64 = tier_steps.iter().map(|(_, resets)| resets).sum();
    let tier_up_mesos: Option<f64> = tier_steps
        .iter()
        .map(|(g, resets)| price(*g).map(|p| p as f64 * resets))
        .sum();
    // No valued line: reaching the grade is all it took.
    let (probability, rolls) = if terms.is_empty() {
        (1.0, Some(0.0))
    } else {
        let target = Target::new(terms.clone()).map_err(|e| e.to_string())?;
        let p = probability(&target)?;
        (p, (p > 0.0).then(|| 1.0 / p))
    };
    let expected_mesos = match (rolls, price(grade), tier_up_mesos) {
        (Some(rolls), Some(price), Some(tier)) => Some(tier + rolls * price as f64),
        _ => None,
    };
    let unpriced_reason = if rolls.is_none() {
        Some(format!("the current lines cannot be rolled with {method}"))
    } else if expected_mesos.is_none() {
        Some(format!("no price configured for {method}"))
    } else {
        None
    };
    Ok(PotentialPrice {
        target: terms,
        probability,
        expected_resets: rolls,
        tier_up_resets,
        expected_mesos,
        unpriced_reason,
    })
}

#[cfg(test)]
mod tests;
