//! The menu tables: reading and writing whole aggregates.

use crate::domain::{Category, Cents, Currency, Description, ItemName, Menu, MenuItem, MenuName, MenuStatus, Price};
use chrono::{DateTime, Utc};
use events::{MenuId, MenuItemId};
use service_kit::database::StoreError;
use sqlx::{PgConnection, PgExecutor, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct MenuRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: Uuid,
    menu_id: Uuid,
    name: String,
    description: Option<String>,
    category: String,
    price_cents: i64,
    currency: String,
    available: bool,
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
        "INSERT INTO menu_items (id, menu_id, position, name, description, category, price_cents, currency, available)
         SELECT id, $2, position, name, description, category, price_cents, currency, available
         FROM UNNEST($1::uuid[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::bool[])
              AS i(id, position, name, description, category, price_cents, currency, available)
         ON CONFLICT (id) DO UPDATE SET
             name = EXCLUDED.name, description = EXCLUDED.description, category = EXCLUDED.category,
             price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency, available = EXCLUDED.available",
    )
    .bind(items.iter().map(|i| i.id).collect::<Vec<_>>())
    .bind(menu.id)
    .bind((0..).take(items.len()).collect::<Vec<i32>>())
    .bind(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.description.as_ref().map(Description::as_str)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.category.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.price.cents()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.price.currency().code()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.available).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Loads a menu and locks its row until the transaction ends, so that
/// concurrent changes of one menu happen one after another.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn lock(tx: &mut PgConnection, id: MenuId) -> Result<Option<Menu>, StoreError> {
    let row: Option<MenuRow> = sqlx::query_as(
        "SELECT id, name, description, status, version, created_at, updated_at FROM menus WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(assemble(row.into_iter().collect(), tx).await?.pop())
}

/// Reads a menu.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn find(pool: &PgPool, id: MenuId) -> Result<Option<Menu>, StoreError> {
    let row: Option<MenuRow> = sqlx::query_as(
        "SELECT id, name, description, status, version, created_at, updated_at FROM menus WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(assemble(row.into_iter().collect(), pool).await?.pop())
}

/// One page of menus, oldest first, optionally of one status.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn list(pool: &PgPool, status: Option<MenuStatus>, limit: i64, offset: i64) -> Result<Vec<Menu>, StoreError> {
    let rows: Vec<MenuRow> = sqlx::query_as(
        "SELECT id, name, description, status, version, created_at, updated_at FROM menus
         WHERE ($1::text IS NULL OR status = $1)
         ORDER BY created_at, id LIMIT $2 OFFSET $3",
    )
    .bind(status.map(MenuStatus::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    assemble(rows, pool).await
}

/// Turns menu rows into menus, reading all their items in one query.
async fn assemble<'e>(rows: Vec<MenuRow>, executor: impl PgExecutor<'e>) -> Result<Vec<Menu>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT id, menu_id, name, description, category, price_cents, currency, available
         FROM menu_items WHERE menu_id = ANY($1) ORDER BY menu_id, position",
    )
    .bind(&ids)
    .fetch_all(executor)
    .await?;
    let mut by_menu: HashMap<Uuid, Vec<ItemRow>> = HashMap::new();
    for item in items {
        by_menu.entry(item.menu_id).or_default().push(item);
    }
    rows.into_iter()
        .map(|row| {
            let menu_id = row.id;
            let items = by_menu.remove(&menu_id).unwrap_or_default();
            to_menu(row, items).map_err(|detail| StoreError::Corrupt { entity: "menu", id: menu_id, detail })
        })
        .collect()
}

fn to_menu(row: MenuRow, items: Vec<ItemRow>) -> Result<Menu, String> {
    let text = |e: crate::domain::ValueError| e.0;
    Ok(Menu {
        id: row.id.into(),
        name: MenuName::try_from(row.name).map_err(text)?,
        description: row.description.map(Description::try_from).transpose().map_err(text)?,
        status: MenuStatus::parse(&row.status).ok_or_else(|| format!("unknown status {:?}", row.status))?,
        version: row.version,
        items: items
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
                    available: item.available,
                })
            })
            .collect::<Result<_, String>>()?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
