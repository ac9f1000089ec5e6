//! When a tracked menu item has sold out or is back: `MenuItemSoldOut` and
//! `MenuItemBackInStock` are published exactly when the portions left cross
//! zero, compared with what was last published about the item.

use events::{InventoryEvent, MenuItemId};

/// A tracked item's portions now, and what was last published about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemPortions {
    /// The item.
    pub menu_item_id: MenuItemId,
    /// The portions the stock allows now.
    pub portions_left: i64,
    /// Whether the last availability event published for it was `MenuItemSoldOut`.
    pub sold_out_published: bool,
}

/// An availability event that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailabilityChange {
    /// No portion is left.
    SoldOut {
        /// The item.
        menu_item_id: MenuItemId,
    },
    /// Portions are left again.
    BackInStock {
        /// The item.
        menu_item_id: MenuItemId,
        /// How many, at least one.
        portions_left: i64,
    },
}

impl AvailabilityChange {
    /// The item it is about.
    pub const fn menu_item_id(self) -> MenuItemId {
        match self {
            Self::SoldOut { menu_item_id } | Self::BackInStock { menu_item_id, .. } => menu_item_id,
        }
    }

    /// Whether the item is sold out after it: the flag to remember as published.
    pub const fn sold_out(self) -> bool {
        matches!(self, Self::SoldOut { .. })
    }

    /// The event to publish.
    pub const fn event(self) -> InventoryEvent {
        match self {
            Self::SoldOut { menu_item_id } => InventoryEvent::MenuItemSoldOut { menu_item_id },
            Self::BackInStock { menu_item_id, portions_left } => {
                InventoryEvent::MenuItemBackInStock { menu_item_id, portions_left }
            }
        }
    }
}

/// The availability events due for `items`, in their order: `SoldOut` for
/// an item with no portion left that was not published sold out, and
/// `BackInStock` for one with portions left that was.
///
/// The published flag stands for "portions before": it is what the menu
/// service was last told, so the events go out exactly on crossings even
/// when several changes happened in between, and an item that becomes
/// tracked with nothing in stock is told sold out once.
pub fn availability_changes(items: &[ItemPortions]) -> Vec<AvailabilityChange> {
    items
        .iter()
        .filter_map(|item| {
            let sold_out = item.portions_left <= 0;
            match (sold_out, item.sold_out_published) {
                (true, false) => Some(AvailabilityChange::SoldOut { menu_item_id: item.menu_item_id }),
                (false, true) => Some(AvailabilityChange::BackInStock {
                    menu_item_id: item.menu_item_id,
                    portions_left: item.portions_left,
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sold_out_and_back_in_stock_are_published_only_on_crossings() {
        let item = MenuItemId::new();
        let at =
            |portions_left, sold_out_published| ItemPortions { menu_item_id: item, portions_left, sold_out_published };
        // (portions now, published sold out) → event due
        let table = [
            ((3, false), None),
            ((0, false), Some(AvailabilityChange::SoldOut { menu_item_id: item })),
            ((0, true), None),
            ((2, true), Some(AvailabilityChange::BackInStock { menu_item_id: item, portions_left: 2 })),
        ];
        for ((portions, published), expected) in table {
            assert_eq!(
                availability_changes(&[at(portions, published)]).first().copied(),
                expected,
                "{portions} {published}"
            );
        }
    }

    #[test]
    fn several_items_get_their_own_events_in_order() {
        let (a, b, c) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
        let changes = availability_changes(&[
            ItemPortions { menu_item_id: a, portions_left: 0, sold_out_published: false },
            ItemPortions { menu_item_id: b, portions_left: 5, sold_out_published: false },
            ItemPortions { menu_item_id: c, portions_left: 1, sold_out_published: true },
        ]);
        let events: Vec<InventoryEvent> = changes.iter().map(|change| change.event()).collect();
        assert_eq!(
            events,
            vec![
                InventoryEvent::MenuItemSoldOut { menu_item_id: a },
                InventoryEvent::MenuItemBackInStock { menu_item_id: c, portions_left: 1 },
            ]
        );
        assert_eq!(
            changes.iter().map(|c| (c.menu_item_id(), c.sold_out())).collect::<Vec<_>>(),
            vec![(a, true), (c, false)]
        );
    }
}
