//! The order tables: whole orders in and out, pages of them, and a guest's
//! capability hash.
//!
//! Writes take the caller's transaction (`&mut PgConnection`), so that a
//! change and its events (and a saga's commands) commit together through the
//! outbox; reads take the pool or any executor.

use crate::domain::{Kind, Line, Notes, Order, OrderStatus, Quantity, Table};
use chrono::{DateTime, Utc};
use events::{OrderEvent, OrderId};
use service_kit::database::StoreError;
use service_kit::values::Page;
use service_kit::write::{Aggregate, Insert};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// `SELECT`s whole orders, followed by `$tail`.
macro_rules! select_orders {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, reservation_id, table_label, lines, currency, total_cents, status, reason, refusal,
                    resume_status, version, created_at, updated_at
             FROM orders ",
            $tail
        )
    };
}

impl Aggregate for Order {
    type Id = OrderId;
    type Event = OrderEvent;
    const KIND: &'static str = "order";

    service_kit::aggregate_fields!();

    async fn lock(tx: &mut PgConnection, id: OrderId) -> Result<Option<Self>, StoreError> {
        lock(tx, id).await
    }

    async fn update(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        update(tx, self).await
    }
}

impl Insert for Order {
    async fn insert(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        insert(tx, self).await
    }
}

/// Inserts a new order.
///
/// # Errors
/// PostgreSQL failed.
#[tracing::instrument(level = "debug", skip_all, fields(order_id = %order.id))]
pub async fn insert(tx: &mut PgConnection, order: &Order) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO orders (id, kind, reservation_id, table_label, lines, currency, total_cents, status, reason,
                             refusal, resume_status, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(order.id)
    .bind(order.kind.as_str())
    .bind(order.reservation_id)
    .bind(order.table.as_ref().map(Table::as_str))
    .bind(Json(order.lines.iter().map(LineRow::from).collect::<Vec<_>>()))
    .bind(&order.currency)
    .bind(order.total_cents)
    .bind(order.status.as_str())
    .bind(&order.reason)
    .bind(&order.refusal)
    .bind(order.resume.map(OrderStatus::as_str))
    .bind(order.version)
    .bind(order.created_at)
    .bind(order.updated_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Writes a changed order back: its status, reason, refusal, version and
/// time of change (lines never change).
///
/// # Errors
/// PostgreSQL failed.
#[tracing::instrument(level = "debug", skip_all, fields(order_id = %order.id, version = order.version))]
pub async fn update(tx: &mut PgConnection, order: &Order) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE orders SET status = $2, reason = $3, refusal = $4, resume_status = $5, version = $6, updated_at = $7
         WHERE id = $1",
    )
    .bind(order.id)
    .bind(order.status.as_str())
    .bind(&order.reason)
    .bind(&order.refusal)
    .bind(order.resume.map(OrderStatus::as_str))
    .bind(order.version)
    .bind(order.updated_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Loads an order and locks its row until the transaction ends.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn lock(tx: &mut PgConnection, id: OrderId) -> Result<Option<Order>, StoreError> {
    let row: Option<OrderRow> =
        sqlx::query_as(select_orders!("WHERE id = $1 FOR UPDATE")).bind(id).fetch_optional(tx).await?;
    row.map(to_order).transpose()
}

/// Reads an order.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn find<'e>(executor: impl PgExecutor<'e>, id: OrderId) -> Result<Option<Order>, StoreError> {
    let row: Option<OrderRow> =
        sqlx::query_as(select_orders!("WHERE id = $1")).bind(id).fetch_optional(executor).await?;
    row.map(to_order).transpose()
}

/// One page of orders, oldest first: those in `status`, or all.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn list<'e>(
    executor: impl PgExecutor<'e>,
    status: Option<OrderStatus>,
    page: Page,
) -> Result<Vec<Order>, StoreError> {
    let rows: Vec<OrderRow> = sqlx::query_as(select_orders!(
        "WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at, id LIMIT $2 OFFSET $3"
    ))
    .bind(status.map(OrderStatus::as_str))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(executor)
    .await?;
    rows.into_iter().map(to_order).collect()
}

/// Stores the SHA-256 of the guest's manage token of order `id`.
///
/// # Errors
/// PostgreSQL failed.
pub async fn set_manage_token(tx: &mut PgConnection, id: OrderId, hash: &[u8; 32]) -> Result<(), StoreError> {
    sqlx::query("UPDATE orders SET manage_token_hash = $2 WHERE id = $1").bind(id).bind(&hash[..]).execute(tx).await?;
    Ok(())
}

/// The stored hash of order `id`'s manage token: `None` if there is no such
/// order, `Some(None)` if it has no token (placed by staff).
///
/// # Errors
/// PostgreSQL failed.
pub async fn manage_token_hash<'e>(
    executor: impl PgExecutor<'e>,
    id: OrderId,
) -> Result<Option<Option<Vec<u8>>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT manage_token_hash FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await?)
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    kind: String,
    reservation_id: Option<Uuid>,
    table_label: Option<String>,
    lines: Json<Vec<LineRow>>,
    currency: String,
    total_cents: i64,
    status: String,
    reason: Option<String>,
    refusal: Option<String>,
    resume_status: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LineRow {
    menu_item_id: Uuid,
    name: String,
    unit_price_cents: i64,
    quantity: i64,
    notes: Option<String>,
}

impl From<&Line> for LineRow {
    fn from(line: &Line) -> Self {
        Self {
            menu_item_id: line.menu_item_id.into(),
            name: line.name.clone(),
            unit_price_cents: line.unit_price_cents,
            quantity: i64::from(line.quantity.get()),
            notes: line.notes.as_ref().map(|notes| notes.as_str().to_owned()),
        }
    }
}

fn to_order(row: OrderRow) -> Result<Order, StoreError> {
    let id = row.id;
    assemble(row).map_err(|detail| StoreError::Corrupt { entity: "order", id, detail })
}

fn assemble(row: OrderRow) -> Result<Order, String> {
    let text = |e: service_kit::values::ValueError| e.0;
    let status = |name: &str| OrderStatus::parse(name).ok_or_else(|| format!("unknown status {name:?}"));
    let lines = row
        .lines
        .0
        .into_iter()
        .map(|line| {
            Ok(Line {
                menu_item_id: line.menu_item_id.into(),
                name: line.name,
                unit_price_cents: line.unit_price_cents,
                quantity: Quantity::try_from(line.quantity).map_err(text)?,
                notes: line.notes.map(Notes::try_from).transpose().map_err(text)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Order {
        id: row.id.into(),
        kind: Kind::parse(&row.kind).ok_or_else(|| format!("unknown kind {:?}", row.kind))?,
        reservation_id: row.reservation_id.map(Into::into),
        table: row.table_label.map(Table::try_from).transpose().map_err(text)?,
        lines,
        currency: row.currency,
        total_cents: row.total_cents,
        status: status(&row.status)?,
        reason: row.reason,
        refusal: row.refusal,
        resume: row.resume_status.as_deref().map(status).transpose()?,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
