//! Events of the `inventory-events` stream, published by the inventory
//! service, and the commands of the `inventory-commands` stream, which the
//! order saga sends it.
//!
//! Quantities of ingredients are whole numbers of their [`Unit`] (grams,
//! millilitres, pieces); quantities of menu items are portions. Both are
//! `i64` and never negative.
//!
//! Aggregate ids: ingredient events carry the [`IngredientId`], recipe and
//! sold-out events the [`MenuItemId`], and the events that answer a command
//! the [`OrderId`] of the order the command was about.

use crate::ids::{IngredientId, MenuItemId, OrderId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The unit an ingredient is counted in; every quantity of it is a whole
/// number of this unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Unit {
    /// Grams (`g`).
    #[serde(rename = "g")]
    Gram,
    /// Millilitres (`ml`).
    #[serde(rename = "ml")]
    Millilitre,
    /// Whole pieces (`piece`), such as eggs.
    #[serde(rename = "piece")]
    Piece,
}

impl Unit {
    /// Every unit.
    pub const ALL: [Self; 3] = [Self::Gram, Self::Millilitre, Self::Piece];

    /// The name used in JSON and in the database: `g`, `ml` or `piece`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gram => "g",
            Self::Millilitre => "ml",
            Self::Piece => "piece",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit name that is not `g`, `ml` or `piece`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a unit: use g, ml or piece")]
pub struct UnknownUnit(pub String);

impl FromStr for Unit {
    type Err = UnknownUnit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|unit| unit.as_str() == s).ok_or_else(|| UnknownUnit(s.to_owned()))
    }
}

/// Everything that happens to the restaurant's stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum InventoryEvent {
    /// A new ingredient is stocked, starting with nothing on hand. Aggregate: the ingredient.
    IngredientCreated {
        /// The ingredient's name, unique in the restaurant.
        name: String,
        /// What its quantities count.
        unit: Unit,
        /// At or below this much available stock the ingredient is low.
        low_stock_threshold: i64,
    },
    /// A delivery arrived. Aggregate: the ingredient.
    StockReceived {
        /// How much arrived, in the ingredient's unit.
        quantity: i64,
        /// How much is on hand now.
        on_hand: i64,
        /// Free text, such as the delivery note's number.
        note: Option<String>,
    },
    /// Someone counted the stock and set what is on hand. Aggregate: the ingredient.
    StockCounted {
        /// How much is on hand now, as counted.
        on_hand: i64,
        /// How much the books said was on hand before the count.
        previous_on_hand: i64,
        /// Free text, such as who counted.
        note: Option<String>,
    },
    /// Stock was thrown away. Aggregate: the ingredient.
    StockWasted {
        /// How much was thrown away.
        quantity: i64,
        /// How much is on hand now.
        on_hand: i64,
        /// Why, such as `dropped` or `past its date`.
        reason: String,
    },
    /// A menu item's recipe was set or replaced; the item is tracked from now
    /// on. Aggregate: the menu item.
    RecipeSet {
        /// The menu item the recipe is for.
        menu_item_id: MenuItemId,
        /// What one portion uses.
        lines: Vec<RecipeLine>,
    },
    /// The ingredients of every line of an order are held for it until it is
    /// committed, released or the hold expires. Aggregate: the order.
    StockReserved {
        /// The order the stock is held for.
        order_id: OrderId,
        /// The portions held, as asked for.
        lines: Vec<OrderLine>,
        /// When the hold lapses unless the order commits or releases it first.
        expires_at: DateTime<Utc>,
    },
    /// Not enough stock for an order: nothing was held. Aggregate: the order.
    StockReservationRejected {
        /// The order that asked.
        order_id: OrderId,
        /// The items that could not be served, at least one.
        shortages: Vec<Shortage>,
    },
    /// An order let its hold go; the stock is available again. Aggregate: the order.
    StockReleased {
        /// The order whose hold was released.
        order_id: OrderId,
    },
    /// An order used its hold: the held stock left the shelves. Aggregate: the order.
    StockCommitted {
        /// The order whose hold was committed.
        order_id: OrderId,
    },
    /// A hold lapsed before its order committed or released it; the stock is
    /// available again. Aggregate: the order.
    StockReservationExpired {
        /// The order whose hold expired.
        order_id: OrderId,
    },
    /// An ingredient's available stock fell to or below its threshold.
    /// Published once per fall, not again until it has risen above the
    /// threshold. Aggregate: the ingredient.
    IngredientLowStock {
        /// The ingredient.
        ingredient_id: IngredientId,
        /// Its name.
        name: String,
        /// On hand less reserved, now.
        available: i64,
        /// Its low-stock threshold.
        threshold: i64,
    },
    /// A tracked menu item has no portion left. Aggregate: the menu item.
    MenuItemSoldOut {
        /// The item.
        menu_item_id: MenuItemId,
    },
    /// A sold-out menu item can be served again. Aggregate: the menu item.
    MenuItemBackInStock {
        /// The item.
        menu_item_id: MenuItemId,
        /// How many portions the stock allows now, at least one.
        portions_left: i64,
    },
}

crate::event_family!(
    InventoryEvent,
    "inventory-events",
    [
        IngredientCreated,
        StockReceived,
        StockCounted,
        StockWasted,
        RecipeSet,
        StockReserved,
        StockReservationRejected,
        StockReleased,
        StockCommitted,
        StockReservationExpired,
        IngredientLowStock,
        MenuItemSoldOut,
        MenuItemBackInStock,
    ]
);

/// What the order saga asks of the inventory service. The aggregate id is the
/// order's; the service answers each with an [`InventoryEvent`] carrying the
/// same `order_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum InventoryCommand {
    /// Hold the ingredients of every line, all or nothing. Answered by
    /// `StockReserved` or `StockReservationRejected`.
    ReserveStock {
        /// The order to hold stock for.
        order_id: OrderId,
        /// The portions the order needs.
        lines: Vec<OrderLine>,
    },
    /// Let the order's hold go. Answered by `StockReleased`, also when there
    /// was nothing to release.
    ReleaseStock {
        /// The order whose hold to release.
        order_id: OrderId,
    },
    /// Use the order's hold: the stock leaves the shelves. Answered by `StockCommitted`.
    CommitStock {
        /// The order whose hold to commit.
        order_id: OrderId,
    },
}

crate::event_family!(InventoryCommand, "inventory-commands", [ReserveStock, ReleaseStock, CommitStock]);

/// How much of one ingredient a portion of a menu item uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecipeLine {
    /// The ingredient.
    pub ingredient_id: IngredientId,
    /// How much of it one portion uses, in its unit; at least one.
    pub quantity: i64,
}

/// Portions of one menu item that an order asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// `order::OrderLine` is another type of the same name.
#[schemars(rename = "InventoryOrderLine")]
pub struct OrderLine {
    /// The menu item.
    pub menu_item_id: MenuItemId,
    /// How many portions, at least one.
    pub quantity: i64,
}

/// A menu item an order asked for that the stock could not cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shortage {
    /// The menu item.
    pub menu_item_id: MenuItemId,
    /// How many portions the order asked for.
    pub requested: i64,
    /// How many portions of it the stock allows now, on their own. The item
    /// is listed even when this covers `requested` if it competes for a short
    /// ingredient with another line of the order.
    pub available: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::wire::{covers_every_type, json, round_trip};
    use crate::envelope::Event;
    use chrono::SubsecRound;

    fn inventory_events() -> Vec<InventoryEvent> {
        let order_id = OrderId::new();
        let menu_item_id = MenuItemId::new();
        vec![
            InventoryEvent::IngredientCreated { name: "Flour".to_owned(), unit: Unit::Gram, low_stock_threshold: 500 },
            InventoryEvent::StockReceived { quantity: 10_000, on_hand: 12_000, note: Some("delivery 17".to_owned()) },
            InventoryEvent::StockCounted { on_hand: 11_800, previous_on_hand: 12_000, note: None },
            InventoryEvent::StockWasted { quantity: 300, on_hand: 11_500, reason: "bag split".to_owned() },
            InventoryEvent::RecipeSet {
                menu_item_id,
                lines: vec![RecipeLine { ingredient_id: IngredientId::new(), quantity: 120 }],
            },
            InventoryEvent::StockReserved {
                order_id,
                lines: vec![OrderLine { menu_item_id, quantity: 2 }],
                expires_at: Utc::now().trunc_subsecs(6),
            },
            InventoryEvent::StockReservationRejected {
                order_id,
                shortages: vec![Shortage { menu_item_id, requested: 3, available: 1 }],
            },
            InventoryEvent::StockReleased { order_id },
            InventoryEvent::StockCommitted { order_id },
            InventoryEvent::StockReservationExpired { order_id },
            InventoryEvent::IngredientLowStock {
                ingredient_id: IngredientId::new(),
                name: "Flour".to_owned(),
                available: 400,
                threshold: 500,
            },
            InventoryEvent::MenuItemSoldOut { menu_item_id },
            InventoryEvent::MenuItemBackInStock { menu_item_id, portions_left: 4 },
        ]
    }

    fn inventory_commands() -> Vec<InventoryCommand> {
        let order_id = OrderId::new();
        vec![
            InventoryCommand::ReserveStock {
                order_id,
                lines: vec![OrderLine { menu_item_id: MenuItemId::new(), quantity: 1 }],
            },
            InventoryCommand::ReleaseStock { order_id },
            InventoryCommand::CommitStock { order_id },
        ]
    }

    #[test]
    fn every_inventory_event_and_command_survives_the_wire() {
        covers_every_type(&inventory_events());
        inventory_events().into_iter().for_each(round_trip);
        covers_every_type(&inventory_commands());
        inventory_commands().into_iter().for_each(round_trip);
        assert_eq!((InventoryEvent::STREAM, InventoryCommand::STREAM), ("inventory-events", "inventory-commands"));
    }

    #[test]
    fn a_reserve_command_is_tagged_by_type_with_its_fields_in_data() {
        let order_id = OrderId::new();
        let menu_item_id = MenuItemId::new();
        let command = InventoryCommand::ReserveStock { order_id, lines: vec![OrderLine { menu_item_id, quantity: 2 }] };
        let expected = serde_json::json!({
            "type": "ReserveStock",
            "data": {
                "order_id": order_id.to_string(),
                "lines": [{ "menu_item_id": menu_item_id.to_string(), "quantity": 2 }],
            },
        });
        assert_eq!(json(&command), expected);
        let parsed: InventoryCommand = serde_json::from_value(expected).unwrap_or_else(|e| panic!("parse: {e}"));
        assert_eq!(parsed, command);
    }

    #[test]
    fn a_rejection_names_each_short_item_with_what_was_asked_and_what_is_left() {
        let order_id = OrderId::new();
        let menu_item_id = MenuItemId::new();
        let rejected = InventoryEvent::StockReservationRejected {
            order_id,
            shortages: vec![Shortage { menu_item_id, requested: 3, available: 1 }],
        };
        assert_eq!(
            json(&rejected),
            serde_json::json!({
                "type": "StockReservationRejected",
                "data": {
                    "order_id": order_id.to_string(),
                    "shortages": [{ "menu_item_id": menu_item_id.to_string(), "requested": 3, "available": 1 }],
                },
            })
        );
    }

    #[test]
    fn units_are_written_g_ml_and_piece() {
        let created = |unit| InventoryEvent::IngredientCreated { name: "x".to_owned(), unit, low_stock_threshold: 0 };
        for (unit, name) in [(Unit::Gram, "g"), (Unit::Millilitre, "ml"), (Unit::Piece, "piece")] {
            assert_eq!(json(&created(unit))["data"]["unit"], name);
            assert_eq!(name.parse::<Unit>(), Ok(unit));
            assert_eq!(unit.to_string(), name);
        }
        assert_eq!("kg".parse::<Unit>(), Err(UnknownUnit("kg".to_owned())));
        assert!(serde_json::from_value::<Unit>(serde_json::json!("G")).is_err(), "units are case-sensitive");
    }
}
