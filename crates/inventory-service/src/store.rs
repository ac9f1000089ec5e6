//! The inventory tables. Every function runs inside the caller's transaction
//! (`&mut PgConnection`) or reads from the pool, and returns [`StoreError`]
//! only for what the database did; what the domain refuses comes back as a
//! value.
//!
//! # Never more held than on hand
//!
//! Stock is held under row locks that every instance of the service shares
//! through PostgreSQL: a change locks the ingredient rows it touches
//! (`FOR NO KEY UPDATE`, which excludes every other writer of the row but
//! lets foreign-key checks through), all of them in one statement in id
//! order, then decides with what it read under the lock. `CHECK (reserved <=
//! on_hand)` is the last line of defence.
//!
//! # Lock order
//!
//! Locks are taken holds first, then ingredients (by id), then recipes (by
//! menu item id), so transactions never wait for each other crosswise. A
//! caller that changes several ingredients in one transaction (several
//! [`receive`]s, say) does so in id order for the same reason; every
//! function here that touches several does it by itself.
//!
//! # Events that follow from a change
//!
//! After any change of stock or recipes, the caller runs [`stock_signals`]
//! for the ingredients it touched, in the same transaction (or
//! [`signals_of_locked`] with the rows a change of a hold returned): it
//! returns the `IngredientLowStock`, `MenuItemSoldOut` and
//! `MenuItemBackInStock` events that are due, and remembers them as
//! published.

mod holds;
mod ingredients;
mod recipes;
mod signals;

pub use holds::{EXPIRY_ACTOR, HoldChange, Reservation, commit, expire_due, find_hold, release, reserve};
pub use ingredients::{
    Inserted, LedgerEntry, Movement, MovementKind, StockChange, count, find_ingredient, insert_ingredient,
    list_ingredients, list_movements, lock_ingredient, orders_holding, receive, record_movement,
    update_ingredient_stock, waste,
};
pub use recipes::{
    RecipeOutcome, StoredRecipe, TrackedItem, find_recipe, item_seen, portions, record_item_seen, set_recipe,
};
pub use signals::{Outgoing, signals_of_locked, stock_signals};

use chrono::{DateTime, SubsecRound, Utc};
use service_kit::database::StoreError;

/// Now, at PostgreSQL's precision (microseconds), so that what is written
/// reads back equal.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A stored `entity` row `id` that breaks a domain rule.
fn corrupt(entity: &'static str, id: impl Into<uuid::Uuid>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { entity, id: id.into(), detail: detail.to_string() }
}
