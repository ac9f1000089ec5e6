//! The menu tables: reading and writing whole aggregates.

use crate::domain::{Category, Cents, Currency, Description, ItemName, Menu, MenuItem, MenuName, MenuStatus, Price};
use chrono::{DateTime, Utc};
use events::{MenuId, MenuItemId};
use service_kit::database::StoreError;
use service_kit::write::{Aggregate, Insert};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// A menu with its items, as `select_menus_with_items!` reads it.
#[derive(sqlx::FromRow)]
struct MenuRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// In position order; null for a menu without items.
    items: Option<Json<Vec<ItemRow>>>,
}

/// One item, as `json_agg` writes a `menu_items` row (the columns not
/// needed here are ignored).
#[derive(serde::Deserialize)]
struct ItemRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    category: String,
    price_cents: i64,
    currency: String,
    switched_on: bool,
    in_stock: bool,
    stock_version: i64,
}

/// Selects menus with their items in one statement, so that a read is one
/// round trip; the caller adds the `WHERE` (on `m`) and the order.
macro_rules! select_menus_with_items {
    ($rest:literal) => {
        concat!(
            "SELECT m.id, m.name, m.description, m.status, m.version, m.created_at, m.updated_at,
                    (SELECT json_agg(i ORDER BY i.position) FROM menu_items i WHERE i.menu_id = m.id) AS items
             FROM menus m ",
            $rest
        )
    };
}

impl Aggregate for Menu {
    type Id = MenuId;
    type Event = events::MenuEvent;
    const KIND: &'static str = "menu";

    service_kit::aggregate_fields!();

    async fn lock(tx: &mut PgConnection, id: MenuId) -> Result<Option<Self>, StoreError> {
        lock(tx, id).await
    }

    async fn update(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        update(tx, self).await
    }
}

impl Insert for Menu {
    async fn insert(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        insert(tx, self).await
    }
}

/// Inserts a new menu and its items.
///
/// # Errors
/// PostgreSQL failed.
pub async fn insert(tx: &mut PgConnection, menu: &Menu) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO menus (id, name, description, status, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(menu.id)
    .bind(menu.name.as_str())
    .bind(menu.description.as_ref().map(Description::as_str))
    .bind(menu.status.as_str())
    .bind(menu.version)
    .bind(menu.created_at)
    .bind(menu.updated_at)
    .execute(&mut *tx)
    .await?;
    upsert_items(tx, menu).await
}

/// Writes a changed menu back: its row and all its items.
///
/// # Errors
/// PostgreSQL failed.
pub async fn update(tx: &mut PgConnection, menu: &Menu) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE menus SET name = $2, description = $3, status = $4, version = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(menu.id)
    .bind(menu.name.as_str())
    .bind(menu.description.as_ref().map(Description::as_str))
    .bind(menu.status.as_str())
    .bind(menu.version)
    .bind(menu.updated_at)
    .execute(&mut *tx)
    .await?;
    upsert_items(tx, menu).await
}

async fn upsert_items(tx: &mut PgConnection, menu: &Menu) -> Result<(), StoreError> {
    if menu.items.is_empty() {
        return Ok(());
    }
    let items = &menu.items;
    sqlx::query(
        "INSERT INTO menu_items (id, menu_id, position, name, description, category, price_cents, currency,
                                 switched_on, in_stock, stock_version)
         SELECT id, $2, position, name, description, category, price_cents, currency, switched_on, in_stock, stock_version
         FROM UNNEST($1::uuid[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::bool[],
                     $10::bool[], $11::int8[])
              AS i(id, position, name, description, category, price_cents, currency, switched_on, in_stock, stock_version)
         ON CONFLICT (id) DO UPDATE SET
             name = EXCLUDED.name, description = EXCLUDED.description, category = EXCLUDED.category,
             price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency, switched_on = EXCLUDED.switched_on,
             in_stock = EXCLUDED.in_stock, stock_version = EXCLUDED.stock_version",
    )
    .bind(items.iter().map(|i| i.id).collect::<Vec<_>>())
    .bind(menu.id)
    .bind((0..).take(items.len()).collect::<Vec<i32>>())
    .bind(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.description.as_ref().map(Description::as_str)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.category.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.price.cents()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.price.currency().code()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.switched_on).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.in_stock).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.stock_version).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Loads a menu and locks its row until the transaction ends, so that
/// concurrent changes of one menu happen one after another.
///
/// The lock and the read are two statements: a statement that waited for
/// the lock would see the locked row's newest version but, in its
/// subquery, the items as they were when it began.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn lock(tx: &mut PgConnection, id: MenuId) -> Result<Option<Menu>, StoreError> {
    let locked: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM menus WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(&mut *tx).await?;
    if locked.is_none() {
        return Ok(None);
    }
    find(tx, id).await
}

/// The menu that has item `item`, if any.
///
/// # Errors
/// PostgreSQL failed.
pub async fn menu_of_item(tx: &mut PgConnection, item: MenuItemId) -> Result<Option<MenuId>, StoreError> {
    let menu: Option<Uuid> =
        sqlx::query_scalar("SELECT menu_id FROM menu_items WHERE id = $1").bind(item).fetch_optional(tx).await?;
    Ok(menu.map(MenuId::from))
}

/// Reads a menu.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn find(executor: impl PgExecutor<'_>, id: MenuId) -> Result<Option<Menu>, StoreError> {
    let row: Option<MenuRow> =
        sqlx::query_as(select_menus_with_items!("WHERE m.id = $1")).bind(id).fetch_optional(executor).await?;
    row.map(to_menu).transpose()
}

/// One page of menus, oldest first, optionally of one status.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn list(pool: &PgPool, status: Option<MenuStatus>, limit: i64, offset: i64) -> Result<Vec<Menu>, StoreError> {
    let rows: Vec<MenuRow> = sqlx::query_as(select_menus_with_items!(
        "WHERE ($1::text IS NULL OR m.status = $1) ORDER BY m.created_at, m.id LIMIT $2 OFFSET $3"
    ))
    .bind(status.map(MenuStatus::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(to_menu).collect()
}

/// A stored menu as the domain's, or why it is not a valid one.
fn to_menu(row: MenuRow) -> Result<Menu, StoreError> {
    let id = row.id;
    to_domain(row).map_err(|detail| StoreError::Corrupt { entity: "menu", id, detail })
}

fn to_domain(row: MenuRow) -> Result<Menu, String> {
    let text = |e: crate::domain::ValueError| e.0;
    Ok(Menu {
        id: row.id.into(),
        name: MenuName::try_from(row.name).map_err(text)?,
        description: row.description.map(Description::try_from).transpose().map_err(text)?,
        status: MenuStatus::parse(&row.status).ok_or_else(|| format!("unknown status {:?}", row.status))?,
        version: row.version,
        items: row
            .items
            .map(|Json(items)| items)
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                Ok(MenuItem {
                    id: MenuItemId::from(item.id),
                    name: ItemName::try_from(item.name).map_err(text)?,
                    description: item.description.map(Description::try_from).transpose().map_err(text)?,
                    category: Category::try_from(item.category).map_err(text)?,
                    price: Price::new(
                        Cents::try_from(item.price_cents).map_err(text)?,
                        Currency::try_from(item.currency).map_err(text)?,
                    ),
                    switched_on: item.switched_on,
                    in_stock: item.in_stock,
                    stock_version: item.stock_version,
                })
            })
            .collect::<Result<_, String>>()?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
