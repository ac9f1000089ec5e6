//! An order's statuses and the one function that moves between them.
//!
//! ```text
//! approval_pending ─approve→ approved ─preparing→ preparing ─ready→ ready ─picked_up→ picked_up ─complete→ completed
//!        │                      │ ╲
//!        └──────reject──────────┴→ rejected          (the kitchen may still reject an approved order)
//!                               └─request_cancel→ cancel_pending ─cancelled→ cancelled
//!                                                       └─cancellation_refused(status)→ back (see below)
//! ```
//!
//! Only an `approved` order can be cancelled: while it is `approval_pending`
//! its CreateOrder saga is still running (cancelling then would race it), and
//! once cooking has begun the kitchen refuses anyway, so the request is a 409
//! at once. A refused cancellation returns the order to the status it had,
//! or to the later status the kitchen names (`preparing`, `ready`,
//! `picked_up`) if cooking moved on meanwhile. Repeating the step an order
//! has just taken (a duplicate reply to the saga) changes nothing.

use super::DomainError;
use events::OrderEvent;
use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed; the saga is holding stock and making the ticket.
    ApprovalPending,
    /// Stock held, the kitchen has the ticket.
    Approved,
    /// Being cooked.
    Preparing,
    /// Cooked, at the pass.
    Ready,
    /// Gone out of the kitchen; awaiting completion.
    PickedUp,
    /// Served or handed over. Final.
    Completed,
    /// Cannot be served (out of stock, or the kitchen refused). Final.
    Rejected,
    /// A cancellation is under way.
    CancelPending,
    /// Called off. Final.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [Self; 9] = [
        Self::ApprovalPending,
        Self::Approved,
        Self::Preparing,
        Self::Ready,
        Self::PickedUp,
        Self::Completed,
        Self::Rejected,
        Self::CancelPending,
        Self::Cancelled,
    ];

    /// Its name in the API, the events and the tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApprovalPending => "approval_pending",
            Self::Approved => "approved",
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::PickedUp => "picked_up",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::CancelPending => "cancel_pending",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to an order: a staff or guest request, or a step
/// of its saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The CreateOrder saga went through.
    Approve,
    /// The order cannot be served, for `reason` (naming the items).
    Reject(String),
    /// A guest or staff asks to cancel it.
    RequestCancel,
    /// The CancelOrder saga went through.
    ConfirmCancelled,
    /// The kitchen refused the cancellation; its ticket is in `kitchen_status`.
    RefuseCancellation(String),
    /// The kitchen began cooking.
    StartPreparing,
    /// The kitchen finished cooking.
    MarkReady,
    /// The order left the kitchen.
    MarkPickedUp,
    /// Staff closed the order.
    Complete,
}

impl Action {
    /// Every kind of action, with sample arguments (for tables of tests).
    pub fn samples() -> Vec<Self> {
        vec![
            Self::Approve,
            Self::Reject("out of stock".to_owned()),
            Self::RequestCancel,
            Self::ConfirmCancelled,
            Self::RefuseCancellation("preparing".to_owned()),
            Self::StartPreparing,
            Self::MarkReady,
            Self::MarkPickedUp,
            Self::Complete,
        ]
    }

    /// Its name in messages.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject(_) => "reject",
            Self::RequestCancel => "cancel",
            Self::ConfirmCancelled => "confirm the cancellation of",
            Self::RefuseCancellation(_) => "refuse the cancellation of",
            Self::StartPreparing => "start preparing",
            Self::MarkReady => "mark ready",
            Self::MarkPickedUp => "mark picked up",
            Self::Complete => "complete",
        }
    }
}

/// Where an action takes an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The new status.
    pub status: OrderStatus,
    /// The status to return to if a cancellation is refused (set while
    /// `cancel_pending`).
    pub resume: Option<OrderStatus>,
    /// The event that says so.
    pub event: OrderEvent,
}

/// The transition function: what `action` does to an order in `status`
/// (`resume` being the status it had before `cancel_pending`). `Ok(None)`:
/// the order already took that step, nothing changes.
///
/// # Errors
/// [`DomainError::InvalidTransition`] when the status does not allow it.
pub fn transition(
    status: OrderStatus,
    resume: Option<OrderStatus>,
    action: &Action,
) -> Result<Option<Step>, DomainError> {
    use OrderStatus as S;
    let to = |status: S, event: OrderEvent| Ok(Some(Step { status, resume: None, event }));
    match (status, action) {
        (S::ApprovalPending, Action::Approve) => to(S::Approved, OrderEvent::OrderApproved {}),
        (S::ApprovalPending | S::Approved, Action::Reject(reason)) => {
            to(S::Rejected, OrderEvent::OrderRejected { reason: reason.clone() })
        }
        (S::Approved, Action::RequestCancel) => Ok(Some(Step {
            status: S::CancelPending,
            resume: Some(S::Approved),
            event: OrderEvent::OrderCancellationRequested {},
        })),
        (S::CancelPending, Action::ConfirmCancelled) => to(S::Cancelled, OrderEvent::OrderCancelled {}),
        (S::CancelPending, Action::RefuseCancellation(kitchen)) => {
            let back = match kitchen.as_str() {
                "preparing" => S::Preparing,
                "ready" => S::Ready,
                "picked_up" => S::PickedUp,
                _ => resume.unwrap_or(S::Approved),
            };
            to(back, OrderEvent::OrderCancellationRefused { status: kitchen.clone() })
        }
        (S::Approved, Action::StartPreparing) => to(S::Preparing, OrderEvent::OrderPreparing {}),
        (S::Preparing, Action::MarkReady) => to(S::Ready, OrderEvent::OrderReady {}),
        (S::Ready, Action::MarkPickedUp) => to(S::PickedUp, OrderEvent::OrderPickedUp {}),
        (S::PickedUp, Action::Complete) => to(S::Completed, OrderEvent::OrderCompleted {}),
        (S::Approved, Action::Approve)
        | (S::Rejected, Action::Reject(_))
        | (S::CancelPending, Action::RequestCancel)
        | (S::Cancelled, Action::ConfirmCancelled)
        | (S::Preparing, Action::StartPreparing)
        | (S::Ready, Action::MarkReady)
        | (S::PickedUp, Action::MarkPickedUp)
        | (S::Completed, Action::Complete) => Ok(None),
        (status, action) => Err(DomainError::InvalidTransition { action: action.name(), status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus as S;

    /// The whole table: for each status, where each action leads (`Some`),
    /// `None` for "already there", and absent for a refusal.
    fn expected(status: S, action: &Action) -> Result<Option<S>, ()> {
        match (status, action) {
            (S::ApprovalPending, Action::Approve) => Ok(Some(S::Approved)),
            (S::ApprovalPending | S::Approved, Action::Reject(_)) => Ok(Some(S::Rejected)),
            (S::Approved, Action::RequestCancel) => Ok(Some(S::CancelPending)),
            (S::CancelPending, Action::ConfirmCancelled) => Ok(Some(S::Cancelled)),
            (S::CancelPending, Action::RefuseCancellation(_)) => Ok(Some(S::Preparing)),
            (S::Approved, Action::StartPreparing) => Ok(Some(S::Preparing)),
            (S::Preparing, Action::MarkReady) => Ok(Some(S::Ready)),
            (S::Ready, Action::MarkPickedUp) => Ok(Some(S::PickedUp)),
            (S::PickedUp, Action::Complete) => Ok(Some(S::Completed)),
            (S::Approved, Action::Approve)
            | (S::Rejected, Action::Reject(_))
            | (S::CancelPending, Action::RequestCancel)
            | (S::Cancelled, Action::ConfirmCancelled)
            | (S::Preparing, Action::StartPreparing)
            | (S::Ready, Action::MarkReady)
            | (S::PickedUp, Action::MarkPickedUp)
            | (S::Completed, Action::Complete) => Ok(None),
            _ => Err(()),
        }
    }

    #[test]
    fn every_status_and_action_pair_goes_where_the_table_says() {
        let mut pairs = 0;
        for status in S::ALL {
            let resume = (status == S::CancelPending).then_some(S::Approved);
            for action in Action::samples() {
                let got = transition(status, resume, &action).map(|step| step.map(|step| step.status)).map_err(|_| ());
                assert_eq!(got, expected(status, &action), "{status} / {}", action.name());
                pairs += 1;
            }
        }
        assert_eq!(pairs, 81);
    }

    #[test]
    fn a_refused_cancellation_returns_to_the_status_it_had_or_the_kitchens_later_one() {
        let refuse = |kitchen: &str| {
            transition(S::CancelPending, Some(S::Approved), &Action::RefuseCancellation(kitchen.to_owned()))
                .ok()
                .flatten()
                .map(|step| (step.status, step.event))
        };
        assert_eq!(
            refuse("accepted"),
            Some((S::Approved, OrderEvent::OrderCancellationRefused { status: "accepted".to_owned() }))
        );
        assert_eq!(refuse("ready").map(|(status, _)| status), Some(S::Ready));
        assert_eq!(refuse("picked_up").map(|(status, _)| status), Some(S::PickedUp));
        let requested = transition(S::Approved, None, &Action::RequestCancel).ok().flatten();
        assert_eq!(requested.map(|step| step.resume), Some(Some(S::Approved)));
    }

    #[test]
    fn statuses_are_named_in_snake_case_and_parse_back() {
        for status in S::ALL {
            assert_eq!(S::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        assert_eq!(S::parse("shipped"), None);
    }
}
