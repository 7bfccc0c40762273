//! Flames (추가옵션) drawn by the game's rules, so simulated items carry realistic
//! `item_add_option` totals (DOMAIN.md §6d; the engine prices them with the same rules in
//! `engine/src/flame.rs`). The draw is written here on its own, not taken from the engine:
//! the simulator stands in for Nexon, and an engine mistake copied into it would go unseen.
//!
//! One reset: boss items draw 4 lines at tiers 3–7, other items 1–4 lines (40/40/16/4 %) at
//! tiers 1–5, with the meso reset's (black flame's) tier odds; the line types are distinct and
//! uniform over the item's pool (19 types; weapons trade speed and jump for boss damage from
//! level 90 and damage; other items get ATT/MATT from 60 and all stat % from 70). Values by
//! the level formulas. Which items are boss items the response does not say; the simulator
//! reads the same catalogue as the engine (`data/flame_boss_items.csv`), so every item it
//! flames as a boss item is one the engine prices as one.

use serde_json::Value;

/// The boss-item catalogue the engine reads too.
const BOSS_CATALOGUE: &str = include_str!("../../data/flame_boss_items.csv");

/// Whether the catalogue names `name` a boss item (rows `prefix`, `contains`, `name`; `not`
/// wins).
pub fn is_boss(name: &str) -> bool {
    let rows = BOSS_CATALOGUE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("match,"))
        .filter_map(|line| line.split_once(','));
    let mut boss = false;
    for (kind, text) in rows {
        let text = text.trim();
        match kind {
            "not" if name == text => return false,
            "prefix" => boss |= name.starts_with(text),
            "contains" => boss |= name.contains(text),
            "name" => boss |= name == text,
            _ => {}
        }
    }
    boss
}

/// Tier odds of the meso reset for tiers 1–5 (boss items: 3–7), percent.
const TIER_ODDS: [u64; 5] = [0, 29, 45, 25, 1];
/// Lines on a non-boss item: 1, 2, 3, 4 with these odds, percent.
const LINE_ODDS: [u64; 4] = [40, 40, 16, 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// STR, DEX, INT, LUK by index.
    Single(usize),
    Double(usize, usize),
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

fn pool(level: u64, weapon: bool) -> Vec<Line> {
    let mut lines: Vec<Line> = (0..4).map(Line::Single).collect();
    for a in 0..4 {
        for b in a + 1..4 {
            lines.push(Line::Double(a, b));
        }
    }
    lines.extend([Line::MaxHp, Line::MaxMp, Line::LevelDecrease, Line::Defense]);
    if weapon {
        lines.extend([Line::Attack, Line::Magic, Line::Damage, Line::AllStat]);
        if level >= 90 {
            lines.push(Line::BossDamage);
        }
    } else {
        if level >= 60 {
            lines.extend([Line::Attack, Line::Magic]);
        }
        lines.extend([Line::Speed, Line::Jump]);
        if level >= 70 {
            lines.push(Line::AllStat);
        }
    }
    lines
}

/// An item's flame totals, in `item_add_option`'s order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub stats: [u64; 4],
    pub max_hp: u64,
    pub max_mp: u64,
    pub attack_power: u64,
    pub magic_power: u64,
    pub armor: u64,
    pub speed: u64,
    pub jump: u64,
    pub boss_damage: u64,
    pub damage: u64,
    pub all_stat: u64,
    pub equipment_level_decrease: u64,
}

/// What the drawing needs to know of the item.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub level: u64,
    pub weapon: bool,
    pub boss: bool,
    pub base_attack: u64,
    pub base_magic: u64,
}

/// A weapon's ATT (MATT) line: ⌈base·(⌊L/40⌋+1)·tier·1.1^(tier−k) %⌉, k = 3 on boss weapons,
/// 1 on others, in integers.
fn weapon_attack(base: u64, level: u64, tier: u64, boss: bool) -> u64 {
    let power = u32::try_from(tier.saturating_sub(if boss { 3 } else { 1 })).unwrap_or(0);
    (base * (level / 40 + 1) * tier * 11_u64.pow(power)).div_ceil(100 * 10_u64.pow(power))
}

/// One reset's totals for `item`, drawn with `uniform` (values in `[0, 1)`).
pub fn draw(item: &Item, mut uniform: impl FnMut() -> f64) -> Totals {
    let mut pick = |weights: &[u64]| -> usize {
        let total: u64 = weights.iter().sum();
        #[expect(clippy::cast_precision_loss, reason = "small weights")]
        let mut left = uniform() * total as f64;
        for (i, &w) in weights.iter().enumerate() {
            #[expect(clippy::cast_precision_loss, reason = "small weights")]
            let w = w as f64;
            if left < w {
                return i;
            }
            left -= w;
        }
        weights.len() - 1
    };
    let lines = if item.boss { 4 } else { pick(&LINE_ODDS) + 1 };
    let mut types = pool(item.level, item.weapon);
    let mut totals = Totals::default();
    let level = item.level;
    let single = if level >= 250 { 12 } else { level / 20 + 1 };
    let double = level / 40 + 1;
    let hp = match level {
        0..=199 => level / 10 * 30,
        200..=249 => 600,
        _ => 700,
    };
    for _ in 0..lines {
        let index = pick(&vec![1; types.len()]);
        let line = types.swap_remove(index);
        let tier = pick(&TIER_ODDS) as u64 + 1 + if item.boss { 2 } else { 0 };
        match line {
            Line::Single(s) => totals.stats[s] += single * tier,
            Line::Double(a, b) => {
                totals.stats[a] += double * tier;
                totals.stats[b] += double * tier;
            }
            Line::MaxHp => totals.max_hp += hp * tier,
            Line::MaxMp => totals.max_mp += hp * tier,
            Line::LevelDecrease => totals.equipment_level_decrease += 5 * tier,
            Line::Defense => totals.armor += single * tier,
            Line::Attack if item.weapon => {
                totals.attack_power += weapon_attack(item.base_attack, level, tier, item.boss);
            }
            Line::Magic if item.weapon => {
                totals.magic_power += weapon_attack(item.base_magic, level, tier, item.boss);
            }
            Line::Attack => totals.attack_power += tier,
            Line::Magic => totals.magic_power += tier,
            Line::Speed => totals.speed += tier,
            Line::Jump => totals.jump += tier,
            Line::BossDamage => totals.boss_damage += 2 * tier,
            Line::Damage => totals.damage += tier,
            Line::AllStat => totals.all_stat += tier,
        }
    }
    totals
}

/// Writes `totals` into an item's `item_add_option` as Nexon does: strings, and the level
/// reduction a number.
pub fn write(add_option: &mut Value, totals: &Totals) {
    let text = |n: u64| Value::from(n.to_string());
    for (field, value) in ["str", "dex", "int", "luk"].iter().zip(totals.stats) {
        add_option[*field] = text(value);
    }
    add_option["max_hp"] = text(totals.max_hp);
    add_option["max_mp"] = text(totals.max_mp);
    add_option["attack_power"] = text(totals.attack_power);
    add_option["magic_power"] = text(totals.magic_power);
    add_option["armor"] = text(totals.armor);
    add_option["speed"] = text(totals.speed);
    add_option["jump"] = text(totals.jump);
    add_option["boss_damage"] = text(totals.boss_damage);
    add_option["damage"] = text(totals.damage);
    add_option["all_stat"] = text(totals.all_stat);
    add_option["equipment_level_decrease"] = Value::from(totals.equipment_level_decrease);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut rng = maple_engine::splitmix::SplitMix64::new(seed);
        move || rng.open01()
    }

    #[test]
    fn boss_items_get_four_lines_at_boss_tiers() {
        let item = Item {
            level: 200,
            weapon: false,
            boss: true,
            base_attack: 0,
            base_magic: 0,
        };
        let mut next = uniform(7);
        for _ in 0..2000 {
            let t = draw(&item, &mut next);
            // Every non-stat figure is one line at tier 3–7.
            for (value, per_tier) in [(t.all_stat, 1), (t.speed, 1), (t.jump, 1), (t.armor, 11)] {
                assert!(value == 0 || (3..=7).contains(&(value / per_tier)), "{t:?}");
            }
            assert!(t.attack_power == 0 || (3..=7).contains(&t.attack_power));
            // Stat lines at 200: 11 per tier (single), 6 to both stats (double); at most four
            // lines, so no stat exceeds 4 × 77.
            assert!(t.stats.iter().all(|&s| s <= 4 * 77), "{t:?}");
        }
    }

    #[test]
    fn the_catalogue_names_the_boss_items() {
        assert!(is_boss("제네시스 스태프") && is_boss("레드 매지션 마이스터 심볼"));
        assert!(is_boss("에테르넬 메이지햇") && is_boss("데이브레이크 펜던트"));
        assert!(!is_boss("그리드 펜던트") && !is_boss("혼테일의 목걸이"));
    }

    #[test]
    fn genesis_weapon_lines_use_the_weapon_formula() {
        assert_eq!(weapon_attack(406, 200, 7, true), 250);
        assert_eq!(weapon_attack(249, 200, 7, true), 154);
        let item = Item {
            level: 200,
            weapon: true,
            boss: true,
            base_attack: 249,
            base_magic: 0,
        };
        let mut next = uniform(9);
        let attack: Vec<u64> = (0..500)
            .map(|_| draw(&item, &mut next).attack_power)
            .collect();
        let allowed: Vec<u64> = (3..=7).map(|t| weapon_attack(249, 200, t, true)).collect();
        assert!(attack.iter().all(|a| *a == 0 || allowed.contains(a)));
        // 4 of 19 types: about 21% of draws carry the ATT line.
        let with = attack.iter().filter(|a| **a > 0).count();
        assert!((60..150).contains(&with), "{with}");
    }
}
