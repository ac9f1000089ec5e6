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
use domain::{BookingPolicy, Duration};
use service_kit::Settings;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};

/// What the service is: its catalog entry and its tables. Its name is also
/// its consumer group on `menu-events`.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::RESERVATION, migrations: &MIGRATIONS };

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The restaurant's booking rules, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct BookingSettings {
    /// Seats in the restaurant: the most guests booked for any moment.
    #[arg(long, env = "RESTAURANT_SEATS", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub restaurant_seats: u32,
    /// The largest party taken online; larger ones get 422.
    #[arg(long, env = "MAX_PARTY_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_party_size: u16,
    /// How long a table is held when a booking does not say, in minutes (15 to 480).
    #[arg(long, env = "DEFAULT_DURATION_MINUTES", default_value_t = 90)]
    pub default_duration_minutes: i64,
    /// How many days ahead bookings open.
    #[arg(long, env = "BOOKING_HORIZON_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=3650))]
    pub booking_horizon_days: u16,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self { restaurant_seats: 40, max_party_size: 100, default_duration_minutes: 90, booking_horizon_days: 90 }
    }
}

impl BookingSettings {
    /// The policy these settings describe.
    ///
    /// # Errors
    /// The default duration is out of range.
    pub fn policy(&self) -> anyhow::Result<BookingPolicy> {
        Ok(BookingPolicy {
            seats: self.restaurant_seats,
            largest_party: self.max_party_size,
            default_duration: Duration::try_from(self.default_duration_minutes).context("DEFAULT_DURATION_MINUTES")?,
            horizon: chrono::TimeDelta::days(i64::from(self.booking_horizon_days)),
        })
    }
}

/// Connects to PostgreSQL (migrating the schema) and Redis, binds the
/// listener, and sets up the consumer of `menu-events`.
///
/// # Errors
/// A setting is invalid, PostgreSQL is unreachable, a migration fails, the
/// port is taken, or no key to verify staff tokens with is usable.
pub async fn build(settings: &Settings, booking: &BookingSettings) -> anyhow::Result<Application> {
    let policy = booking.policy()?;
    let mut service = Builder::new::<events::ReservationEvent>(settings, &BLUEPRINT).await?;
    service.consume::<events::MenuEvent, _>(menu_view::MenuProjection);
    let reservations = service::Reservations::new(service.pool().clone(), service.outbox().clone(), policy);
    Ok(service.serve(http::router(reservations), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_booking_settings_are_the_documented_ones() {
        let default_of = testkit::default_of::<BookingSettings>;
        let defaults = BookingSettings::default();
        assert_eq!(default_of("restaurant_seats"), Some(defaults.restaurant_seats.to_string()));
        assert_eq!(default_of("max_party_size"), Some(defaults.max_party_size.to_string()));
        assert_eq!(default_of("default_duration_minutes"), Some(defaults.default_duration_minutes.to_string()));
        assert_eq!(default_of("booking_horizon_days"), Some(defaults.booking_horizon_days.to_string()));
    }
}
