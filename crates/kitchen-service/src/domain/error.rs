//! What the kitchen's rules refuse.

use super::status::TicketStatus;
use chrono::{DateTime, Utc};

/// Why the domain refuses a command or an action. Each variant says the HTTP
/// status it answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The ticket's status does not allow the action. HTTP 409.
    #[error("`{action}` is not allowed when the ticket is {from}")]
    InvalidTransition {
        /// The status the ticket is in.
        from: TicketStatus,
        /// The action asked for ([`Action::name`](super::Action::name)).
        action: &'static str,
    },
    /// An acceptance promised a time that is not in the future. HTTP 422.
    #[error("ready_by must be in the future: {ready_by} is not after {now}")]
    ReadyByNotInFuture {
        /// The time promised.
        ready_by: DateTime<Utc>,
        /// The time it was asked at.
        now: DateTime<Utc>,
    },
    /// Lines are marked done or recalled only while the ticket is being
    /// prepared. HTTP 409.
    #[error("lines can be marked only while the ticket is preparing; it is {status}")]
    NotPreparing {
        /// The status the ticket is in.
        status: TicketStatus,
    },
    /// The ticket has no such line. HTTP 404.
    #[error("the ticket has no line {line}; its lines are numbered 1 to {count}")]
    UnknownLine {
        /// The line asked for.
        line: u32,
        /// How many lines the ticket has.
        count: usize,
    },
    /// A ticket was asked for with nothing to cook. HTTP 422.
    #[error("a ticket needs at least one line")]
    NoLines,
    /// A ticket was asked for with more lines than the kitchen takes. HTTP 422.
    #[error("a ticket holds at most {max} lines; {given} were given")]
    TooManyLines {
        /// The most lines a ticket holds.
        max: usize,
        /// How many were given.
        given: usize,
    },
    /// A line of a ticket asked for breaks a rule. HTTP 422.
    #[error("line {line}: {detail}")]
    InvalidLine {
        /// The line's position, from 1.
        line: u32,
        /// What is wrong with it.
        detail: String,
    },
}
