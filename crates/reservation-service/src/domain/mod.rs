//! The reservation domain: types that cannot hold bad values, the
//! restaurant's schedule and rules, and the rules of a reservation's life.
//! No I/O here.

mod reservation;
pub mod rules;
pub mod schedule;
mod values;

pub use reservation::{
    Booking, DomainError, Guest, ItemProblem, PreOrderLine, Reservation, ReservationStatus, StatusChange, Transition,
    transition,
};
pub use rules::{Rules, RulesDocument};
pub use schedule::{GRAIN_MINUTES, Schedule, ScheduleError};
pub use values::{CancelReason, Duration, Email, GuestName, Notes, PartySize, Phone, Quantity};
