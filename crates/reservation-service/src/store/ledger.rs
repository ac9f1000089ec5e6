//! The seat ledger: seats taken in each 5-minute grain of time, with the
//! restaurant's capacity on every row and `CHECK (seats_taken <= capacity)`.
//!
//! A stay touches the grains from its start up to (not including) its end;
//! taking or giving back seats locks those rows in time order, so two
//! bookings never wait for each other crosswise and PostgreSQL itself
//! refuses to overbook, across any number of instances. Rows are made ahead
//! for the booking horizon ([`extend`]); a grain that has no row yet cannot
//! be booked.

use crate::domain::{GRAIN_MINUTES, Phone};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

/// The grain's length.
pub fn grain() -> TimeDelta {
    TimeDelta::minutes(i64::from(GRAIN_MINUTES))
}

/// How many grains a stay from `starts_at` to `ends_at` touches.
pub fn grains(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> i64 {
    let grain = grain().num_microseconds().unwrap_or(i64::MAX);
    let first = starts_at.timestamp_micros().div_euclid(grain);
    let last = (ends_at.timestamp_micros() - 1).div_euclid(grain);
    (last - first + 1).max(0)
}

/// What taking seats for a stay found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taking {
    /// Seats free at the stay's busiest grain before this booking.
    pub free: i64,
    /// Whether the seats were taken: the party fit every grain, and every grain had a row.
    pub taken: bool,
    /// Whether a grain of the stay has no row (beyond what [`extend`] made).
    pub missing: bool,
    /// The guest's upcoming bookings, this one included.
    pub upcoming: i64,
    /// The version of the restaurant's rules, to check the ones decided with.
    pub rules_version: i64,
}

/// Who is booking, to count their upcoming bookings: the contacts as the
/// indexes keep them.
#[derive(Debug, Clone, Copy)]
pub struct Contacts<'a> {
    /// The email address.
    pub email: Option<&'a str>,
    /// The phone number.
    pub phone: Option<&'a Phone>,
}

/// Takes `party` seats in every grain from `starts_at` to `ends_at` if
/// every one has them free; in the same statement counts the guest's
/// upcoming bookings (those starting after `now`) and reads the rules'
/// version. Nothing is taken when one grain is short.
///
/// # Errors
/// PostgreSQL failed.
pub async fn take(
    tx: &mut PgConnection,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    party: i32,
    guest: Contacts<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<Taking> {
    let (grains_found, free, updated, upcoming, rules_version): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "WITH span AS (
             SELECT grain_start, capacity - seats_taken AS free FROM seat_ledger
             WHERE grain_start >= $1 AND grain_start < $2
             ORDER BY grain_start FOR UPDATE
         ), verdict AS (
             SELECT count(*) AS grains, COALESCE(min(free), 0)::int8 AS free FROM span
         ), taken AS (
             UPDATE seat_ledger SET seats_taken = seat_ledger.seats_taken + $3
             FROM span, verdict
             WHERE seat_ledger.grain_start = span.grain_start AND verdict.free >= $3 AND verdict.grains = $4
               AND seat_ledger.grain_start >= $1 AND seat_ledger.grain_start < $2
             RETURNING 1
         )
         SELECT verdict.grains, verdict.free, (SELECT count(*) FROM taken),
                (SELECT count(*) FROM reservations
                 WHERE status IN ('pending', 'confirmed') AND starts_at > $7
                   AND (lower(guest_email) = lower($5) OR regexp_replace(guest_phone, '[^0-9]', '', 'g') = $6)),
                (SELECT version FROM restaurant)
         FROM verdict",
    )
    .bind(starts_at)
    .bind(ends_at)
    .bind(party)
    .bind(grains(starts_at, ends_at))
    .bind(guest.email)
    .bind(guest.phone.map(Phone::digits))
    .bind(now)
    .fetch_one(tx)
    .await?;
    let expected = grains(starts_at, ends_at);
    Ok(Taking { free, taken: updated == expected, missing: grains_found < expected, upcoming, rules_version })
}

/// Gives `party` seats back in every grain from `starts_at` to `ends_at`,
/// locking them in time order.
///
/// # Errors
/// PostgreSQL failed (or the ledger would go below zero: it is corrupt).
pub async fn release(
    tx: &mut PgConnection,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    party: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH span AS (
             SELECT grain_start FROM seat_ledger WHERE grain_start >= $1 AND grain_start < $2
             ORDER BY grain_start FOR UPDATE
         )
         UPDATE seat_ledger SET seats_taken = seat_ledger.seats_taken - $3
         FROM span WHERE seat_ledger.grain_start = span.grain_start
           AND seat_ledger.grain_start >= $1 AND seat_ledger.grain_start < $2",
    )
    .bind(starts_at)
    .bind(ends_at)
    .bind(party)
    .execute(tx)
    .await?;
    Ok(())
}

/// Makes the rows from the grain of `from` up to `until` that do not exist
/// yet, with `capacity`; returns how many. Only the grains past the last row
/// are generated, so running it again (every start, every upkeep) costs the
/// new rows, not the whole horizon.
///
/// # Errors
/// PostgreSQL failed.
pub async fn extend(
    tx: &mut PgConnection,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    capacity: i32,
) -> sqlx::Result<u64> {
    let grain_seconds = i64::from(GRAIN_MINUTES) * 60;
    let first = DateTime::from_timestamp(from.timestamp().div_euclid(grain_seconds) * grain_seconds, 0).unwrap_or(from);
    let made = sqlx::query(
        "INSERT INTO seat_ledger (grain_start, capacity)
         SELECT grain, $3
         FROM generate_series(GREATEST($1::timestamptz,
                                       (SELECT max(grain_start) + make_interval(mins => $4) FROM seat_ledger)),
                              $2::timestamptz, make_interval(mins => $4)) AS grain
         ON CONFLICT (grain_start) DO NOTHING",
    )
    .bind(first)
    .bind(until)
    .bind(capacity)
    .bind(i32::from(GRAIN_MINUTES))
    .execute(tx)
    .await?;
    Ok(made.rows_affected())
}

/// Drops the rows of grains that ended before `before`: nothing books the past.
///
/// # Errors
/// PostgreSQL failed.
pub async fn prune(tx: &mut PgConnection, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let pruned = sqlx::query("DELETE FROM seat_ledger WHERE grain_start < $1").bind(before).execute(tx).await?;
    Ok(pruned.rows_affected())
}

/// Sets the seats of every grain from `from` on. Refused, changing nothing,
/// when a grain already has more seats taken: the busiest such grain and its
/// seats taken. The rows are locked in time order first, so no booking
/// slips in between the check and the change.
///
/// # Errors
/// PostgreSQL failed.
pub async fn set_capacity(
    tx: &mut PgConnection,
    from: DateTime<Utc>,
    seats: i32,
) -> sqlx::Result<Result<(), (DateTime<Utc>, i32)>> {
    let busiest: Option<(DateTime<Utc>, i32)> = sqlx::query_as(
        "WITH locked AS (
             SELECT grain_start, seats_taken FROM seat_ledger WHERE grain_start >= $1
             ORDER BY grain_start FOR UPDATE
         )
         SELECT grain_start, seats_taken FROM locked WHERE seats_taken > $2
         ORDER BY seats_taken DESC, grain_start LIMIT 1",
    )
    .bind(from)
    .bind(seats)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(busiest) = busiest {
        return Ok(Err(busiest));
    }
    sqlx::query("UPDATE seat_ledger SET capacity = $2 WHERE grain_start >= $1 AND capacity <> $2")
        .bind(from)
        .bind(seats)
        .execute(tx)
        .await?;
    Ok(Ok(()))
}

/// Counts the seats of every grain again from the reservations that hold
/// seats: for a ledger made after the reservations were. Each reservation's
/// grains are listed once (a few per stay), so this costs the bookings, not
/// the bookings times the grains.
///
/// # Errors
/// PostgreSQL failed, or a grain would be over capacity.
pub async fn recount(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query(
        "WITH taken AS (
             SELECT grain, SUM(party_size)::int4 AS seats
             FROM reservations,
                  generate_series(date_bin(make_interval(mins => $1), starts_at, TIMESTAMPTZ 'epoch'),
                                  ends_at - interval '1 microsecond', make_interval(mins => $1)) AS grain
             WHERE status IN ('pending', 'confirmed', 'seated')
             GROUP BY grain
         ), counted AS (
             SELECT l.grain_start, COALESCE(taken.seats, 0) AS seats
             FROM seat_ledger l LEFT JOIN taken ON taken.grain = l.grain_start
         )
         UPDATE seat_ledger SET seats_taken = counted.seats
         FROM counted
         WHERE seat_ledger.grain_start = counted.grain_start AND seat_ledger.seats_taken <> counted.seats",
    )
    .bind(i32::from(GRAIN_MINUTES))
    .execute(tx)
    .await?;
    Ok(())
}

/// Seats free in each grain from `from` to `until`, in time order; grains
/// without a row are left out.
///
/// # Errors
/// PostgreSQL failed.
pub async fn free_seats<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<Vec<(DateTime<Utc>, i64)>> {
    sqlx::query_as(
        "SELECT grain_start, (capacity - seats_taken)::int8 FROM seat_ledger
         WHERE grain_start >= $1 AND grain_start < $2 ORDER BY grain_start",
    )
    .bind(from)
    .bind(until)
    .fetch_all(executor)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stay_touches_every_grain_it_overlaps() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc));
        let (Ok(noon), Ok(later)) = (at("2026-07-01T12:00:00Z"), at("2026-07-01T13:30:00Z")) else { panic!("times") };
        assert_eq!(grains(noon, later), 18);
        assert_eq!(grains(noon, later + TimeDelta::minutes(1)), 19);
        assert_eq!(grains(noon, noon + TimeDelta::minutes(5)), 1);
    }
}
