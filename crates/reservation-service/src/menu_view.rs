//! What this service knows of the menus, learnt only from `menu-events`:
//! which menus are active and which items are available. It never calls the
//! menu service or reads its tables.
//!
//! Every field remembers the version of the event that set it and takes a
//! value only from a newer one, so duplicates and out-of-order deliveries
//! converge on what the newest event says. After each event, the upcoming
//! reservations that pre-ordered the menu's items are re-validated: an item
//! that cannot be served is recorded as a problem on the reservation, and the
//! problem is cleared once the item can be served again.

use chrono::{DateTime, SubsecRound, Utc};
use events::menu::MenuItem;
use events::{DomainEvent, HandlerError, MenuEvent, MenuItemId, TransactionalHandler, UnitOfWork};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// Why a pre-ordered item cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unorderable {
    /// No menu event has mentioned it.
    Unknown,
    /// Its menu is not active.
    MenuInactive {
        /// The item's name, if known.
        name: Option<String>,
    },
    /// It is marked unavailable.
    Unavailable {
        /// The item's name, if known.
        name: Option<String>,
    },
}

impl std::fmt::Display for Unorderable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let named = |name: &Option<String>| name.as_ref().map_or_else(|| "the item".to_owned(), |n| format!("{n:?}"));
        match self {
            Self::Unknown => f.write_str("no menu offers it"),
            Self::MenuInactive { name } => write!(f, "{} is not on an active menu", named(name)),
            Self::Unavailable { name } => write!(f, "{} is not available", named(name)),
        }
    }
}

/// Which of `items` cannot be pre-ordered now, and why. Locks the view rows it
/// reads until the transaction ends, so that a menu event changing them waits
/// for the booking to commit and then re-validates it.
///
/// # Errors
/// PostgreSQL failed.
pub async fn unorderable(
    tx: &mut PgConnection,
    items: &[MenuItemId],
) -> sqlx::Result<HashMap<MenuItemId, Unorderable>> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Option<String>, bool, bool)> = sqlx::query_as(
        "SELECT i.item_id, i.name, i.available, m.active
         FROM menu_items_seen i JOIN menus_seen m ON m.menu_id = i.menu_id
         WHERE i.item_id = ANY($1)
         FOR SHARE",
    )
    .bind(items)
    .fetch_all(tx)
    .await?;
    let mut seen: HashMap<MenuItemId, Unorderable> = HashMap::new();
    let mut known = std::collections::HashSet::new();
    for (id, name, available, active) in rows {
        let id = MenuItemId::from(id);
        known.insert(id);
        if !active {
            seen.insert(id, Unorderable::MenuInactive { name });
        } else if !available {
            seen.insert(id, Unorderable::Unavailable { name });
        }
    }
    for id in items.iter().filter(|id| !known.contains(id)) {
        seen.insert(*id, Unorderable::Unknown);
    }
    Ok(seen)
}

/// Applies `menu-events` to the view and re-validates the affected
/// reservations. Run it through [`events::Inboxed`] for effectively-once.
#[derive(Debug, Clone, Copy, Default)]
pub struct MenuProjection;

impl TransactionalHandler<MenuEvent> for MenuProjection {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        let tx: &mut PgConnection = work;
        let menu = event.aggregate_id;
        let version = event.version;
        match &event.payload {
            MenuEvent::MenuCreated { items, .. } => {
                set_active(tx, menu, false, version).await?;
                record_items(tx, menu, version, items).await?;
            }
            MenuEvent::MenuActivated { items, .. } => {
                set_active(tx, menu, true, version).await?;
                record_items(tx, menu, version, items).await?;
            }
            MenuEvent::MenuDeactivated {} => set_active(tx, menu, false, version).await?,
            MenuEvent::MenuItemAdded { item } | MenuEvent::MenuItemUpdated { item } => {
                record_items(tx, menu, version, std::slice::from_ref(item)).await?;
            }
            MenuEvent::ItemAvailabilityChanged { item_id, available, .. } => {
                record_availability(tx, menu, version, *item_id, *available).await?;
            }
        }
        let (flagged, cleared) = revalidate(tx, menu, Utc::now().trunc_subsecs(6)).await?;
        if flagged + cleared > 0 {
            tracing::info!(menu_id = %menu, flagged, cleared, "re-validated upcoming reservations");
        }
        Ok(())
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

/// Records items as of `version`; a field keeps its value if a newer event set it.
async fn record_items(tx: &mut PgConnection, menu: Uuid, version: i64, items: &[MenuItem]) -> sqlx::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    upsert_items(
        tx,
        menu,
        version,
        &items.iter().map(|item| item.id).collect::<Vec<_>>(),
        &items.iter().map(|item| Some(item.name.as_str())).collect::<Vec<_>>(),
        &items.iter().map(|item| item.available).collect::<Vec<_>>(),
    )
    .await
}

async fn record_availability(
    tx: &mut PgConnection,
    menu: Uuid,
    version: i64,
    item: MenuItemId,
    available: bool,
) -> sqlx::Result<()> {
    upsert_items(tx, menu, version, &[item], &[None], &[available]).await
}

/// Upserts items field by field: a name of `None` leaves the name alone.
async fn upsert_items(
    tx: &mut PgConnection,
    menu: Uuid,
    version: i64,
    ids: &[MenuItemId],
    names: &[Option<&str>],
    available: &[bool],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO menu_items_seen AS seen (item_id, menu_id, name, name_version, available, available_version)
         SELECT item_id, $1, name, CASE WHEN name IS NULL THEN 0 ELSE $2 END, available, $2
         FROM UNNEST($3::uuid[], $4::text[], $5::bool[]) AS i(item_id, name, available)
         ON CONFLICT (item_id) DO UPDATE SET
             name = CASE WHEN EXCLUDED.name_version > seen.name_version THEN EXCLUDED.name ELSE seen.name END,
             name_version = GREATEST(seen.name_version, EXCLUDED.name_version),
             available = CASE WHEN EXCLUDED.available_version > seen.available_version
                              THEN EXCLUDED.available ELSE seen.available END,
             available_version = GREATEST(seen.available_version, EXCLUDED.available_version)",
    )
    .bind(menu)
    .bind(version)
    .bind(ids)
    .bind(names)
    .bind(available)
    .execute(tx)
    .await?;
    Ok(())
}

/// Re-validates the pending and confirmed reservations starting after `now`
/// that pre-ordered items of `menu`: records a problem for each item that
/// cannot be served (or updates its reason), and clears the problems of items
/// that can be served again. Returns how many problems it recorded and cleared.
async fn revalidate(tx: &mut PgConnection, menu: Uuid, now: DateTime<Utc>) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        r#"WITH affected AS (
             SELECT l.reservation_id, l.menu_item_id, i.name,
                    i.available AND COALESCE(m.active, false) AS servable,
                    CASE WHEN NOT COALESCE(m.active, false)
                         THEN format('%s is no longer on an active menu', COALESCE('"' || i.name || '"', 'the item'))
                         ELSE format('%s is no longer available', COALESCE('"' || i.name || '"', 'the item'))
                    END AS reason
             FROM menu_items_seen i
             JOIN pre_order_lines l ON l.menu_item_id = i.item_id
             JOIN reservations r ON r.id = l.reservation_id
             LEFT JOIN menus_seen m ON m.menu_id = i.menu_id
             WHERE i.menu_id = $1 AND r.status IN ('pending', 'confirmed') AND r.starts_at > $2
         ), cleared AS (
             DELETE FROM reservation_problems p USING affected a
             WHERE a.servable AND p.reservation_id = a.reservation_id AND p.menu_item_id = a.menu_item_id
             RETURNING 1
         ), flagged AS (
             INSERT INTO reservation_problems (reservation_id, menu_item_id, reason, detected_at)
             SELECT reservation_id, menu_item_id, reason, $2 FROM affected WHERE NOT servable
             ON CONFLICT (reservation_id, menu_item_id) DO UPDATE
                 SET reason = EXCLUDED.reason, detected_at = EXCLUDED.detected_at
                 WHERE reservation_problems.reason <> EXCLUDED.reason
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM flagged), (SELECT count(*) FROM cleared)"#,
    )
    .bind(menu)
    .bind(now)
    .fetch_one(tx)
    .await
}
