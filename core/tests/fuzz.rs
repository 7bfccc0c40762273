//! Bounded, deterministic fuzzing of core's like backup-file reader: mutations of a valid
//! backup (the engine's seeded mutations, `engine/tests/mutate/`). The property: no panic, and
//! what is accepted is safe to apply. `MAPLE_FUZZ_CASES` and `MAPLE_FUZZ_SEED` as there.
#![allow(clippy::unwrap_used, reason = "test set-up")]

#[path = "../../engine/tests/mutate/mod.rs"]
mod mutate;

use mutate::{cases, mutate_bytes, mutate_value, seed};

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
    let mut rng = mutate::rng();
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
