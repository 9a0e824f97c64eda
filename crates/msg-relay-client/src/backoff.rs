//! Exponential backoff with jitter (no RNG dependency: the jitter comes from a randomly keyed
//! hasher, which is plenty to spread reconnecting clients apart).

use std::hash::BuildHasher;
use std::time::Duration;

/// The delay before retry number `attempt` (0-based): `initial * 2^attempt`, capped at `max`,
/// then scaled by a random factor in [0.5, 1.0].
pub(crate) fn delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    let base = initial.saturating_mul(factor).min(max);
    let noise = std::collections::hash_map::RandomState::new().hash_one(attempt);
    // 0..=1000 per mille of the upper half.
    let per_mille = u32::try_from(noise % 501).unwrap_or(0) + 500;
    base.saturating_mul(per_mille) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_capped() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(2);
        for attempt in 0..40 {
            let d = delay(i, m, attempt);
            assert!(d <= m);
            let expected = i.saturating_mul(1 << attempt.min(20)).min(m);
            assert!(d >= expected / 2, "{attempt}: {d:?}");
        }
    }
}
