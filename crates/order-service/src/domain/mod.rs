//! The order's types and rules, without I/O: what may be ordered
//! ([`order::Draft::price`]) and how an order moves ([`status::transition`]).

pub mod order;
pub mod status;
pub mod values;

pub use order::{Draft, DraftLine, Kind, Line, Offer, Order, Unorderable};
pub use status::{Action, OrderStatus, Step, transition};
pub use values::{Notes, Quantity, Reason, Table};

/// Why the domain refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The status does not allow the action. HTTP 409.
    #[error("cannot {action} an order that is {status}")]
    InvalidTransition {
        /// What was asked.
        action: &'static str,
        /// The order's status.
        status: OrderStatus,
    },
    /// A rule about the lines or the order's kind is broken. HTTP 422 naming `field`.
    #[error("{detail}")]
    Invalid {
        /// The field, such as `lines[2].menu_item_id`.
        field: String,
        /// What is wrong.
        detail: String,
    },
}

impl DomainError {
    /// A broken rule about `field`.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), detail: detail.into() }
    }
}
