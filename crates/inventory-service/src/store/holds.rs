//! Holds: stock reserved for an order, all of it or nothing, then committed,
//! released or expired. What a hold reserved of each ingredient is kept, and
//! undoing it undoes exactly that.

use super::ingredients::{COLUMNS, IngredientRow, MovementKind, lock_ingredients};
use super::recipes::load_recipes;
use super::{corrupt, now};
use crate::domain::{
    DomainError, HeldIngredient, Hold, HoldAction, HoldStatus, Ingredient, OrderLines, Stock, needs, plan,
};
use chrono::{DateTime, SubsecRound, Utc};
use events::inventory::Shortage;
use events::{IngredientId, MenuItemId, OrderId};
use service_kit::database::StoreError;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// The actor the ledger names for holds the expiry sweep let go.
pub const EXPIRY_ACTOR: &str = "hold-expiry";

/// What [`reserve`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// The stock of every line is held; answer `StockReserved`.
    Held(Hold),
    /// Not enough stock: nothing is held and nothing was stored; answer
    /// `StockReservationRejected` with these shortages (at least one).
    Rejected(Vec<Shortage>),
    /// The order already has a hold, in whatever status: nothing changed;
    /// answer with [`Hold::event`].
    AlreadyDecided(Hold),
}

/// Holds the stock of every line of an order until `expires_at`, or none of
/// it. Items without a recipe are not tracked and hold nothing. Returns what
/// it did and, when it held stock, the ingredients as they are now (locked
/// until the transaction ends: see [`super::signals_of_locked`]).
///
/// Concurrent reservations of the same ingredients, from any instance, take
/// their row locks in id order and decide one after another on what is
/// available then, so `reserved` never exceeds `on_hand`. A second
/// reservation for an order that has a hold changes nothing. A rejection is
/// not stored: asking again later may succeed.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn reserve(
    tx: &mut PgConnection,
    order_id: OrderId,
    lines: &OrderLines,
    expires_at: DateTime<Utc>,
    actor: &str,
) -> Result<(Reservation, Vec<Ingredient>), StoreError> {
    let now = now();
    // As PostgreSQL keeps it, so that the hold and its event say what the row says.
    let expires_at = expires_at.trunc_subsecs(6);
    // Claiming the order's row first makes a concurrent duplicate wait here,
    // holding nothing, and then find the decision. The order's lines go in
    // with the claim, before any ingredient is locked (a rejection deletes
    // them again: fewer statements where it matters, under the locks).
    let order_lines = lines.lines();
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "WITH claimed AS (
             INSERT INTO holds (order_id, status, expires_at, version, created_at, updated_at)
             VALUES ($1, 'held', $2, 1, $3, $3)
             ON CONFLICT (order_id) DO NOTHING
             RETURNING order_id
         ), lines AS (
             INSERT INTO hold_lines (order_id, menu_item_id, quantity, position)
             SELECT claimed.order_id, l.menu_item_id, l.quantity, l.position
             FROM claimed, UNNEST($4::uuid[], $5::int8[], $6::int4[]) AS l(menu_item_id, quantity, position)
         )
         SELECT order_id FROM claimed",
    )
    .bind(order_id)
    .bind(expires_at)
    .bind(now)
    .bind(order_lines.iter().map(|line| line.menu_item_id).collect::<Vec<MenuItemId>>())
    .bind(order_lines.iter().map(|line| line.portions.get()).collect::<Vec<i64>>())
    .bind((0..).take(order_lines.len()).collect::<Vec<i32>>())
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        let hold = load_holds(&mut *tx, &[order_id], Lock::No).await?.pop();
        let hold = hold.ok_or_else(|| corrupt("hold", order_id, "it vanished"))?;
        return Ok((Reservation::AlreadyDecided(hold), Vec::new()));
    }

    let recipes = load_recipes(&mut *tx, &lines.menu_item_ids()).await?;
    let needed: Vec<IngredientId> = needs(lines, &recipes).into_keys().collect();
    let stock: HashMap<IngredientId, Stock> = lock_ingredients(&mut *tx, &needed)
        .await?
        .into_iter()
        .map(|ingredient| (ingredient.id, ingredient.stock()))
        .collect();
    let held = match plan(lines, &recipes, &stock) {
        Ok(held) => held,
        Err(shortages) => {
            // Its lines go with it (`ON DELETE CASCADE`).
            sqlx::query("DELETE FROM holds WHERE order_id = $1").bind(order_id).execute(&mut *tx).await?;
            return Ok((Reservation::Rejected(shortages), Vec::new()));
        }
    };

    let hold = Hold::new(order_id, lines.clone(), held, expires_at, now);
    let moved = move_stock(tx, StockMove::Reserve, &hold, actor, None, now).await?;
    Ok((Reservation::Held(hold), moved))
}

/// What [`release`] or [`commit`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldChange {
    /// This call changed the hold: it is as given now.
    Applied(Hold),
    /// Nothing changed. `refusal` is `None` when the hold is already where
    /// it was asked to go, or its stock is already free (a release of an
    /// expired hold); otherwise it says why the change does not apply (a
    /// commit of an expired or released hold, a release of a committed one).
    Unchanged {
        /// The hold as it is.
        hold: Hold,
        /// Why the change does not apply, if it is not a repeat.
        refusal: Option<DomainError>,
    },
    /// The order has no hold: it never reserved (or was rejected).
    NotFound,
}

/// Lets an order's hold go: `reserved` falls by what the hold reserved.
/// Returns what it did and, when stock moved, the ingredients as they are
/// now (locked until the transaction ends).
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn release(
    tx: &mut PgConnection,
    order_id: OrderId,
    actor: &str,
) -> Result<(HoldChange, Vec<Ingredient>), StoreError> {
    change_hold(tx, order_id, HoldAction::Release, actor).await
}

/// Uses an order's hold: `on_hand` and `reserved` both fall by what the hold
/// reserved, and the ledger says `consumed`. Returns what it did and, when
/// stock moved, the ingredients as they are now (locked until the
/// transaction ends).
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn commit(
    tx: &mut PgConnection,
    order_id: OrderId,
    actor: &str,
) -> Result<(HoldChange, Vec<Ingredient>), StoreError> {
    change_hold(tx, order_id, HoldAction::Commit, actor).await
}

async fn change_hold(
    tx: &mut PgConnection,
    order_id: OrderId,
    action: HoldAction,
    actor: &str,
) -> Result<(HoldChange, Vec<Ingredient>), StoreError> {
    let Some(mut hold) = load_holds(&mut *tx, &[order_id], Lock::ForUpdate).await?.pop() else {
        return Ok((HoldChange::NotFound, Vec::new()));
    };
    let now = now();
    match hold.apply(action, now) {
        Err(refusal) => Ok((HoldChange::Unchanged { hold, refusal: Some(refusal) }, Vec::new())),
        Ok(false) => Ok((HoldChange::Unchanged { hold, refusal: None }, Vec::new())),
        Ok(true) => {
            // The hold's row is ours already; the ingredients are locked as
            // late as can be, for as short a time as can be.
            update_status(&mut *tx, &hold).await?;
            // Locked in id order here: the move's `UPDATE … FROM UNNEST`
            // would lock them in whatever order its join runs.
            let ids: Vec<IngredientId> = hold.ingredients.iter().map(|held| held.ingredient_id).collect();
            lock_ingredients(&mut *tx, &ids).await?;
            let step = if action == HoldAction::Commit { StockMove::Consume } else { StockMove::Release };
            let moved = move_stock(tx, step, &hold, actor, None, now).await?;
            Ok((HoldChange::Applied(hold), moved))
        }
    }
}

/// Expires up to `limit` holds due at `now` (oldest first), freeing their
/// stock, and returns them as they are now. Holds another transaction has
/// locked are skipped, so several instances sweep side by side.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all)]
pub async fn expire_due(tx: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Hold>, StoreError> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT order_id FROM holds WHERE status = 'held' AND expires_at <= $1
         ORDER BY expires_at, order_id LIMIT $2
         FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let due: Vec<OrderId> = due.into_iter().map(OrderId::from).collect();
    let mut holds = load_holds(&mut *tx, &due, Lock::No).await?;
    let ingredients: BTreeSet<IngredientId> =
        holds.iter().flat_map(|hold| hold.ingredients.iter().map(|held| held.ingredient_id)).collect();
    lock_ingredients(&mut *tx, &ingredients.into_iter().collect::<Vec<_>>()).await?;
    let stamp = super::now();
    for hold in &mut holds {
        if hold.apply(HoldAction::Expire, stamp).map_err(|error| corrupt("hold", hold.order_id, error))? {
            move_stock(&mut *tx, StockMove::Release, hold, EXPIRY_ACTOR, Some("expired"), stamp).await?;
            update_status(&mut *tx, hold).await?;
        }
    }
    Ok(holds)
}

/// Reads an order's hold.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn find_hold(pool: &PgPool, order_id: OrderId) -> Result<Option<Hold>, StoreError> {
    let mut connection = pool.acquire().await?;
    Ok(load_holds(&mut connection, &[order_id], Lock::No).await?.pop())
}

async fn update_status(tx: &mut PgConnection, hold: &Hold) -> Result<(), StoreError> {
    sqlx::query("UPDATE holds SET status = $2, version = $3, updated_at = $4 WHERE order_id = $1")
        .bind(hold.order_id)
        .bind(hold.status.as_str())
        .bind(hold.version)
        .bind(hold.updated_at)
        .execute(tx)
        .await?;
    Ok(())
}

/// How a hold moves the stock of its ingredients.
#[derive(Debug, Clone, Copy)]
enum StockMove {
    /// `reserved` rises, and what the hold holds of each ingredient is
    /// recorded with it.
    Reserve,
    /// `reserved` falls.
    Release,
    /// `on_hand` and `reserved` fall.
    Consume,
}

impl StockMove {
    /// The signs of the change of `on_hand` and `reserved`, the ledger's kind
    /// and the sign of its quantity.
    const fn effect(self) -> (i64, i64, MovementKind, i64) {
        match self {
            Self::Reserve => (0, 1, MovementKind::Reserved, 1),
            Self::Release => (0, -1, MovementKind::Released, -1),
            Self::Consume => (-1, -1, MovementKind::Consumed, -1),
        }
    }

    /// Whether the hold's ingredients are recorded (`hold_ingredients`).
    const fn records_hold(self) -> bool {
        matches!(self, Self::Reserve)
    }
}

/// Applies `step` for every ingredient the hold reserved, with a ledger line
/// each (and, for a reservation, the record of what the hold holds), in one
/// statement, and returns the ingredients as they are after it. The rows
/// must be locked.
async fn move_stock(
    tx: &mut PgConnection,
    step: StockMove,
    hold: &Hold,
    actor: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Ingredient>, StoreError> {
    if hold.ingredients.is_empty() {
        return Ok(Vec::new());
    }
    let (on_hand_sign, reserved_sign, kind, ledger_sign) = step.effect();
    let moved: Vec<IngredientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH moved AS (
             UPDATE ingredients i
             SET on_hand = i.on_hand + $2 * m.quantity,
                 reserved = i.reserved + $3 * m.quantity,
                 version = i.version + 1,
                 updated_at = $4
             FROM UNNEST($5::uuid[], $6::int8[]) AS m(id, quantity)
             WHERE i.id = m.id
             RETURNING i.*, m.quantity AS moved_quantity
         ), held AS (
             INSERT INTO hold_ingredients (order_id, ingredient_id, quantity)
             SELECT $1, id, quantity FROM UNNEST($5::uuid[], $6::int8[]) AS h(id, quantity) WHERE $11
         ), ledger AS (
             INSERT INTO stock_movements (ingredient_id, kind, quantity, on_hand_after, reserved_after, order_id,
                                          actor, reason, at)
             SELECT id, $7, $8 * moved_quantity, on_hand, reserved, $1, $9, $10, $4 FROM moved
         )
         SELECT {COLUMNS} FROM moved ORDER BY id"
    )))
    .bind(hold.order_id)
    .bind(on_hand_sign)
    .bind(reserved_sign)
    .bind(now)
    .bind(hold.ingredients.iter().map(|held| held.ingredient_id).collect::<Vec<_>>())
    .bind(hold.ingredients.iter().map(|held| held.quantity).collect::<Vec<_>>())
    .bind(kind.as_str())
    .bind(ledger_sign)
    .bind(actor)
    .bind(reason)
    .bind(step.records_hold())
    .fetch_all(tx)
    .await?;
    if moved.len() != hold.ingredients.len() {
        return Err(corrupt("hold", hold.order_id, "it holds an ingredient that does not exist"));
    }
    moved.into_iter().map(IngredientRow::into_ingredient).collect()
}

/// Whether [`load_holds`] locks the rows of the holds it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Read only.
    No,
    /// `FOR UPDATE`: the holds change one transaction at a time.
    ForUpdate,
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    order_id: Uuid,
    status: String,
    expires_at: DateTime<Utc>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    line_items: Vec<Uuid>,
    line_quantities: Vec<i64>,
    held_ingredients: Vec<Uuid>,
    held_quantities: Vec<i64>,
}

/// The holds of `ids` that exist, in the order of `ids`, with their lines
/// and ingredients, in one statement. A hold's lines and ingredients never
/// change once written, so under [`Lock::ForUpdate`] only the hold's own
/// row needs the lock (and is read as it is once the lock is had).
async fn load_holds(connection: &mut PgConnection, ids: &[OrderId], lock: Lock) -> Result<Vec<Hold>, StoreError> {
    let locking = match lock {
        Lock::No => "",
        Lock::ForUpdate => "ORDER BY h.order_id FOR UPDATE OF h",
    };
    let rows: Vec<HoldRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT h.order_id, h.status, h.expires_at, h.version, h.created_at, h.updated_at,
                l.line_items, l.line_quantities, g.held_ingredients, g.held_quantities
         FROM holds h
         CROSS JOIN LATERAL (
             SELECT COALESCE(array_agg(menu_item_id ORDER BY position), '{{}}') AS line_items,
                    COALESCE(array_agg(quantity ORDER BY position), '{{}}') AS line_quantities
             FROM hold_lines WHERE order_id = h.order_id
         ) AS l
         CROSS JOIN LATERAL (
             SELECT COALESCE(array_agg(ingredient_id ORDER BY ingredient_id), '{{}}') AS held_ingredients,
                    COALESCE(array_agg(quantity ORDER BY ingredient_id), '{{}}') AS held_quantities
             FROM hold_ingredients WHERE order_id = h.order_id
         ) AS g
         WHERE h.order_id = ANY($1) {locking}"
    )))
    .bind(ids)
    .fetch_all(connection)
    .await?;
    let mut holds: HashMap<Uuid, Hold> = HashMap::new();
    for row in rows {
        let id = row.order_id;
        let bad = |detail: String| corrupt("hold", id, detail);
        let status = HoldStatus::parse(&row.status).ok_or_else(|| bad(format!("unknown status {:?}", row.status)))?;
        let lines = row.line_items.into_iter().map(MenuItemId::from).zip(row.line_quantities);
        let lines = OrderLines::new(lines).map_err(|e| bad(e.to_string()))?;
        let ingredients = row
            .held_ingredients
            .into_iter()
            .zip(row.held_quantities)
            .map(|(ingredient, quantity)| HeldIngredient { ingredient_id: ingredient.into(), quantity })
            .collect();
        let hold = Hold {
            order_id: id.into(),
            status,
            lines,
            ingredients,
            expires_at: row.expires_at,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        };
        holds.insert(id, hold);
    }
    Ok(ids.iter().filter_map(|id| holds.remove(&id.as_uuid())).collect())
}
