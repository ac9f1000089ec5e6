//! Waiting between attempts, and logging a failure that repeats without flooding the log.

use rand::Rng;
use std::fmt::Display;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

/// A dependency that keeps failing (Redis, PostgreSQL): each failure waits
/// longer ([`Backoff`]), is logged at once and then at most every ten seconds
/// ([`LogLimiter`]), and the first success after it is reported.
#[derive(Debug)]
pub(crate) struct Outage {
    backoff: Backoff,
    failures: u32,
    limiter: LogLimiter,
}

impl Outage {
    /// An outage not yet begun, waiting `backoff` after each failure.
    pub(crate) const fn new(backoff: Backoff) -> Self {
        Self { backoff, failures: 0, limiter: LogLimiter::new(Duration::from_secs(10)) }
    }

    /// Records a success; `true` if it ends an outage, for the caller to say so.
    pub(crate) fn ended(&mut self) -> bool {
        let ended = self.failures > 0;
        if ended {
            self.failures = 0;
            self.limiter.reset();
        }
        ended
    }

    /// Records a failure, logs it as `what` unless held back, and waits its
    /// backoff. `false` if `cancel` fired instead.
    pub(crate) async fn wait_after(&mut self, error: &impl Display, what: &str, cancel: &CancellationToken) -> bool {
        self.failures += 1;
        if let Some(suppressed) = self.limiter.admit() {
            tracing::warn!(error = %error, suppressed, "{what}");
        }
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(self.backoff.delay(self.failures)) => true,
        }
    }
}

/// Runs `task` every `interval` until `cancel` fires: the shape of every
/// periodic sweep (lapsed holds, overdue tickets, saga deadlines). A failed
/// run is logged as `what` failing (at once, then at most every ten seconds)
/// and tried again after a growing backoff, up to 30 s; the first success
/// after failures is logged too.
pub async fn every<F, Fut, T, E>(interval: Duration, what: &str, cancel: CancellationToken, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut outage = Outage::new(Backoff { initial: interval, max: Duration::from_secs(30) });
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let ran = tokio::select! {
            () = cancel.cancelled() => return,
            ran = task() => ran,
        };
        match ran {
            Ok(_) => {
                if outage.ended() {
                    tracing::info!("{what} works again");
                }
            }
            Err(error) => {
                if !outage.wait_after(&error, &format!("{what} failed; trying again later"), &cancel).await {
                    return;
                }
            }
        }
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

    #[tokio::test]
    async fn an_outage_waits_longer_after_each_failure_and_ends_at_the_first_success() {
        let backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_secs(1) };
        let mut outage = Outage::new(backoff);
        let cancel = CancellationToken::new();
        assert!(!outage.ended(), "no outage yet");
        let mut waits = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            assert!(outage.wait_after(&"refused", "down", &cancel).await);
            waits.push(started.elapsed());
        }
        assert!(waits[0] >= Duration::from_millis(10) && waits[2] >= Duration::from_millis(40), "{waits:?}");
        assert!(outage.ended());
        assert!(!outage.ended(), "it ended once");
        cancel.cancel();
        assert!(!outage.wait_after(&"refused", "down", &cancel).await, "a cancelled wait says so");
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
