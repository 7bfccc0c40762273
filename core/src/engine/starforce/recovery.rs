//! Recovery mesos: what repairing a destroyed item's trace at its own star costs (KMS since
//! 2026-03-19, DOMAIN.md §6).
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

use super::{CostTable, DESTROY, SUCCESS, base_cost};

/// The shipped table: level → (trace star 15..=22 → mesos).
static PUBLISHED: LazyLock<BTreeMap<u32, BTreeMap<u32, f64>>> =
    LazyLock::new(|| parse(include_str!("../../../../data/starforce_recovery.csv")));

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

/// Recovery mesos at `trace_star` (15..=22) for an item of `level`, and whether the figure is
/// extrapolated (no published row for the level or the star).
pub fn mesos(table: CostTable, level: u32, trace_star: u32) -> (f64, bool) {
    match PUBLISHED.get(&level).and_then(|row| row.get(&trace_star)) {
        Some(&mesos) => (mesos, false),
        None => (model(table, level, trace_star), true),
    }
}

/// Whether `level` has a published row.
pub fn is_published(level: u32) -> bool {
    PUBLISHED.contains_key(&level)
}

/// The re-climb model: F(12) = 0, F(s+1) = F(s) + (c_s + d_s·F(s)) / p_s under Shining
/// conditions with safeguard at 15–17★ (see the module's doc).
pub fn model(table: CostTable, level: u32, trace_star: u32) -> f64 {
    let mut climbed = 0.0;
    for star in 12..trace_star {
        let index = star as usize;
        let success = (SUCCESS[index] / 100.0 * 1.05).min(1.0);
        let base = base_cost(table, level, star);
        let (cost, destroy) = if (15..=17).contains(&star) {
            (base * 0.7 + 2.0 * base, 0.0)
        } else {
            let raw = DESTROY[index] / 100.0;
            let scaled = raw * (1.0 - success) / (1.0 - SUCCESS[index] / 100.0);
            (base * 0.7, if star <= 21 { scaled * 0.7 } else { scaled })
        };
        climbed += (cost + destroy * climbed) / success;
    }
    climbed
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

    /// The model reproduces the rows both public tables share (140, 160, 200, 250) to the
    /// 0.01억 they are published with; that is what licenses it for other levels.
    #[test]
    fn the_model_reproduces_the_shared_rows() {
        for level in [140, 160, 200, 250] {
            for star in 15..=22 {
                let (published, extrapolated) = mesos(CostTable::Kms, level, star);
                assert!(!extrapolated);
                let modelled = model(CostTable::Kms, level, star);
                assert!(
                    (published - modelled).abs() <= 0.5e6 + 1.0,
                    "{level}/{star}: published {published}, model {modelled}"
                );
            }
        }
        // Level 200, 15★: 0.7 × (c12/p12 + c13/p13 + c14/p14) = 432,932,936 (4.33억).
        assert!((model(CostTable::Kms, 200, 15) - 432_932_936.0).abs() < 1.0);
    }

    #[test]
    fn unpublished_levels_are_extrapolated_and_said_so() {
        let (mesos_at_210, extrapolated) = mesos(CostTable::Kms, 210, 22);
        assert!(extrapolated);
        assert!(mesos_at_210 > mesos(CostTable::Kms, 200, 22).0);
        assert!(!is_published(210) && is_published(200));
        assert_eq!(
            [15, 18, 19, 20, 21, 22].map(items_needed),
            [1, 1, 2, 2, 3, 4]
        );
    }
}
