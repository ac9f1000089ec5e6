//! The menu follows the stock: `inventory-events` say when an item sold out
//! or is back in stock, and the item's availability becomes the staff's
//! switch and the stock, each stored as its own fact.
//!
//! Only `MenuItemSoldOut` and `MenuItemBackInStock` matter here; the
//! inventory's other events are acknowledged and left alone. Each is applied
//! through the inbox, in the same transaction as the menu's change and the
//! `ItemAvailabilityChanged` it publishes.

use crate::domain::Menu;
use crate::error::Error;
use crate::store;
use events::{DomainEvent, HandlerError, InventoryEvent, Metadata, TransactionalHandler, UnitOfWork};
use service_kit::extract::IfMatch;
use service_kit::write::{self, Aggregate};

/// Applies the inventory's sold-out and back-in-stock events to the menus.
#[derive(Debug, Clone, Copy, Default)]
pub struct StockFollower;

impl TransactionalHandler<InventoryEvent> for StockFollower {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<InventoryEvent>) -> Result<(), HandlerError> {
        let (item, in_stock) = match &event.payload {
            InventoryEvent::MenuItemSoldOut { menu_item_id } => (*menu_item_id, false),
            InventoryEvent::MenuItemBackInStock { menu_item_id, .. } => (*menu_item_id, true),
            _ => return Ok(()),
        };
        let Some(menu) = store::menu_of_item(work, item).await.map_err(Error::from).map_err(classify)? else {
            tracing::warn!(menu_item_id = %item, "stock news of an item no menu has; ignored");
            return Ok(());
        };
        let command = |menu: &mut Menu| Ok::<_, Error>(menu.set_stock(item, in_stock, event.version));
        let (menu, payload) =
            write::change_in(work, menu, IfMatch { version: None }, command).await.map_err(classify)?;
        if let Some(payload) = payload {
            let metadata = Metadata::caused_by(crate::BLUEPRINT.name(), event);
            let change = DomainEvent::new(menu.id(), menu.version(), payload, metadata);
            tracing::info!(menu_id = %menu.id, menu_item_id = %item, in_stock, event_type = change.event_type(), "stock changed");
            work.append(&[change]).await.map_err(|error| HandlerError::from(anyhow::Error::from(error)))?;
        }
        Ok(())
    }
}

/// A failure as the consumer needs it: an outage is retried without limit,
/// anything else counts towards the dead-letter cap.
fn classify(error: Error) -> HandlerError {
    anyhow::Error::from(error).into()
}
