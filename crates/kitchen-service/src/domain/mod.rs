//! The kitchen domain: tickets, their status rules and stations. No I/O here.

mod error;
mod stations;
mod status;
mod ticket;
mod values;

pub use error::DomainError;
pub use stations::{StationMap, StationSpecError};
pub use status::{Action, Outcome, TicketStatus, transition};
pub use ticket::{Line, SeenItem, Ticket};
pub use values::{Notes, Quantity, RejectReason};
