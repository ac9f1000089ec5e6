//! The service's one error type, and its one mapping to HTTP.

use crate::domain::{DomainError, ValueError};
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use events::MenuId;
use events::outbox::AppendError;
use service_kit::Problem;

/// Everything a menu request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error("{field}: {source}")]
    Invalid {
        /// The request field, such as `items[0].currency`.
        field: String,
        /// The rule it broke.
        source: ValueError,
    },
    /// The domain refuses the change. HTTP 422, 404 or 409 by kind (see [`DomainError`]).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No menu with that id. HTTP 404.
    #[error("there is no menu {0}")]
    MenuNotFound(MenuId),
    /// `If-Match` names another version than the current one: a version conflict. HTTP 409.
    #[error("the menu is at version {current}, not {expected}; reload it and try again")]
    StaleVersion {
        /// The version the client had.
        expected: i64,
        /// The version stored.
        current: i64,
    },
    /// The database failed. HTTP 503 when unreachable, else 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the events failed. HTTP 500.
    #[error(transparent)]
    Outbox(#[from] AppendError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

impl Error {
    /// A value error for `field`.
    pub fn invalid(field: impl Into<String>, source: ValueError) -> Self {
        Self::Invalid { field: field.into(), source }
    }
}

fn unreachable_database(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid { field, source } => Problem::unprocessable(field.clone(), source.to_string()),
            Self::Domain(DomainError::DuplicateItemName(_) | DomainError::TooManyItems) => {
                Problem::unprocessable("items", self.to_string())
            }
            Self::Domain(DomainError::NoSuchItem(_)) | Self::MenuNotFound(_) => Problem::not_found(self.to_string()),
            Self::Domain(DomainError::InvalidTransition { .. }) => Problem::conflict(self.to_string()),
            Self::Domain(DomainError::ItemNameTaken(_)) => Problem::conflict(self.to_string()).with_field("name"),
            Self::StaleVersion { .. } => Problem::conflict(self.to_string()),
            Self::Store(StoreError::Database(error)) | Self::Outbox(AppendError::Database(error))
                if unreachable_database(error) =>
            {
                Problem::unavailable("the menu database", &self)
            }
            Self::Store(_) | Self::Outbox(_) => Problem::internal(&self),
        };
        problem.into_response()
    }
}
