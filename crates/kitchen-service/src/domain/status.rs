//! A ticket's status and the one function that decides what an action does
//! to it.
//!
//! ```text
//! pending ─confirm─▶ awaiting_acceptance ─accept─▶ accepted ─start─▶ preparing ─ready─▶ ready ─pick_up─▶ picked_up
//!    │                   │         │                   │
//!    │                   │         └─reject─▶ rejected │
//!    └───────────────────┴────────── cancel ───────────┴─▶ cancelled
//! ```
//!
//! Repeating the action that led to the current status changes nothing, so a
//! redelivered command or a second click is harmless. Once cooking has begun a
//! cancellation is refused, which is an answer (`TicketCancellationRefused`),
//! not an error.

use super::error::DomainError;
use super::values::RejectReason;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Created for an order the saga has not confirmed yet; the kitchen waits.
    Pending,
    /// The order went through; the kitchen is to accept or reject it.
    AwaitingAcceptance,
    /// The kitchen took it on and promised a `ready_by`.
    Accepted,
    /// Cooking; it can no longer be cancelled.
    Preparing,
    /// Cooked; waiting at the pass.
    Ready,
    /// Gone out of the kitchen. Final.
    PickedUp,
    /// Called off before cooking began. Final.
    Cancelled,
    /// Refused by the kitchen, with a reason. Final.
    Rejected,
}

impl TicketStatus {
    /// Every status, in the order of a ticket's life.
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::AwaitingAcceptance,
        Self::Accepted,
        Self::Preparing,
        Self::Ready,
        Self::PickedUp,
        Self::Cancelled,
        Self::Rejected,
    ];

    /// The name used in JSON, in events and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingAcceptance => "awaiting_acceptance",
            Self::Accepted => "accepted",
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::PickedUp => "picked_up",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    /// Parses the name [`Self::as_str`] gives.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }

    /// Whether the ticket is still in play: not picked up, cancelled or
    /// rejected. The kitchen's queue lists the active tickets.
    pub const fn is_active(self) -> bool {
        !matches!(self, Self::PickedUp | Self::Cancelled | Self::Rejected)
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What someone asks of a ticket: the order saga (confirm, cancel) or the
/// kitchen staff (the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The order went through: put the ticket before the kitchen.
    Confirm,
    /// The kitchen takes the ticket on, promising it by `ready_by`.
    Accept {
        /// When the kitchen expects it to be ready; must be in the future.
        ready_by: DateTime<Utc>,
    },
    /// The kitchen refuses the ticket.
    Reject {
        /// Why.
        reason: RejectReason,
    },
    /// Cooking begins.
    Start,
    /// Everything is cooked.
    Ready,
    /// The order leaves the kitchen.
    PickUp,
    /// Call the ticket off.
    Cancel,
}

impl Action {
    /// The action's name in messages: `confirm`, `accept`, `reject`, `start`,
    /// `ready`, `pick_up` or `cancel`.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Accept { .. } => "accept",
            Self::Reject { .. } => "reject",
            Self::Start => "start",
            Self::Ready => "ready",
            Self::PickUp => "pick_up",
            Self::Cancel => "cancel",
        }
    }
}

/// What an allowed action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The ticket moves to this status.
    Changed(TicketStatus),
    /// The ticket is already where the action leads: nothing changes and
    /// nothing is published.
    Unchanged,
    /// A cancellation that comes too late: cooking has begun. The ticket stays
    /// in `status` and the refusal is published.
    CancellationRefused {
        /// The ticket's status, which it keeps.
        status: TicketStatus,
    },
}

/// The ticket's status rules, in one place: what `action` does to a ticket in
/// `status` at `now`.
///
/// # Errors
/// [`DomainError::InvalidTransition`] for an action the status does not
/// allow; [`DomainError::ReadyByNotInFuture`] for an acceptance whose
/// `ready_by` is not after `now`.
pub fn transition(status: TicketStatus, action: &Action, now: DateTime<Utc>) -> Result<Outcome, DomainError> {
    use Outcome::{CancellationRefused, Changed, Unchanged};
    use TicketStatus::{Accepted, AwaitingAcceptance, Cancelled, Pending, PickedUp, Preparing, Ready, Rejected};
    match (status, action) {
        (Pending, Action::Confirm) => Ok(Changed(AwaitingAcceptance)),
        (AwaitingAcceptance, Action::Accept { ready_by }) if *ready_by <= now => {
            Err(DomainError::ReadyByNotInFuture { ready_by: *ready_by, now })
        }
        (AwaitingAcceptance, Action::Accept { .. }) => Ok(Changed(Accepted)),
        (AwaitingAcceptance, Action::Reject { .. }) => Ok(Changed(Rejected)),
        (Accepted, Action::Start) => Ok(Changed(Preparing)),
        (Preparing, Action::Ready) => Ok(Changed(Ready)),
        (Ready, Action::PickUp) => Ok(Changed(PickedUp)),
        (Pending | AwaitingAcceptance | Accepted, Action::Cancel) => Ok(Changed(Cancelled)),
        (Preparing | Ready | PickedUp, Action::Cancel) => Ok(CancellationRefused { status }),
        (AwaitingAcceptance, Action::Confirm)
        | (Accepted, Action::Accept { .. })
        | (Rejected, Action::Reject { .. })
        | (Preparing, Action::Start)
        | (Ready, Action::Ready)
        | (PickedUp, Action::PickUp)
        | (Cancelled, Action::Cancel) => Ok(Unchanged),
        _ => Err(DomainError::InvalidTransition { from: status, action: action.name() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{CancellationRefused, Changed, Unchanged};
    use TicketStatus::{Accepted, AwaitingAcceptance, Cancelled, Pending, PickedUp, Preparing, Ready, Rejected};
    use chrono::TimeDelta;

    /// What the table expects: an outcome, or a refused transition.
    #[derive(Debug, PartialEq, Eq)]
    enum Expected {
        Is(Outcome),
        Refused,
    }
    use Expected::{Is, Refused};

    fn actions(now: DateTime<Utc>) -> [Action; 7] {
        let reason = RejectReason::try_from("out of fish".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        [
            Action::Confirm,
            Action::Accept { ready_by: now + TimeDelta::minutes(20) },
            Action::Reject { reason },
            Action::Start,
            Action::Ready,
            Action::PickUp,
            Action::Cancel,
        ]
    }

    #[test]
    fn every_status_and_action_is_allowed_a_no_op_refused_or_a_refused_cancellation_as_the_table_says() {
        // Columns: confirm, accept, reject, start, ready, pick_up, cancel.
        let table: [(TicketStatus, [Expected; 7]); 8] = [
            (
                Pending,
                [Is(Changed(AwaitingAcceptance)), Refused, Refused, Refused, Refused, Refused, Is(Changed(Cancelled))],
            ),
            (
                AwaitingAcceptance,
                [
                    Is(Unchanged),
                    Is(Changed(Accepted)),
                    Is(Changed(Rejected)),
                    Refused,
                    Refused,
                    Refused,
                    Is(Changed(Cancelled)),
                ],
            ),
            (
                Accepted,
                [Refused, Is(Unchanged), Refused, Is(Changed(Preparing)), Refused, Refused, Is(Changed(Cancelled))],
            ),
            (
                Preparing,
                [
                    Refused,
                    Refused,
                    Refused,
                    Is(Unchanged),
                    Is(Changed(Ready)),
                    Refused,
                    Is(CancellationRefused { status: Preparing }),
                ],
            ),
            (
                Ready,
                [
                    Refused,
                    Refused,
                    Refused,
                    Refused,
                    Is(Unchanged),
                    Is(Changed(PickedUp)),
                    Is(CancellationRefused { status: Ready }),
                ],
            ),
            (
                PickedUp,
                [
                    Refused,
                    Refused,
                    Refused,
                    Refused,
                    Refused,
                    Is(Unchanged),
                    Is(CancellationRefused { status: PickedUp }),
                ],
            ),
            (Cancelled, [Refused, Refused, Refused, Refused, Refused, Refused, Is(Unchanged)]),
            (Rejected, [Refused, Refused, Is(Unchanged), Refused, Refused, Refused, Refused]),
        ];
        assert_eq!(
            table.each_ref().map(|(status, _)| *status),
            TicketStatus::ALL,
            "the table covers every status once"
        );
        let now = Utc::now();
        for (status, row) in table {
            for (action, expected) in actions(now).into_iter().zip(row) {
                let actual = match transition(status, &action, now) {
                    Ok(outcome) => Is(outcome),
                    Err(DomainError::InvalidTransition { from, action: name }) => {
                        assert_eq!((from, name), (status, action.name()), "the refusal names the status and action");
                        Refused
                    }
                    Err(other) => panic!("{status} + {}: unexpected {other}", action.name()),
                };
                assert_eq!(actual, expected, "{status} + {}", action.name());
            }
        }
    }

    #[test]
    fn accepting_needs_a_ready_by_in_the_future() {
        let now = Utc::now();
        for ready_by in [now, now - TimeDelta::minutes(1)] {
            let refused = transition(AwaitingAcceptance, &Action::Accept { ready_by }, now);
            assert_eq!(refused, Err(DomainError::ReadyByNotInFuture { ready_by, now }));
            let message = refused.map_err(|e| e.to_string()).err().unwrap_or_default();
            assert!(message.contains("ready_by"), "{message}");
        }
        let soon = Action::Accept { ready_by: now + TimeDelta::seconds(1) };
        assert_eq!(transition(AwaitingAcceptance, &soon, now), Ok(Changed(Accepted)));
    }

    #[test]
    fn a_refusal_says_what_was_asked_of_which_status() {
        let refused = transition(Cancelled, &Action::Start, Utc::now()).map_err(|e| e.to_string());
        assert_eq!(refused, Err("`start` is not allowed when the ticket is cancelled".to_owned()));
    }

    #[test]
    fn statuses_read_back_as_written_and_only_final_ones_are_inactive() {
        for status in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        assert_eq!(TicketStatus::parse("Pending"), None);
        let inactive: Vec<_> = TicketStatus::ALL.into_iter().filter(|status| !status.is_active()).collect();
        assert_eq!(inactive, [PickedUp, Cancelled, Rejected]);
    }
}
