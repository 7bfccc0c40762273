//! Seeded mutations of real inputs, shared by the engine's fuzz tests and core's
//! (`core/tests/fuzz.rs` includes this file): the same seed gives the same cases.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;

/// Cases per target: `MAPLE_FUZZ_CASES`, default 2000.
pub fn cases() -> usize {
    std::env::var("MAPLE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// The run's seed: `MAPLE_FUZZ_SEED`, printed with a failing case.
pub fn seed() -> u64 {
    std::env::var("MAPLE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x006d_6170_6c65)
}

/// Byte-level mutations: flips, truncation, duplication of a slice, insertion of junk.
pub fn mutate_bytes(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
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
pub fn mutate_value(rng: &mut StdRng, value: &mut Value, depth: u32) {
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

/// A generator on the run's seed.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(seed())
}
