//! The saga's state machine without I/O: given where a saga stands and what
//! happened (a verdict, a deadline passing, an operator's abort), what it
//! does next. The engine carries the decision out in one transaction.

use crate::state::{Phase, Position};

/// The shape of a definition the plan needs: how many steps, which compensate.
pub(crate) trait Steps {
    fn len(&self) -> usize;
    fn has_compensation(&self, step: usize) -> bool;
}

impl<T: crate::definition::Shape + ?Sized> Steps for T {
    fn len(&self) -> usize {
        crate::definition::Shape::len(self)
    }

    fn has_compensation(&self, step: usize) -> bool {
        crate::definition::Shape::has_compensation(self, step)
    }
}

/// What the saga does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send the action at this position, as its first attempt.
    Send(Position),
    /// Send the current action again, as attempt `attempts + 1`.
    Resend,
    /// Every step completed.
    Complete,
    /// Compensations are over (or there were none): the saga failed.
    Fail,
    /// An operator must look, for this reason.
    Stuck(String),
}

/// Something that happened to the action at the saga's current position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Its reply said it was done.
    Completed,
    /// Its reply said no, for this reason.
    Failed(String),
    /// Its deadline passed after `attempts` sends, of which `retries` may be re-sends.
    TimedOut { attempts: u32, retries: u32 },
    /// An operator aborted the saga.
    Aborted,
}

/// What a saga at `at` does when `event` happens. A `Send` into the
/// compensation phase starts (or continues) compensating; its reason is the
/// caller's to record.
pub(crate) fn next(steps: &(impl Steps + ?Sized), at: Position, event: &Event) -> Next {
    match (at.phase, event) {
        (_, Event::TimedOut { attempts, retries }) if *attempts <= *retries => Next::Resend,
        (Phase::Forward, Event::Completed) => {
            if at.step + 1 < steps.len() {
                Next::Send(Position { phase: Phase::Forward, step: at.step + 1 })
            } else {
                Next::Complete
            }
        }
        // A definite "no": the step did not happen, undo the ones before it.
        (Phase::Forward, Event::Failed(_)) => compensate_below(steps, at.step),
        // Unknown outcome: the step may have happened, so undo it too.
        (Phase::Forward, Event::TimedOut { .. } | Event::Aborted) => compensate_from(steps, at.step),
        (Phase::Compensation, Event::Completed) => compensate_below(steps, at.step),
        (Phase::Compensation, Event::Failed(reason)) => Next::Stuck(reason.clone()),
        (Phase::Compensation, Event::TimedOut { attempts, .. }) => {
            Next::Stuck(format!("no reply to the compensation after {attempts} attempts"))
        }
        // Already compensating: aborting changes nothing.
        (Phase::Compensation, Event::Aborted) => Next::Resend,
    }
}

/// Compensate the highest step at or below `step` that has a compensation.
fn compensate_from(steps: &(impl Steps + ?Sized), step: usize) -> Next {
    (0..=step)
        .rev()
        .find(|&step| steps.has_compensation(step))
        .map_or(Next::Fail, |step| Next::Send(Position { phase: Phase::Compensation, step }))
}

/// Compensate the highest step below `step` that has a compensation.
fn compensate_below(steps: &(impl Steps + ?Sized), step: usize) -> Next {
    match step.checked_sub(1) {
        Some(below) => compensate_from(steps, below),
        None => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps; the last has no compensation (like ConfirmTicket).
    struct Three;

    impl Steps for Three {
        fn len(&self) -> usize {
            3
        }

        fn has_compensation(&self, step: usize) -> bool {
            step < 2
        }
    }

    const fn forward(step: usize) -> Position {
        Position { phase: Phase::Forward, step }
    }

    const fn back(step: usize) -> Position {
        Position { phase: Phase::Compensation, step }
    }

    fn failed() -> Event {
        Event::Failed("no".to_owned())
    }

    #[test]
    fn every_transition_of_a_three_step_saga() {
        let out = |attempts| Event::TimedOut { attempts, retries: 2 };
        let table: Vec<(Position, Event, Next)> = vec![
            (forward(0), Event::Completed, Next::Send(forward(1))),
            (forward(1), Event::Completed, Next::Send(forward(2))),
            (forward(2), Event::Completed, Next::Complete),
            (forward(0), failed(), Next::Fail),
            (forward(1), failed(), Next::Send(back(0))),
            (forward(2), failed(), Next::Send(back(1))),
            (forward(0), out(1), Next::Resend),
            (forward(0), out(2), Next::Resend),
            (forward(0), out(3), Next::Send(back(0))),
            (forward(1), out(3), Next::Send(back(1))),
            // The last step has no compensation: unwinding starts below it.
            (forward(2), out(3), Next::Send(back(1))),
            (forward(1), Event::Aborted, Next::Send(back(1))),
            (back(1), Event::Completed, Next::Send(back(0))),
            (back(0), Event::Completed, Next::Fail),
            (back(1), failed(), Next::Stuck("no".to_owned())),
            (back(0), out(2), Next::Resend),
            (back(0), out(3), Next::Stuck("no reply to the compensation after 3 attempts".to_owned())),
            (back(0), Event::Aborted, Next::Resend),
        ];
        for (at, event, expected) in table {
            assert_eq!(next(&Three, at, &event), expected, "at {at:?} on {event:?}");
        }
    }

    #[test]
    fn a_saga_without_compensations_fails_at_once() {
        struct Bare;
        impl Steps for Bare {
            fn len(&self) -> usize {
                2
            }
            fn has_compensation(&self, _: usize) -> bool {
                false
            }
        }
        assert_eq!(next(&Bare, forward(1), &failed()), Next::Fail);
        assert_eq!(next(&Bare, forward(1), &Event::TimedOut { attempts: 1, retries: 0 }), Next::Fail);
    }
}
