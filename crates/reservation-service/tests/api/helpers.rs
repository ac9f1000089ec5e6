//! `spawn_app()`: the service on port 0 with its own schema and stream
//! prefix; `spawn_platform()`: the menu service beside it on the same streams.
//! Their clients send a staff token with every scope; `api.anonymous()` and
//! `api.with_token(..)` send none or another.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use events::{DomainEvent, EncodedEvent, MenuEvent, Metadata};
use reservation_service::BookingSettings;
use serde_json::{Value, json};
use service_kit::Settings;
use service_kit::clock::Clock;
pub use testkit::eventually;
use testkit::{Running, TestDb};

pub type TestResult = anyhow::Result<()>;

/// A running reservation service.
pub struct TestApp {
    pub service: Running,
    pub db: TestDb,
    pub settings: Settings,
}

impl std::ops::Deref for TestApp {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.service
    }
}

/// Settings for a service on schema `db` and a fresh stream prefix.
pub fn test_settings(db: &TestDb) -> Settings {
    Settings {
        max_body_bytes: 16 * 1024,
        ..Settings::ephemeral("platform_test", &db.schema, &testkit::unique("test-"))
    }
}

/// A restaurant open around the clock every day (in UTC), so that tests of
/// other rules can book any quarter hour, where one guest may hold any
/// number of bookings and pending ones are swept for expiry every 20 ms.
pub fn open_all_day() -> BookingSettings {
    BookingSettings {
        opening_hours: "00:00-24:00".to_owned(),
        max_upcoming_per_guest: 1000,
        expiry_sweep_interval_ms: 20,
        ..BookingSettings::default()
    }
}

pub async fn spawn_app() -> anyhow::Result<TestApp> {
    let db = TestDb::new().await?;
    spawn_with(test_settings(&db), db, open_all_day()).await
}

pub async fn spawn_with(settings: Settings, db: TestDb, booking: BookingSettings) -> anyhow::Result<TestApp> {
    spawn_with_clock(settings, db, booking, Clock::system()).await
}

/// The service deciding every rule at `clock`.
pub async fn spawn_with_clock(
    settings: Settings,
    db: TestDb,
    booking: BookingSettings,
    clock: Clock,
) -> anyhow::Result<TestApp> {
    testkit::init_tracing();
    let application = reservation_service::build_with_clock(&settings, &booking, clock).await?;
    let service = Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()?;
    Ok(TestApp { service, db, settings })
}

/// The menu and reservation services on the same streams, each on its own schema.
pub struct Platform {
    pub menus: Running,
    pub reservations: TestApp,
    _menu_db: TestDb,
}

pub async fn spawn_platform() -> anyhow::Result<Platform> {
    let reservations = spawn_app().await?;
    let menu_db = TestDb::new().await?;
    let menu_settings =
        Settings { stream_prefix: reservations.settings.stream_prefix.clone(), ..test_settings(&menu_db) };
    let menu_service = menu_service::build(&menu_settings).await?;
    let menus = Running::spawn(menu_service.port()?, |cancel| menu_service.run_until_stopped(cancel)).as_staff()?;
    Ok(Platform { menus, reservations, _menu_db: menu_db })
}

/// Tomorrow at `hour`:00 UTC.
pub fn tomorrow_at(hour: u32) -> DateTime<Utc> {
    let midnight = (Utc::now() + TimeDelta::days(1)).duration_trunc(TimeDelta::days(1)).unwrap_or_else(|_| Utc::now());
    midnight + TimeDelta::hours(i64::from(hour))
}

/// A valid booking of `party_size` at `starts_at`.
pub fn booking(party_size: u16, starts_at: DateTime<Utc>) -> Value {
    json!({
        "guest_name": "Ada Lovelace",
        "guest_email": "ada@example.com",
        "party_size": party_size,
        "starts_at": starts_at,
    })
}

impl TestApp {
    /// Books and returns the reservation's body, failing unless it was created.
    pub async fn book(&self, body: &Value) -> anyhow::Result<Value> {
        let response = self.post("/api/v1/reservations", body).await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status == 201, "booking answered {status}: {body}");
        Ok(body)
    }

    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.settings.stream_prefix)
    }

    /// Appends `event` to this app's `menu-events` as the menu service would.
    pub async fn publish(&self, event: &DomainEvent<MenuEvent>) -> anyhow::Result<String> {
        testkit::stream::append(&self.stream("menu-events"), &EncodedEvent::encode(event)?.into_fields()).await
    }

    /// Appends raw fields to `menu-events`, such as an entry that is not an event.
    pub async fn publish_raw(&self, fields: &[(&str, &str)]) -> anyhow::Result<String> {
        testkit::stream::append(&self.stream("menu-events"), fields).await
    }
}

/// A menu event at `version` of menu `menu`.
pub fn menu_event(menu: uuid::Uuid, version: i64, payload: MenuEvent) -> DomainEvent<MenuEvent> {
    DomainEvent::new(menu, version, payload, Metadata::new("test", "test-correlation"))
}
