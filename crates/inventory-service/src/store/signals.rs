//! The events that follow from a change of stock: an ingredient running low,
//! a menu item selling out or coming back.

use super::ingredients::{lock_ingredients, update_ingredient_stock};
use super::now;
use super::recipes::{lock_items, portions};
use crate::domain::{Ingredient, ItemPortions, availability_changes};
use events::{IngredientId, InventoryEvent};
use service_kit::database::StoreError;
use service_kit::values::Page;
use sqlx::PgConnection;
use uuid::Uuid;

/// An event to append to the outbox, with its envelope's aggregate and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The ingredient's or the menu item's id.
    pub aggregate_id: Uuid,
    /// The aggregate's version after the event.
    pub version: i64,
    /// The event.
    pub event: InventoryEvent,
}

/// After a change that touched the stock of `touched` (or the recipes that
/// use them), in the same transaction: the `IngredientLowStock`,
/// `MenuItemSoldOut` and `MenuItemBackInStock` events now due, ingredients
/// first. What they say is remembered as published (and versions bumped), so
/// each goes out exactly once per crossing.
///
/// The tracked items' recipe rows are locked before their portions are
/// read, so two transactions that change the stock of one item decide its
/// availability one after the other, the second seeing what the first
/// committed. Every change of stock must therefore be followed by this.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(ingredients = touched.len()))]
pub async fn stock_signals(tx: &mut PgConnection, touched: &[IngredientId]) -> Result<Vec<Outgoing>, StoreError> {
    let mut ids = touched.to_vec();
    ids.sort();
    ids.dedup();
    let stock = lock_ingredients(&mut *tx, &ids).await?;
    signals_of_locked(tx, stock).await
}

/// [`stock_signals`] for ingredients this transaction has locked already and
/// holds as they are now (what a change of a hold's stock returns), without
/// reading them again.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(ingredients = stock.len()))]
pub async fn signals_of_locked(tx: &mut PgConnection, mut stock: Vec<Ingredient>) -> Result<Vec<Outgoing>, StoreError> {
    // A row given twice is as it was given last: reversed, the stable sort
    // puts it first among its copies, and `dedup` keeps the first.
    stock.reverse();
    stock.sort_by_key(|ingredient| ingredient.id);
    stock.dedup_by_key(|ingredient| ingredient.id);
    let ids: Vec<IngredientId> = stock.iter().map(|ingredient| ingredient.id).collect();
    let now = now();
    let mut outgoing = Vec::new();
    for mut ingredient in stock {
        let version = ingredient.version;
        let low = ingredient.refresh_low_stock(now);
        if ingredient.version != version {
            update_ingredient_stock(&mut *tx, &ingredient).await?;
        }
        if let Some(event) = low {
            outgoing.push(Outgoing { aggregate_id: ingredient.id.into(), version: ingredient.version, event });
        }
    }

    let items = lock_items(&mut *tx, &ids, &[]).await?;
    if items.is_empty() {
        return Ok(outgoing);
    }
    let all = Page { limit: i64::try_from(items.len()).unwrap_or(i64::MAX), offset: 0 };
    let tracked: Vec<ItemPortions> = portions(&mut *tx, Some(&items), all)
        .await?
        .into_iter()
        .map(|item| ItemPortions {
            menu_item_id: item.menu_item_id,
            portions_left: item.portions_left,
            sold_out_published: item.sold_out,
        })
        .collect();
    for change in availability_changes(&tracked) {
        let version: i64 = sqlx::query_scalar(
            "UPDATE recipes SET sold_out = $2, version = version + 1, updated_at = $3
             WHERE menu_item_id = $1 RETURNING version",
        )
        .bind(change.menu_item_id())
        .bind(change.sold_out())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        outgoing.push(Outgoing { aggregate_id: change.menu_item_id().into(), version, event: change.event() });
    }
    Ok(outgoing)
}
