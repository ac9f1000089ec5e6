//! The reservation aggregate: what a booking must satisfy, and the one
//! function that decides which status changes are allowed.

use super::values::{CancelReason, Duration, Email, GuestName, Notes, PartySize, Phone, Quantity};
use chrono::{DateTime, TimeDelta, Utc};
use events::reservation::PreOrderLine as EventLine;
use events::{MenuItemId, ReservationEvent, ReservationId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Where a reservation is in its life: `pending` → `confirmed` → `completed`,
/// and `pending`/`confirmed` → `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    /// Booked; the restaurant has not confirmed it yet. Holds its seats.
    Pending,
    /// Confirmed by the restaurant. Holds its seats.
    Confirmed,
    /// The party came and left.
    Completed,
    /// Called off; its seats are free.
    Cancelled,
}

impl ReservationStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Confirmed, Self::Completed, Self::Cancelled];

    /// The name used in JSON and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the database form.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }

    /// Whether a reservation in this status keeps its seats.
    pub const fn holds_seats(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status change someone asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The restaurant accepts the booking.
    Confirm,
    /// The booking is called off.
    Cancel,
    /// The party came and left.
    Complete,
}

/// The reservation's status rules, in one place. `Ok(None)` means it is
/// already there: nothing changes and no event is published.
///
/// # Errors
/// [`DomainError::InvalidTransition`] for a change the status does not allow.
pub fn transition(from: ReservationStatus, requested: Transition) -> Result<Option<ReservationStatus>, DomainError> {
    use ReservationStatus::{Cancelled, Completed, Confirmed, Pending};
    let refuse = |detail| Err(DomainError::InvalidTransition { from, detail });
    match (from, requested) {
        (Pending, Transition::Confirm) => Ok(Some(Confirmed)),
        (Pending | Confirmed, Transition::Cancel) => Ok(Some(Cancelled)),
        (Confirmed, Transition::Complete) => Ok(Some(Completed)),
        (Confirmed, Transition::Confirm) | (Cancelled, Transition::Cancel) | (Completed, Transition::Complete) => {
            Ok(None)
        }
        (Pending, Transition::Complete) => refuse("confirm it before completing it"),
        (Completed, Transition::Confirm | Transition::Cancel) => refuse("it is over and cannot change"),
        (Cancelled, Transition::Confirm | Transition::Complete) => refuse("a cancelled reservation cannot be revived"),
    }
}

/// What the domain refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Neither an email address nor a phone number. HTTP 422.
    #[error("give guest_email, guest_phone or both so that the restaurant can reach the guest")]
    NoContact,
    /// The start is not in the future. HTTP 422.
    #[error("the reservation must start in the future")]
    StartsInThePast,
    /// The start is beyond the booking horizon. HTTP 422.
    #[error("reservations open {0} days ahead")]
    BeyondHorizon(i64),
    /// An item appears twice in the pre-order. HTTP 422.
    #[error("item {0} is pre-ordered twice; give each item once with its quantity")]
    DuplicatePreOrder(MenuItemId),
    /// More pre-order lines than [`Booking::MAX_PRE_ORDER_LINES`]. HTTP 422.
    #[error("a pre-order holds at most {} items", Booking::MAX_PRE_ORDER_LINES)]
    TooManyPreOrderLines,
    /// The party is larger than the restaurant. HTTP 409.
    #[error("the restaurant has {seats} seats; a party of {party} cannot be seated")]
    PartyExceedsRestaurant {
        /// The party size asked for.
        party: u16,
        /// The restaurant's seats.
        seats: u32,
    },
    /// The status does not allow the change. HTTP 409.
    #[error("the reservation is {from}: {detail}")]
    InvalidTransition {
        /// The status the reservation is in.
        from: ReservationStatus,
        /// Why the change is refused.
        detail: &'static str,
    },
}

/// The restaurant's booking rules, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingPolicy {
    /// Seats in the restaurant: the most guests seated at any moment.
    pub seats: u32,
    /// The largest party taken online.
    pub largest_party: u16,
    /// How long a table is held when the guest does not say.
    pub default_duration: Duration,
    /// How far ahead bookings open.
    pub horizon: TimeDelta,
}

/// Who booked and how to reach them: an email address, a phone number or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// The name the table is booked under.
    pub name: GuestName,
    /// Email contact.
    pub email: Option<Email>,
    /// Phone contact.
    pub phone: Option<Phone>,
}

impl Guest {
    /// A guest with at least one way to reach them.
    ///
    /// # Errors
    /// [`DomainError::NoContact`] when both are missing.
    pub fn new(name: GuestName, email: Option<Email>, phone: Option<Phone>) -> Result<Self, DomainError> {
        if email.is_none() && phone.is_none() {
            return Err(DomainError::NoContact);
        }
        Ok(Self { name, email, phone })
    }
}

/// One pre-ordered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreOrderLine {
    /// The menu item.
    pub menu_item_id: MenuItemId,
    /// How many.
    pub quantity: Quantity,
}

/// A pre-ordered item the kitchen can no longer serve, found when menu events
/// re-validated the reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemProblem {
    /// The item.
    pub menu_item_id: MenuItemId,
    /// Why it cannot be served.
    pub reason: String,
    /// When this was noticed.
    pub detected_at: DateTime<Utc>,
}

/// A booking request whose fields are each valid; [`Reservation::book`]
/// checks the rules that relate them to the clock and the restaurant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Who.
    pub guest: Guest,
    /// How many.
    pub party_size: PartySize,
    /// When they arrive.
    pub starts_at: DateTime<Utc>,
    /// How long; the policy's default if `None`.
    pub duration: Option<Duration>,
    /// Anything the restaurant should know.
    pub notes: Option<Notes>,
    /// Items ordered ahead, each once.
    pub pre_order: Vec<PreOrderLine>,
}

impl Booking {
    /// The most distinct items one reservation may pre-order.
    pub const MAX_PRE_ORDER_LINES: usize = 50;
}

/// A table reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub id: ReservationId,
    /// Who booked.
    pub guest: Guest,
    /// How many seats it holds.
    pub party_size: PartySize,
    /// When the seats are held from.
    pub starts_at: DateTime<Utc>,
    /// How long.
    pub duration: Duration,
    /// Notes for the restaurant.
    pub notes: Option<Notes>,
    /// Items ordered ahead.
    pub pre_order: Vec<PreOrderLine>,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// Why it was cancelled, once it is.
    pub cancel_reason: Option<CancelReason>,
    /// Pre-ordered items that can no longer be served.
    pub problems: Vec<ItemProblem>,
    /// Bumped by every change; the `ETag`.
    pub version: i64,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Reservation {
    /// Books a pending reservation at `now`, returning its `ReservationCreated`.
    /// Whether seats are free is the store's to decide, under its lock.
    ///
    /// # Errors
    /// The start is past or beyond the horizon, the party is larger than the
    /// restaurant, or the pre-order repeats an item or is too long.
    pub fn book(
        booking: Booking,
        policy: &BookingPolicy,
        now: DateTime<Utc>,
    ) -> Result<(Self, ReservationEvent), DomainError> {
        if booking.starts_at <= now {
            return Err(DomainError::StartsInThePast);
        }
        if booking.starts_at > now + policy.horizon {
            return Err(DomainError::BeyondHorizon(policy.horizon.num_days()));
        }
        if u32::from(booking.party_size.get()) > policy.seats {
            return Err(DomainError::PartyExceedsRestaurant { party: booking.party_size.get(), seats: policy.seats });
        }
        if booking.pre_order.len() > Booking::MAX_PRE_ORDER_LINES {
            return Err(DomainError::TooManyPreOrderLines);
        }
        let mut seen = HashSet::new();
        if let Some(line) = booking.pre_order.iter().find(|line| !seen.insert(line.menu_item_id)) {
            return Err(DomainError::DuplicatePreOrder(line.menu_item_id));
        }
        let reservation = Self {
            id: ReservationId::new(),
            guest: booking.guest,
            party_size: booking.party_size,
            starts_at: booking.starts_at,
            duration: booking.duration.unwrap_or(policy.default_duration),
            notes: booking.notes,
            pre_order: booking.pre_order,
            status: ReservationStatus::Pending,
            cancel_reason: None,
            problems: Vec::new(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let created = ReservationEvent::ReservationCreated {
            guest_name: reservation.guest.name.as_str().to_owned(),
            guest_email: reservation.guest.email.as_ref().map(|email| email.as_str().to_owned()),
            guest_phone: reservation.guest.phone.as_ref().map(|phone| phone.as_str().to_owned()),
            party_size: reservation.party_size.get(),
            starts_at: reservation.starts_at,
            duration_minutes: reservation.duration.minutes(),
            pre_order: reservation
                .pre_order
                .iter()
                .map(|line| EventLine { menu_item_id: line.menu_item_id, quantity: line.quantity.get() })
                .collect(),
        };
        Ok((reservation, created))
    }

    /// When the seats are free again.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.starts_at + self.duration.as_chrono()
    }

    /// Confirms it; `None` if it already is.
    ///
    /// # Errors
    /// The status does not allow it.
    pub fn confirm(&mut self) -> Result<Option<ReservationEvent>, DomainError> {
        Ok(self.apply(Transition::Confirm)?.then_some(ReservationEvent::ReservationConfirmed {}))
    }

    /// Cancels it for `reason`, freeing its seats; `None` if it already is
    /// (the first reason stays).
    ///
    /// # Errors
    /// The status does not allow it.
    pub fn cancel(&mut self, reason: CancelReason) -> Result<Option<ReservationEvent>, DomainError> {
        if !self.apply(Transition::Cancel)? {
            return Ok(None);
        }
        let event = ReservationEvent::ReservationCancelled { reason: reason.as_str().to_owned() };
        self.cancel_reason = Some(reason);
        Ok(Some(event))
    }

    /// Marks it completed; `None` if it already is.
    ///
    /// # Errors
    /// The status does not allow it.
    pub fn complete(&mut self) -> Result<Option<ReservationEvent>, DomainError> {
        Ok(self.apply(Transition::Complete)?.then_some(ReservationEvent::ReservationCompleted {}))
    }

    fn apply(&mut self, requested: Transition) -> Result<bool, DomainError> {
        let next = transition(self.status, requested)?;
        if let Some(status) = next {
            self.status = status;
        }
        Ok(next.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReservationStatus::{Cancelled, Completed, Confirmed, Pending};

    #[test]
    fn every_transition_is_allowed_refused_or_a_no_op_as_the_table_says() {
        let table = [
            (Pending, Transition::Confirm, Ok(Some(Confirmed))),
            (Pending, Transition::Cancel, Ok(Some(Cancelled))),
            (Pending, Transition::Complete, Err(())),
            (Confirmed, Transition::Confirm, Ok(None)),
            (Confirmed, Transition::Cancel, Ok(Some(Cancelled))),
            (Confirmed, Transition::Complete, Ok(Some(Completed))),
            (Completed, Transition::Confirm, Err(())),
            (Completed, Transition::Cancel, Err(())),
            (Completed, Transition::Complete, Ok(None)),
            (Cancelled, Transition::Confirm, Err(())),
            (Cancelled, Transition::Cancel, Ok(None)),
            (Cancelled, Transition::Complete, Err(())),
        ];
        for (from, requested, expected) in table {
            assert_eq!(transition(from, requested).map_err(drop), expected, "{from} + {requested:?}");
        }
    }

    fn policy() -> BookingPolicy {
        BookingPolicy {
            seats: 40,
            largest_party: 12,
            default_duration: Duration::try_from(90).unwrap_or_else(|e| panic!("{e}")),
            horizon: TimeDelta::days(90),
        }
    }

    fn booking(starts_at: DateTime<Utc>, pre_order: Vec<PreOrderLine>) -> Booking {
        let name = GuestName::try_from("Ada".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        let email = Email::try_from("ada@example.com".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        Booking {
            guest: Guest::new(name, Some(email), None).unwrap_or_else(|e| panic!("{e}")),
            party_size: PartySize::new(4, 12).unwrap_or_else(|e| panic!("{e}")),
            starts_at,
            duration: None,
            notes: None,
            pre_order,
        }
    }

    fn line(quantity: i64) -> PreOrderLine {
        PreOrderLine {
            menu_item_id: MenuItemId::new(),
            quantity: Quantity::try_from(quantity).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn a_booking_starts_pending_with_the_default_duration_and_says_so_in_its_event() {
        let now = Utc::now();
        let pre_order = vec![line(2)];
        let (reservation, event) =
            Reservation::book(booking(now + TimeDelta::hours(2), pre_order.clone()), &policy(), now)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((reservation.status, reservation.version), (Pending, 1));
        assert_eq!(reservation.ends_at(), now + TimeDelta::minutes(210));
        let ReservationEvent::ReservationCreated { party_size, duration_minutes, pre_order: lines, .. } = event else {
            panic!("not ReservationCreated: {event:?}")
        };
        assert_eq!((party_size, duration_minutes), (4, 90));
        assert_eq!(lines, vec![EventLine { menu_item_id: pre_order[0].menu_item_id, quantity: 2 }]);
    }

    #[test]
    fn bookings_must_start_within_the_horizon_and_fit_the_restaurant() {
        let now = Utc::now();
        let book = |booking| Reservation::book(booking, &policy(), now).map(drop);
        assert_eq!(book(booking(now, vec![])), Err(DomainError::StartsInThePast));
        assert_eq!(book(booking(now + TimeDelta::days(91), vec![])), Err(DomainError::BeyondHorizon(90)));
        assert_eq!(book(booking(now + TimeDelta::days(90), vec![])), Ok(()));
        let small = BookingPolicy { seats: 3, ..policy() };
        assert_eq!(
            Reservation::book(booking(now + TimeDelta::hours(1), vec![]), &small, now).map(drop),
            Err(DomainError::PartyExceedsRestaurant { party: 4, seats: 3 })
        );
    }

    #[test]
    fn a_pre_order_names_each_item_once_and_is_bounded() {
        let now = Utc::now();
        let first = line(1);
        let repeated = vec![first, line(3), PreOrderLine { quantity: line(5).quantity, ..first }];
        let result = Reservation::book(booking(now + TimeDelta::hours(1), repeated), &policy(), now);
        assert_eq!(result.map(drop), Err(DomainError::DuplicatePreOrder(first.menu_item_id)));
        let long = (0..=Booking::MAX_PRE_ORDER_LINES).map(|_| line(1)).collect();
        let result = Reservation::book(booking(now + TimeDelta::hours(1), long), &policy(), now);
        assert_eq!(result.map(drop), Err(DomainError::TooManyPreOrderLines));
    }

    #[test]
    fn a_guest_can_be_reached() {
        let name = GuestName::try_from("Ada".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Guest::new(name.clone(), None, None), Err(DomainError::NoContact));
        let phone = Phone::try_from("+44 20 7946 0958".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert!(Guest::new(name, None, Some(phone)).is_ok());
    }

    #[test]
    fn cancelling_keeps_the_first_reason_and_publishes_once() {
        let now = Utc::now();
        let (mut reservation, _) = Reservation::book(booking(now + TimeDelta::hours(1), vec![]), &policy(), now)
            .unwrap_or_else(|e| panic!("{e}"));
        let reason = |text: &str| CancelReason::try_from(text.to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reservation.cancel(reason("guest ill")),
            Ok(Some(ReservationEvent::ReservationCancelled { reason: "guest ill".to_owned() }))
        );
        assert_eq!(reservation.cancel(reason("again")), Ok(None));
        assert_eq!(reservation.cancel_reason.as_ref().map(CancelReason::as_str), Some("guest ill"));
        assert!(!reservation.status.holds_seats());
        assert!(matches!(reservation.confirm(), Err(DomainError::InvalidTransition { from: Cancelled, .. })));
    }
}
