//! Ingredient rows, the stock ledger, and the changes of stock that people
//! make: receipts, counts and waste.

use super::{corrupt, now};
use crate::domain::{DomainError, Ingredient, IngredientName, Note, Quantity, Reason, StockLevel};
use chrono::{DateTime, Utc};
use events::{IngredientId, InventoryEvent, OrderId};
use service_kit::database::StoreError;
use service_kit::values::Page;
use sqlx::{PgConnection, PgExecutor, PgPool};
use std::fmt;
use uuid::Uuid;

/// The columns of an [`IngredientRow`], in a statement's select list.
pub(super) const COLUMNS: &str =
    "id, name, unit, on_hand, reserved, low_stock_threshold, low_stock, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct IngredientRow {
    id: Uuid,
    name: String,
    unit: String,
    on_hand: i64,
    reserved: i64,
    low_stock_threshold: i64,
    low_stock: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl IngredientRow {
    pub(super) fn into_ingredient(self) -> Result<Ingredient, StoreError> {
        let id = self.id;
        let bad = |detail: String| corrupt("ingredient", id, detail);
        let level = |what: &str, value: i64| StockLevel::try_from(value).map_err(|e| bad(format!("{what}: {e}")));
        Ok(Ingredient {
            id: id.into(),
            name: IngredientName::try_from(self.name).map_err(|e| bad(e.0))?,
            unit: self.unit.parse().map_err(|e: events::inventory::UnknownUnit| bad(e.to_string()))?,
            on_hand: level("on_hand", self.on_hand)?,
            reserved: level("reserved", self.reserved)?,
            low_stock_threshold: level("low_stock_threshold", self.low_stock_threshold)?,
            low_stock: self.low_stock,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// What [`insert_ingredient`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The ingredient is stored.
    Created,
    /// Another ingredient has the name (whatever the case); nothing was stored.
    NameTaken(IngredientId),
}

/// Stores a new ingredient, unless its name is taken.
///
/// # Errors
/// PostgreSQL failed.
#[tracing::instrument(skip_all, fields(ingredient_id = %ingredient.id))]
pub async fn insert_ingredient(tx: &mut PgConnection, ingredient: &Ingredient) -> Result<Inserted, StoreError> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO ingredients (id, name, unit, on_hand, reserved, low_stock_threshold, low_stock, version,
                                  created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT ((lower(name))) DO NOTHING
         RETURNING id",
    )
    .bind(ingredient.id)
    .bind(ingredient.name.as_str())
    .bind(ingredient.unit.as_str())
    .bind(ingredient.on_hand.get())
    .bind(ingredient.reserved.get())
    .bind(ingredient.low_stock_threshold.get())
    .bind(ingredient.low_stock)
    .bind(ingredient.version)
    .bind(ingredient.created_at)
    .bind(ingredient.updated_at)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_some() {
        return Ok(Inserted::Created);
    }
    let existing: Uuid = sqlx::query_scalar("SELECT id FROM ingredients WHERE lower(name) = lower($1)")
        .bind(ingredient.name.as_str())
        .fetch_one(tx)
        .await?;
    Ok(Inserted::NameTaken(existing.into()))
}

/// Loads an ingredient and locks its row until the transaction ends, so that
/// changes of its stock happen one after another, across instances.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn lock_ingredient(tx: &mut PgConnection, id: IngredientId) -> Result<Option<Ingredient>, StoreError> {
    let row: Option<IngredientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM ingredients WHERE id = $1 FOR NO KEY UPDATE"
    )))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.map(IngredientRow::into_ingredient).transpose()
}

/// Locks the rows of `ids` in id order, in one statement, and loads them.
/// Ids without a row are left out.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub(super) async fn lock_ingredients(
    tx: &mut PgConnection,
    ids: &[IngredientId],
) -> Result<Vec<Ingredient>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<IngredientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM ingredients WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"
    )))
    .bind(ids)
    .fetch_all(tx)
    .await?;
    rows.into_iter().map(IngredientRow::into_ingredient).collect()
}

/// Writes an ingredient's stock, low-stock flag and version back; the row
/// must be locked.
///
/// # Errors
/// PostgreSQL failed, or a `CHECK` refused the values.
pub async fn update_ingredient_stock(tx: &mut PgConnection, ingredient: &Ingredient) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ingredients SET on_hand = $2, reserved = $3, low_stock = $4, version = $5, updated_at = $6
         WHERE id = $1",
    )
    .bind(ingredient.id)
    .bind(ingredient.on_hand.get())
    .bind(ingredient.reserved.get())
    .bind(ingredient.low_stock)
    .bind(ingredient.version)
    .bind(ingredient.updated_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Reads an ingredient.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn find_ingredient(pool: &PgPool, id: IngredientId) -> Result<Option<Ingredient>, StoreError> {
    let row: Option<IngredientRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ingredients WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    row.map(IngredientRow::into_ingredient).transpose()
}

/// One page of ingredients by name; with `low_stock_only`, only those whose
/// available stock is at or below their threshold now.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn list_ingredients(pool: &PgPool, low_stock_only: bool, page: Page) -> Result<Vec<Ingredient>, StoreError> {
    let rows: Vec<IngredientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM ingredients
         WHERE NOT $1 OR on_hand - reserved <= low_stock_threshold
         ORDER BY lower(name), id LIMIT $2 OFFSET $3"
    )))
    .bind(low_stock_only)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(IngredientRow::into_ingredient).collect()
}

/// What moved an ingredient's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MovementKind {
    /// A delivery; `quantity` is what came in.
    Received,
    /// A count; `quantity` is the counted level less the booked one.
    Counted,
    /// Thrown away; `quantity` is minus what went.
    Wasted,
    /// Used by an order that committed its hold; `quantity` is minus what was
    /// used, and `reserved` fell by as much.
    Consumed,
    /// Held for an order; `quantity` is what `reserved` rose by.
    Reserved,
    /// A hold let go or lapsed; `quantity` is minus what `reserved` fell by.
    Released,
}

impl MovementKind {
    /// Every kind.
    pub const ALL: [Self; 6] =
        [Self::Received, Self::Counted, Self::Wasted, Self::Consumed, Self::Reserved, Self::Released];

    /// The name used in JSON and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Counted => "counted",
            Self::Wasted => "wasted",
            Self::Consumed => "consumed",
            Self::Reserved => "reserved",
            Self::Released => "released",
        }
    }

    /// Parses the database form.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// Whether `quantity` is a change of `on_hand` (otherwise of `reserved`).
    pub const fn moves_on_hand(self) -> bool {
        matches!(self, Self::Received | Self::Counted | Self::Wasted | Self::Consumed)
    }
}

impl fmt::Display for MovementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the stock ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The ingredient.
    pub ingredient_id: IngredientId,
    /// What moved it.
    pub kind: MovementKind,
    /// The signed change: of `on_hand` or of `reserved`, as [`MovementKind`] says.
    pub quantity: i64,
    /// On hand after the movement.
    pub on_hand_after: i64,
    /// Reserved after the movement.
    pub reserved_after: i64,
    /// The order, for holds and consumption.
    pub order_id: Option<OrderId>,
    /// Who: a token's subject, or the service that sent the command.
    pub actor: String,
    /// Why, or the note given with it.
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A movement as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its place in the ledger: later movements have larger ids.
    pub id: i64,
    /// The movement.
    pub movement: Movement,
}

/// Appends a movement to the ledger, returning its id.
///
/// # Errors
/// PostgreSQL failed.
pub async fn record_movement(tx: &mut PgConnection, movement: &Movement) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO stock_movements (ingredient_id, kind, quantity, on_hand_after, reserved_after, order_id, actor,
                                      reason, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id",
    )
    .bind(movement.ingredient_id)
    .bind(movement.kind.as_str())
    .bind(movement.quantity)
    .bind(movement.on_hand_after)
    .bind(movement.reserved_after)
    .bind(movement.order_id)
    .bind(&movement.actor)
    .bind(&movement.reason)
    .bind(movement.at)
    .fetch_one(tx)
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct MovementRow {
    id: i64,
    ingredient_id: Uuid,
    kind: String,
    quantity: i64,
    on_hand_after: i64,
    reserved_after: i64,
    order_id: Option<Uuid>,
    actor: String,
    reason: Option<String>,
    at: DateTime<Utc>,
}

/// One page of an ingredient's ledger, oldest first.
///
/// # Errors
/// PostgreSQL failed or a stored kind is unknown.
pub async fn list_movements(
    pool: &PgPool,
    ingredient_id: IngredientId,
    page: Page,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let rows: Vec<MovementRow> = sqlx::query_as(
        "SELECT id, ingredient_id, kind, quantity, on_hand_after, reserved_after, order_id, actor, reason, at
         FROM stock_movements WHERE ingredient_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
    )
    .bind(ingredient_id)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let kind = MovementKind::parse(&row.kind)
                .ok_or_else(|| corrupt("ingredient", row.ingredient_id, format!("unknown movement {:?}", row.kind)))?;
            Ok(LedgerEntry {
                id: row.id,
                movement: Movement {
                    ingredient_id: row.ingredient_id.into(),
                    kind,
                    quantity: row.quantity,
                    on_hand_after: row.on_hand_after,
                    reserved_after: row.reserved_after,
                    order_id: row.order_id.map(OrderId::from),
                    actor: row.actor,
                    reason: row.reason,
                    at: row.at,
                },
            })
        })
        .collect()
}

/// The orders whose live holds hold some of an ingredient, in id order.
///
/// # Errors
/// PostgreSQL failed.
pub async fn orders_holding<'e>(
    executor: impl PgExecutor<'e>,
    ingredient_id: IngredientId,
) -> Result<Vec<OrderId>, StoreError> {
    let orders: Vec<Uuid> = sqlx::query_scalar(
        "SELECT h.order_id FROM holds h JOIN hold_ingredients hi ON hi.order_id = h.order_id
         WHERE hi.ingredient_id = $1 AND h.status = 'held'
         ORDER BY h.order_id",
    )
    .bind(ingredient_id)
    .fetch_all(executor)
    .await?;
    Ok(orders.into_iter().map(OrderId::from).collect())
}

/// What a receipt, count or waste did to an ingredient that exists.
#[derive(Debug, Clone, PartialEq)]
pub enum StockChange {
    /// The stock changed and the ledger says so.
    Applied {
        /// The ingredient as it is now.
        ingredient: Ingredient,
        /// `StockReceived`, `StockCounted` or `StockWasted`, to publish.
        event: InventoryEvent,
    },
    /// Nothing changed: the domain refused it. A count or waste below what
    /// orders hold is [`DomainError::BelowReserved`] naming those orders.
    Refused(DomainError),
}

/// A delivery of `quantity` arrived; `None` if there is no such ingredient.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(ingredient_id = %id, quantity = quantity.get()))]
pub async fn receive(
    tx: &mut PgConnection,
    id: IngredientId,
    quantity: Quantity,
    actor: &str,
    note: Option<&Note>,
) -> Result<Option<StockChange>, StoreError> {
    let reason = note.map(|note| note.as_str().to_owned());
    change_stock(tx, id, MovementKind::Received, actor, reason, |ingredient, now| {
        ingredient.receive(quantity, note, now)
    })
    .await
}

/// Someone counted `on_hand`; `None` if there is no such ingredient.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(ingredient_id = %id, on_hand = on_hand.get()))]
pub async fn count(
    tx: &mut PgConnection,
    id: IngredientId,
    on_hand: StockLevel,
    actor: &str,
    note: Option<&Note>,
) -> Result<Option<StockChange>, StoreError> {
    let reason = note.map(|note| note.as_str().to_owned());
    change_stock(tx, id, MovementKind::Counted, actor, reason, |ingredient, now| ingredient.count(on_hand, note, now))
        .await
}

/// `quantity` was thrown away for `reason`; `None` if there is no such ingredient.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(ingredient_id = %id, quantity = quantity.get()))]
pub async fn waste(
    tx: &mut PgConnection,
    id: IngredientId,
    quantity: Quantity,
    actor: &str,
    reason: &Reason,
) -> Result<Option<StockChange>, StoreError> {
    change_stock(tx, id, MovementKind::Wasted, actor, Some(reason.as_str().to_owned()), |ingredient, now| {
        ingredient.waste(quantity, reason, now)
    })
    .await
}

/// Locks the ingredient, applies `change` to it, and writes the result and
/// its ledger line; a refusal names the holds when it is about them.
async fn change_stock(
    tx: &mut PgConnection,
    id: IngredientId,
    kind: MovementKind,
    actor: &str,
    reason: Option<String>,
    change: impl FnOnce(&mut Ingredient, DateTime<Utc>) -> Result<InventoryEvent, DomainError>,
) -> Result<Option<StockChange>, StoreError> {
    let Some(mut ingredient) = lock_ingredient(&mut *tx, id).await? else {
        return Ok(None);
    };
    let before = ingredient.on_hand.get();
    let now = now();
    let event = match change(&mut ingredient, now) {
        Ok(event) => event,
        Err(DomainError::BelowReserved { on_hand_after, reserved, .. }) => {
            let holds = orders_holding(&mut *tx, id).await?;
            return Ok(Some(StockChange::Refused(DomainError::BelowReserved { on_hand_after, reserved, holds })));
        }
        Err(refused) => return Ok(Some(StockChange::Refused(refused))),
    };
    update_ingredient_stock(&mut *tx, &ingredient).await?;
    let movement = Movement {
        ingredient_id: id,
        kind,
        quantity: ingredient.on_hand.get() - before,
        on_hand_after: ingredient.on_hand.get(),
        reserved_after: ingredient.reserved.get(),
        order_id: None,
        actor: actor.to_owned(),
        reason,
        at: now,
    };
    record_movement(tx, &movement).await?;
    Ok(Some(StockChange::Applied { ingredient, event }))
}
