//! Waiting between attempts, and logging a failure that repeats without flooding the log.

use rand::Rng;
use std::time::{Duration, Instant};

/// Exponential backoff with jitter: attempt `n` waits between half and all of
/// `initial × 2ⁿ⁻¹`, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempt + 1`, after `attempt` failures (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self.initial.saturating_mul(1 << exponent).min(self.max);
        let jitter = rand::rng().random_range(0.5..=1.0);
        full.mul_f64(jitter)
    }
}

/// Lets a repeating error through at most once per `interval`, and says how
/// many were held back in between.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) const fn new(interval: Duration) -> Self {
        Self { interval, last: None, suppressed: 0 }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were held back.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Forgets past failures, so that the next one is logged at once.
    pub(crate) fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            let delay = backoff.delay(attempt);
            let full = Duration::from_millis(full);
            assert!(
                delay <= full && delay >= full / 2,
                "attempt {attempt}: {delay:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn log_limiter_admits_once_per_interval_and_counts_the_rest() {
        let mut limiter = LogLimiter::new(Duration::from_secs(60));
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), None);
        assert_eq!(limiter.admit(), None);
        limiter.reset();
        assert_eq!(limiter.admit(), Some(0));
    }
}
