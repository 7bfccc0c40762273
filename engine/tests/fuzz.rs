//! Bounded, deterministic fuzzing of core's decoders, seeded from the repository's `data/`: the Nexon
//! equipment JSON (decode + price), the potential option parser, and the like backup-file
//! reader. Each case is a mutation of a real input (byte flips, truncation, splices, and
//! structural changes of JSON values). The property: no panic, and what is accepted is sane.
//!
//! `MAPLE_FUZZ_CASES` (default 2000 per target) and `MAPLE_FUZZ_SEED` change the run; a
//! failure prints the seed and case to reproduce it. The HTTP request decoders are fuzzed end
//! to end in `tests/tests/e2e/fuzz.rs`.
#![allow(clippy::unwrap_used, reason = "test set-up")]

use std::path::PathBuf;

use maple_core::engine::Engine;
use maple_core::engine::prices::Prices;
use maple_core::engine::starforce::CostTable;
use maple_core::engine::valuation::{Gear, Options, value_character};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;

fn cases() -> usize {
    std::env::var("MAPLE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn seed() -> u64 {
    std::env::var("MAPLE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x006d_6170_6c65)
}

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

/// Byte-level mutations: flips, truncation, duplication of a slice, insertion of junk.
fn mutate_bytes(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..5) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out.truncate(at),
            2 => {
                let end = (at + rng.random_range(1..64)).min(out.len());
                let slice = out[at..end].to_vec();
                out.splice(at..at, slice);
            }
            3 => {
                let junk: &[u8] = [
                    b"\"".as_slice(),
                    b"{",
                    b"]",
                    b"\\u0000",
                    "\u{FFFD}".as_bytes(),
                    b"-1e999",
                    b"null",
                ][rng.random_range(0..7)];
                out.splice(at..at, junk.iter().copied());
            }
            _ => out[at] = rng.random(),
        }
    }
    out
}

/// Structural mutation of a JSON value: numbers, strings, arrays and objects replaced by
/// hostile values of another type or range.
fn mutate_value(rng: &mut StdRng, value: &mut Value, depth: u32) {
    let hostile = |rng: &mut StdRng| -> Value {
        match rng.random_range(0..9) {
            0 => Value::Null,
            1 => Value::from(-1),
            2 => Value::from(u64::MAX),
            3 => Value::from(f64::MAX),
            4 => Value::from(""),
            5 => Value::from("+999%"),
            6 => Value::from("최대 HP : +2147483647%"),
            7 => Value::Array(vec![Value::Null; 3]),
            _ => Value::from("x".repeat(10_000)),
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() && depth < 8 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for _ in 0..rng.random_range(1..=3) {
                let key = &keys[rng.random_range(0..keys.len())];
                if let Some(child) = map.get_mut(key) {
                    if rng.random_bool(0.3) {
                        *child = hostile(rng);
                    } else {
                        mutate_value(rng, child, depth + 1);
                    }
                }
            }
            if rng.random_bool(0.1) {
                let key = keys[rng.random_range(0..keys.len())].clone();
                map.remove(&key);
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 8 => {
            let at = rng.random_range(0..items.len());
            mutate_value(rng, &mut items[at], depth + 1);
            if rng.random_bool(0.1) {
                items.truncate(at);
            }
        }
        other => *other = hostile(rng),
    }
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
    let mut rng = StdRng::seed_from_u64(seed());
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
    let mut rng = StdRng::seed_from_u64(seed());
    for case in 0..cases() * 5 {
        let line = &lines[case % lines.len()];
        let mutated = mutate_bytes(&mut rng, line.as_bytes());
        let text = String::from_utf8_lossy(&mutated);
        let parsed = std::panic::catch_unwind(|| maple_core::engine::option::parse(&text));
        let parsed = parsed.unwrap_or_else(|_| panic!("seed {} case {case}: {text:?}", seed()));
        // Whatever it understood is within what any real line carries.
        assert!(parsed.value() <= 1_000_000, "{text:?} → {parsed:?}");
    }
}

#[test]
fn the_backup_reader_takes_any_mutation() {
    let valid = serde_json::json!({
        "format": "maple-likes-backup/1",
        "batch": "1764000000000-0123456789abcdef",
        "counts": { "0123456789abcdef0123456789abcdef": 3, "fedcba9876543210fedcba9876543210": 1 },
        "keyed": [["0123456789abcdef0123456789abcdef", "retry-1"]],
    });
    let bytes = serde_json::to_vec(&valid).unwrap();
    assert!(maple_core::likes::decode_backup(&bytes).is_ok());
    let mut rng = StdRng::seed_from_u64(seed());
    let mut accepted = 0;
    for case in 0..cases() {
        let input = if case % 2 == 0 {
            mutate_bytes(&mut rng, &bytes)
        } else {
            let mut value = valid.clone();
            mutate_value(&mut rng, &mut value, 0);
            serde_json::to_vec(&value).unwrap()
        };
        let decoded = std::panic::catch_unwind(|| maple_core::likes::decode_backup(&input))
            .unwrap_or_else(|_| panic!("seed {} case {case}: panicked", seed()));
        if let Ok(batch) = decoded {
            accepted += 1;
            // Accepted means safe to apply: sane ids, ocids and counts.
            assert!(batch.id.len() == 30, "{batch:?}");
            for (ocid, n) in &batch.counts {
                assert!(ocid.len() == 32 && ocid.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(*n >= 1 && *n <= i64::from(u32::MAX));
            }
            for (_, key) in &batch.keyed {
                assert!(maple_core::likes::valid_key(key), "{key:?}");
            }
        }
    }
    assert!(
        accepted > 0,
        "some mutations stay valid (e.g. a count changed)"
    );
}
