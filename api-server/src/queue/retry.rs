//! Retry timing: exponential backoff with jitter that never undercuts a provider's Retry-After.

use std::time::Duration;

/// How failed submissions are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt, before jitter.
    pub base: Duration,
    /// Upper bound of the exponential delay.
    pub max: Duration,
    /// Submissions per job, including the first. A job that fails this many times ends `failed`.
    pub max_attempts: u32,
}

/// The longest Retry-After we honour; a provider asking for more is treated as asking for this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl RetryPolicy {
    /// Whether a job that has completed `attempts` submissions may try again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// Delay after the `attempt`-th failed submission (1-based). `jitter` is a uniform sample from
    /// `[0, 1)`; half of the exponential delay is fixed and half is jittered ("equal jitter"), so retries
    /// from many jobs spread out but never collapse to zero. A provider's Retry-After is a floor.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = raw / 2;
        let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(hint) => jittered.max(hint.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { base: Duration::from_secs(2), max: Duration::from_secs(60), max_attempts: 5 }
    }

    #[test]
    fn delays_double_and_are_capped() {
        let p = policy();
        assert_eq!(p.delay(1, None, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, None, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, None, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(10, None, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(u32::MAX, None, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let p = policy();
        for j in [0.0, 0.25, 0.5, 0.99] {
            let d = p.delay(3, None, j);
            assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(8), "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_bounded() {
        let p = policy();
        assert_eq!(p.delay(1, Some(Duration::from_secs(30)), 0.0), Duration::from_secs(30));
        assert_eq!(p.delay(5, Some(Duration::from_millis(10)), 1.0), Duration::from_secs(32));
        assert_eq!(p.delay(1, Some(Duration::from_secs(86_400)), 0.0), MAX_RETRY_AFTER);
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        assert!(p.may_retry(4));
        assert!(!p.may_retry(5));
    }
}
