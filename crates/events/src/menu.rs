//! Events of the `menu-events` stream, published by the menu service.

use crate::ids::MenuItemId;
use serde::{Deserialize, Serialize};

/// Everything that happens to a menu. The aggregate id is the `MenuId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// An item ran out or came back.
    ItemAvailabilityChanged {
        /// The item whose availability changed.
        item_id: MenuItemId,
        /// Whether it can be ordered now.
        available: bool,
    },
}

crate::event_family!(
    MenuEvent,
    "menu-events",
    [MenuCreated, MenuActivated, MenuDeactivated, MenuItemAdded, MenuItemUpdated, ItemAvailabilityChanged,]
);

/// An item as events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether the item can be ordered.
    pub available: bool,
}
