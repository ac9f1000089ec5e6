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
use events::{Consumer, ConsumerConfig, Inbox, Inboxed, MenuEvent};
use service_kit::Settings;
use service_kit::foundation::{self, Background, Foundation};
use service_kit::http::Dependencies;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The port the service listens on unless `SERVER_PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8082;
/// The schema the service owns unless `DB_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "reservation";
/// The consumer group the service reads `menu-events` as.
pub const CONSUMER_GROUP: &str = "reservation-service";

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

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
    /// This instance's consumer name in the group; defaults to `<host>:<port>`.
    #[arg(long, env = "CONSUMER_NAME")]
    pub consumer_name: Option<String>,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            restaurant_seats: 40,
            max_party_size: 100,
            default_duration_minutes: 90,
            booking_horizon_days: 90,
            consumer_name: None,
        }
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

/// The built service: listener bound, database migrated, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    publishing: foundation::Publishing,
    consumer: Consumer<MenuEvent, Inboxed<menu_view::MenuProjection>>,
    inbox: Inbox,
    inbox_retention: std::time::Duration,
    shutdown_grace: std::time::Duration,
}

/// How often the inbox forgets records older than its retention.
const INBOX_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Application {
    /// Connects to PostgreSQL (migrating the schema) and Redis, and binds the listener.
    ///
    /// # Errors
    /// A setting is invalid, PostgreSQL is unreachable, a migration fails, or the port is taken.
    pub async fn build(settings: &Settings, booking: &BookingSettings) -> anyhow::Result<Self> {
        let policy = booking.policy()?;
        // Checked first: a service that cannot verify tokens does not start.
        let verifier = service_kit::auth::Verifier::from_settings(&settings.auth)?;
        let Foundation { pool, consumer_pool, redis, outbox, publishing, listener } =
            Foundation::build::<events::ReservationEvent>(settings, DEFAULT_SCHEMA, DEFAULT_PORT, &MIGRATIONS).await?;
        let streams = settings.streams();
        let consumer_name = match &booking.consumer_name {
            Some(name) => name.clone(),
            None => format!("{}:{}", host_name(), listener.local_addr()?.port()),
        };
        let inbox = Inbox::new(consumer_pool, CONSUMER_GROUP);
        let consumer = Consumer::new(
            redis.clone(),
            ConsumerConfig::new(streams.of::<MenuEvent>(), CONSUMER_GROUP, consumer_name),
            Inboxed::new(inbox.clone(), menu_view::MenuProjection),
        );
        let reservations = service::Reservations::new(pool.clone(), outbox, policy);
        let router = service_kit::http::finish(
            http::router(reservations),
            Dependencies { pool, redis },
            settings.max_body_bytes,
            <http::ApiDoc as utoipa::OpenApi>::openapi(),
            verifier,
        );
        Ok(Self {
            listener,
            router,
            publishing,
            consumer,
            inbox,
            inbox_retention: settings.inbox_retention(),
            shutdown_grace: settings.shutdown_grace(),
        })
    }

    /// The port it listens on (useful when built with port 0).
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn port(&self) -> std::io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// Serves requests, relays events, trims the stream and consumes menu
    /// events until `cancel` fires, then finishes what is in flight, for at
    /// most `SHUTDOWN_GRACE_SECONDS`.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut background = self.publishing.spawn(&cancel);
        background.extend([
            Background::spawn("menu-events consumer", self.consumer.run(cancel.clone())),
            Background::spawn(
                "inbox pruning",
                self.inbox.run_pruning(self.inbox_retention, INBOX_PRUNE_INTERVAL, cancel.clone()),
            ),
        ]);
        foundation::run("reservation-service", self.listener, self.router, background, cancel, self.shutdown_grace)
            .await
    }
}

/// The machine's name, for consumer names.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
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
        assert_eq!(default_of("consumer_name"), None);
    }
}
