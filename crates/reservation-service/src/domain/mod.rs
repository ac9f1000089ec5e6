//! The reservation domain: types that cannot hold bad values and the rules of
//! a reservation's life. No I/O here.

mod reservation;
mod values;

pub use reservation::{
    Booking, BookingPolicy, DomainError, Guest, ItemProblem, PreOrderLine, Reservation, ReservationStatus, Transition,
    transition,
};
pub use values::{CancelReason, Duration, Email, GuestName, Notes, PartySize, Phone, Quantity};
