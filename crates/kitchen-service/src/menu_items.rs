//! The menu items the kitchen knows, learnt only from `menu-events` (it never
//! reads the menu service's tables or calls it): their names, for the
//! tickets, and their categories, which decide their stations.

use crate::store;
use events::menu::MenuItem;
use events::{DomainEvent, HandlerError, MenuEvent, MenuId, TransactionalHandler, UnitOfWork};

/// Records the name and category of every item a menu event names.
#[derive(Debug, Clone, Copy, Default)]
pub struct MenuItems;

impl TransactionalHandler<MenuEvent> for MenuItems {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        let items: &[MenuItem] = match &event.payload {
            MenuEvent::MenuCreated { items, .. } | MenuEvent::MenuActivated { items, .. } => items,
            MenuEvent::MenuItemAdded { item } | MenuEvent::MenuItemUpdated { item } => std::slice::from_ref(item),
            MenuEvent::MenuDeactivated {} | MenuEvent::ItemAvailabilityChanged { .. } => &[],
        };
        let menu_id = MenuId::from(event.aggregate_id);
        for item in items {
            store::record_item_seen(work, item.id, menu_id, &item.name, &item.category, event.version)
                .await
                .map_err(|error| HandlerError::from(anyhow::Error::from(error)))?;
        }
        Ok(())
    }
}
