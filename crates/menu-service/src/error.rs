//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use axum::response::{IntoResponse, Response};
use events::MenuId;
use events::outbox::AppendError;
use service_kit::Problem;
use service_kit::database::StoreError;
use service_kit::extract::StaleVersion;
use service_kit::idempotency::IdempotencyError;
use service_kit::values::FieldError;

/// Everything a menu request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The domain refuses the change. HTTP 422, 404 or 409 by kind (see [`DomainError`]).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No menu with that id. HTTP 404.
    #[error("there is no menu {0}")]
    MenuNotFound(MenuId),
    /// `If-Match` names another version than the current one. HTTP 409.
    #[error("the menu {0}")]
    StaleVersion(#[from] StaleVersion),
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
            Self::Domain(DomainError::DuplicateItemName(_) | DomainError::TooManyItems) => {
                Problem::unprocessable("items", self.to_string())
            }
            Self::Domain(DomainError::NoSuchItem(_)) | Self::MenuNotFound(_) => Problem::not_found(self.to_string()),
            Self::Domain(DomainError::InvalidTransition { .. }) => Problem::conflict(self.to_string()),
            Self::Domain(DomainError::ItemNameTaken(_)) => Problem::conflict(self.to_string()).with_field("name"),
            Self::StaleVersion(_) => Problem::conflict(self.to_string()),
            Self::Store(error) => error.problem("the menu database"),
            Self::Idempotency(error) => error.problem("the menu database"),
        };
        problem.into_response()
    }
}
