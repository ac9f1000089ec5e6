//! The service's one error type, and its one mapping to HTTP.

use crate::domain::DomainError;
use axum::response::{IntoResponse, Response};
use events::{IngredientId, MenuItemId};
use service_kit::Problem;
use service_kit::database::StoreError;
use service_kit::values::FieldError;
use service_kit::write::{NotFound, WriteError};

/// Everything an inventory request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field's value breaks a rule. HTTP 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The domain refuses: a bad recipe or order (422), a count or waste
    /// below what orders hold (409, naming them).
    #[error(transparent)]
    Domain(DomainError),
    /// Another ingredient has that name. HTTP 409.
    #[error("there is an ingredient called {name:?} already: {existing}")]
    NameTaken {
        /// The name asked for.
        name: String,
        /// The ingredient that has it.
        existing: IngredientId,
    },
    /// A recipe for an item no menu event has named. HTTP 422.
    #[error("no menu has item {0}; put it on a menu before giving it a recipe")]
    UnknownMenuItem(MenuItemId),
    /// A menu item without a recipe: its stock is not tracked. HTTP 404.
    #[error("menu item {0} has no recipe, so its stock is not tracked")]
    NotTracked(MenuItemId),
    /// No such ingredient (404), a stale `If-Match` (409), the idempotency
    /// key in use (409) or used for another request (422), or the database
    /// failed (503 when it is unreachable, else 500).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A read failed (503 when the database is unreachable, else 500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// No ingredient `id`.
    pub fn not_found(id: IngredientId) -> Self {
        WriteError::NotFound(NotFound { kind: "ingredient", id: id.into() }).into()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::Domain(error) => match error {
                DomainError::BelowReserved { .. } => Problem::conflict(self.to_string()),
                DomainError::InvalidTransition { .. } => Problem::conflict(self.to_string()),
                DomainError::StockTooLarge { .. } => Problem::unprocessable("quantity", self.to_string()),
                _ => Problem::unprocessable("lines", self.to_string()),
            },
            Self::NameTaken { .. } => Problem::conflict(self.to_string()).with_field("name"),
            Self::UnknownMenuItem(_) => Problem::unprocessable("menu_item_id", self.to_string()),
            Self::NotTracked(_) => Problem::not_found(self.to_string()),
            Self::Write(error) => error.problem("the inventory database"),
            Self::Store(error) => error.problem("the inventory database"),
        };
        problem.into_response()
    }
}
