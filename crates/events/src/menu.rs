//! Events of the `menu-events` stream, published by the menu service.

use crate::ids::MenuItemId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything that happens to a menu. The aggregate id is the `MenuId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum MenuEvent {
    /// A menu was created as a draft, with its first items.
    MenuCreated {
        /// The menu's name.
        name: String,
        /// Optional free text shown under the name.
        description: Option<String>,
        /// The items the menu was created with.
        items: Vec<MenuItem>,
    },
    /// A menu went live. Carries the full item list so that a consumer can
    /// build its view of the menu from this event alone.
    MenuActivated {
        /// The menu's name.
        name: String,
        /// Every item on the menu with its availability at activation.
        items: Vec<MenuItem>,
    },
    /// A menu was taken off; none of its items can be ordered through it.
    MenuDeactivated {},
    /// An item was added to a menu.
    MenuItemAdded {
        /// The new item.
        item: MenuItem,
    },
    /// An item's name, description, category or price changed.
    MenuItemUpdated {
        /// The item as it is now.
        item: MenuItem,
    },
    /// An item can be ordered now, or no longer: published exactly when the
    /// combination of the staff's switch and the stock changes.
    ItemAvailabilityChanged {
        /// The item whose availability changed.
        item_id: MenuItemId,
        /// Whether it can be ordered now.
        available: bool,
        /// Which of the two made it so.
        #[serde(default)]
        cause: AvailabilityCause,
    },
}

crate::event_family!(
    MenuEvent,
    "menu-events",
    [MenuCreated, MenuActivated, MenuDeactivated, MenuItemAdded, MenuItemUpdated, ItemAvailabilityChanged,]
);

/// What changed an item's availability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityCause {
    /// Staff switched it on or off.
    #[default]
    Staff,
    /// It sold out or came back in stock (the inventory service said so).
    Stock,
}

/// An item as events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MenuItem {
    /// The item's id, stable across edits.
    pub id: MenuItemId,
    /// The item's name, unique within its menu.
    pub name: String,
    /// Optional free text.
    pub description: Option<String>,
    /// A grouping such as `starter` or `dessert`.
    pub category: String,
    /// Price in minor units of `currency` (cents for EUR).
    pub price_cents: i64,
    /// ISO 4217 code, such as `EUR`.
    pub currency: String,
    /// Whether the item can be ordered: switched on by staff and in stock.
    pub available: bool,
    /// Whether staff have it switched on.
    #[serde(default = "yes")]
    pub switched_on: bool,
    /// Whether the inventory has stock for at least one portion (always, for
    /// an item whose stock is not tracked).
    #[serde(default = "yes")]
    pub in_stock: bool,
}

/// The default of the facts older events did not carry.
const fn yes() -> bool {
    true
}
