//! What this service knows of the menus, learnt only from `menu-events`
//! (consumer group: the service's name): per item its name, price and
//! currency, whether it is available, and whether its menu is active. It
//! never calls the menu service or reads its tables.
//!
//! As in reservation-service's view, every field remembers the version of
//! the event that set it (name; price with currency; availability; the
//! menu's status) and takes a value only from a newer one, so duplicates and
//! out-of-order deliveries converge on what the newest event says.

use crate::domain::{Offer, Unorderable};
use events::menu::MenuItem;
use events::{DomainEvent, HandlerError, MenuEvent, MenuItemId, TransactionalHandler, UnitOfWork};
use sqlx::{PgConnection, PgExecutor};
use std::collections::HashMap;
use uuid::Uuid;

/// What the view says of each of `items`: an offer to price a line with, or
/// why it cannot be ordered now. Items the view has never seen are absent.
///
/// # Errors
/// PostgreSQL failed.
pub async fn offers<'e>(
    executor: impl PgExecutor<'e>,
    items: &[MenuItemId],
) -> sqlx::Result<HashMap<MenuItemId, Result<Offer, Unorderable>>> {
    type Row = (Uuid, Option<String>, Option<i64>, Option<String>, bool, Option<bool>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.item_id, i.name, i.price_cents, i.currency, i.available, m.active
         FROM menu_items_seen i LEFT JOIN menus_seen m ON m.menu_id = i.menu_id
         WHERE i.item_id = ANY($1)",
    )
    .bind(items)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, price_cents, currency, available, active)| {
            let offer = match (name, price_cents, currency) {
                (Some(name), Some(price_cents), Some(currency)) => {
                    if !active.unwrap_or(false) {
                        Err(Unorderable::MenuInactive(name))
                    } else if !available {
                        Err(Unorderable::Unavailable(name))
                    } else {
                        Ok(Offer { name, price_cents, currency })
                    }
                }
                _ => Err(Unorderable::Unknown),
            };
            (MenuItemId::from(id), offer)
        })
        .collect())
}

/// Applies `menu-events` to the view.
#[derive(Debug, Clone, Copy, Default)]
pub struct MenuView;

impl TransactionalHandler<MenuEvent> for MenuView {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        let tx: &mut PgConnection = work;
        let (menu, version) = (event.aggregate_id, event.version);
        let applied = match &event.payload {
            MenuEvent::MenuCreated { items, .. } => {
                async {
                    set_active(tx, menu, false, version).await?;
                    record_items(tx, menu, version, items).await
                }
                .await
            }
            MenuEvent::MenuActivated { items, .. } => {
                async {
                    set_active(tx, menu, true, version).await?;
                    record_items(tx, menu, version, items).await
                }
                .await
            }
            MenuEvent::MenuDeactivated {} => set_active(tx, menu, false, version).await,
            MenuEvent::MenuItemAdded { item } | MenuEvent::MenuItemUpdated { item } => {
                record_items(tx, menu, version, std::slice::from_ref(item)).await
            }
            MenuEvent::ItemAvailabilityChanged { item_id, available, .. } => {
                record_availability(tx, menu, version, *item_id, *available).await
            }
        };
        applied.map_err(|error| HandlerError::from(anyhow::Error::from(error)))
    }
}

async fn set_active(tx: &mut PgConnection, menu: Uuid, active: bool, version: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO menus_seen AS seen (menu_id, active, status_version) VALUES ($1, $2, $3)
         ON CONFLICT (menu_id) DO UPDATE SET active = EXCLUDED.active, status_version = EXCLUDED.status_version
         WHERE seen.status_version < EXCLUDED.status_version",
    )
    .bind(menu)
    .bind(active)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records items as of `version`: name, price and availability; a field
/// keeps its value if a newer event set it.
async fn record_items(tx: &mut PgConnection, menu: Uuid, version: i64, items: &[MenuItem]) -> sqlx::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO menu_items_seen AS seen (item_id, menu_id, name, name_version, price_cents, currency,
                                             price_version, available, available_version)
         SELECT item_id, $1, name, $2, price_cents, currency, $2, available, $2
         FROM UNNEST($3::uuid[], $4::text[], $5::int8[], $6::text[], $7::bool[])
              AS i(item_id, name, price_cents, currency, available)
         ON CONFLICT (item_id) DO UPDATE SET
             menu_id = CASE WHEN EXCLUDED.name_version > seen.name_version THEN EXCLUDED.menu_id ELSE seen.menu_id END,
             name = CASE WHEN EXCLUDED.name_version > seen.name_version THEN EXCLUDED.name ELSE seen.name END,
             name_version = GREATEST(seen.name_version, EXCLUDED.name_version),
             price_cents = CASE WHEN EXCLUDED.price_version > seen.price_version
                                THEN EXCLUDED.price_cents ELSE seen.price_cents END,
             currency = CASE WHEN EXCLUDED.price_version > seen.price_version
                             THEN EXCLUDED.currency ELSE seen.currency END,
             price_version = GREATEST(seen.price_version, EXCLUDED.price_version),
             available = CASE WHEN EXCLUDED.available_version > seen.available_version
                              THEN EXCLUDED.available ELSE seen.available END,
             available_version = GREATEST(seen.available_version, EXCLUDED.available_version)",
    )
    .bind(menu)
    .bind(version)
    .bind(items.iter().map(|item| item.id).collect::<Vec<_>>())
    .bind(items.iter().map(|item| item.name.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|item| item.price_cents).collect::<Vec<_>>())
    .bind(items.iter().map(|item| item.currency.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|item| item.available).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Records an availability change alone; an item not seen before gets no
/// name or price yet (version 0), so it cannot be ordered until it has one.
async fn record_availability(
    tx: &mut PgConnection,
    menu: Uuid,
    version: i64,
    item: MenuItemId,
    available: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO menu_items_seen AS seen (item_id, menu_id, name_version, price_version, available,
                                             available_version)
         VALUES ($1, $2, 0, 0, $3, $4)
         ON CONFLICT (item_id) DO UPDATE SET available = EXCLUDED.available,
                                             available_version = EXCLUDED.available_version
         WHERE seen.available_version < EXCLUDED.available_version",
    )
    .bind(item)
    .bind(menu)
    .bind(available)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(())
}
