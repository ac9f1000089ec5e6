//! The inventory domain: values that cannot hold bad quantities, ingredients
//! and recipes, the rules for holding stock for an order, and when the
//! low-stock and sold-out events are due. No I/O here.

mod availability;
mod error;
mod hold;
mod ingredient;
mod recipe;
mod values;

pub use availability::{AvailabilityChange, ItemPortions, availability_changes};
pub use error::DomainError;
pub use hold::{HeldIngredient, Hold, HoldAction, HoldStatus, OrderLine, OrderLines, needs, plan, transition};
pub use ingredient::{Ingredient, LowStock, low_stock};
pub use recipe::{Recipe, RecipeLine, Stock, portions_left};
pub use values::{IngredientName, Note, Portions, Quantity, Reason, StockLevel, Unit};
