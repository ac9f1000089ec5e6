//! `GET /api/v1/availability`: the day's bookable slots with the seats left,
//! from the rules and the seat ledger the booking check itself uses.

use crate::error::Error;
use crate::service::Reservations;
use crate::store::ledger;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use service_kit::database::StoreError;
use service_kit::extract::{Json, Query};
use service_kit::values::FieldError;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AvailabilityQuery {
    /// The day, in the restaurant's time zone.
    #[param(value_type = String, format = Date, example = "2026-12-24")]
    date: NaiveDate,
    /// Guests: only slots with this many seats left for the whole stay are shown.
    #[param(minimum = 1, example = 4)]
    party_size: u16,
    /// Minutes of the stay, 15 to 480; the restaurant's default if left out.
    #[param(minimum = 15, maximum = 480)]
    duration_minutes: Option<u16>,
}

/// A start a party of that size can book.
#[derive(Debug, Serialize, ToSchema)]
struct Slot {
    starts_at: DateTime<Utc>,
    /// Seats free at the busiest moment of the stay from this start.
    seats_left: i64,
}

/// The day's bookable slots.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Availability {
    #[schema(value_type = String, format = Date)]
    date: NaiveDate,
    /// The zone `date` is in.
    #[schema(example = "Europe/Rome")]
    time_zone: String,
    /// Minutes of the stay the slots were checked for.
    duration_minutes: u32,
    /// In time order; empty when the restaurant is closed or full.
    slots: Vec<Slot>,
}

#[utoipa::path(get, path = "/api/v1/availability", tag = "availability", params(AvailabilityQuery), responses(
    (status = 200, description = "The day's slots a party of that size can book now, with the seats left", body = Availability),
    (status = 422, description = "The party is larger than the restaurant takes online, or the duration is out of range", body = service_kit::Problem, content_type = "application/problem+json"),
))]
pub(super) async fn availability(
    State(reservations): State<Reservations>,
    Query(query): Query<AvailabilityQuery>,
) -> Result<Json<Availability>, Error> {
    let current = reservations.refresh_rules().await?;
    let rules = &current.rules;
    if query.party_size == 0 || query.party_size > rules.max_party_size {
        let detail = format!("must be between 1 and {}, the largest party taken online", rules.max_party_size);
        return Err(FieldError::new("party_size", detail).into());
    }
    let duration = match query.duration_minutes {
        Some(minutes) => crate::domain::Duration::try_from(i64::from(minutes))
            .map_err(|source| FieldError { field: "duration_minutes".to_owned(), source })?,
        None => rules.default_duration,
    };
    let now = reservations.clock().now();
    let stay = duration.as_chrono();
    let starts: Vec<DateTime<Utc>> = rules
        .schedule
        .slots(query.date, stay)
        .into_iter()
        .filter(|start| *start >= now + rules.lead_time && *start <= now + rules.horizon)
        .collect();
    let slots = match (starts.first(), starts.last()) {
        (Some(first), Some(last)) => {
            let free = ledger::free_seats(reservations.pool(), *first, *last + stay).await.map_err(StoreError::from)?;
            let seats = i64::from(rules.seats);
            starts
                .iter()
                .map(|start| Slot { starts_at: *start, seats_left: seats_left(&free, *start, *start + stay, seats) })
                .filter(|slot| slot.seats_left >= i64::from(query.party_size))
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(Json(Availability {
        date: query.date,
        time_zone: rules.schedule.time_zone.name().to_owned(),
        duration_minutes: duration.minutes(),
        slots,
    }))
}

/// The fewest seats free in any grain from `starts_at` to `ends_at`, given
/// the ledger's grains in time order; a grain without a row yet has all
/// `seats` (a booking makes its row).
fn seats_left(free: &[(DateTime<Utc>, i64)], starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, seats: i64) -> i64 {
    let from = free.partition_point(|(grain, _)| *grain < starts_at);
    free[from..].iter().take_while(|(grain, _)| *grain < ends_at).map(|(_, free)| *free).min().unwrap_or(seats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn the_seats_left_are_those_of_the_busiest_grain_of_the_stay() {
        let noon = DateTime::from_timestamp(1_782_907_200, 0).unwrap_or_default();
        let grain = |n: i64| noon + TimeDelta::minutes(5 * n);
        let free = vec![(grain(0), 10), (grain(1), 4), (grain(2), 7), (grain(3), 9)];
        assert_eq!(seats_left(&free, grain(0), grain(2), 40), 4);
        assert_eq!(seats_left(&free, grain(2), grain(4), 40), 7);
        assert_eq!(seats_left(&free, grain(3), grain(6), 40), 9);
        assert_eq!(seats_left(&free, grain(10), grain(12), 40), 40);
    }
}
