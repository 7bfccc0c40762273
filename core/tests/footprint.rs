//! What each cached value really holds on the heap, against the weight its cache gives it:
//! the caches' byte bounds hold only if the weights are not below the real footprint. The real
//! footprint is what dropping the value gives back to an instrumented allocator — what the
//! cache frees when it evicts it (requested bytes; the allocator's own rounding is part of the
//! process overhead measured in docs/benchmarks.md).
#![allow(clippy::unwrap_used, reason = "test set-up")]

use std::alloc::System;
use std::path::PathBuf;
use std::sync::Arc;

use maple_common::nexon::Ocid;
use maple_core::character::CharacterName;
use maple_core::equipment::Entry;
use maple_core::http::ready::Valued;
use maple_engine::Engine;
use maple_engine::prices::Prices;
use maple_engine::starforce::CostTable;
use maple_engine::valuation::{Gear, Options, value_character};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The heap bytes dropping `value` gives back: what a cache frees when it evicts it.
fn freed_by_dropping<T>(value: T) -> usize {
    let region = Region::new(GLOBAL);
    drop(value);
    let change = region.change();
    change.bytes_deallocated - change.bytes_allocated
}

/// `make()`'s value (twice: once so that statics a first call initialises are not counted)
/// and the bytes it holds.
fn held<T>(make: impl Fn() -> T) -> (T, usize) {
    drop(make());
    let probe = make();
    let real = freed_by_dropping(probe);
    (make(), real)
}

fn data(file: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../data")
            .join(file),
    )
    .unwrap()
}

fn engine() -> Engine {
    Engine::load(
        Some(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/potential_rates.csv")),
        Prices::default(),
        Options::default(),
        CostTable::default(),
    )
    .unwrap()
}

/// The weight is at least the real footprint, and not more than half again over it.
fn weighs_what_it_holds(what: &str, weight: usize, real: usize) {
    eprintln!(
        "{what}: weight {weight} B, real {real} B ({:.2}×)",
        weight as f64 / real as f64
    );
    assert!(
        weight >= real,
        "{what}: weight {weight} below the {real} B it holds"
    );
    assert!(
        weight * 2 <= real * 3,
        "{what}: weight {weight} far above the {real} B it holds"
    );
}

#[test]
fn every_cached_value_weighs_at_least_what_it_holds() {
    let engine = engine();
    let ocid: Ocid = "0123456789abcdef0123456789abcdef".parse().unwrap();
    for file in ["evan_equip.json", "mechanic_equip.json"] {
        let body = data(file);

        let (gear, real) = held(|| Arc::new(Gear::parse(&body).unwrap()));
        // An `Arc` adds its two counters to the value.
        weighs_what_it_holds(&format!("{file} parsed"), gear.weight(), real);

        let json =
            serde_json::to_vec(&value_character(&engine, &gear, Options::default())).unwrap();
        let name = CharacterName::parse("아델").unwrap();
        let (valued, real) = held(|| Arc::new(Valued::new(name.clone(), ocid.clone(), &json)));
        weighs_what_it_holds(&format!("{file} valuation"), valued.weight(), real);

        let (entry, real) = held(|| Arc::new(Entry::compress(ocid.clone(), &body)));
        weighs_what_it_holds(&format!("{file} L1 entry"), entry.weight(), real);

        // The raw-body cache keeps the decompressed body as `Bytes`, weighed `len + 64`.
        let (raw, real) = held(|| bytes::Bytes::from(entry.decompress(&ocid).unwrap()));
        weighs_what_it_holds(&format!("{file} raw body"), raw.len() + 64, real);
    }
}
