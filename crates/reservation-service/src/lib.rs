//! The reservation service: table reservations that never overbook the
//! restaurant, published as `reservation-events`.
//!
//! Every change commits with its event through the transactional outbox, and
//! the service runs its own outbox relay, and the retention that trims
//! `reservation-events` below what its consumer groups have acknowledged. It
//! consumes `menu-events` as group `reservation-service` to keep its own view
//! of the menus ([`menu_view`]), which it uses to accept pre-orders and to
//! flag the upcoming reservations whose pre-ordered items can no longer be
//! served.

pub mod domain;
pub mod error;
pub mod http;
pub mod manage_token;
pub mod menu_view;
pub mod service;
pub mod store;

use anyhow::Context;
use domain::{Rules, RulesDocument, rules::SittingDocument};
use service_kit::Settings;
use service_kit::clock::Clock;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};
use std::time::Duration;

/// What the service is: its catalog entry and its tables. Its name is also
/// its consumer group on `menu-events`.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::RESERVATION, migrations: &MIGRATIONS };

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The restaurant's first rules, for a fresh platform: once stored, staff
/// change them through `PUT /api/v1/restaurant` and these are not read again.
#[derive(Debug, Clone, clap::Args)]
pub struct BookingSettings {
    /// The IANA time zone the opening hours are in.
    #[arg(long, env = "RESTAURANT_TIME_ZONE", default_value = "UTC")]
    pub restaurant_time_zone: String,
    /// The sittings of every day, `HH:MM-HH:MM` separated by commas.
    #[arg(long, env = "OPENING_HOURS", default_value = "12:00-15:00,19:00-23:00")]
    pub opening_hours: String,
    /// Minutes between bookable starts (5 to 120, a multiple of 5).
    #[arg(long, env = "SLOT_MINUTES", default_value_t = 15)]
    pub slot_minutes: u16,
    /// Seats in the restaurant: the most guests booked for any moment.
    #[arg(long, env = "RESTAURANT_SEATS", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub restaurant_seats: u32,
    /// The largest party taken online; the seats if not set, and never more.
    #[arg(long, env = "MAX_PARTY_SIZE", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_party_size: Option<u16>,
    /// How long a table is held when a booking does not say, in minutes (15 to 480).
    #[arg(long, env = "DEFAULT_DURATION_MINUTES", default_value_t = 90)]
    pub default_duration_minutes: u32,
    /// How many minutes before its start a booking must be made.
    #[arg(long, env = "BOOKING_LEAD_MINUTES", default_value_t = 30)]
    pub booking_lead_minutes: u32,
    /// How many days ahead bookings open.
    #[arg(long, env = "BOOKING_HORIZON_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=3650))]
    pub booking_horizon_days: u16,
    /// How many upcoming bookings one email address or phone number may hold.
    #[arg(long, env = "MAX_UPCOMING_PER_GUEST", default_value_t = 5)]
    pub max_upcoming_per_guest: u16,
    /// How many minutes a pending booking holds its seats unconfirmed.
    #[arg(long, env = "PENDING_EXPIRY_MINUTES", default_value_t = 30)]
    pub pending_expiry_minutes: u32,
    /// How many minutes before its start a party may be seated.
    #[arg(long, env = "SEATING_OPENS_MINUTES", default_value_t = 30)]
    pub seating_opens_minutes: u32,
    /// How many minutes after its start a confirmed party that has not come may be marked a no-show.
    #[arg(long, env = "NO_SHOW_GRACE_MINUTES", default_value_t = 15)]
    pub no_show_grace_minutes: u32,
    /// How often pending bookings past their expiry are let go, in milliseconds.
    #[arg(long, env = "EXPIRY_SWEEP_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub expiry_sweep_interval_ms: u64,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            restaurant_time_zone: "UTC".to_owned(),
            opening_hours: "12:00-15:00,19:00-23:00".to_owned(),
            slot_minutes: 15,
            restaurant_seats: 40,
            max_party_size: None,
            default_duration_minutes: 90,
            booking_lead_minutes: 30,
            booking_horizon_days: 90,
            max_upcoming_per_guest: 5,
            pending_expiry_minutes: 30,
            seating_opens_minutes: 30,
            no_show_grace_minutes: 15,
            expiry_sweep_interval_ms: 1000,
        }
    }
}

impl BookingSettings {
    /// The rules these settings describe.
    ///
    /// # Errors
    /// A setting is out of range, or `OPENING_HOURS` is not a list of `HH:MM-HH:MM`.
    pub fn rules(&self) -> anyhow::Result<Rules> {
        let sittings = self
            .opening_hours
            .split(',')
            .map(str::trim)
            .filter(|sitting| !sitting.is_empty())
            .map(|sitting| {
                let (opens, closes) = sitting
                    .split_once('-')
                    .with_context(|| format!("OPENING_HOURS: {sitting:?} is not HH:MM-HH:MM"))?;
                Ok(SittingDocument {
                    opens: opens.trim().to_owned(),
                    closes: closes.trim().to_owned(),
                    last_seating: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let seats = self.restaurant_seats;
        let document = RulesDocument {
            time_zone: self.restaurant_time_zone.clone(),
            slot_minutes: self.slot_minutes,
            seats,
            max_party_size: self.max_party_size.unwrap_or(u16::MAX).min(u16::try_from(seats).unwrap_or(u16::MAX)),
            default_duration_minutes: self.default_duration_minutes,
            lead_time_minutes: self.booking_lead_minutes,
            horizon_days: self.booking_horizon_days,
            max_upcoming_per_guest: self.max_upcoming_per_guest,
            pending_expiry_minutes: self.pending_expiry_minutes,
            seating_opens_minutes: self.seating_opens_minutes,
            no_show_grace_minutes: self.no_show_grace_minutes,
            weekly_hours: domain::rules::WEEKDAYS.iter().map(|day| ((*day).to_owned(), sittings.clone())).collect(),
            exceptions: Vec::new(),
        };
        document.parse().map_err(|error| anyhow::anyhow!("the booking settings: {}: {error}", error.field))
    }
}

/// How often the seat ledger's rows are made ahead for the horizon.
const LEDGER_UPKEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Connects to PostgreSQL (migrating the schema) and Redis, binds the
/// listener, and sets up the consumer of `menu-events`, the expiry of
/// pending bookings and the seat ledger's upkeep, on the system clock.
///
/// # Errors
/// A setting is invalid, PostgreSQL is unreachable, a migration fails, the
/// port is taken, or no key to verify staff tokens with is usable.
pub async fn build(settings: &Settings, booking: &BookingSettings) -> anyhow::Result<Application> {
    build_with_clock(settings, booking, Clock::system()).await
}

/// [`build`], deciding every rule at `clock` (a test's manual clock).
///
/// # Errors
/// As [`build`].
pub async fn build_with_clock(
    settings: &Settings,
    booking: &BookingSettings,
    clock: Clock,
) -> anyhow::Result<Application> {
    let rules = booking.rules()?;
    let mut service = Builder::new::<events::ReservationEvent>(settings, &BLUEPRINT).await?;
    service.consume::<events::MenuEvent, _>(menu_view::MenuProjection);
    let reservations =
        service::Reservations::open(service.pool().clone(), service.outbox().clone(), &rules, clock).await?;
    let expiry = reservations.clone();
    let interval = Duration::from_millis(booking.expiry_sweep_interval_ms);
    service.spawn("pending expiry", move |cancel| {
        events::backoff::every(interval, "expiring pending reservations", cancel, move || {
            let expiry = expiry.clone();
            async move { expiry.expire_due(expiry.clock().now()).await }
        })
    });
    let upkeep = reservations.clone();
    service.spawn("seat ledger upkeep", move |cancel| {
        events::backoff::every(LEDGER_UPKEEP_INTERVAL, "making the seat ledger's rows", cancel, move || {
            let upkeep = upkeep.clone();
            async move { upkeep.upkeep_ledger().await }
        })
    });
    Ok(service.serve(http::router(reservations), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_booking_settings_are_the_documented_ones() {
        let default_of = testkit::default_of::<BookingSettings>;
        let defaults = BookingSettings::default();
        assert_eq!(default_of("restaurant_time_zone"), Some(defaults.restaurant_time_zone.clone()));
        assert_eq!(default_of("opening_hours"), Some(defaults.opening_hours.clone()));
        assert_eq!(default_of("slot_minutes"), Some(defaults.slot_minutes.to_string()));
        assert_eq!(default_of("restaurant_seats"), Some(defaults.restaurant_seats.to_string()));
        assert_eq!(default_of("max_party_size"), None);
        assert_eq!(default_of("default_duration_minutes"), Some(defaults.default_duration_minutes.to_string()));
        assert_eq!(default_of("booking_lead_minutes"), Some(defaults.booking_lead_minutes.to_string()));
        assert_eq!(default_of("booking_horizon_days"), Some(defaults.booking_horizon_days.to_string()));
        assert_eq!(default_of("max_upcoming_per_guest"), Some(defaults.max_upcoming_per_guest.to_string()));
        assert_eq!(default_of("pending_expiry_minutes"), Some(defaults.pending_expiry_minutes.to_string()));
        assert_eq!(default_of("seating_opens_minutes"), Some(defaults.seating_opens_minutes.to_string()));
        assert_eq!(default_of("no_show_grace_minutes"), Some(defaults.no_show_grace_minutes.to_string()));
        assert_eq!(default_of("expiry_sweep_interval_ms"), Some(defaults.expiry_sweep_interval_ms.to_string()));
    }

    #[test]
    fn the_defaults_open_lunch_and_dinner_every_day_and_take_parties_up_to_the_seats() {
        let rules = BookingSettings::default().rules().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rules.max_party_size, 40);
        assert!(rules.schedule.weekly.iter().all(|day| day.to_string() == "12:00–15:00, 19:00–23:00"));
        let small = BookingSettings { restaurant_seats: 8, max_party_size: Some(12), ..BookingSettings::default() };
        assert_eq!(small.rules().map(|rules| rules.max_party_size).ok(), Some(8));
        let broken = BookingSettings { opening_hours: "noon till late".to_owned(), ..BookingSettings::default() };
        assert!(broken.rules().is_err());
    }
}
