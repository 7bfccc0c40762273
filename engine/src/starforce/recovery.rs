//! Recovery mesos: what repairing a destroyed item's trace at its own star costs (KMS since
//! 2026-03-19, DOMAIN.md §6). This module holds the published table; the extrapolation for
//! other levels is `starforce::recovery_mesos`.
//!
//! Nexon publishes no table and no formula. Two public calculators publish the same figures
//! for eight levels (130, 135, 140, 145, 150, 160, 200, 250); they are shipped in
//! `data/starforce_recovery.csv` with their source. For any other level the figure is
//! **extrapolated** with the model both tables follow (it reproduces the 140/160/200/250 rows
//! to 0.01억): the expected mesos of climbing from 12★ back to the trace's star during a
//! Shining Star Force event (30% off the attempts, 30% less destruction at ≤ 21★), with
//! safeguard bought at 15–17★ and a destruction during that climb repaired at its own star.
//! An answer that used an extrapolated figure says so.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The shipped table: level → (trace star 15..=22 → mesos).
static PUBLISHED: LazyLock<BTreeMap<u32, BTreeMap<u32, f64>>> =
    LazyLock::new(|| parse(include_str!("../../../data/starforce_recovery.csv")));

/// Identical items the star-keeping repair takes at a trace star (Nexon's guide, Articles/412):
/// 1 at 15–18★, 2 at 19–20★, 3 at 21★, 4 at 22★.
pub fn items_needed(trace_star: u32) -> u32 {
    match trace_star {
        0..=18 => 1,
        19..=20 => 2,
        21 => 3,
        _ => 4,
    }
}

/// The published recovery mesos at `trace_star` for an item of `level`, if there is a row.
pub fn published(level: u32, trace_star: u32) -> Option<f64> {
    PUBLISHED.get(&level)?.get(&trace_star).copied()
}

/// Whether `level` has a published row.
pub fn is_published(level: u32) -> bool {
    PUBLISHED.contains_key(&level)
}

fn parse(text: &str) -> BTreeMap<u32, BTreeMap<u32, f64>> {
    let mut table: BTreeMap<u32, BTreeMap<u32, f64>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("level") {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let [level, star, mesos] = fields.as_slice() else {
            panic!("data/starforce_recovery.csv: a row has three fields: {line}");
        };
        let parse = |field: &str| -> u64 {
            field
                .parse()
                .unwrap_or_else(|e| panic!("data/starforce_recovery.csv: {field}: {e}"))
        };
        let (level, star) = (parse(level), parse(star));
        #[expect(
            clippy::cast_precision_loss,
            reason = "meso figures are far below 2^53"
        )]
        let mesos = parse(mesos) as f64;
        let (Ok(level), Ok(star)) = (u32::try_from(level), u32::try_from(star)) else {
            panic!("data/starforce_recovery.csv: level or star out of range: {line}");
        };
        table.entry(level).or_default().insert(star, mesos);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_item_counts() {
        // Level 200: 15★ 4.33억 … 22★ 241.68억; levels 130 and 135 stop at 19★.
        assert_eq!(published(200, 15), Some(433_000_000.0));
        assert_eq!(published(200, 22), Some(24_168_000_000.0));
        assert_eq!(published(130, 20), None);
        assert!(!is_published(210) && is_published(200));
        assert_eq!(
            [15, 18, 19, 20, 21, 22].map(items_needed),
            [1, 1, 2, 2, 3, 4]
        );
    }
}
