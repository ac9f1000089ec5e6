//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use axum::response::{IntoResponse, Response};
use events::TicketId;
use service_kit::Problem;
use service_kit::database::StoreError;
use service_kit::values::FieldError;
use service_kit::write::{NotFound, WriteError};

/// Everything a kitchen request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The domain refuses: a transition the status does not allow (409), a
    /// `ready_by` not in the future (422), no such line (404).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No such ticket (404), a stale `If-Match` (409), or the database
    /// failed (503 when it is unreachable, else 500).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A read failed (503 when the database is unreachable, else 500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis, where the feed and the stream position are read, failed. HTTP 503.
    #[error("the kitchen's event stream cannot be read: {0}")]
    Stream(#[from] redis::RedisError),
}

impl Error {
    /// No ticket `id`.
    pub fn not_found(id: TicketId) -> Self {
        WriteError::NotFound(NotFound { kind: "ticket", id: id.into() }).into()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::Domain(error) => match error {
                DomainError::InvalidTransition { .. } | DomainError::NotPreparing { .. } => {
                    Problem::conflict(self.to_string())
                }
                DomainError::ReadyByNotInFuture { .. } => Problem::unprocessable("ready_by", self.to_string()),
                DomainError::UnknownLine { .. } => Problem::not_found(self.to_string()),
                DomainError::NoLines | DomainError::TooManyLines { .. } | DomainError::InvalidLine { .. } => {
                    Problem::unprocessable("lines", self.to_string())
                }
            },
            Self::Write(error) => error.problem("the kitchen database"),
            Self::Store(error) => error.problem("the kitchen database"),
            Self::Stream(error) => Problem::unavailable("the kitchen's event stream", error),
        };
        problem.into_response()
    }
}
