//! Bounded, deterministic fuzzing of the engine's decoders, seeded from the repository's
//! `data/`: the Nexon equipment JSON (decode + price) and the potential option parser. Each case
//! is a mutation of a real input (`mutate/`: byte flips, truncation, splices, and structural
//! changes of JSON values). The property: no panic, and what is accepted is sane.
//!
//! `MAPLE_FUZZ_CASES` (default 2000 per target) and `MAPLE_FUZZ_SEED` change the run; a
//! failure prints the seed and case to reproduce it. Core's like backup reader is fuzzed with
//! the same mutations in `core/tests/fuzz.rs`, the HTTP request decoders end to end in
//! `tests/tests/e2e/fuzz.rs`.
#![allow(clippy::unwrap_used, reason = "test set-up")]

use std::path::PathBuf;

use maple_engine::Engine;
use maple_engine::prices::Prices;
use maple_engine::starforce::CostTable;
use maple_engine::valuation::{Gear, Options, value_character};
use serde_json::Value;

mod mutate;

use mutate::{cases, mutate_bytes, mutate_value, seed};

fn data_dir() -> PathBuf {
    std::env::var("MAPLE_DATA_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data"),
        PathBuf::from,
    )
}

fn seeds() -> Vec<Vec<u8>> {
    ["evan_equip.json", "mechanic_equip.json"]
        .iter()
        .map(|f| std::fs::read(data_dir().join(f)).unwrap())
        .collect()
}

fn engine() -> Engine {
    Engine::load(
        Some(&data_dir().join("potential_rates.csv")),
        Prices::default(),
        Options::default(),
        CostTable::default(),
    )
    .unwrap()
}

#[test]
fn the_equipment_decoder_and_pricer_take_any_mutation() {
    let engine = engine();
    let seeds = seeds();
    let values: Vec<Value> = seeds
        .iter()
        .map(|s| serde_json::from_slice(s).unwrap())
        .collect();
    let mut rng = mutate::rng();
    let (mut decoded, mut refused) = (0, 0);
    // Each case parses and prices a 350 KB document: a quarter of the others' count.
    for case in 0..cases().div_ceil(4) {
        let bytes = if case % 2 == 0 {
            mutate_bytes(&mut rng, &seeds[case % seeds.len()])
        } else {
            let mut value = values[case % values.len()].clone();
            mutate_value(&mut rng, &mut value, 0);
            serde_json::to_vec(&value).unwrap()
        };
        // The engine's spread cache only ever holds finished, deterministic values.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Gear::parse(&bytes).map(|gear| {
                let valuation = value_character(&engine, &gear, Options::default());
                serde_json::to_value(&valuation).unwrap()
            })
        }));
        match outcome {
            Ok(Ok(valuation)) => {
                decoded += 1;
                let total = &valuation["total_potential_mesos"];
                assert!(
                    total.as_f64().is_none_or(|t| t.is_finite() && t >= 0.0),
                    "seed {} case {case}: total {total}",
                    seed()
                );
            }
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("seed {} case {case}: panicked", seed()),
        }
    }
    assert!(
        decoded > 0 && refused > 0,
        "{decoded} decoded, {refused} refused"
    );
}

#[test]
fn the_option_parser_takes_any_mutation_of_real_lines() {
    let mut lines = Vec::new();
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key.contains("potential_option_")
                        && let Some(line) = child.as_str()
                    {
                        out.push(line.to_owned());
                    }
                    collect(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|c| collect(c, out)),
            _ => {}
        }
    }
    for seed in seeds() {
        collect(&serde_json::from_slice(&seed).unwrap(), &mut lines);
    }
    assert!(lines.len() > 50, "seed lines found: {}", lines.len());
    let mut rng = mutate::rng();
    for case in 0..cases() * 5 {
        let line = &lines[case % lines.len()];
        let mutated = mutate_bytes(&mut rng, line.as_bytes());
        let text = String::from_utf8_lossy(&mutated);
        let parsed = std::panic::catch_unwind(|| maple_engine::option::parse(&text));
        let parsed = parsed.unwrap_or_else(|_| panic!("seed {} case {case}: {text:?}", seed()));
        // Whatever it understood is within what any real line carries.
        assert!(parsed.value() <= 1_000_000, "{text:?} → {parsed:?}");
    }
}
