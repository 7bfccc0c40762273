//! What the load tools (`load-gen`, `proxy-bench`, `upstream-client`, the drill) share:
//! latency percentiles, and names of characters the simulator knows.

/// The `p`th percentile (nearest rank) of `sorted` samples, or NaN when there are none.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let last = sorted.len() - 1;
    let rank = ((p / 100.0) * last as f64).round() as usize;
    sorted[rank.min(last)].into()
}

/// The `i`th of the names made of `prefix` and letters, ten characters in all (the
/// simulator knows every letters-only name; Nexon's limit is 12).
pub fn character_name(prefix: &str, i: usize) -> String {
    let mut name = String::from(prefix);
    let mut n = i;
    for _ in prefix.len()..10 {
        name.push(char::from(b'a' + u8::try_from(n % 26).unwrap_or(0)));
        n /= 26;
    }
    name
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

    #[test]
    fn names_are_the_prefix_and_letters_ten_long() {
        assert_eq!(character_name("load", 0), "loadaaaaaa");
        assert_eq!(character_name("load", 27), "loadbbaaaa");
        assert_eq!(character_name("drill", 1), "drillbaaaa");
    }
}
