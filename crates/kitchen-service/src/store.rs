//! The kitchen's tables: whole tickets in and out, the queues the kitchen
//! reads, and the menu items it has seen.
//!
//! Writes take the caller's transaction (`&mut PgConnection`), so that a
//! change and its events commit together through the outbox; reads take the
//! pool, or any executor where a command handler reads inside its own
//! transaction. A ticket is read with its lines in one statement (the lines
//! aggregated as JSON), so that one executor is enough and a locking read
//! locks just the ticket's row.

use crate::domain::{Line, Notes, Quantity, RejectReason, SeenItem, Ticket, TicketStatus};
use chrono::{DateTime, Utc};
use events::{KitchenEvent, MenuId, MenuItemId, OrderId, TicketId};
use service_kit::database::StoreError;
use service_kit::values::Page;
use service_kit::write::{Aggregate, Insert};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

/// `SELECT`s whole tickets (`t`) with their lines, followed by `$tail`.
macro_rules! select_tickets {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.order_id, t.status, t.ready_by, t.reject_reason, t.overdue_notified, t.version,
                    t.created_at, t.updated_at,
                    COALESCE((SELECT jsonb_agg(jsonb_build_object(
                                  'line', l.line, 'menu_item_id', l.menu_item_id, 'name', l.name,
                                  'quantity', l.quantity, 'station', l.station, 'notes', l.notes,
                                  'known', l.known, 'done', l.done) ORDER BY l.line)
                              FROM ticket_lines l WHERE l.ticket_id = t.id), '[]') AS lines
             FROM tickets t ",
            $tail
        )
    };
}

impl Aggregate for Ticket {
    type Id = TicketId;
    type Event = KitchenEvent;
    const KIND: &'static str = "ticket";

    fn id(&self) -> TicketId {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn advance(&mut self, version: i64, at: DateTime<Utc>) {
        self.version = version;
        self.updated_at = at;
    }

    async fn lock(tx: &mut PgConnection, id: TicketId) -> Result<Option<Self>, StoreError> {
        lock(tx, id).await
    }

    async fn update(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        update(tx, self).await
    }
}

impl Insert for Ticket {
    async fn insert(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        insert(tx, self).await
    }
}

/// Inserts a new ticket and its lines.
///
/// # Errors
/// PostgreSQL failed; a second ticket for the same order breaks the unique
/// constraint on `order_id` (SQLSTATE 23505).
#[tracing::instrument(level = "debug", skip_all, fields(ticket_id = %ticket.id, order_id = %ticket.order_id))]
pub async fn insert(tx: &mut PgConnection, ticket: &Ticket) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tickets (id, order_id, status, ready_by, reject_reason, overdue_notified, version,
                              created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(ticket.id)
    .bind(ticket.order_id)
    .bind(ticket.status.as_str())
    .bind(ticket.ready_by)
    .bind(ticket.reject_reason.as_ref().map(RejectReason::as_str))
    .bind(ticket.overdue_notified)
    .bind(ticket.version)
    .bind(ticket.created_at)
    .bind(ticket.updated_at)
    .execute(&mut *tx)
    .await?;
    let lines = &ticket.lines;
    // Positions and quantities go as int8 and PostgreSQL narrows them: both
    // are bounded far below the int4 columns' range by the domain.
    sqlx::query(
        "INSERT INTO ticket_lines (ticket_id, line, menu_item_id, name, quantity, station, notes, known, done)
         SELECT $1, line, menu_item_id, name, quantity, station, notes, known, done
         FROM UNNEST($2::int8[], $3::uuid[], $4::text[], $5::int8[], $6::text[], $7::text[], $8::bool[], $9::bool[])
              AS l(line, menu_item_id, name, quantity, station, notes, known, done)",
    )
    .bind(ticket.id)
    .bind(lines.iter().map(|line| i64::from(line.line)).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.menu_item_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.name.as_deref()).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| i64::from(line.quantity.get())).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.station.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.notes.as_ref().map(Notes::as_str)).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.known).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.done).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Writes a changed ticket back, in one statement: its status, `ready_by`,
/// reason, overdue flag, version and time of change, and whether each line
/// is done.
///
/// # Errors
/// PostgreSQL failed.
#[tracing::instrument(level = "debug", skip_all, fields(ticket_id = %ticket.id, version = ticket.version))]
pub async fn update(tx: &mut PgConnection, ticket: &Ticket) -> Result<(), StoreError> {
    sqlx::query(
        "WITH ticket AS (
             UPDATE tickets SET status = $2, ready_by = $3, reject_reason = $4, overdue_notified = $5, version = $6,
                                updated_at = $7
             WHERE id = $1
         )
         UPDATE ticket_lines l SET done = u.done
         FROM UNNEST($8::int8[], $9::bool[]) AS u(line, done)
         WHERE l.ticket_id = $1 AND l.line = u.line AND l.done <> u.done",
    )
    .bind(ticket.id)
    .bind(ticket.status.as_str())
    .bind(ticket.ready_by)
    .bind(ticket.reject_reason.as_ref().map(RejectReason::as_str))
    .bind(ticket.overdue_notified)
    .bind(ticket.version)
    .bind(ticket.updated_at)
    .bind(ticket.lines.iter().map(|line| i64::from(line.line)).collect::<Vec<_>>())
    .bind(ticket.lines.iter().map(|line| line.done).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Loads a ticket and locks its row until the transaction ends, so that
/// changes of one ticket happen one after another.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(level = "debug", skip_all, fields(ticket_id = %id))]
pub async fn lock(tx: &mut PgConnection, id: TicketId) -> Result<Option<Ticket>, StoreError> {
    let row = sqlx::query_as(select_tickets!("WHERE t.id = $1 FOR UPDATE OF t")).bind(id).fetch_optional(tx).await?;
    row.map(to_ticket).transpose()
}

/// Reads a ticket.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(level = "debug", skip_all, fields(ticket_id = %id))]
pub async fn find(pool: &PgPool, id: TicketId) -> Result<Option<Ticket>, StoreError> {
    let row = sqlx::query_as(select_tickets!("WHERE t.id = $1")).bind(id).fetch_optional(pool).await?;
    row.map(to_ticket).transpose()
}

/// Reads the ticket of `order_id`, if the kitchen has one.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(level = "debug", skip_all, fields(order_id = %order_id))]
pub async fn find_by_order<'e>(executor: impl PgExecutor<'e>, order_id: OrderId) -> Result<Option<Ticket>, StoreError> {
    let row = sqlx::query_as(select_tickets!("WHERE t.order_id = $1")).bind(order_id).fetch_optional(executor).await?;
    row.map(to_ticket).transpose()
}

/// [`find_by_order`], locking the ticket's row until the transaction ends:
/// how a command about an order finds the ticket it changes.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(level = "debug", skip_all, fields(order_id = %order_id))]
pub async fn lock_by_order(tx: &mut PgConnection, order_id: OrderId) -> Result<Option<Ticket>, StoreError> {
    let row = sqlx::query_as(select_tickets!("WHERE t.order_id = $1 FOR UPDATE OF t"))
        .bind(order_id)
        .fetch_optional(tx)
        .await?;
    row.map(to_ticket).transpose()
}

/// One page of tickets, oldest first: those in `status`, or every
/// [active](TicketStatus::is_active) one when `status` is `None`; with a
/// `station`, only the tickets with at least one line for it (each listed
/// with all its lines).
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(level = "debug", skip_all, fields(status = ?status, station = ?station))]
pub async fn list(
    pool: &PgPool,
    status: Option<TicketStatus>,
    station: Option<&str>,
    page: Page,
) -> Result<Vec<Ticket>, StoreError> {
    let statuses: Vec<&str> = match status {
        Some(status) => vec![status.as_str()],
        None => TicketStatus::ALL.into_iter().filter(|status| status.is_active()).map(TicketStatus::as_str).collect(),
    };
    let rows: Vec<TicketRow> = sqlx::query_as(select_tickets!(
        "WHERE t.status = ANY($1)
           AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM ticket_lines s WHERE s.ticket_id = t.id AND s.station = $2))
         ORDER BY t.created_at, t.id LIMIT $3 OFFSET $4"
    ))
    .bind(statuses)
    .bind(station)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(to_ticket).collect()
}

/// Locks up to `limit` tickets that are [overdue](Ticket::is_overdue) at
/// `now` and not yet announced, longest overdue first, skipping those another
/// transaction holds: several sweepers share the work without waiting for
/// each other.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(level = "debug", skip_all, fields(limit))]
pub async fn lock_overdue(tx: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Ticket>, StoreError> {
    let rows: Vec<TicketRow> = sqlx::query_as(select_tickets!(
        "WHERE t.status IN ('accepted', 'preparing') AND NOT t.overdue_notified AND t.ready_by < $1
         ORDER BY t.ready_by, t.id LIMIT $2
         FOR UPDATE OF t SKIP LOCKED"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    rows.into_iter().map(to_ticket).collect()
}

/// Records what a menu event of version `version` of menu `menu_id` says of
/// an item. Only a newer version than the one recorded changes it, so
/// duplicates and out-of-order deliveries converge on the newest; returns
/// whether it changed.
///
/// # Errors
/// PostgreSQL failed.
#[tracing::instrument(level = "debug", skip_all, fields(menu_item_id = %menu_item_id, version))]
pub async fn record_item_seen(
    tx: &mut PgConnection,
    menu_item_id: MenuItemId,
    menu_id: MenuId,
    name: &str,
    category: &str,
    version: i64,
) -> Result<bool, StoreError> {
    let written = sqlx::query(
        "INSERT INTO menu_items_seen AS seen (menu_item_id, menu_id, name, category, name_version)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (menu_item_id) DO UPDATE SET
             menu_id = EXCLUDED.menu_id, name = EXCLUDED.name, category = EXCLUDED.category,
             name_version = EXCLUDED.name_version
         WHERE seen.name_version < EXCLUDED.name_version",
    )
    .bind(menu_item_id)
    .bind(menu_id)
    .bind(name)
    .bind(category)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// The name and category of each of `ids` the kitchen has seen; items it has
/// not are absent.
///
/// # Errors
/// PostgreSQL failed.
#[tracing::instrument(level = "debug", skip_all, fields(items = ids.len()))]
pub async fn items_seen<'e>(
    executor: impl PgExecutor<'e>,
    ids: &[MenuItemId],
) -> Result<HashMap<MenuItemId, SeenItem>, StoreError> {
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT menu_item_id, name, category FROM menu_items_seen WHERE menu_item_id = ANY($1)")
            .bind(ids)
            .fetch_all(executor)
            .await?;
    Ok(rows.into_iter().map(|(id, name, category)| (id.into(), SeenItem { name, category })).collect())
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: Uuid,
    order_id: Uuid,
    status: String,
    ready_by: Option<DateTime<Utc>>,
    reject_reason: Option<String>,
    overdue_notified: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    lines: Json<Vec<LineRow>>,
}

#[derive(serde::Deserialize)]
struct LineRow {
    line: i64,
    menu_item_id: Uuid,
    name: Option<String>,
    quantity: i32,
    station: String,
    notes: Option<String>,
    known: bool,
    done: bool,
}

fn to_ticket(row: TicketRow) -> Result<Ticket, StoreError> {
    let id = row.id;
    assemble(row).map_err(|detail| StoreError::Corrupt { entity: "ticket", id, detail })
}

fn assemble(row: TicketRow) -> Result<Ticket, String> {
    let text = |e: service_kit::values::ValueError| e.0;
    let lines = row
        .lines
        .0
        .into_iter()
        .map(|line| {
            Ok(Line {
                line: u32::try_from(line.line).map_err(|_| format!("line number {}", line.line))?,
                menu_item_id: line.menu_item_id.into(),
                name: line.name,
                quantity: Quantity::try_from(line.quantity).map_err(text)?,
                station: line.station,
                notes: line.notes.map(Notes::try_from).transpose().map_err(text)?,
                known: line.known,
                done: line.done,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Ticket {
        id: row.id.into(),
        order_id: row.order_id.into(),
        status: TicketStatus::parse(&row.status).ok_or_else(|| format!("unknown status {:?}", row.status))?,
        lines,
        ready_by: row.ready_by,
        reject_reason: row.reject_reason.map(RejectReason::try_from).transpose().map_err(text)?,
        overdue_notified: row.overdue_notified,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
