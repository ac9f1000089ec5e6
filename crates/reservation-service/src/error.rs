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
                DomainError::StartsInThePast | DomainError::BeyondHorizon(_) => {
                    Problem::unprocessable("starts_at", self.to_string())
                }
                DomainError::DuplicatePreOrder(_) | DomainError::TooManyPreOrderLines => {
                    Problem::unprocessable("pre_order", self.to_string())
                }
                DomainError::PartyExceedsRestaurant { .. } => {
                    Problem::conflict(self.to_string()).with_field("party_size")
                }
                DomainError::InvalidTransition { .. } => Problem::conflict(self.to_string()),
            },
            Self::Unorderable { index, .. } => {
                Problem::unprocessable(format!("pre_order[{index}].menu_item_id"), self.to_string())
            }
            Self::NoCapacity { .. } => Problem::conflict(self.to_string()),
            Self::Forbidden(missing) => Problem::from(*missing),
            Self::Write(error) => error.problem("the reservation database"),
            Self::Store(error) => error.problem("the reservation database"),
        };
        problem.into_response()
    }
}
