//! The time a service's rules are decided at: the system clock in
//! production, a clock the test moves in tests (so that "expires after 30
//! minutes" is tested by moving the clock, not by sleeping).

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now", to the microsecond PostgreSQL keeps. Cheap to clone;
/// clones of a manual clock share its time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that shows `start` until it is moved.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self { manual: Some(Arc::new(AtomicI64::new(start.timestamp_micros()))) }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now().trunc_subsecs(6),
            Some(micros) => DateTime::from_timestamp_micros(micros.load(Ordering::SeqCst)).unwrap_or_default(),
        }
    }

    /// Moves a manual clock by `by`; the system clock cannot be moved and
    /// ignores it.
    pub fn advance(&self, by: TimeDelta) {
        if let (Some(micros), Some(by)) = (&self.manual, by.num_microseconds()) {
            micros.fetch_add(by, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_move_with_it() {
        let start = Utc::now().trunc_subsecs(6);
        let clock = Clock::manual(start);
        let clone = clock.clone();
        assert_eq!(clock.now(), start);
        clone.advance(TimeDelta::minutes(31));
        assert_eq!(clock.now(), start + TimeDelta::minutes(31));
    }

    #[test]
    fn the_system_clock_is_now_to_the_microsecond() {
        let before = Utc::now().trunc_subsecs(6);
        let now = Clock::system().now();
        assert!(now >= before && now <= Utc::now());
        assert_eq!(now.timestamp_subsec_nanos() % 1_000, 0);
    }
}
