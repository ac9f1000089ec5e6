//! The menu items the service may track, learnt only from `menu-events` (it
//! never reads the menu service's tables or calls it): a recipe is accepted
//! only for an item some menu has had.

use crate::store;
use events::menu::MenuItem;
use events::{DomainEvent, HandlerError, MenuEvent, TransactionalHandler, UnitOfWork};

/// Records every item a menu event names, with its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct MenuItems;

impl TransactionalHandler<MenuEvent> for MenuItems {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        let items: &[MenuItem] = match &event.payload {
            MenuEvent::MenuCreated { items, .. } | MenuEvent::MenuActivated { items, .. } => items,
            MenuEvent::MenuItemAdded { item } | MenuEvent::MenuItemUpdated { item } => std::slice::from_ref(item),
            MenuEvent::MenuDeactivated {} | MenuEvent::ItemAvailabilityChanged { .. } => &[],
        };
        for item in items {
            store::record_item_seen(work, item.id, &item.name, event.version)
                .await
                .map_err(|error| HandlerError::from(anyhow::Error::from(error)))?;
        }
        Ok(())
    }
}
