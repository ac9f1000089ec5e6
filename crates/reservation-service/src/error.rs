//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use crate::menu_view::Unorderable;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use events::outbox::AppendError;
use events::{MenuItemId, ReservationId};
use service_kit::Problem;
use service_kit::auth::MissingScope;
use service_kit::database::StoreError;
use service_kit::extract::StaleVersion;
use service_kit::idempotency::IdempotencyError;
use service_kit::values::FieldError;

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
    /// No reservation with that id. HTTP 404.
    #[error("there is no reservation {0}")]
    NotFound(ReservationId),
    /// `If-Match` names another version than the current one. HTTP 409.
    #[error("the reservation {0}")]
    StaleVersion(#[from] StaleVersion),
    /// The caller's staff token lacks the scope the operation needs. HTTP 403.
    #[error(transparent)]
    Forbidden(#[from] MissingScope),
    /// The database failed, or the events could not be written. HTTP 503
    /// when the database is unreachable, else 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `Idempotency-Key` is in use (HTTP 409) or was used for another
    /// request (HTTP 422), or reading it failed.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

impl From<AppendError> for Error {
    fn from(error: AppendError) -> Self {
        Self::Store(error.into())
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
            Self::NoCapacity { .. } | Self::StaleVersion(_) => Problem::conflict(self.to_string()),
            Self::NotFound(_) => Problem::not_found(self.to_string()),
            Self::Forbidden(missing) => Problem::from(*missing),
            Self::Store(error) => error.problem("the reservation database"),
            Self::Idempotency(error) => error.problem("the reservation database"),
        };
        problem.into_response()
    }
}
