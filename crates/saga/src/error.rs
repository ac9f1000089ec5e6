//! The crate's one error type.

use crate::state::{SagaId, Status};

/// Why a saga operation failed. Every variant but [`Error::NotFound`] and
/// [`Error::InvalidState`] is a server-side fault (HTTP 5xx); those two are
/// the operator's (404 and 409).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL failed while doing what `context` says.
    #[error("{context}: {source}")]
    Database {
        /// What the engine was doing.
        context: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A command could not be appended to the outbox.
    #[error("appending {command} of saga {saga}: {source}")]
    Append {
        /// The saga sending it.
        saga: SagaId,
        /// The command's type.
        command: &'static str,
        /// The outbox's error.
        source: events::outbox::AppendError,
    },
    /// The saga's data could not be encoded or decoded as its definition's type.
    #[error("the data of saga type {saga_type}: {source}")]
    Data {
        /// The saga type.
        saga_type: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A reply's payload could not be read as JSON.
    #[error("reading reply {event_type}: {source}")]
    Reply {
        /// The reply's type.
        event_type: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The definition has no steps; a saga must do something.
    #[error("saga type {0} has no steps")]
    NoSteps(String),
    /// A stored saga is of a type the caller passed no definition for.
    #[error("saga {saga} is of type {saga_type}, which no definition given describes")]
    UnknownType {
        /// The saga.
        saga: SagaId,
        /// Its stored type.
        saga_type: String,
    },
    /// A stored row breaks the schema's rules (a value written by something else).
    #[error("saga {saga} is corrupt: {detail}")]
    Corrupt {
        /// The saga.
        saga: SagaId,
        /// What is wrong.
        detail: String,
    },
    /// No saga has this id (HTTP 404).
    #[error("no saga {0}")]
    NotFound(SagaId),
    /// The operator's action does not apply to the saga's status (HTTP 409).
    #[error("saga {saga} is {status}; {action} applies only to {applies_to}")]
    InvalidState {
        /// The saga.
        saga: SagaId,
        /// Its status.
        status: Status,
        /// The refused action.
        action: &'static str,
        /// The statuses it applies to.
        applies_to: &'static str,
    },
}

/// Adds what the engine was doing to a database error.
pub(crate) trait Context<T> {
    /// The error, as [`Error::Database`] with `context`.
    fn context(self, context: &'static str) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Database { context, source })
    }
}
