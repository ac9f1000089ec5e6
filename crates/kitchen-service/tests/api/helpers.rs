//! `spawn_app()`: the service on port 0 with its own schema and stream
//! prefix, its client sending a staff token with every scope; menus
//! published on its `menu-events`, commands on its `kitchen-commands`, and
//! its answers read back from `kitchen-events`.

use events::kitchen::CommandLine;
use events::menu::MenuItem;
use events::{DomainEvent, EncodedEvent, KitchenCommand, MenuEvent, MenuItemId, Metadata, OrderId};
use kitchen_service::KitchenSettings;
use serde_json::Value;
use service_kit::Settings;
use std::time::Duration;
use testkit::stream::Entry;
use testkit::{Running, TestDb};
use uuid::Uuid;

pub type TestResult = anyhow::Result<()>;

/// A running kitchen service.
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

pub async fn spawn_app() -> anyhow::Result<TestApp> {
    testkit::init_tracing();
    let db = TestDb::new().await?;
    let settings = Settings::ephemeral("platform_test", &db.schema, &testkit::unique("test-"));
    let application = kitchen_service::build(&settings, &KitchenSettings::default()).await?;
    let service = Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()?;
    Ok(TestApp { service, db, settings })
}

/// A menu item as the menu service publishes it.
pub fn menu_item(name: &str, category: &str) -> MenuItem {
    MenuItem {
        id: MenuItemId::new(),
        name: name.to_owned(),
        description: None,
        category: category.to_owned(),
        price_cents: 1450,
        currency: "EUR".to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    }
}

/// A command about `order`, as the order saga sends it.
pub fn command(order: OrderId, payload: KitchenCommand) -> DomainEvent<KitchenCommand> {
    DomainEvent::new(order, 1, payload, Metadata::new("order-service", format!("req-{order}")))
}

/// `CreateTicket` for `order`, one portion of each item.
pub fn create(order: OrderId, items: &[MenuItemId]) -> DomainEvent<KitchenCommand> {
    let lines = items.iter().map(|id| CommandLine { menu_item_id: *id, quantity: 1, notes: None }).collect();
    command(order, KitchenCommand::CreateTicket { order_id: order, lines })
}

impl TestApp {
    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.settings.stream_prefix)
    }

    /// Publishes a menu of `(name, category)` items and waits until the
    /// kitchen has learnt them; returns their ids.
    pub async fn menu_with(&self, items: &[(&str, &str)]) -> anyhow::Result<Vec<MenuItemId>> {
        let items: Vec<MenuItem> = items.iter().map(|(name, category)| menu_item(name, category)).collect();
        let created = MenuEvent::MenuCreated { name: "Dinner".to_owned(), description: None, items: items.clone() };
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

    /// Appends `command` to this app's `kitchen-commands`.
    pub async fn command(&self, command: &DomainEvent<KitchenCommand>) -> anyhow::Result<String> {
        testkit::stream::append(&self.stream("kitchen-commands"), &EncodedEvent::encode(command)?.into_fields()).await
    }

    /// Every entry of `kitchen-events` so far.
    pub async fn events(&self) -> anyhow::Result<Vec<Entry>> {
        testkit::stream::entries(&self.stream("kitchen-events"), 0, Duration::ZERO).await
    }

    /// The entries on `kitchen-events` about `order`, waiting for `count` of them.
    pub async fn answers(&self, order: OrderId, count: usize) -> anyhow::Result<Vec<Entry>> {
        let answers = std::cell::RefCell::new(Vec::new());
        testkit::eventually(Duration::from_secs(10), &format!("{count} answers for {order}"), || async {
            let about: Vec<Entry> =
                self.events().await?.into_iter().filter(|entry| entry.data["order_id"] == order.to_string()).collect();
            answers.replace(about);
            Ok(answers.borrow().len() >= count)
        })
        .await?;
        Ok(answers.into_inner())
    }

    /// A ticket for `order` of `items`, created (and confirmed if `confirm`)
    /// by commands; returns it as the API shows it.
    pub async fn ticket(&self, order: OrderId, items: &[MenuItemId], confirm: bool) -> anyhow::Result<Value> {
        self.command(&create(order, items)).await?;
        let mut expected = 1;
        if confirm {
            self.command(&command(order, KitchenCommand::ConfirmTicket { order_id: order })).await?;
            expected = 2;
        }
        let answers = self.answers(order, expected).await?;
        self.get_json(&format!("/api/v1/tickets/{}", answers[0].aggregate_id)).await
    }

    /// POSTs `body` (none if `Null`) to `path` with request id `request_id`;
    /// returns the status and the body.
    pub async fn act(&self, path: &str, body: &Value, request_id: &str) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.post(self.url(path)).header("x-request-id", request_id);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}
