//! Exponential back-off with full jitter, used for HTTP retries and for clients of the
//! coordinator.

use std::time::Duration;

use rand::Rng;

/// Back-off schedule: attempt `n` (0-based) waits a random time in
/// `[0, min(max, initial * 2^n)]`, never less than `initial / 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The upper bound of the wait before retry `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A jittered wait before retry `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = (self.initial / 2).min(ceiling);
        if ceiling <= floor {
            return ceiling;
        }
        let ms =
            rand::thread_rng().gen_range(floor.as_millis() as u64..=ceiling.as_millis() as u64);
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(30), Duration::from_secs(2));
        for attempt in 0..10 {
            let d = b.delay(attempt);
            assert!(d >= Duration::from_millis(50), "{d:?}");
            assert!(d <= b.ceiling(attempt), "{d:?}");
        }
    }
}
