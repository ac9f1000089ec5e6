//! The reservation tables: whole aggregates in and out with their status
//! history; the seat ledger that keeps the restaurant from being
//! overbooked ([`ledger`]); the restaurant's rules ([`rules`]).

pub mod ledger;
pub mod rules;

use crate::domain::{
    CancelReason, Duration, Email, Guest, GuestName, ItemProblem, Notes, PartySize, Phone, PreOrderLine, Quantity,
    Reservation, ReservationStatus, StatusChange,
};
use chrono::{DateTime, Utc};
use events::{MenuItemId, ReservationId};
use service_kit::database::StoreError;
use service_kit::values::Page;
use service_kit::write::Aggregate;
use sqlx::{PgConnection, PgExecutor, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

/// The keys of a guest's booking locks: each contact as the indexes keep it
/// (email lower-cased, phone as its digits).
fn guest_lock_keys(guest: &Guest) -> Vec<String> {
    let mut contacts: Vec<String> =
        guest.email.iter().map(|email| format!("email:{}", email.as_str().to_lowercase())).collect();
    if let Some(phone) = &guest.phone {
        contacts.push(format!("phone:{}", phone.digits()));
    }
    contacts
}

/// Inserts a new reservation, its first status and its pre-order.
///
/// The statement first serializes the bookings of one guest: it takes a
/// transaction-scoped lock on each of their contacts, in a fixed order and
/// namespaced by the schema, so that two bookings by the same guest cannot
/// both pass the limit of upcoming bookings, which a later statement counts
/// (one that sees what committed while this one waited).
///
/// # Errors
/// PostgreSQL failed.
pub async fn insert(
    tx: &mut PgConnection,
    reservation: &Reservation,
    manage_token_hash: &[u8; 32],
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH guest_locked AS (
             SELECT count(*) FROM (
                 SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext(contact))
                 FROM unnest($17::text[]) AS contact ORDER BY hashtext(contact)
             ) AS locks
         ), booked AS (
             INSERT INTO reservations (id, guest_name, guest_email, guest_phone, party_size, starts_at, ends_at, notes,
                                       status, cancel_reason, version, created_at, updated_at, manage_token_hash,
                                       expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM guest_locked
             RETURNING id, version, status, created_at
         )
         INSERT INTO reservation_history (reservation_id, version, status, actor, at)
         SELECT id, version, status, $16, created_at FROM booked",
    )
    .bind(reservation.id)
    .bind(reservation.guest.name.as_str())
    .bind(reservation.guest.email.as_ref().map(Email::as_str))
    .bind(reservation.guest.phone.as_ref().map(Phone::as_str))
    .bind(i32::from(reservation.party_size.get()))
    .bind(reservation.starts_at)
    .bind(reservation.ends_at())
    .bind(reservation.notes.as_ref().map(Notes::as_str))
    .bind(reservation.status.as_str())
    .bind(reservation.cancel_reason.as_ref().map(CancelReason::as_str))
    .bind(reservation.version)
    .bind(reservation.created_at)
    .bind(reservation.updated_at)
    .bind(&manage_token_hash[..])
    .bind(reservation.expires_at)
    .bind(reservation.history.first().map_or("guest", |change| change.actor.as_str()))
    .bind(guest_lock_keys(&reservation.guest))
    .execute(&mut *tx)
    .await?;
    if reservation.pre_order.is_empty() {
        return Ok(());
    }
    let lines = &reservation.pre_order;
    sqlx::query(
        "INSERT INTO pre_order_lines (reservation_id, position, menu_item_id, quantity)
         SELECT $1, position, menu_item_id, quantity
         FROM UNNEST($2::int4[], $3::uuid[], $4::int4[]) AS l(position, menu_item_id, quantity)",
    )
    .bind(reservation.id)
    .bind((0..).take(lines.len()).collect::<Vec<i32>>())
    .bind(lines.iter().map(|line| line.menu_item_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| i32::try_from(line.quantity.get()).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Writes a status change back, with its entry in the history (the last one
/// [`Reservation::record`] added).
///
/// # Errors
/// PostgreSQL failed.
pub async fn update_status(tx: &mut PgConnection, reservation: &Reservation) -> Result<(), StoreError> {
    let change = reservation.history.last();
    sqlx::query(
        "WITH changed AS (
             UPDATE reservations SET status = $2, cancel_reason = $3, version = $4, updated_at = $5 WHERE id = $1
             RETURNING id
         )
         INSERT INTO reservation_history (reservation_id, version, status, actor, at)
         SELECT id, $4, $2, $6, $7 FROM changed WHERE $6::text IS NOT NULL",
    )
    .bind(reservation.id)
    .bind(reservation.status.as_str())
    .bind(reservation.cancel_reason.as_ref().map(CancelReason::as_str))
    .bind(reservation.version)
    .bind(reservation.updated_at)
    .bind(change.map(|change| change.actor.as_str()))
    .bind(change.map_or(reservation.updated_at, |change| change.at))
    .execute(tx)
    .await?;
    Ok(())
}

/// The pending reservations due to expire at `now` that no other
/// transaction holds, locked, at most `limit`.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn lock_due_for_expiry(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Reservation>, StoreError> {
    let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reservations WHERE status = 'pending' AND expires_at <= $1
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    assemble(rows, tx).await
}

/// The stays of upcoming reservations that hold seats and start after `now`,
/// for checking a schedule change against them: id, start, duration.
///
/// # Errors
/// PostgreSQL failed.
pub async fn upcoming_stays(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT id, starts_at, ends_at FROM reservations
         WHERE status IN ('pending', 'confirmed') AND starts_at > $1 ORDER BY starts_at, id",
    )
    .bind(now)
    .fetch_all(tx)
    .await
}

const COLUMNS: &str = "id, guest_name, guest_email, guest_phone, party_size, starts_at, ends_at, notes, status,
                       cancel_reason, version, created_at, updated_at, expires_at";

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: Uuid,
    guest_name: String,
    guest_email: Option<String>,
    guest_phone: Option<String>,
    party_size: i32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    notes: Option<String>,
    status: String,
    cancel_reason: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Aggregate for Reservation {
    type Id = ReservationId;
    type Event = events::ReservationEvent;
    const KIND: &'static str = "reservation";

    service_kit::aggregate_fields!();

    async fn lock(tx: &mut PgConnection, id: ReservationId) -> Result<Option<Self>, StoreError> {
        lock(tx, id).await
    }

    async fn update(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        update_status(tx, self).await
    }
}

/// Loads a reservation and locks its row until the transaction ends, so that
/// concurrent changes of one reservation happen one after another.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn lock(tx: &mut PgConnection, id: ReservationId) -> Result<Option<Reservation>, StoreError> {
    let row: Option<ReservationRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM reservations WHERE id = $1 FOR UPDATE")))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(assemble(row.into_iter().collect(), tx).await?.pop())
}

/// Reads a reservation.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn find(pool: &PgPool, id: ReservationId) -> Result<Option<Reservation>, StoreError> {
    let mut connection = pool.acquire().await?;
    let row: Option<ReservationRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM reservations WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(assemble(row.into_iter().collect(), &mut connection).await?.pop())
}

/// Which reservations a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Only this status.
    pub status: Option<ReservationStatus>,
    /// Only those starting at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Only those starting before this.
    pub to: Option<DateTime<Utc>>,
}

/// One page of reservations in order of their start.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
pub async fn list(pool: &PgPool, filter: Filter, page: Page) -> Result<Vec<Reservation>, StoreError> {
    let mut connection = pool.acquire().await?;
    let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reservations
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::timestamptz IS NULL OR starts_at >= $2)
           AND ($3::timestamptz IS NULL OR starts_at < $3)
         ORDER BY starts_at, id LIMIT $4 OFFSET $5"
    )))
    .bind(filter.status.map(ReservationStatus::as_str))
    .bind(filter.from)
    .bind(filter.to)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&mut *connection)
    .await?;
    assemble(rows, &mut connection).await
}

#[derive(sqlx::FromRow)]
struct LineRow {
    reservation_id: Uuid,
    menu_item_id: Uuid,
    quantity: i32,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    reservation_id: Uuid,
    status: String,
    actor: String,
    at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ProblemRow {
    reservation_id: Uuid,
    menu_item_id: Uuid,
    reason: String,
    detected_at: DateTime<Utc>,
}

/// Turns reservation rows into reservations, reading their pre-orders and
/// problems in one query each.
async fn assemble(rows: Vec<ReservationRow>, connection: &mut PgConnection) -> Result<Vec<Reservation>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let lines: Vec<LineRow> = fetch_for(
        "SELECT reservation_id, menu_item_id, quantity FROM pre_order_lines
         WHERE reservation_id = ANY($1) ORDER BY reservation_id, position",
        &ids,
        &mut *connection,
    )
    .await?;
    let problems: Vec<ProblemRow> = fetch_for(
        "SELECT reservation_id, menu_item_id, reason, detected_at FROM reservation_problems
         WHERE reservation_id = ANY($1) ORDER BY reservation_id, detected_at, menu_item_id",
        &ids,
        &mut *connection,
    )
    .await?;
    let history: Vec<HistoryRow> = fetch_for(
        "SELECT reservation_id, status, actor, at FROM reservation_history
         WHERE reservation_id = ANY($1) ORDER BY reservation_id, version",
        &ids,
        connection,
    )
    .await?;
    let mut history_of: HashMap<Uuid, Vec<HistoryRow>> = HashMap::new();
    for change in history {
        history_of.entry(change.reservation_id).or_default().push(change);
    }
    let mut lines_of: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
    for line in lines {
        lines_of.entry(line.reservation_id).or_default().push(line);
    }
    let mut problems_of: HashMap<Uuid, Vec<ProblemRow>> = HashMap::new();
    for problem in problems {
        problems_of.entry(problem.reservation_id).or_default().push(problem);
    }
    rows.into_iter()
        .map(|row| {
            let id = row.id;
            let lines = lines_of.remove(&id).unwrap_or_default();
            let problems = problems_of.remove(&id).unwrap_or_default();
            let history = history_of.remove(&id).unwrap_or_default();
            to_reservation(row, lines, problems, history).map_err(|detail| StoreError::Corrupt {
                entity: "reservation",
                id,
                detail,
            })
        })
        .collect()
}

async fn fetch_for<'e, T>(sql: &'static str, ids: &[Uuid], executor: impl PgExecutor<'e>) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql).bind(ids).fetch_all(executor).await
}

fn to_reservation(
    row: ReservationRow,
    lines: Vec<LineRow>,
    problems: Vec<ProblemRow>,
    history: Vec<HistoryRow>,
) -> Result<Reservation, String> {
    let text = |e: service_kit::values::ValueError| e.0;
    let minutes = (row.ends_at - row.starts_at).num_minutes();
    let guest = Guest {
        name: GuestName::try_from(row.guest_name).map_err(text)?,
        email: row.guest_email.map(Email::try_from).transpose().map_err(text)?,
        phone: row.guest_phone.map(Phone::try_from).transpose().map_err(text)?,
    };
    Ok(Reservation {
        id: row.id.into(),
        guest,
        party_size: PartySize::new(i64::from(row.party_size), u16::MAX).map_err(text)?,
        starts_at: row.starts_at,
        duration: Duration::try_from(minutes).map_err(text)?,
        notes: row.notes.map(Notes::try_from).transpose().map_err(text)?,
        pre_order: lines
            .into_iter()
            .map(|line| {
                Ok(PreOrderLine {
                    menu_item_id: MenuItemId::from(line.menu_item_id),
                    quantity: Quantity::try_from(i64::from(line.quantity)).map_err(text)?,
                })
            })
            .collect::<Result<_, String>>()?,
        status: ReservationStatus::parse(&row.status).ok_or_else(|| format!("unknown status {:?}", row.status))?,
        cancel_reason: row.cancel_reason.map(CancelReason::try_from).transpose().map_err(text)?,
        problems: problems
            .into_iter()
            .map(|problem| ItemProblem {
                menu_item_id: problem.menu_item_id.into(),
                reason: problem.reason,
                detected_at: problem.detected_at,
            })
            .collect(),
        expires_at: row.expires_at,
        history: history
            .into_iter()
            .map(|change| {
                let status = ReservationStatus::parse(&change.status)
                    .ok_or_else(|| format!("unknown status {:?} in the history", change.status))?;
                Ok(StatusChange { status, actor: change.actor, at: change.at })
            })
            .collect::<Result<_, String>>()?,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// The hash of reservation `id`'s manage token: `None` if there is no such
/// reservation, `Some(None)` if it has no manage token.
///
/// # Errors
/// The database failed.
pub async fn manage_token_hash(pool: &PgPool, id: ReservationId) -> Result<Option<Option<Vec<u8>>>, StoreError> {
    let hash = sqlx::query_scalar("SELECT manage_token_hash FROM reservations WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(hash)
}
