//! Flames' tests: DOMAIN.md §6d's worked checks, the exact law against a brute-force
//! enumeration and a seeded simulation, the laws' shape, and the real responses' totals.

use std::collections::HashMap;

use super::*;
use crate::splitmix::SplitMix64;

fn boss_armor(level: u32) -> FlameItem {
    FlameItem {
        level,
        weapon: false,
        boss: true,
        base_attack: 0,
        base_magic: 0,
    }
}

const INT_MAGE: Scorer = Scorer {
    main: MainStat::Int,
    magician: true,
    secondary_per_mille: 0,
};

fn p(item: &FlameItem, scorer: &Scorer, kind: FlameKind, score: u64) -> f64 {
    Distribution::of(item, scorer, kind).at_least(score * 1000)
}

/// DOMAIN.md §6d, boss armour under the meso reset: level 250 ≥ 180 → p = 0.000558
/// (1,791 resets); level 200 ≥ 140 → 0.00623; level 140 ≥ 148 → 10,763 resets; a boss
/// weapon's ATT line at tier 7: 4/19 × 1 %.
#[test]
fn domain_checks() {
    let at_250 = p(&boss_armor(250), &INT_MAGE, FlameKind::Reset, 180);
    assert!((at_250 - 0.000558).abs() < 0.0000005, "{at_250}");
    assert_eq!((1.0 / at_250).round(), 1791.0);
    let at_200 = p(&boss_armor(200), &INT_MAGE, FlameKind::Reset, 140);
    assert!((at_200 - 0.00623).abs() < 0.000005, "{at_200}");
    let at_140 = p(&boss_armor(140), &INT_MAGE, FlameKind::Reset, 148);
    assert_eq!((1.0 / at_140).round(), 10_763.0, "{}", 1.0 / at_140);
    let weapon = FlameItem {
        weapon: true,
        base_attack: 249,
        ..boss_armor(200)
    };
    let top = weapon_probability(&weapon, FlameKind::Reset, 7);
    assert!((top - 4.0 / 19.0 * 0.01).abs() < 1e-15, "{top}");
    // The research note's table for the other flames (boss weapon, ≥ tier 6).
    assert!((weapon_probability(&weapon, FlameKind::Reset, 6) - 0.0547).abs() < 0.0001);
    assert!((weapon_probability(&weapon, FlameKind::Powerful, 6) - 0.0295).abs() < 0.0001);
    assert_eq!(weapon_probability(&weapon, FlameKind::Powerful, 7), 0.0);
    assert!((weapon_probability(&weapon, FlameKind::Abyss, 7) - 0.00632).abs() < 0.00001);
    // And for armour at level 200, ≥ 140, 강력한 0.228 %, 심연 1.19 %.
    let powerful = p(&boss_armor(200), &INT_MAGE, FlameKind::Powerful, 140);
    assert!((powerful - 0.00228).abs() < 0.000005, "{powerful}");
    let abyss = p(&boss_armor(200), &INT_MAGE, FlameKind::Abyss, 140);
    assert!((abyss - 0.0119).abs() < 0.00005, "{abyss}");
}

/// Every 4-subset of the pool and every tier vector, summed by hand: the programme's law to
/// 1e-9 relative, boss and non-boss, with and without a secondary weight.
#[test]
fn the_law_matches_a_brute_force_enumeration() {
    let cases = [
        (boss_armor(200), INT_MAGE),
        (
            FlameItem {
                boss: false,
                ..boss_armor(160)
            },
            Scorer {
                main: MainStat::Dex,
                magician: false,
                secondary_per_mille: 100,
            },
        ),
        (
            boss_armor(65),
            Scorer {
                main: MainStat::All,
                magician: false,
                secondary_per_mille: 0,
            },
        ),
    ];
    for (item, scorer) in cases {
        let law = Distribution::of(&item, &scorer, FlameKind::Reset);
        let pool = pool(item.level, item.weapon);
        let mut mass: HashMap<u64, f64> = HashMap::new();
        for (lines, odds) in line_counts(item.boss) {
            let subsets = choose(pool.len(), lines);
            for subset in subsets_of(pool.len(), lines) {
                let mut partial: HashMap<u64, f64> = HashMap::from([(0, odds / subsets)]);
                for &i in &subset {
                    let mut next = HashMap::new();
                    for (&score, &p) in &partial {
                        for t in tiers(item.boss) {
                            let q = tier_odds(FlameKind::Reset, item.boss, t);
                            if q > 0.0 {
                                *next
                                    .entry(score + scorer.line_milli(&item, pool[i], t))
                                    .or_insert(0.0) += p * q;
                            }
                        }
                    }
                    partial = next;
                }
                for (score, p) in partial {
                    *mass.entry(score).or_insert(0.0) += p;
                }
            }
        }
        let total: f64 = mass.values().sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let mut scores: Vec<u64> = mass.keys().copied().collect();
        scores.sort_unstable();
        for &target in &scores {
            let brute: f64 = mass
                .iter()
                .filter(|(s, _)| **s >= target)
                .map(|(_, p)| p)
                .sum();
            let exact = law.at_least(target);
            assert!(
                (exact - brute).abs() <= 1e-9 * brute,
                "{item:?} ≥ {target}: {exact} vs {brute}"
            );
        }
    }
}

fn subsets_of(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![vec![]];
    }
    (0..n)
        .flat_map(|first| {
            subsets_of(n - first - 1, k - 1)
                .into_iter()
                .map(move |rest| {
                    std::iter::once(first)
                        .chain(rest.into_iter().map(|r| r + first + 1))
                        .collect()
                })
        })
        .collect()
}

/// A seeded simulation of resets lands within four standard errors of the exact p.
#[test]
fn a_simulation_agrees_with_the_exact_law() {
    let item = boss_armor(200);
    let pool = pool(item.level, item.weapon);
    let odds = FlameKind::Reset.tier_odds();
    let mut rng = SplitMix64::new(31);
    let trials = 200_000;
    let mut hits = 0_u32;
    for _ in 0..trials {
        let mut types: Vec<usize> = (0..pool.len()).collect();
        let mut score = 0;
        for drawn in 0..4 {
            let pick = drawn + (rng.next_u64() as usize) % (types.len() - drawn);
            types.swap(drawn, pick);
            let u = rng.open01();
            let mut acc = 0.0;
            let tier = (0..5)
                .find(|&i| {
                    acc += odds[i];
                    u < acc
                })
                .unwrap_or(4) as u32
                + 3;
            score += INT_MAGE.line_milli(&item, pool[types[drawn]], tier);
        }
        hits += u32::from(score >= 120_000);
    }
    let simulated = f64::from(hits) / f64::from(trials);
    let exact = p(&item, &INT_MAGE, FlameKind::Reset, 120);
    let se = (exact * (1.0 - exact) / f64::from(trials)).sqrt();
    assert!(
        (simulated - exact).abs() < 4.0 * se,
        "{simulated} vs {exact}"
    );
}

/// Probabilities stay in [0, 1] and fall as the target rises, for every class of item.
#[test]
fn laws_are_probabilities_and_monotone() {
    for level in [30, 65, 75, 100, 140, 160, 200, 250] {
        for boss in [false, true] {
            for kind in [FlameKind::Reset, FlameKind::Powerful, FlameKind::Abyss] {
                let item = FlameItem {
                    boss,
                    ..boss_armor(level)
                };
                let law = Distribution::of(&item, &INT_MAGE, kind);
                let mut last = 1.0;
                assert!((law.at_least(0) - 1.0).abs() < 1e-12);
                for score in 0..400 {
                    let now = law.at_least(score * 1000);
                    assert!((0.0..=1.0).contains(&now) && now <= last + 1e-15);
                    last = now;
                }
                assert_eq!(law.at_least(10_000_000), 0.0);
            }
        }
        let weapon = FlameItem {
            weapon: true,
            ..boss_armor(level)
        };
        let mut last = 1.0;
        for tier in 0..=8 {
            let now = weapon_probability(&weapon, FlameKind::Reset, tier);
            assert!((0.0..=1.0).contains(&now) && now <= last + 1e-15);
            last = now;
        }
    }
}

/// The weapon formula in integers reproduces the namu tables (research note §3.2) and the
/// two Genesis weapons of the references.
#[test]
fn weapon_attack_lines() {
    let tiers = |base, level| {
        (3..=7)
            .map(|t| weapon_attack(base, level, t, true))
            .collect::<Vec<_>>()
    };
    assert_eq!(tiers(86, 150), [11, 16, 21, 28, 36]);
    assert_eq!(tiers(125, 150), [15, 22, 31, 40, 52]);
    assert_eq!(tiers(160, 150), [20, 29, 39, 52, 66]);
    assert_eq!(tiers(295, 200), [54, 78, 108, 142, 182]);
    assert_eq!(weapon_attack(400, 200, 7, true), 246);
    assert_eq!(weapon_attack(406, 200, 7, true), 250);
    assert_eq!(weapon_attack(249, 200, 7, true), 154);
}

/// Reads `item_add_option` totals with the valuation's own decoder.
fn totals_of(value: &serde_json::Value) -> AddOption {
    serde_json::from_value(value.clone()).expect("item_add_option decodes")
}

/// Every flamed item of the two real responses (equipped and presets) splits into valid
/// lines for its class, the catalogue's boss items into four boss lines, and both Genesis
/// weapons carry a tier-7 line.
#[test]
fn every_flamed_item_of_the_references_splits() {
    let mut checked = 0;
    for body in [
        include_str!("../../../data/evan_equip.json"),
        include_str!("../../../data/mechanic_equip.json"),
    ] {
        let response: serde_json::Value = serde_json::from_str(body).expect("json");
        for list in [
            "item_equipment",
            "item_equipment_preset_1",
            "item_equipment_preset_2",
            "item_equipment_preset_3",
        ] {
            for item in response[list].as_array().into_iter().flatten() {
                let totals = totals_of(&item["item_add_option"]);
                if totals.is_empty() {
                    continue;
                }
                let name = item["item_name"].as_str().expect("name");
                let base = &item["item_base_option"];
                let number = |f: &str| base[f].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                let flame = FlameItem {
                    level: u32::try_from(base["base_equipment_level"].as_u64().expect("level"))
                        .expect("level"),
                    weapon: item["item_equipment_slot"] == "무기",
                    boss: catalogue_says_boss(name).unwrap_or(false),
                    base_attack: number("attack_power"),
                    base_magic: number("magic_power"),
                };
                let split = split(&flame, &totals);
                assert!(split.is_some(), "{name}: {totals:?} does not split");
                if flame.boss {
                    assert_eq!(split.map(|s| s.lines), Some(4), "{name}");
                }
                if name.starts_with("제네시스") {
                    let tier = split.and_then(|s| s.attack_tier.or(s.magic_tier));
                    assert_eq!(tier, Some(7), "{name}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 28, "{checked}");
    // A boss item whose totals only fit tiers 1–2 does not split as a boss item.
    let low = AddOption {
        jump: 2,
        ..AddOption::default()
    };
    assert!(split(&boss_armor(75), &low).is_none());
    assert!(
        split(
            &FlameItem {
                boss: false,
                ..boss_armor(75)
            },
            &low
        )
        .is_some()
    );
    // A boss pistol (no MATT of its own) whose fourth line is MATT shows three lines.
    let pistol = FlameItem {
        weapon: true,
        base_attack: 249,
        ..boss_armor(200)
    };
    let three = AddOption {
        attack_power: 154,
        boss_damage: 12,
        equipment_level_decrease: 30,
        ..AddOption::default()
    };
    assert_eq!(split(&pistol, &three).map(|s| s.attack_tier), Some(Some(7)));
    let armour_three = AddOption {
        all_stat: 5,
        jump: 5,
        speed: 5,
        ..AddOption::default()
    };
    assert!(split(&boss_armor(200), &armour_three).is_none());
    assert_eq!(catalogue_says_boss("혼테일의 목걸이"), Some(false));
    assert_eq!(catalogue_says_boss("레드 매지션 마이스터 심볼"), Some(true));
    assert_eq!(catalogue_says_boss("그리드 펜던트"), None);
}

#[test]
fn resets_follow_the_geometric_law() {
    let resets = Resets::of(0.01);
    assert_eq!(resets.expected_resets, Some(100.0));
    let q = resets.quantiles.expect("reachable");
    // ⌈ln 0.5 / ln 0.99⌉ = 69, ⌈ln 0.01 / ln 0.99⌉ = 459.
    assert_eq!((q.p50, q.p99), (69, 459));
    assert!(Resets::of(0.0).expected_resets.is_none());
    // A tiny p keeps its quantiles: ⌈ln 0.5 / ln(1 − 1e-18)⌉ ≈ 6.9e17, not 1.
    let rare = Resets::of(1e-18).quantiles.expect("reachable");
    assert!(rare.p50 > 600_000_000_000_000_000, "{rare:?}");
    assert_eq!(Resets::of(1.0).quantiles.map(|q| q.p99), Some(1));
}
