//! What the inventory domain refuses, in words a person can act on.

use super::hold::{HoldAction, HoldStatus};
use events::{IngredientId, MenuItemId, OrderId};

/// A rule of the inventory domain that a request or command broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A recipe without lines. HTTP 422.
    #[error("a recipe needs at least one ingredient")]
    EmptyRecipe,
    /// More recipe lines than allowed. HTTP 422.
    #[error("a recipe has at most {max} ingredients, not {given}")]
    TooManyRecipeLines {
        /// The most allowed.
        max: usize,
        /// How many were given.
        given: usize,
    },
    /// An ingredient appears twice in a recipe. HTTP 422.
    #[error("ingredient {0} appears twice in the recipe; give each ingredient once with its quantity")]
    DuplicateRecipeIngredient(IngredientId),
    /// A recipe line's quantity is not positive or too large. HTTP 422.
    #[error("the quantity of ingredient {ingredient_id} must be between 1 and {max}, not {quantity}")]
    InvalidRecipeQuantity {
        /// The line's ingredient.
        ingredient_id: IngredientId,
        /// The quantity given.
        quantity: i64,
        /// The largest allowed.
        max: i64,
    },
    /// A recipe names ingredients that are not stocked. HTTP 422.
    #[error("the recipe uses ingredients that do not exist: {}", list(.0))]
    UnknownIngredients(Vec<IngredientId>),
    /// An order without lines. HTTP 422; a command with none is refused.
    #[error("an order needs at least one line")]
    EmptyOrder,
    /// More order lines than allowed. HTTP 422.
    #[error("an order has at most {max} lines, not {given}")]
    TooManyOrderLines {
        /// The most allowed.
        max: usize,
        /// How many were given.
        given: usize,
    },
    /// An order line asks for no portions, or too many. HTTP 422.
    #[error("the portions of item {menu_item_id} must be between 1 and {max}, not {quantity}")]
    InvalidPortions {
        /// The line's item.
        menu_item_id: MenuItemId,
        /// The portions asked for (summed over the lines naming the item).
        quantity: i64,
        /// The most allowed.
        max: i64,
    },
    /// A count or waste would leave less on hand than orders hold. HTTP 409.
    #[error(
        "that would leave {on_hand_after} on hand, but {reserved} is held for orders ({}); \
         release or commit them first",
        list(.holds)
    )]
    BelowReserved {
        /// What would be on hand after the change (negative if more than all of it).
        on_hand_after: i64,
        /// How much is held for orders.
        reserved: i64,
        /// The orders that hold it.
        holds: Vec<OrderId>,
    },
    /// A receipt would put more on hand than the books keep. HTTP 422.
    #[error("at most {max} can be on hand")]
    StockTooLarge {
        /// The most that can be on hand.
        max: i64,
    },
    /// A hold cannot take the change asked for. HTTP 409.
    #[error("the hold is {from}; it cannot be {}: {detail}", requested.past_tense())]
    InvalidTransition {
        /// The hold's status.
        from: HoldStatus,
        /// The change asked for.
        requested: HoldAction,
        /// Why not.
        detail: &'static str,
    },
}

/// `a, b, c`, or `none` when empty.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_count_names_the_holds_and_what_to_do() {
        let order = OrderId::new();
        let error = DomainError::BelowReserved { on_hand_after: 5, reserved: 8, holds: vec![order] };
        assert_eq!(
            error.to_string(),
            format!("that would leave 5 on hand, but 8 is held for orders ({order}); release or commit them first")
        );
        let refused = DomainError::InvalidTransition {
            from: HoldStatus::Expired,
            requested: HoldAction::Commit,
            detail: "its stock was freed; reserve again",
        };
        assert_eq!(
            refused.to_string(),
            "the hold is expired; it cannot be committed: its stock was freed; reserve again"
        );
    }
}
