//! `spawn_app()`: the service on port 0 with its own schema and stream
//! prefix, its client sending a staff token with every scope.

use serde_json::{Value, json};
use service_kit::Settings;
use std::time::Duration;
use testkit::stream::Entry;
use testkit::{Running, TestDb};

pub type TestResult = anyhow::Result<()>;

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

/// Settings for a service on a fresh schema and stream prefix.
pub async fn test_settings() -> anyhow::Result<(Settings, TestDb)> {
    let db = TestDb::new().await?;
    let settings = Settings {
        max_body_bytes: 16 * 1024,
        ..Settings::ephemeral("platform_test", &db.schema, &testkit::unique("test-"))
    };
    Ok((settings, db))
}

pub async fn spawn_app() -> anyhow::Result<TestApp> {
    let (settings, db) = test_settings().await?;
    spawn_with(settings, db).await
}

pub async fn spawn_with(settings: Settings, db: TestDb) -> anyhow::Result<TestApp> {
    let application = menu_service::build(&settings).await?;
    let service = Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()?;
    Ok(TestApp { service, db, settings })
}

pub fn lunch() -> Value {
    json!({
        "name": "Lunch",
        "description": "Weekdays 12-15",
        "items": [
            {"name": "Tomato soup", "category": "starter", "price_cents": 650, "currency": "EUR"},
            {"name": "Risotto", "description": "Mushrooms", "category": "main", "price_cents": 1450, "currency": "EUR"}
        ]
    })
}

impl TestApp {
    /// Creates the lunch menu and returns its body.
    pub async fn create_lunch(&self) -> anyhow::Result<Value> {
        let response = self.post("/api/v1/menus", &lunch()).await?;
        anyhow::ensure!(response.status() == 201, "create returned {}", response.status());
        Ok(response.json().await?)
    }

    pub fn stream(&self) -> String {
        format!("{}menu-events", self.settings.stream_prefix)
    }

    /// The entries on this app's `menu-events`, waiting up to two seconds for at least `count`.
    pub async fn entries(&self, count: usize) -> anyhow::Result<Vec<Entry>> {
        testkit::stream::entries(&self.stream(), count, Duration::from_secs(2)).await
    }

    pub async fn outbox_rows(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&self.db.pool).await?)
    }
}
