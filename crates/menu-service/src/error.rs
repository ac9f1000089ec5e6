//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use axum::response::{IntoResponse, Response};
use service_kit::Problem;
use service_kit::database::StoreError;
use service_kit::values::FieldError;
use service_kit::write::WriteError;

/// Everything a menu request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The domain refuses the change. HTTP 422, 404 or 409 by kind (see [`DomainError`]).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No such menu (404), a stale `If-Match` (409), the idempotency key in
    /// use (409) or used for another request (422), or the database failed
    /// (503 when it is unreachable, else 500).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A read failed (503 when the database is unreachable, else 500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::Domain(DomainError::DuplicateItemName(_) | DomainError::TooManyItems) => {
                Problem::unprocessable("items", self.to_string())
            }
            Self::Domain(DomainError::NoSuchItem(_)) => Problem::not_found(self.to_string()),
            Self::Domain(DomainError::InvalidTransition { .. }) => Problem::conflict(self.to_string()),
            Self::Domain(DomainError::ItemNameTaken(_)) => Problem::conflict(self.to_string()).with_field("name"),
            Self::Write(error) => error.problem("the menu database"),
            Self::Store(error) => error.problem("the menu database"),
        };
        problem.into_response()
    }
}
