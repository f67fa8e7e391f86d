//! Exponential backoff with jitter.

use std::time::Duration;

use crate::QueueConfig;

/// The delay before attempt `attempt + 1` after `attempt` failed: `base * 2^(attempt-1)`, capped, then
/// spread by ±`jitter` using `unit` (a number in [0, 1), random in production).
pub fn backoff(attempt: u32, config: &QueueConfig, unit: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let raw = config
        .backoff_base
        .saturating_mul(1u32 << doublings.min(31))
        .min(config.backoff_cap);
    let spread = config.jitter.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    raw.mul_f64(1.0 + spread).min(config.backoff_cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_and_jitter_stays_in_bounds() {
        let c = QueueConfig {
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(60),
            jitter: 0.0,
            ..QueueConfig::default()
        };
        let secs: Vec<u64> = (1..=5).map(|a| backoff(a, &c, 0.5).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 60, 60]);
        let j = QueueConfig { jitter: 0.2, ..c };
        assert_eq!(backoff(1, &j, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(1, &j, 1.0), Duration::from_secs(12));
        assert!(backoff(u32::MAX, &j, 1.0) <= Duration::from_secs(60));
    }
}
