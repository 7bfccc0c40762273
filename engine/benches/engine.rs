//! Engine benchmarks: parsing a 350 KB equipment response, pricing one item, pricing a whole
//! character (24 equipped items, and with the three presets; star-force quantiles included,
//! their cache warm after the first iteration), one exact probability, one star-force
//! expectation and one uncached star-force spread (the simulation itself). Results and the
//! command are in `docs/benchmarks.md`.
//!
//! Run: `cargo bench -p maple-engine --bench engine`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use maple_engine::Engine;
use maple_engine::flame;
use maple_engine::model::{Cube, Grade, ItemType, MainStat};
use maple_engine::potential::{self, Target, Term};
use maple_engine::prices::Prices;
use maple_engine::starforce::{self, CostTable};
use maple_engine::valuation::{self, Equipment, Gear, Options};

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(file)
}

fn engine(c: &mut Criterion) {
    let engine = Engine::load(
        Some(&data("potential_rates.csv")),
        Prices::default(),
        Options::default(),
        CostTable::default(),
    )
    .expect("tables");
    let tables = &engine.tables;
    let raw = std::fs::read(data("evan_equip.json")).expect("fixture");
    let equipment: Equipment = serde_json::from_slice(&raw).expect("equipment");
    // The equipped set alone; `equipment` itself also prices the three presets.
    let equipped = Equipment {
        item_equipment_preset_1: None,
        item_equipment_preset_2: None,
        item_equipment_preset_3: None,
        ..equipment.clone()
    };
    let hat = Equipment {
        item_equipment: equipment.item_equipment[..1].to_vec(),
        ..equipped.clone()
    };
    let options = Options::default();
    let (hat, equipped, equipment) = (
        Gear::from(&hat),
        Gear::from(&equipped),
        Gear::from(&equipment),
    );

    c.bench_function("parse_equipment_350kb", |b| {
        b.iter(|| serde_json::from_slice::<Equipment>(black_box(&raw)).expect("parses"))
    });
    c.bench_function("gear_from_350kb", |b| {
        b.iter(|| Gear::parse(black_box(&raw)).expect("parses"))
    });
    c.bench_function("price_one_item_hat", |b| {
        b.iter(|| valuation::value_character(&engine, black_box(&hat), options))
    });
    c.bench_function("price_character_24_items", |b| {
        b.iter(|| valuation::value_character(&engine, black_box(&equipped), options))
    });
    c.bench_function("price_character_with_presets_94_items", |b| {
        b.iter(|| valuation::value_character(&engine, black_box(&equipment), options))
    });
    let target = Target::new(vec![Term::StatPct {
        stat: MainStat::Str,
        min: 21,
    }])
    .expect("target");
    c.bench_function("probability_hat_stat21_red", |b| {
        b.iter(|| {
            potential::probability(
                tables,
                ItemType::Hat,
                black_box(150),
                Grade::Legendary,
                Cube::Red,
                &target,
            )
        })
    });
    // A flame law computed from nothing (what the first valuation of a new item class pays;
    // later ones read it from the engine's cache).
    let boss_armour = flame::FlameItem {
        level: 200,
        weapon: false,
        boss: true,
        base_attack: 0,
        base_magic: 0,
    };
    let scorer = flame::Scorer {
        main: MainStat::Int,
        magician: true,
        secondary_per_mille: 0,
    };
    c.bench_function("flame_law_boss_armour_200_uncached", |b| {
        b.iter(|| {
            flame::Flames::default().probability(
                black_box(&boss_armour),
                &scorer,
                flame::FlameKind::Reset,
                140_000,
            )
        })
    });
    let request = starforce::Request::plain(200, 0, 22);
    c.bench_function("starforce_0_to_22", |b| {
        b.iter(|| starforce::expect(CostTable::Kms, black_box(&request)))
    });
    // The simulation a spread cache miss pays for (10,000 climbs from 0★ to 22★).
    c.bench_function("starforce_spread_0_to_22_uncached", |b| {
        b.iter(|| starforce::spread(CostTable::Kms, black_box(&request)))
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);
