//! Tier-up: per reset the grade may rise one step before the lines roll (KMS rates, with pity).
//!
//! With success chance p per reset and pity n (the n-th reset is guaranteed), the expected
//! resets for one step are (1 − (1−p)ⁿ) / p. Miracle time doubles p (capped at 1).

use crate::model::{Grade, Method};

/// Rates (percent) and pity for rare→epic, epic→unique, unique→legendary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierUpRates {
    pub steps: [(f64, u32); 3],
}

/// KMS official rates (DOMAIN.md §4). Other cubes have no published tier-up rates here.
pub fn rates(method: Method) -> Option<TierUpRates> {
    match method {
        Method::Red => Some(TierUpRates {
            steps: [(6.0, 25), (1.8, 83), (0.3, 500)],
        }),
        Method::Black | Method::Meso => Some(TierUpRates {
            steps: [(15.0, 10), (3.5, 42), (1.4, 107)],
        }),
        Method::Master | Method::Meister | Method::Occult => None,
    }
}

/// Expected resets to leave `from` for the next grade.
pub fn expected_step_resets(rate_pct: f64, pity: u32, miracle: bool) -> f64 {
    let p = (rate_pct / 100.0 * if miracle { 2.0 } else { 1.0 }).min(1.0);
    if p >= 1.0 {
        return 1.0;
    }
    (1.0 - (1.0 - p).powi(i32::try_from(pity).unwrap_or(i32::MAX))) / p
}

/// For each step from `from` up to `to`: the grade the item is at during the step and the
/// expected resets spent there. Empty when `from >= to`; `None` when the method has no rates.
pub fn path(from: Grade, to: Grade, method: Method, miracle: bool) -> Option<Vec<(Grade, f64)>> {
    let rates = rates(method)?;
    Some(
        Grade::ALL
            .iter()
            .copied()
            .filter(|g| *g >= from && *g < to)
            .map(|g| {
                let (rate, pity) = rates.steps[g.index()];
                (g, expected_step_resets(rate, pity, miracle))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pity_caps_the_expectation() {
        // Red unique → legendary: 0.3% with pity 500: (1 − 0.997^500) / 0.003 ≈ 259.1.
        let e = expected_step_resets(0.3, 500, false);
        assert!((e - 259.1).abs() < 0.1, "{e}");
        assert!(e < 1.0 / 0.003);
        // Black rare → epic: 15% with pity 10.
        let e = expected_step_resets(15.0, 10, false);
        assert!((e - (1.0 - 0.85_f64.powi(10)) / 0.15).abs() < 1e-12);
        assert_eq!(
            expected_step_resets(60.0, 10, true),
            1.0,
            "doubled past 100%"
        );
    }

    #[test]
    fn paths_cover_the_steps_between_grades() {
        let steps = path(Grade::Rare, Grade::Legendary, Method::Meso, false).expect("rates");
        assert_eq!(
            steps.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
            vec![Grade::Rare, Grade::Epic, Grade::Unique]
        );
        assert!(
            path(Grade::Legendary, Grade::Legendary, Method::Red, false)
                .expect("rates")
                .is_empty()
        );
        assert!(path(Grade::Rare, Grade::Epic, Method::Occult, false).is_none());
        let normal = path(Grade::Rare, Grade::Legendary, Method::Red, false).expect("rates");
        let miracle = path(Grade::Rare, Grade::Legendary, Method::Red, true).expect("rates");
        let total = |steps: &[(Grade, f64)]| steps.iter().map(|(_, e)| e).sum::<f64>();
        assert!(total(&miracle) < total(&normal));
    }
}
