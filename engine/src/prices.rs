//! What one reset costs in mesos. Prices are configuration (DOMAIN.md §5): the defaults here
//! are KMS's meso-reset table and GMS community cube prices, overridable at start-up.

use serde::Serialize;

use crate::model::{Grade, Method};

/// Prices of resets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prices {
    /// Market price of one red cube.
    pub red_cube: u64,
    /// Market price of one black cube.
    pub black_cube: u64,
    /// KMS meso reset: (lowest level of the band, price per grade rare..legendary).
    pub meso_reset: Vec<(u32, [u64; 4])>,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            red_cube: 12_000_000,
            black_cube: 22_000_000,
            meso_reset: vec![
                (0, [4_000_000, 16_000_000, 34_000_000, 40_000_000]),
                (160, [4_250_000, 17_000_000, 36_125_000, 42_500_000]),
                (200, [4_500_000, 18_000_000, 38_250_000, 45_000_000]),
                (250, [5_000_000, 20_000_000, 42_500_000, 50_000_000]),
            ],
        }
    }
}

/// Mesos to reveal a cubed potential on an item of level `level`.
pub fn reveal_cost(level: u32) -> u64 {
    let l = u64::from(level);
    match level {
        0..=29 => 0,
        30..=70 => l * l / 2,
        71..=120 => l * l * 5 / 2,
        _ => 20 * l * l,
    }
}

impl Prices {
    /// Mesos per reset with `method` on an item of `level` at `grade`; `None` when no price
    /// is configured for the method (master, meister and occult cubes).
    pub fn per_reset(&self, method: Method, level: u32, grade: Grade) -> Option<u64> {
        match method {
            Method::Red => Some(self.red_cube + reveal_cost(level)),
            Method::Black => Some(self.black_cube + reveal_cost(level)),
            Method::Meso => self
                .meso_reset
                .iter()
                .rev()
                .find(|(from, _)| level >= *from)
                .map(|(_, prices)| prices[grade.index()]),
            Method::Master | Method::Meister | Method::Occult => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_prices() {
        let prices = Prices::default();
        assert_eq!(
            prices.per_reset(Method::Meso, 150, Grade::Legendary),
            Some(40_000_000)
        );
        assert_eq!(
            prices.per_reset(Method::Meso, 160, Grade::Rare),
            Some(4_250_000)
        );
        assert_eq!(
            prices.per_reset(Method::Meso, 200, Grade::Unique),
            Some(38_250_000)
        );
        assert_eq!(
            prices.per_reset(Method::Meso, 250, Grade::Epic),
            Some(20_000_000)
        );
        assert_eq!(
            prices.per_reset(Method::Red, 150, Grade::Legendary),
            Some(12_000_000 + 20 * 150 * 150)
        );
        assert_eq!(reveal_cost(20), 0);
        assert_eq!(reveal_cost(70), 2_450);
        assert_eq!(reveal_cost(100), 25_000);
        assert_eq!(prices.per_reset(Method::Occult, 150, Grade::Epic), None);
    }
}
