//! `spawn_app()`: the service on port 0 with its own schema and stream
//! prefix, its client sending a staff token with every scope, and the menu
//! items it may track already learnt from `menu-events`.

use events::menu::MenuItem;
use events::{DomainEvent, EncodedEvent, InventoryCommand, MenuEvent, MenuItemId, Metadata, OrderId};
use inventory_service::InventorySettings;
use serde_json::{Value, json};
use service_kit::Settings;
use std::time::Duration;
use testkit::stream::Entry;
use testkit::{Running, TestDb};
use uuid::Uuid;

pub type TestResult = anyhow::Result<()>;

/// A running inventory service.
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
    Settings::ephemeral("platform_test", &db.schema, &testkit::unique("test-"))
}

pub async fn spawn_app() -> anyhow::Result<TestApp> {
    let db = TestDb::new().await?;
    spawn_with(test_settings(&db), db).await
}

pub async fn spawn_with(settings: Settings, db: TestDb) -> anyhow::Result<TestApp> {
    testkit::init_tracing();
    let application = inventory_service::build(&settings, &InventorySettings::default()).await?;
    let service = Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()?;
    Ok(TestApp { service, db, settings })
}

/// A menu item as the menu service publishes it.
pub fn menu_item(id: MenuItemId, name: &str) -> MenuItem {
    MenuItem {
        id,
        name: name.to_owned(),
        description: None,
        category: "main".to_owned(),
        price_cents: 1450,
        currency: "EUR".to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    }
}

impl TestApp {
    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.settings.stream_prefix)
    }

    /// Publishes a menu with items of these names and waits until the service
    /// has learnt them; returns their ids.
    pub async fn menu_with(&self, names: &[&str]) -> anyhow::Result<Vec<MenuItemId>> {
        let items: Vec<MenuItem> = names.iter().map(|name| menu_item(MenuItemId::new(), name)).collect();
        let created = MenuEvent::MenuCreated { name: "Lunch".to_owned(), description: None, items: items.clone() };
        let event = DomainEvent::new(Uuid::now_v7(), 1, created, Metadata::new("menu-service", "req-menu"));
        testkit::stream::append(&self.stream("menu-events"), &EncodedEvent::encode(&event)?.into_fields()).await?;
        let ids: Vec<MenuItemId> = items.iter().map(|item| item.id).collect();
        testkit::eventually(Duration::from_secs(5), "the menu items learnt", || async {
            let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM menu_items_seen WHERE menu_item_id = ANY($1)")
                .bind(&ids)
                .fetch_one(&self.db.pool)
                .await?;
            Ok(seen == i64::try_from(ids.len())?)
        })
        .await?;
        Ok(ids)
    }

    /// Creates an ingredient and returns its body.
    pub async fn ingredient(&self, name: &str, unit: &str, threshold: i64) -> anyhow::Result<Value> {
        let body = json!({"name": name, "unit": unit, "low_stock_threshold": threshold});
        let response = self.post("/api/v1/ingredients", &body).await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status == 201, "creating {name} answered {status}: {body}");
        Ok(body)
    }

    /// Receives `quantity` of ingredient `id`.
    pub async fn receive(&self, id: &Value, quantity: i64) -> anyhow::Result<Value> {
        let path = format!("/api/v1/ingredients/{}/receipts", text(id));
        let response = self.post(&path, &json!({"quantity": quantity})).await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status == 200, "receiving answered {status}: {body}");
        Ok(body)
    }

    /// Sets the recipe of `item`: `(ingredient id, quantity)` per line.
    pub async fn recipe(&self, item: MenuItemId, lines: &[(&Value, i64)]) -> anyhow::Result<Value> {
        let lines: Vec<Value> =
            lines.iter().map(|(id, quantity)| json!({"ingredient_id": id, "quantity": quantity})).collect();
        let response = self.put(&format!("/api/v1/recipes/{item}"), &json!({"lines": lines})).await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status == 200, "setting the recipe answered {status}: {body}");
        Ok(body)
    }

    /// Appends `command` to this app's `inventory-commands`, as the order saga would.
    pub async fn command(&self, command: &DomainEvent<InventoryCommand>) -> anyhow::Result<String> {
        testkit::stream::append(&self.stream("inventory-commands"), &EncodedEvent::encode(command)?.into_fields()).await
    }

    /// The entries on this app's `inventory-events`, waiting up to five seconds for `count`.
    pub async fn events(&self, count: usize) -> anyhow::Result<Vec<Entry>> {
        testkit::stream::entries(&self.stream("inventory-events"), count, Duration::from_secs(5)).await
    }

    /// The entries on `inventory-events` about `order`, waiting for `count` of them.
    pub async fn answers(&self, order: OrderId, count: usize) -> anyhow::Result<Vec<Entry>> {
        self.events_about(&order.to_string(), count).await
    }

    /// The entries on `inventory-events` about aggregate `id`, waiting for `count` of them.
    pub async fn events_about(&self, id: &str, count: usize) -> anyhow::Result<Vec<Entry>> {
        let found = std::cell::RefCell::new(Vec::new());
        testkit::eventually(Duration::from_secs(10), &format!("{count} events about {id}"), || async {
            let entries = testkit::stream::entries(&self.stream("inventory-events"), 0, Duration::ZERO).await?;
            found.replace(entries.into_iter().filter(|entry| entry.aggregate_id == id).collect());
            Ok(found.borrow().len() >= count)
        })
        .await?;
        Ok(found.into_inner())
    }

    /// Portions left of `item`, as `GET /api/v1/portions` says.
    pub async fn portions_left(&self, item: MenuItemId) -> anyhow::Result<i64> {
        let page = self.get_json(&format!("/api/v1/portions?menu_item_id={item}")).await?;
        page["portions"][0]["portions_left"].as_i64().ok_or_else(|| anyhow::anyhow!("no portions in {page}"))
    }
}

/// A command about `order`, as the order saga sends it.
pub fn command(order: OrderId, payload: InventoryCommand) -> DomainEvent<InventoryCommand> {
    DomainEvent::new(order, 1, payload, Metadata::new("order-service", format!("req-{order}")))
}

/// `ReserveStock` of `lines` for `order`.
pub fn reserve(order: OrderId, lines: &[(MenuItemId, i64)]) -> DomainEvent<InventoryCommand> {
    let lines = lines
        .iter()
        .map(|(menu_item_id, quantity)| events::inventory::OrderLine {
            menu_item_id: *menu_item_id,
            quantity: *quantity,
        })
        .collect();
    command(order, InventoryCommand::ReserveStock { order_id: order, lines })
}

/// A JSON string value's text (an id).
pub fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value["id"].as_str().unwrap_or_default().to_owned(), str::to_owned)
}
