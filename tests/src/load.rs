//! What the load tools (`load-gen`, `proxy-bench`, `upstream-client`) share: latency percentiles.

/// The `p`th percentile (nearest rank) of `sorted` samples, or NaN when there are none.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let last = sorted.len() - 1;
    let rank = ((p / 100.0) * last as f64).round() as usize;
    sorted[rank.min(last)].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), 51.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&samples, 100.0), 100.0);
        assert!(percentile::<u32>(&[], 50.0).is_nan());
    }
}
