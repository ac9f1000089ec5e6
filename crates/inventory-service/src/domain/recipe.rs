//! Recipes, and how many portions of an item the stock allows.

use super::error::DomainError;
use super::values::Quantity;
use events::inventory::RecipeLine as EventLine;
use events::{IngredientId, InventoryEvent, MenuItemId};
use std::collections::HashSet;

/// How much of one ingredient a portion uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeLine {
    /// The ingredient.
    pub ingredient_id: IngredientId,
    /// How much of it one portion uses.
    pub quantity: Quantity,
}

/// What one portion of a menu item uses: one to [`Recipe::MAX_LINES`]
/// ingredients, each once. An item with a recipe is *tracked*: its portions
/// are counted and its selling out is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    menu_item_id: MenuItemId,
    lines: Vec<RecipeLine>,
}

impl Recipe {
    /// The most ingredients a recipe may use.
    pub const MAX_LINES: usize = 50;

    /// The recipe for `menu_item_id` made of `(ingredient, quantity)` lines, in order.
    ///
    /// # Errors
    /// No lines, more than [`Recipe::MAX_LINES`], an ingredient twice, or a
    /// quantity that is not a [`Quantity`].
    pub fn new(
        menu_item_id: MenuItemId,
        lines: impl IntoIterator<Item = (IngredientId, i64)>,
    ) -> Result<Self, DomainError> {
        let lines: Vec<(IngredientId, i64)> = lines.into_iter().collect();
        if lines.is_empty() {
            return Err(DomainError::EmptyRecipe);
        }
        if lines.len() > Self::MAX_LINES {
            return Err(DomainError::TooManyRecipeLines { max: Self::MAX_LINES, given: lines.len() });
        }
        let mut seen = HashSet::new();
        let lines = lines
            .into_iter()
            .map(|(ingredient_id, quantity)| {
                if !seen.insert(ingredient_id) {
                    return Err(DomainError::DuplicateRecipeIngredient(ingredient_id));
                }
                let quantity = Quantity::try_from(quantity).map_err(|_| DomainError::InvalidRecipeQuantity {
                    ingredient_id,
                    quantity,
                    max: Quantity::MAX,
                })?;
                Ok(RecipeLine { ingredient_id, quantity })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { menu_item_id, lines })
    }

    /// The item the recipe is for.
    pub const fn menu_item_id(&self) -> MenuItemId {
        self.menu_item_id
    }

    /// Its lines, in the order given.
    pub fn lines(&self) -> &[RecipeLine] {
        &self.lines
    }

    /// The ingredients it uses, in line order.
    pub fn ingredient_ids(&self) -> Vec<IngredientId> {
        self.lines.iter().map(|line| line.ingredient_id).collect()
    }

    /// The `RecipeSet` event that announces it.
    pub fn event(&self) -> InventoryEvent {
        InventoryEvent::RecipeSet {
            menu_item_id: self.menu_item_id,
            lines: self
                .lines
                .iter()
                .map(|line| EventLine { ingredient_id: line.ingredient_id, quantity: line.quantity.get() })
                .collect(),
        }
    }

    /// The portions the stock allows: the least, over the recipe's lines, of
    /// [`portions_left`] of its ingredient. An ingredient `stock` does not
    /// know counts as having nothing available.
    pub fn portions(&self, stock: impl Fn(IngredientId) -> Option<Stock>) -> i64 {
        self.lines
            .iter()
            .map(|line| {
                stock(line.ingredient_id).map_or(0, |s| portions_left(s.on_hand, s.reserved, line.quantity.get()))
            })
            .min()
            .unwrap_or(0)
    }
}

/// An ingredient's stock as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stock {
    /// On the shelves.
    pub on_hand: i64,
    /// Held for orders.
    pub reserved: i64,
}

impl Stock {
    /// What new holds may take: on hand less reserved, never below zero.
    pub const fn available(self) -> i64 {
        let available = self.on_hand.saturating_sub(self.reserved);
        if available < 0 { 0 } else { available }
    }
}

/// How many portions using `quantity` each the stock allows:
/// ⌊(on_hand − reserved) / quantity⌋, and 0 for a non-positive `quantity`
/// or when more is reserved than on hand.
pub const fn portions_left(on_hand: i64, reserved: i64, quantity: i64) -> i64 {
    if quantity <= 0 {
        return 0;
    }
    Stock { on_hand, reserved }.available() / quantity
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn portions_left_rounds_down_what_is_not_reserved() {
        assert_eq!(portions_left(1000, 0, 120), 8);
        assert_eq!(portions_left(1000, 40, 120), 8);
        assert_eq!(portions_left(1000, 41, 120), 7);
        assert_eq!(portions_left(119, 0, 120), 0);
        assert_eq!(portions_left(0, 0, 1), 0);
        assert_eq!(portions_left(5, 9, 1), 0, "more reserved than on hand is never negative");
        assert_eq!(portions_left(5, 0, 0), 0);
    }

    #[test]
    fn a_recipe_allows_the_portions_of_its_scarcest_ingredient() {
        let (flour, eggs) = (IngredientId::new(), IngredientId::new());
        let recipe = Recipe::new(MenuItemId::new(), [(flour, 100), (eggs, 2)]).unwrap_or_else(|e| panic!("{e}"));
        let stock =
            HashMap::from([(flour, Stock { on_hand: 1000, reserved: 0 }), (eggs, Stock { on_hand: 12, reserved: 4 })]);
        assert_eq!(recipe.portions(|id| stock.get(&id).copied()), 4);
        assert_eq!(recipe.portions(|id| (id == flour).then_some(Stock { on_hand: 1000, reserved: 0 })), 0);
        assert_eq!(recipe.ingredient_ids(), vec![flour, eggs]);
    }

    #[test]
    fn a_recipe_has_one_to_fifty_distinct_ingredients_in_positive_quantities() {
        let item = MenuItemId::new();
        let flour = IngredientId::new();
        assert_eq!(Recipe::new(item, []), Err(DomainError::EmptyRecipe));
        assert_eq!(Recipe::new(item, [(flour, 1), (flour, 2)]), Err(DomainError::DuplicateRecipeIngredient(flour)));
        assert_eq!(
            Recipe::new(item, [(flour, 0)]),
            Err(DomainError::InvalidRecipeQuantity { ingredient_id: flour, quantity: 0, max: Quantity::MAX })
        );
        assert!(Recipe::new(item, [(flour, -3)]).is_err());
        let many = |n| (0..n).map(|_| (IngredientId::new(), 1)).collect::<Vec<_>>();
        assert!(Recipe::new(item, many(Recipe::MAX_LINES)).is_ok());
        assert_eq!(
            Recipe::new(item, many(Recipe::MAX_LINES + 1)),
            Err(DomainError::TooManyRecipeLines { max: 50, given: 51 })
        );
        let recipe = Recipe::new(item, [(flour, 120)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            recipe.event(),
            InventoryEvent::RecipeSet {
                menu_item_id: item,
                lines: vec![EventLine { ingredient_id: flour, quantity: 120 }]
            }
        );
    }
}
