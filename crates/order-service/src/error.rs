//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use axum::response::{IntoResponse, Response};
use events::OrderId;
use service_kit::Problem;
use service_kit::auth::MissingScope;
use service_kit::database::StoreError;
use service_kit::values::FieldError;
use service_kit::write::{NotFound, WriteError};

/// Everything an order request (or a saga step) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The domain refuses: a transition the status does not allow (409), or
    /// lines that cannot be ordered (422 naming the line).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Anonymous callers may place only takeaway orders. HTTP 401.
    #[error("only staff may place a dine-in order; sign in with a staff token")]
    StaffOnly,
    /// A staff token without `orders:manage`. HTTP 403.
    #[error(transparent)]
    Scope(#[from] MissingScope),
    /// No such order (404), a stale `If-Match` (409), the idempotency key in
    /// use (409) or used for another request (422), or the database failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A read failed (503 when the database is unreachable, else 500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What a write's hook (the saga's start) added failed. HTTP 500;
    /// nothing was written.
    #[error("starting the order's saga failed: {0:#}")]
    Hook(anyhow::Error),
    /// Reading the order's sagas failed (503 when the database is
    /// unreachable, else 500).
    #[error(transparent)]
    Saga(#[from] saga::Error),
}

impl Error {
    /// No order `id`.
    pub fn not_found(id: OrderId) -> Self {
        WriteError::NotFound(NotFound { kind: "order", id: id.into() }).into()
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

impl From<events::outbox::AppendError> for Error {
    fn from(error: events::outbox::AppendError) -> Self {
        Self::Write(error.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::Domain(DomainError::InvalidTransition { .. }) => Problem::conflict(self.to_string()),
            Self::Domain(DomainError::Invalid { field, detail }) => {
                Problem::unprocessable(field.clone(), detail.clone())
            }
            Self::StaffOnly => {
                let mut problem = service_kit::auth::missing_token();
                problem.detail = self.to_string();
                problem
            }
            Self::Scope(missing) => (*missing).into(),
            Self::Write(error) => error.problem("the order database"),
            Self::Store(error) => error.problem("the order database"),
            Self::Hook(error) => Problem::internal(error.as_ref()),
            Self::Saga(error) if events::fault::is_transient(error) => {
                Problem::unavailable("the order database", error)
            }
            Self::Saga(error) => Problem::internal(error),
        };
        problem.into_response()
    }
}
