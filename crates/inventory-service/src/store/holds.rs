//! Holds: stock reserved for an order, all of it or nothing, then committed,
//! released or expired. What a hold reserved of each ingredient is kept, and
//! undoing it undoes exactly that.

use super::ingredients::{MovementKind, lock_ingredients};
use super::recipes::load_recipes;
use super::{corrupt, now};
use crate::domain::{DomainError, HeldIngredient, Hold, HoldAction, HoldStatus, OrderLines, Stock, needs, plan};
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
/// it. Items without a recipe are not tracked and hold nothing.
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
) -> Result<Reservation, StoreError> {
    let now = now();
    // As PostgreSQL keeps it, so that the hold and its event say what the row says.
    let expires_at = expires_at.trunc_subsecs(6);
    // Claiming the order's row first makes a concurrent duplicate wait here,
    // holding nothing, and then find the decision.
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO holds (order_id, status, expires_at, version, created_at, updated_at)
         VALUES ($1, 'held', $2, 1, $3, $3)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING order_id",
    )
    .bind(order_id)
    .bind(expires_at)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        let hold = load_holds(&mut *tx, &[order_id]).await?.pop();
        return hold.map(Reservation::AlreadyDecided).ok_or_else(|| corrupt("hold", order_id, "it vanished"));
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
            sqlx::query("DELETE FROM holds WHERE order_id = $1").bind(order_id).execute(&mut *tx).await?;
            return Ok(Reservation::Rejected(shortages));
        }
    };

    let order_lines = lines.lines();
    sqlx::query(
        "INSERT INTO hold_lines (order_id, menu_item_id, quantity, position)
         SELECT $1, menu_item_id, quantity, position
         FROM UNNEST($2::uuid[], $3::int8[], $4::int4[]) AS l(menu_item_id, quantity, position)",
    )
    .bind(order_id)
    .bind(order_lines.iter().map(|line| line.menu_item_id).collect::<Vec<MenuItemId>>())
    .bind(order_lines.iter().map(|line| line.portions.get()).collect::<Vec<i64>>())
    .bind((0..).take(order_lines.len()).collect::<Vec<i32>>())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO hold_ingredients (order_id, ingredient_id, quantity)
         SELECT $1, ingredient_id, quantity FROM UNNEST($2::uuid[], $3::int8[]) AS h(ingredient_id, quantity)",
    )
    .bind(order_id)
    .bind(held.iter().map(|h| h.ingredient_id).collect::<Vec<IngredientId>>())
    .bind(held.iter().map(|h| h.quantity).collect::<Vec<i64>>())
    .execute(&mut *tx)
    .await?;
    let hold = Hold::new(order_id, lines.clone(), held, expires_at, now);
    move_stock(tx, StockMove::Reserve, &hold, actor, None, now).await?;
    Ok(Reservation::Held(hold))
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
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn release(tx: &mut PgConnection, order_id: OrderId, actor: &str) -> Result<HoldChange, StoreError> {
    change_hold(tx, order_id, HoldAction::Release, actor).await
}

/// Uses an order's hold: `on_hand` and `reserved` both fall by what the hold
/// reserved, and the ledger says `consumed`.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn commit(tx: &mut PgConnection, order_id: OrderId, actor: &str) -> Result<HoldChange, StoreError> {
    change_hold(tx, order_id, HoldAction::Commit, actor).await
}

async fn change_hold(
    tx: &mut PgConnection,
    order_id: OrderId,
    action: HoldAction,
    actor: &str,
) -> Result<HoldChange, StoreError> {
    let locked: Option<Uuid> = sqlx::query_scalar("SELECT order_id FROM holds WHERE order_id = $1 FOR UPDATE")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
    if locked.is_none() {
        return Ok(HoldChange::NotFound);
    }
    let mut hold =
        load_holds(&mut *tx, &[order_id]).await?.pop().ok_or_else(|| corrupt("hold", order_id, "vanished"))?;
    let now = now();
    match hold.apply(action, now) {
        Err(refusal) => Ok(HoldChange::Unchanged { hold, refusal: Some(refusal) }),
        Ok(false) => Ok(HoldChange::Unchanged { hold, refusal: None }),
        Ok(true) => {
            let ids: Vec<IngredientId> = hold.ingredients.iter().map(|held| held.ingredient_id).collect();
            lock_ingredients(&mut *tx, &ids).await?;
            let step = if action == HoldAction::Commit { StockMove::Consume } else { StockMove::Release };
            move_stock(&mut *tx, step, &hold, actor, None, now).await?;
            update_status(tx, &hold).await?;
            Ok(HoldChange::Applied(hold))
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
    let mut holds = load_holds(&mut *tx, &due).await?;
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
    Ok(load_holds(&mut connection, &[order_id]).await?.pop())
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
    /// `reserved` rises.
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
}

/// Applies `step` for every ingredient the hold reserved, with a ledger line
/// each, in one statement. The rows must be locked.
async fn move_stock(
    tx: &mut PgConnection,
    step: StockMove,
    hold: &Hold,
    actor: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if hold.ingredients.is_empty() {
        return Ok(());
    }
    let (on_hand_sign, reserved_sign, kind, ledger_sign) = step.effect();
    let moved = sqlx::query(
        "WITH moved AS (
             UPDATE ingredients i
             SET on_hand = i.on_hand + $2 * m.quantity,
                 reserved = i.reserved + $3 * m.quantity,
                 version = i.version + 1,
                 updated_at = $4
             FROM UNNEST($5::uuid[], $6::int8[]) AS m(id, quantity)
             WHERE i.id = m.id
             RETURNING i.id, m.quantity, i.on_hand, i.reserved
         )
         INSERT INTO stock_movements (ingredient_id, kind, quantity, on_hand_after, reserved_after, order_id, actor,
                                      reason, at)
         SELECT id, $7, $8 * quantity, on_hand, reserved, $1, $9, $10, $4 FROM moved",
    )
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
    .execute(tx)
    .await?;
    if moved.rows_affected() != hold.ingredients.len() as u64 {
        return Err(corrupt("hold", hold.order_id, "it holds an ingredient that does not exist"));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    order_id: Uuid,
    status: String,
    expires_at: DateTime<Utc>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The holds of `ids` that exist, in the order of `ids`, read in three statements.
async fn load_holds(connection: &mut PgConnection, ids: &[OrderId]) -> Result<Vec<Hold>, StoreError> {
    let rows: Vec<HoldRow> = sqlx::query_as(
        "SELECT order_id, status, expires_at, version, created_at, updated_at FROM holds WHERE order_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    let lines: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, menu_item_id, quantity FROM hold_lines WHERE order_id = ANY($1) ORDER BY order_id, position",
    )
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    let held: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, ingredient_id, quantity FROM hold_ingredients
         WHERE order_id = ANY($1) ORDER BY order_id, ingredient_id",
    )
    .bind(ids)
    .fetch_all(connection)
    .await?;
    let mut lines_of: HashMap<Uuid, Vec<(MenuItemId, i64)>> = HashMap::new();
    for (order, item, quantity) in lines {
        lines_of.entry(order).or_default().push((item.into(), quantity));
    }
    let mut held_of: HashMap<Uuid, Vec<HeldIngredient>> = HashMap::new();
    for (order, ingredient, quantity) in held {
        held_of.entry(order).or_default().push(HeldIngredient { ingredient_id: ingredient.into(), quantity });
    }
    let mut holds: HashMap<Uuid, Hold> = HashMap::new();
    for row in rows {
        let id = row.order_id;
        let bad = |detail: String| corrupt("hold", id, detail);
        let status = HoldStatus::parse(&row.status).ok_or_else(|| bad(format!("unknown status {:?}", row.status)))?;
        let lines = OrderLines::new(lines_of.remove(&id).unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
        let hold = Hold {
            order_id: id.into(),
            status,
            lines,
            ingredients: held_of.remove(&id).unwrap_or_default(),
            expires_at: row.expires_at,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        };
        holds.insert(id, hold);
    }
    Ok(ids.iter().filter_map(|id| holds.remove(&id.as_uuid())).collect())
}
