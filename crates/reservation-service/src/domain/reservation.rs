//! The reservation aggregate: what a booking must satisfy, and the one
//! function that decides which status changes are allowed.

use super::rules::Rules;
use super::schedule::ScheduleError;
use super::values::{CancelReason, Duration, Email, GuestName, Notes, PartySize, Phone, Quantity};
use chrono::{DateTime, Utc};
use events::reservation::PreOrderLine as EventLine;
use events::{MenuItemId, ReservationEvent, ReservationId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Where a reservation is in its life: `pending` → `confirmed` → `seated`
/// → `completed`; `pending`/`confirmed` → `cancelled`; `confirmed` →
/// `no_show`; `pending` → `expired` when nobody confirms it in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Booked; the restaurant has not confirmed it yet. Holds its seats until it expires.
    Pending,
    /// Confirmed by the restaurant. Holds its seats.
    Confirmed,
    /// The party is at the table.
    Seated,
    /// The party came and left.
    Completed,
    /// Called off; its seats are free.
    Cancelled,
    /// The party did not come; its seats are free.
    NoShow,
    /// Nobody confirmed it in time; its seats are free.
    Expired,
}

impl ReservationStatus {
    /// Every status.
    pub const ALL: [Self; 7] =
        [Self::Pending, Self::Confirmed, Self::Seated, Self::Completed, Self::Cancelled, Self::NoShow, Self::Expired];

    /// The name used in JSON and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Seated => "seated",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::NoShow => "no_show",
            Self::Expired => "expired",
        }
    }

    /// Parses the database form.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }

    /// Whether a reservation in this status keeps its seats.
    pub const fn holds_seats(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed | Self::Seated)
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
    /// The party sits down.
    Seat,
    /// The party came and left.
    Complete,
    /// The party did not come.
    NoShow,
    /// Nobody confirmed the booking in time.
    Expire,
}

impl Transition {
    /// Every transition.
    pub const ALL: [Self; 6] = [Self::Confirm, Self::Cancel, Self::Seat, Self::Complete, Self::NoShow, Self::Expire];

    /// The status it leads to.
    pub const fn target(self) -> ReservationStatus {
        match self {
            Self::Confirm => ReservationStatus::Confirmed,
            Self::Cancel => ReservationStatus::Cancelled,
            Self::Seat => ReservationStatus::Seated,
            Self::Complete => ReservationStatus::Completed,
            Self::NoShow => ReservationStatus::NoShow,
            Self::Expire => ReservationStatus::Expired,
        }
    }
}

/// The reservation's status rules, in one place. `Ok(None)` means it is
/// already there: nothing changes and no event is published.
///
/// # Errors
/// [`DomainError::InvalidTransition`] for a change the status does not allow.
pub fn transition(from: ReservationStatus, requested: Transition) -> Result<Option<ReservationStatus>, DomainError> {
    use ReservationStatus::{Cancelled, Completed, Confirmed, Expired, NoShow, Pending, Seated};
    let refuse = |detail| Err(DomainError::InvalidTransition { from, detail });
    if from == requested.target() {
        return Ok(None);
    }
    match (from, requested) {
        (Pending, Transition::Confirm | Transition::Expire)
        | (Pending | Confirmed, Transition::Cancel)
        | (Confirmed, Transition::Seat | Transition::NoShow)
        | (Seated, Transition::Complete) => Ok(Some(requested.target())),
        (Pending, Transition::Seat) => refuse("confirm it before seating the party"),
        (Pending | Confirmed, Transition::Complete) => refuse("seat the party before completing the visit"),
        (Pending, Transition::NoShow) => refuse("only a confirmed booking can be a no-show"),
        (Seated, Transition::Cancel | Transition::NoShow) => refuse("the party is at the table; complete the visit"),
        (Seated, Transition::Confirm) => refuse("the party is already at the table"),
        (Confirmed | Seated, Transition::Expire) => refuse("only a pending booking expires"),
        (Completed | NoShow, _) => refuse("the visit is over and cannot change"),
        (Cancelled | Expired, _) => refuse("its seats are gone; book again"),
        (Confirmed, Transition::Confirm) | (Seated, Transition::Seat) => Ok(None),
    }
}

/// One status a reservation went through: who put it there, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The status.
    pub status: ReservationStatus,
    /// The staff token's subject, `guest` (the manage token) or the service itself.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the domain refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Neither an email address nor a phone number. HTTP 422.
    #[error("give guest_email, guest_phone or both so that the restaurant can reach the guest")]
    NoContact,
    /// The party is larger than the restaurant takes online (never more than its seats). HTTP 422.
    #[error("the restaurant takes parties of up to {largest} online; call it for a party of {party}")]
    PartyTooLarge {
        /// The party size asked for.
        party: u16,
        /// The largest party taken.
        largest: u16,
    },
    /// The start is closer than the lead time. HTTP 422.
    #[error("bookings must be made at least {0} minutes ahead")]
    TooSoon(i64),
    /// The start is beyond the booking horizon. HTTP 422.
    #[error("reservations open {0} days ahead")]
    BeyondHorizon(i64),
    /// The stay does not fit the opening hours. HTTP 422.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// An item appears twice in the pre-order. HTTP 422.
    #[error("item {0} is pre-ordered twice; give each item once with its quantity")]
    DuplicatePreOrder(MenuItemId),
    /// More pre-order lines than [`Booking::MAX_PRE_ORDER_LINES`]. HTTP 422.
    #[error("a pre-order holds at most {} items", Booking::MAX_PRE_ORDER_LINES)]
    TooManyPreOrderLines,
    /// The status does not allow the change. HTTP 409.
    #[error("the reservation is {from}: {detail}")]
    InvalidTransition {
        /// The status the reservation is in.
        from: ReservationStatus,
        /// Why the change is refused.
        detail: &'static str,
    },
    /// The change is allowed, but not yet. HTTP 409.
    #[error("{what} from {from} on ({minutes} minutes {relation} the start)")]
    NotYet {
        /// What was asked.
        what: &'static str,
        /// When it becomes possible.
        from: DateTime<Utc>,
        /// How far from the start that is.
        minutes: i64,
        /// `before` or `after`.
        relation: &'static str,
    },
    /// The stay is over; the party can no longer be seated. HTTP 409.
    #[error("the booking ended at {0}; the party can no longer be seated")]
    Over(DateTime<Utc>),
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
    /// Until when a pending booking holds its seats unconfirmed.
    pub expires_at: DateTime<Utc>,
    /// Every status it went through, oldest first.
    pub history: Vec<StatusChange>,
    /// Bumped by every change; the `ETag`.
    pub version: i64,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Reservation {
    /// Books a pending reservation at `now`, returning its `ReservationCreated`.
    /// Whether seats are free is the store's to decide, in its seat ledger.
    ///
    /// # Errors
    /// The start is too soon, beyond the horizon or off the schedule, or the
    /// pre-order repeats an item or is too long.
    pub fn book(
        booking: Booking,
        rules: &Rules,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(Self, ReservationEvent), DomainError> {
        if booking.party_size.get() > rules.max_party_size {
            return Err(DomainError::PartyTooLarge { party: booking.party_size.get(), largest: rules.max_party_size });
        }
        if booking.starts_at < now + rules.lead_time {
            return Err(DomainError::TooSoon(rules.lead_time.num_minutes()));
        }
        if booking.starts_at > now + rules.horizon {
            return Err(DomainError::BeyondHorizon(rules.horizon.num_days()));
        }
        let duration = booking.duration.unwrap_or(rules.default_duration);
        rules.schedule.check(booking.starts_at, duration.as_chrono())?;
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
            duration,
            notes: booking.notes,
            pre_order: booking.pre_order,
            status: ReservationStatus::Pending,
            cancel_reason: None,
            problems: Vec::new(),
            expires_at: (now + rules.pending_expiry).min(booking.starts_at),
            history: vec![StatusChange { status: ReservationStatus::Pending, actor: actor.to_owned(), at: now }],
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
            pre_order: reservation.event_lines(),
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

    /// Seats the party at `now`: from [`Rules::seating_opens`] before the
    /// start until the stay ends. `ReservationSeated` carries the pre-order
    /// for the kitchen. `None` if it is seated already.
    ///
    /// # Errors
    /// The status does not allow it, it is too early, or the stay is over.
    pub fn seat(&mut self, rules: &Rules, now: DateTime<Utc>) -> Result<Option<ReservationEvent>, DomainError> {
        if transition(self.status, Transition::Seat)?.is_some() {
            let from = self.starts_at - rules.seating_opens;
            if now < from {
                let minutes = rules.seating_opens.num_minutes();
                return Err(DomainError::NotYet { what: "the party can be seated", from, minutes, relation: "before" });
            }
            if now >= self.ends_at() {
                return Err(DomainError::Over(self.ends_at()));
            }
        }
        let event = ReservationEvent::ReservationSeated {
            guest_name: self.guest.name.as_str().to_owned(),
            party_size: self.party_size.get(),
            pre_order: self.event_lines(),
        };
        Ok(self.apply(Transition::Seat)?.then_some(event))
    }

    /// Marks it completed once the party has been seated; `None` if it already is.
    ///
    /// # Errors
    /// The status does not allow it.
    pub fn complete(&mut self) -> Result<Option<ReservationEvent>, DomainError> {
        Ok(self.apply(Transition::Complete)?.then_some(ReservationEvent::ReservationCompleted {}))
    }

    /// Marks a confirmed party that has not come a no-show, freeing its
    /// seats: only from [`Rules::no_show_grace`] after the start. `None` if it
    /// already is.
    ///
    /// # Errors
    /// The status does not allow it, or the grace period is not over.
    pub fn no_show(&mut self, rules: &Rules, now: DateTime<Utc>) -> Result<Option<ReservationEvent>, DomainError> {
        let from = self.starts_at + rules.no_show_grace;
        if transition(self.status, Transition::NoShow)?.is_some() && now < from {
            let minutes = rules.no_show_grace.num_minutes();
            return Err(DomainError::NotYet { what: "a no-show can be recorded", from, minutes, relation: "after" });
        }
        Ok(self.apply(Transition::NoShow)?.then_some(ReservationEvent::ReservationNoShow {}))
    }

    /// Lets a pending booking nobody confirmed go at `now`, freeing its
    /// seats; `None` if it is not due or already expired.
    ///
    /// # Errors
    /// It is not pending.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<Option<ReservationEvent>, DomainError> {
        if self.status == ReservationStatus::Pending && now < self.expires_at {
            return Ok(None);
        }
        Ok(self.apply(Transition::Expire)?.then_some(ReservationEvent::ReservationExpired {}))
    }

    /// Records that `actor` made the latest status change at `at`.
    pub fn record(&mut self, actor: &str, at: DateTime<Utc>) {
        self.history.push(StatusChange { status: self.status, actor: actor.to_owned(), at });
    }

    fn event_lines(&self) -> Vec<EventLine> {
        self.pre_order
            .iter()
            .map(|line| EventLine { menu_item_id: line.menu_item_id, quantity: line.quantity.get() })
            .collect()
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
    use crate::domain::rules::RulesDocument;
    use ReservationStatus::{Cancelled, Completed, Confirmed, Expired, NoShow, Pending, Seated};
    use chrono::{DurationRound, TimeDelta};

    #[test]
    fn every_transition_is_allowed_refused_or_a_no_op_as_the_table_says() {
        use Transition::{Cancel, Complete, Confirm, Expire, Seat};
        let allowed = [
            (Pending, Confirm, Confirmed),
            (Pending, Cancel, Cancelled),
            (Pending, Expire, Expired),
            (Confirmed, Cancel, Cancelled),
            (Confirmed, Seat, Seated),
            (Confirmed, Transition::NoShow, NoShow),
            (Seated, Complete, Completed),
        ];
        for from in ReservationStatus::ALL {
            for requested in Transition::ALL {
                let expected = if from == requested.target() {
                    Ok(None)
                } else if let Some((_, _, to)) = allowed.iter().find(|(f, r, _)| (*f, *r) == (from, requested)) {
                    Ok(Some(*to))
                } else {
                    Err(())
                };
                assert_eq!(transition(from, requested).map_err(drop), expected, "{from} + {requested:?}");
            }
        }
    }

    fn rules() -> Rules {
        let document: RulesDocument = serde_json::from_value(serde_json::json!({
            "time_zone": "UTC", "slot_minutes": 15, "seats": 40, "max_party_size": 12,
            "default_duration_minutes": 90, "lead_time_minutes": 30, "horizon_days": 90,
            "max_upcoming_per_guest": 3, "pending_expiry_minutes": 30, "seating_opens_minutes": 30,
            "no_show_grace_minutes": 15,
            "weekly_hours": {
                "monday": [{"opens": "00:00", "closes": "24:00"}], "tuesday": [{"opens": "00:00", "closes": "24:00"}],
                "wednesday": [{"opens": "00:00", "closes": "24:00"}], "thursday": [{"opens": "00:00", "closes": "24:00"}],
                "friday": [{"opens": "00:00", "closes": "24:00"}], "saturday": [{"opens": "00:00", "closes": "24:00"}],
                "sunday": [{"opens": "00:00", "closes": "24:00"}]
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        document.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A quarter hour, some hours from now, early in the day so a stay ends by midnight.
    fn now() -> DateTime<Utc> {
        let day = TimeDelta::days(1);
        Utc::now().duration_trunc(day).unwrap_or_else(|e| panic!("{e}")) + TimeDelta::hours(1)
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

    fn booked(starts_at: DateTime<Utc>, now: DateTime<Utc>) -> Reservation {
        Reservation::book(booking(starts_at, vec![line(2)]), &rules(), "guest", now).unwrap_or_else(|e| panic!("{e}")).0
    }

    #[test]
    fn a_booking_starts_pending_with_the_default_duration_and_says_so_in_its_event() {
        let now = now();
        let pre_order = vec![line(2)];
        let (reservation, event) =
            Reservation::book(booking(now + TimeDelta::hours(2), pre_order.clone()), &rules(), "guest", now)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((reservation.status, reservation.version), (Pending, 1));
        assert_eq!(reservation.ends_at(), now + TimeDelta::minutes(210));
        assert_eq!(reservation.expires_at, now + TimeDelta::minutes(30));
        assert_eq!(reservation.history, vec![StatusChange { status: Pending, actor: "guest".to_owned(), at: now }]);
        let ReservationEvent::ReservationCreated { party_size, duration_minutes, pre_order: lines, .. } = event else {
            panic!("not ReservationCreated: {event:?}")
        };
        assert_eq!((party_size, duration_minutes), (4, 90));
        assert_eq!(lines, vec![EventLine { menu_item_id: pre_order[0].menu_item_id, quantity: 2 }]);
    }

    #[test]
    fn bookings_respect_the_lead_time_the_horizon_and_the_schedule() {
        let now = now();
        let book = |starts_at| Reservation::book(booking(starts_at, vec![]), &rules(), "guest", now).map(drop);
        assert_eq!(book(now + TimeDelta::minutes(15)), Err(DomainError::TooSoon(30)));
        assert_eq!(book(now + TimeDelta::minutes(30)), Ok(()));
        assert_eq!(book(now + TimeDelta::days(91)), Err(DomainError::BeyondHorizon(90)));
        let small = Rules { max_party_size: 3, ..rules() };
        assert_eq!(
            Reservation::book(booking(now + TimeDelta::hours(1), vec![]), &small, "guest", now).map(drop),
            Err(DomainError::PartyTooLarge { party: 4, largest: 3 })
        );
        assert!(matches!(
            book(now + TimeDelta::minutes(37)),
            Err(DomainError::Schedule(ScheduleError::OffTheGrid { .. }))
        ));
        // A pending booking made a quarter hour before its start expires at the start.
        let soon = booked(now + TimeDelta::minutes(45), now);
        assert_eq!(soon.expires_at, now + TimeDelta::minutes(30));
    }

    #[test]
    fn a_pre_order_names_each_item_once_and_is_bounded() {
        let now = now();
        let first = line(1);
        let repeated = vec![first, line(3), PreOrderLine { quantity: line(5).quantity, ..first }];
        let result = Reservation::book(booking(now + TimeDelta::hours(1), repeated), &rules(), "guest", now);
        assert_eq!(result.map(drop), Err(DomainError::DuplicatePreOrder(first.menu_item_id)));
        let long = (0..=Booking::MAX_PRE_ORDER_LINES).map(|_| line(1)).collect();
        let result = Reservation::book(booking(now + TimeDelta::hours(1), long), &rules(), "guest", now);
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
        let now = now();
        let mut reservation = booked(now + TimeDelta::hours(1), now);
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

    #[test]
    fn a_party_is_seated_from_shortly_before_its_start_with_its_pre_order() {
        let now = now();
        let starts_at = now + TimeDelta::hours(2);
        let mut reservation = booked(starts_at, now);
        let rules = rules();
        assert!(matches!(
            reservation.seat(&rules, starts_at),
            Err(DomainError::InvalidTransition { from: Pending, .. })
        ));
        assert_eq!(reservation.confirm().map(|event| event.is_some()), Ok(true));
        let too_early = starts_at - TimeDelta::minutes(31);
        assert!(matches!(reservation.seat(&rules, too_early), Err(DomainError::NotYet { minutes: 30, .. })));
        assert!(matches!(reservation.complete(), Err(DomainError::InvalidTransition { from: Confirmed, .. })));
        let Ok(Some(ReservationEvent::ReservationSeated { party_size, pre_order, .. })) =
            reservation.seat(&rules, starts_at - TimeDelta::minutes(30))
        else {
            panic!("not seated: {reservation:?}")
        };
        assert_eq!((party_size, pre_order), (4, reservation.event_lines()));
        assert_eq!(reservation.seat(&rules, starts_at), Ok(None));
        assert!(reservation.status.holds_seats());
        assert_eq!(reservation.complete(), Ok(Some(ReservationEvent::ReservationCompleted {})));
        assert!(!reservation.status.holds_seats());
    }

    #[test]
    fn a_party_that_did_not_come_is_a_no_show_only_after_the_grace_period() {
        let now = now();
        let starts_at = now + TimeDelta::hours(2);
        let rules = rules();
        let mut over = booked(starts_at, now);
        assert_eq!(over.confirm().map(|event| event.is_some()), Ok(true));
        assert_eq!(over.seat(&rules, over.ends_at()), Err(DomainError::Over(over.ends_at())));
        let mut reservation = booked(starts_at, now);
        assert!(matches!(
            reservation.no_show(&rules, starts_at + TimeDelta::hours(1)),
            Err(DomainError::InvalidTransition { .. })
        ));
        assert_eq!(reservation.confirm().map(|event| event.is_some()), Ok(true));
        let within_grace = starts_at + TimeDelta::minutes(14);
        assert!(matches!(reservation.no_show(&rules, within_grace), Err(DomainError::NotYet { minutes: 15, .. })));
        let after_grace = starts_at + TimeDelta::minutes(15);
        assert_eq!(reservation.no_show(&rules, after_grace), Ok(Some(ReservationEvent::ReservationNoShow {})));
        assert_eq!(reservation.no_show(&rules, after_grace), Ok(None));
        assert!(!reservation.status.holds_seats());
    }

    #[test]
    fn a_pending_booking_expires_once_due_and_a_confirmed_one_never() {
        let now = now();
        let mut pending = booked(now + TimeDelta::hours(2), now);
        assert_eq!(pending.expire(now + TimeDelta::minutes(29)), Ok(None));
        assert_eq!(pending.status, Pending);
        assert_eq!(pending.expire(now + TimeDelta::minutes(30)), Ok(Some(ReservationEvent::ReservationExpired {})));
        assert!(!pending.status.holds_seats());
        assert!(matches!(pending.confirm(), Err(DomainError::InvalidTransition { from: Expired, .. })));
        let mut confirmed = booked(now + TimeDelta::hours(2), now);
        assert_eq!(confirmed.confirm().map(|event| event.is_some()), Ok(true));
        assert!(confirmed.expire(now + TimeDelta::hours(1)).is_err());
    }
}
