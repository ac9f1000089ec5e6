//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use crate::menu_view::Unorderable;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use events::{MenuItemId, ReservationId};
use service_kit::Problem;
use service_kit::auth::MissingScope;
use service_kit::database::StoreError;
use service_kit::values::FieldError;
use service_kit::write::WriteError;

/// Everything a reservation request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The domain refuses. HTTP 422 or 409 by kind (see [`DomainError`]).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A pre-ordered item cannot be served. HTTP 422 naming the line.
    #[error("item {item} cannot be pre-ordered: {reason}")]
    Unorderable {
        /// Its position in `pre_order`.
        index: usize,
        /// The item.
        item: MenuItemId,
        /// Why not.
        reason: Unorderable,
    },
    /// Not enough seats are free for the whole stay. HTTP 409.
    #[error(
        "not enough seats: a party of {party} does not fit between {starts_at} and {ends_at}; \
         at the busiest moment of that time only {free} seats are free"
    )]
    NoCapacity {
        /// The party size asked for.
        party: u16,
        /// Seats free at the busiest moment.
        free: i64,
        /// The stay asked for.
        starts_at: DateTime<Utc>,
        /// Its end.
        ends_at: DateTime<Utc>,
    },
    /// The guest already holds as many upcoming bookings as one guest may. HTTP 409.
    #[error(
        "this guest already holds {limit} upcoming bookings, as many as one email address or phone number may; \
         cancel one or call the restaurant"
    )]
    TooManyUpcoming {
        /// The limit.
        limit: u16,
    },
    /// Staff asked for fewer seats than a future time already has booked. HTTP 409.
    #[error("cannot lower the seats to {seats}: {taken} seats are already booked at {at}")]
    SeatsBooked {
        /// The seats asked for.
        seats: u32,
        /// The busiest such time.
        at: DateTime<Utc>,
        /// Seats booked then.
        taken: i32,
    },
    /// Another instance changed the rules while a booking was being decided,
    /// again and again. HTTP 503: try again.
    #[error("the restaurant's rules kept changing while the booking was decided; try again")]
    RulesChanged,
    /// The caller's staff token lacks the scope the operation needs. HTTP 403.
    #[error(transparent)]
    Forbidden(#[from] MissingScope),
    /// No such reservation (404), a stale `If-Match` (409), the idempotency
    /// key in use (409) or used for another request (422), or the database
    /// failed (503 when it is unreachable, else 500).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A read failed (503 when the database is unreachable, else 500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// No reservation `id`, or none the caller may see.
    pub fn not_found(id: ReservationId) -> Self {
        WriteError::not_found::<crate::domain::Reservation>(id).into()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::Domain(error) => match error {
                DomainError::NoContact => Problem::unprocessable("guest_email", self.to_string()),
                DomainError::TooSoon(_) | DomainError::BeyondHorizon(_) | DomainError::Schedule(_) => {
                    Problem::unprocessable("starts_at", self.to_string())
                }
                DomainError::PartyTooLarge { .. } => Problem::unprocessable("party_size", self.to_string()),
                DomainError::DuplicatePreOrder(_) | DomainError::TooManyPreOrderLines => {
                    Problem::unprocessable("pre_order", self.to_string())
                }
                DomainError::InvalidTransition { .. } | DomainError::NotYet { .. } | DomainError::Over(_) => {
                    Problem::conflict(self.to_string())
                }
            },
            Self::Unorderable { index, .. } => {
                Problem::unprocessable(format!("pre_order[{index}].menu_item_id"), self.to_string())
            }
            Self::NoCapacity { .. } | Self::TooManyUpcoming { .. } => Problem::conflict(self.to_string()),
            Self::SeatsBooked { .. } => Problem::conflict(self.to_string()).with_field("seats"),
            Self::RulesChanged => Problem::busy("the reservation service", &self),
            Self::Forbidden(missing) => Problem::from(*missing),
            Self::Write(error) => error.problem("the reservation database"),
            Self::Store(error) => error.problem("the reservation database"),
        };
        problem.into_response()
    }
}
