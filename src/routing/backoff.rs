//! Retry delays: exponential backoff with jitter, capped (AWS "equal jitter": half fixed, half
//! random, so retries of many items spread out but never collapse to zero).

use std::time::Duration;

/// The delay before attempt `attempts + 1`, given `attempts` failures so far; `unit` in
/// `[0, 1)` is the random draw (an argument, so tests are deterministic).
pub fn delay(initial: Duration, max: Duration, attempts: u32, unit: f64) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_caps() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(2);
        assert_eq!(delay(i, m, 1, 0.0), Duration::from_millis(50));
        assert_eq!(delay(i, m, 1, 1.0), Duration::from_millis(100));
        assert_eq!(delay(i, m, 3, 1.0), Duration::from_millis(400));
        assert!(delay(i, m, 3, 0.5) < delay(i, m, 3, 0.9));
        assert_eq!(delay(i, m, 30, 1.0), m);
        assert_eq!(delay(i, m, 30, 0.0), m / 2);
    }
}
