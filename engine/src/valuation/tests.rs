//! The valuation's tests: the real responses priced end to end, the slot rules, the item
//! rules (scroll stars, Genesis, superior), presets and additional potential.

use super::*;
use crate::option;
use crate::tables::tests::built_in;

/// The built-in tables with default prices and cost table, loaded once.
fn engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Engine::built_in().expect("the built-in tables are valid"))
}

/// `equipment` priced with the built-in tables, default prices and options.
fn priced(equipment: &Equipment) -> CharacterValuation {
    value_character(engine(), &Gear::from(equipment), Options::default())
}

fn fixture(name: &str) -> Equipment {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("equipment JSON")
}

/// Every potential line of both real responses (equipped and the three presets) is an
/// option the tables admit for that item's type, level (the KMS rule: +1 only from 250),
/// grade and line — under some cube, since any may have rolled it. Categories the tables
/// lump into `Junk` for the group and lines the parser does not know as table options
/// (additional-potential style) are counted apart; everything else must match exactly.
#[test]
fn every_line_of_the_real_responses_is_one_the_tables_admit() {
    use crate::model::Cube;
    use crate::tables::GroupKey;
    let tables = built_in();
    let (mut checked, mut lumped, mut untabled) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (file, item) in crate::tables::tests::real_items() {
        let item: Item = serde_json::from_value(item).expect("an item");
        let slot = item.item_equipment_slot.clone().unwrap_or_default();
        let (Some(item_type), Some(level), Some(grade)) =
            (item_type_of_slot(&slot), item.level(), item.grade())
        else {
            continue;
        };
        // Below 120 only the parts whose tables are shipped for that level (black cube).
        let Ok(bump) = potential::level_bump(item_type, Cube::Black, grade, level) else {
            untabled += 1;
            continue;
        };
        let cubes: &[Cube] = if level < 120 {
            &[Cube::Black]
        } else {
            Cube::ALL
        };
        let texts = [
            &item.potential_option_1,
            &item.potential_option_2,
            &item.potential_option_3,
        ];
        for (line, text) in texts.into_iter().enumerate() {
            let Some(text) = text else { continue };
            let ParsedOption::Known { category, value } = option::parse(text) else {
                untabled += 1;
                continue;
            };
            let groups: Vec<_> = cubes
                .iter()
                .filter_map(|&cube| {
                    tables.lines(GroupKey {
                        item_type,
                        cube,
                        grade,
                    })
                })
                .collect();
            if groups.is_empty() {
                untabled += 1;
                continue;
            }
            let listed = groups
                .iter()
                .flat_map(|g| g.iter().flatten())
                .any(|o| o.category == category);
            if !listed {
                lumped += 1;
                continue;
            }
            let admitted = groups.iter().flat_map(|g| &g[line]).any(|o| {
                o.category == category
                    && o.value + if category.has_level_bump() { bump } else { 0 } == value
            });
            checked += 1;
            if !admitted {
                wrong.push(format!(
                    "{file}: {slot} (level {level}, {grade}) line {}: {text:?}",
                    line + 1
                ));
            }
        }
    }
    eprintln!("admitted {checked} lines; {lumped} in Junk; {untabled} without a table");
    assert!(
        wrong.is_empty(),
        "lines the tables do not admit:\n{}",
        wrong.join("\n")
    );
    assert!(
        checked > 200,
        "checked {checked} (lumped {lumped}, untabled {untabled})"
    );
}

#[test]
fn targets_follow_the_slot_rules() {
    let parse = |texts: &[&str]| texts.iter().map(|t| option::parse(t)).collect::<Vec<_>>();
    assert_eq!(
        derive_target(
            ItemType::Hat,
            &parse(&["스킬 재사용 대기시간 -2초", "INT +9%", "올스탯 +6%"]),
            MainStat::Int,
            true
        ),
        vec![
            Term::CooldownSeconds { min: 2 },
            Term::StatPct {
                stat: MainStat::Int,
                min: 15
            }
        ]
    );
    assert_eq!(
        derive_target(
            ItemType::Weapon,
            &parse(&["마력 +12%", "보스 몬스터 데미지 +35%", "마력 +9%"]),
            MainStat::Int,
            true
        ),
        vec![Term::MattPct { min: 21 }, Term::BossPct { min: 35 }]
    );
    // Ignore defense by value on weapons, secondaries and emblems.
    assert_eq!(
        derive_target(
            ItemType::Emblem,
            &parse(&[
                "공격력 +9%",
                "몬스터 방어율 무시 +30%",
                "몬스터 방어율 무시 +30%"
            ]),
            MainStat::Luk,
            false
        ),
        vec![Term::AttPct { min: 9 }, Term::IedPct { min: 60 }]
    );
    assert_eq!(
        derive_target(
            ItemType::Secondary,
            &parse(&[
                "보스 몬스터 데미지 +30%",
                "보스 몬스터 데미지 +30%",
                "몬스터 방어율 무시 +40%"
            ]),
            MainStat::Str,
            false
        ),
        vec![Term::BossPct { min: 60 }, Term::IedPct { min: 40 }]
    );
    // Xenon: all-stat 9 plus STR 12 and LUK 12 (a third each) is 17 all-stat %.
    assert_eq!(
        derive_target(
            ItemType::Top,
            &parse(&["올스탯 +9%", "STR +12%", "LUK +12%"]),
            MainStat::All,
            false
        ),
        vec![Term::StatPct {
            stat: MainStat::All,
            min: 17
        }]
    );
    assert_eq!(
        derive_target(
            ItemType::Ring,
            &parse(&["아이템 드롭률 +20%", "메소 획득량 +20%", "DEX +9%"]),
            MainStat::Dex,
            false
        ),
        vec![Term::MesoOrDropLines { min: 2 }]
    );
    assert!(
        derive_target(
            ItemType::Top,
            &parse(&["최대 MP +9%"]),
            MainStat::Str,
            false
        )
        .is_empty()
    );
}

#[test]
fn the_real_characters_are_priced_with_reasons_for_the_rest() {
    for file in ["evan_equip.json", "mechanic_equip.json"] {
        let equipment = fixture(file);
        let valuation = priced(&equipment);
        assert_eq!(valuation.items.len(), 24, "{file}");
        assert!(valuation.total_mesos > 0.0);
        assert!(valuation.total_starforce_mesos > 0.0);
        for item in &valuation.items {
            let priced = item
                .potential
                .as_ref()
                .is_some_and(|p| p.expected_mesos.is_some());
            let explained = item.potential_unpriced.is_some()
                || item
                    .potential
                    .as_ref()
                    .is_some_and(|p| p.unpriced_reason.is_some());
            assert!(
                priced ^ explained,
                "{file} {}: priced or explained",
                item.slot
            );
            if let Some(p) = &item.potential {
                assert!((0.0..=1.0).contains(&p.probability));
            }
        }
        // The additional potential: each item that has one shows its grade and lines and
        // is priced or says why; the legendary ones from level 100 are priced.
        let mut additional_priced = 0;
        for item in &valuation.items {
            let Some(grade) = item.additional_grade else {
                assert!(item.additional_potential.is_none() && item.additional_unpriced.is_none());
                continue;
            };
            assert!(!item.additional_lines.is_empty(), "{file} {}", item.slot);
            let priced = item
                .additional_potential
                .as_ref()
                .is_some_and(|p| p.expected_mesos.is_some());
            if priced {
                additional_priced += 1;
            } else {
                let reason = item.additional_unpriced.as_deref().or_else(|| {
                    item.additional_potential
                        .as_ref()
                        .and_then(|p| p.unpriced_reason.as_deref())
                });
                assert!(
                    reason.is_some(),
                    "{file} {}: priced or explained",
                    item.slot
                );
                let legendary_in_tables = grade == Grade::Legendary
                    && item.level.is_some_and(|l| l >= 100)
                    && additional::part_of_slot(&item.slot).is_some();
                assert!(
                    !legendary_in_tables
                        || reason.is_some_and(|r| r.contains("no additional-potential table")),
                    "{file} {}: {reason:?}",
                    item.slot
                );
            }
        }
        assert!(additional_priced >= 12, "{file}: {additional_priced}");
        let additional: f64 = valuation
            .items
            .iter()
            .filter_map(|i| i.additional_potential.as_ref()?.expected_mesos)
            .sum();
        assert_eq!(additional, valuation.total_additional_mesos);
        let sum = valuation.total_potential_mesos
            + valuation.total_additional_mesos
            + valuation.total_starforce_mesos
            + valuation.total_flame_mesos;
        assert!((valuation.total_mesos - sum).abs() < 1e-3);
        // The medal has no potential: unpriced, with a reason.
        let medal = valuation
            .items
            .iter()
            .find(|i| i.slot == "훈장")
            .expect("medal");
        assert!(medal.potential_unpriced.is_some());
        // The level-100 secondary weapon and the level-80 heart are priced from the tables
        // Nexon publishes identical to level 120 (`potential::lowest_level`).
        for slot in ["보조무기", "기계 심장"] {
            let item = valuation.items.iter().find(|i| i.slot == slot).expect(slot);
            if item.level.is_some_and(|l| l < 120) {
                assert!(
                    item.potential
                        .as_ref()
                        .is_some_and(|p| p.expected_mesos.is_some()),
                    "{file} {slot}: {:?}",
                    item.potential_unpriced
                );
            }
        }
        // A level-80 heart's additional potential: Nexon's level-80 table.
        if let Some(heart) = valuation
            .items
            .iter()
            .find(|i| i.slot == "기계 심장" && i.level == Some(80))
        {
            assert!(
                heart.additional_unpriced.is_none(),
                "{:?}",
                heart.additional_unpriced
            );
        }
    }
}

#[test]
fn scroll_stars_are_not_priced_as_enhancement() {
    let equipment = fixture("mechanic_equip.json");
    let valuation = priced(&equipment);
    let scrolled: Vec<_> = valuation
        .items
        .iter()
        .filter(|i| {
            i.starforce_unpriced
                .as_deref()
                .is_some_and(|r| r.contains("scroll"))
        })
        .collect();
    assert!(
        !scrolled.is_empty(),
        "the mechanic wears a scroll-starred ring"
    );
    assert!(scrolled.iter().all(|i| i.stars > 0));
}

#[test]
fn genesis_stars_are_granted_and_superior_items_never_use_the_normal_table() {
    let valuation = priced(&fixture("evan_equip.json"));
    let named = |prefix: &str| {
        valuation
            .items
            .iter()
            .find(|i| i.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("the evan wears a {prefix} item"))
    };
    // 제네시스 스태프, 22★: granted at liberation, not 39 billion mesos of enhancement.
    let genesis = named("제네시스");
    assert_eq!(genesis.stars, 22);
    assert_eq!(genesis.starforce_mesos, Some(0.0));
    assert_eq!(genesis.starforce_destroys, Some(0.0));
    assert!(
        genesis
            .starforce_note
            .as_deref()
            .is_some_and(|n| n.contains("granted"))
    );
    // 슈페리얼 리튬 하트, 5★: its own table is not shipped, so it is not priced.
    let superior = named("슈페리얼");
    assert_eq!(superior.stars, 5);
    assert_eq!(superior.starforce_mesos, None);
    assert!(
        superior
            .starforce_unpriced
            .as_deref()
            .is_some_and(|r| r.contains("superior"))
    );
    // At its granted 22★ a Genesis weapon cost nothing, even with its level missing.
    let no_level: Item = serde_json::from_value(serde_json::json!({
        "item_equipment_slot": "무기",
        "item_name": "제네시스 스태프",
        "starforce": "22"
    }))
    .expect("an item");
    let granted = value_item(
        engine(),
        &GearItem::from(&no_level),
        class_profile("에반"),
        Options::default(),
    );
    assert_eq!(granted.starforce_mesos, Some(0.0));
    assert_eq!(granted.starforce_unpriced, None);
    // Stars a Genesis weapon gained beyond the granted 22 are priced from 22.
    let mut beyond: Item = serde_json::from_value(serde_json::json!({
        "item_equipment_slot": "무기",
        "item_name": "제네시스 스태프",
        "item_base_option": { "base_equipment_level": 200 },
        "starforce": "23",
        "starforce_scroll_flag": "미사용"
    }))
    .expect("an item");
    let profile = class_profile("에반");
    let at_23 = value_item(
        engine(),
        &GearItem::from(&beyond),
        profile,
        Options::default(),
    );
    let one_star = engine()
        .starforce
        .expect(&starforce::Request::plain(200, 22, 23))
        .expect("valid");
    assert_eq!(at_23.starforce_mesos, Some(one_star.expected_mesos));
    // The same stars on a weapon that is not Genesis are priced from 0.
    beyond.item_name = Some("아케인셰이드 스태프".to_owned());
    let normal = value_item(
        engine(),
        &GearItem::from(&beyond),
        profile,
        Options::default(),
    );
    assert!(normal.starforce_mesos > at_23.starforce_mesos);
    assert_eq!(normal.starforce_note, None);
}

#[test]
fn each_preset_is_priced_beside_the_equipped_set() {
    let equipment = fixture("evan_equip.json");
    let valuation = priced(&equipment);
    assert_eq!(valuation.presets.len(), 3);
    let numbers: Vec<u32> = valuation.presets.iter().map(|p| p.preset_no).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let in_use: Vec<u32> = valuation
        .presets
        .iter()
        .filter(|p| p.in_use)
        .map(|p| p.preset_no)
        .collect();
    assert_eq!(in_use, [2], "the response says preset_no 2");
    for preset in &valuation.presets {
        assert!(preset.total_mesos > 0.0);
        let sum = preset.total_potential_mesos
            + preset.total_additional_mesos
            + preset.total_starforce_mesos
            + preset.total_flame_mesos;
        assert!((preset.total_mesos - sum).abs() < 1e-6);
        assert!(preset.total_additional_mesos > 0.0);
    }
    // A preset priced alone, as if it were the equipped set, gives the same totals.
    let second = Equipment {
        item_equipment: equipment.item_equipment_preset_2.clone().expect("preset 2"),
        item_equipment_preset_1: None,
        item_equipment_preset_2: None,
        item_equipment_preset_3: None,
        ..equipment.clone()
    };
    let alone = priced(&second);
    assert!(alone.presets.is_empty());
    assert_eq!(alone.total_mesos, valuation.presets[1].total_mesos);
    assert_eq!(alone.unpriced_items, valuation.presets[1].unpriced_items);
}

#[test]
fn classes_map_to_main_stats() {
    assert_eq!(class_profile("에반"), Some((MainStat::Int, true)));
    assert_eq!(class_profile("메카닉"), Some((MainStat::Dex, false)));
    assert_eq!(class_profile("제논"), Some((MainStat::All, false)));
    assert_eq!(class_profile("없는직업"), None);
}

/// Every flamed item of both real responses carries a flame block (armour by score, weapons
/// by tier), none is left unpriced, and the totals include the flames, equipped and per
/// preset.
#[test]
fn flames_are_priced_and_counted_in_the_totals() {
    for file in ["evan_equip.json", "mechanic_equip.json"] {
        let valuation = priced(&fixture(file));
        let mut flamed = 0;
        let mut sum = 0.0;
        for item in &valuation.items {
            assert!(
                item.flame_unpriced.is_none(),
                "{file} {}: {:?}",
                item.name,
                item.flame_unpriced
            );
            let Some(flame) = &item.flame else { continue };
            flamed += 1;
            sum += flame.expected_mesos;
            assert!((0.0..=1.0).contains(&flame.probability));
            if item.slot == "무기" {
                assert_eq!(flame.tier, Some(7), "{}", item.name);
                assert!(flame.score.is_none());
                // Tier 7 on a boss weapon: 4/19 × 1 %.
                assert!((flame.probability - 4.0 / 19.0 * 0.01).abs() < 1e-15);
            } else {
                assert!(flame.score.is_some_and(|s| s > 0.0), "{}", item.name);
                assert!(flame.tier.is_none());
            }
            assert!(
                flame.boss && flame.boss_by == BossBy::Catalogue,
                "{}",
                item.name
            );
            assert!((flame.expected_mesos - flame.expected_resets * 3_000_000.0).abs() < 1e-3);
        }
        assert_eq!(flamed, 14, "{file}");
        assert!((valuation.total_flame_mesos - sum).abs() < 1e-3);
        let parts = valuation.total_potential_mesos
            + valuation.total_additional_mesos
            + valuation.total_starforce_mesos
            + valuation.total_flame_mesos;
        assert!((valuation.total_mesos - parts).abs() < 1e-3 * valuation.total_mesos);
        for preset in &valuation.presets {
            let parts = preset.total_potential_mesos
                + preset.total_additional_mesos
                + preset.total_starforce_mesos
                + preset.total_flame_mesos;
            assert!((preset.total_mesos - parts).abs() < 1e-3 * preset.total_mesos.max(1.0));
        }
    }
    // The research note's figures: Evan's Eternal hat at 180 about 1,791 resets, the
    // 데이브레이크 펜던트 (level 140) at 148 about 10,763.
    let evan = priced(&fixture("evan_equip.json"));
    let flame_of = |name: &str| {
        evan.items
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.flame.clone())
            .expect(name)
    };
    let hat = flame_of("에테르넬 메이지햇");
    assert_eq!(hat.score, Some(180.0));
    assert_eq!(hat.expected_resets.round(), 1791.0);
    let pendant = flame_of("데이브레이크 펜던트");
    assert_eq!(pendant.score, Some(148.0));
    assert_eq!(pendant.expected_resets.round(), 10_763.0);
}
