//! `spawn_app()`: the service on port 0 with its own schema and stream
//! prefix, its client sending a staff token with every scope; menus
//! published on its `menu-events`, its events read back from `order-events`.

use events::menu::MenuItem;
use events::{DomainEvent, EncodedEvent, MenuEvent, MenuItemId, Metadata};
use serde_json::{Value, json};
use service_kit::Settings;
use std::time::Duration;
use testkit::stream::Entry;
use testkit::{Api, Running, TestDb};
use uuid::Uuid;

pub type TestResult = anyhow::Result<()>;

/// A running order service.
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
    let application = order_service::build_with(&settings, order_service::service::Hooks::default()).await?;
    let service = Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()?;
    Ok(TestApp { service, db, settings })
}

/// A menu item as the menu service publishes it.
pub fn menu_item(name: &str, price_cents: i64, currency: &str) -> MenuItem {
    MenuItem {
        id: MenuItemId::new(),
        name: name.to_owned(),
        description: None,
        category: "mains".to_owned(),
        price_cents,
        currency: currency.to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    }
}

/// A line of `quantity` of `item`.
pub fn line(item: MenuItemId, quantity: i64) -> Value {
    json!({"menu_item_id": item, "quantity": quantity})
}

/// A takeaway of `lines`.
pub fn takeaway(lines: &[Value]) -> Value {
    json!({"kind": "takeaway", "lines": lines})
}

impl TestApp {
    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.settings.stream_prefix)
    }

    /// A client sending `token`.
    pub fn with(&self, token: &str) -> anyhow::Result<Api> {
        self.api.with_token(token)
    }

    /// Publishes `event` of `menu` at `version` on this app's `menu-events`.
    pub async fn publish(&self, menu: Uuid, version: i64, event: MenuEvent) -> anyhow::Result<()> {
        let event = DomainEvent::new(menu, version, event, Metadata::new("menu-service", "req-menu"));
        testkit::stream::append(&self.stream("menu-events"), &EncodedEvent::encode(&event)?.into_fields()).await?;
        Ok(())
    }

    /// Waits until the view holds `check` (a SQL boolean over the view).
    pub async fn until_view(&self, what: &str, check: &str) -> anyhow::Result<()> {
        testkit::eventually(Duration::from_secs(10), what, || async {
            Ok(sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(check.to_owned())).fetch_one(&self.db.pool).await?)
        })
        .await
    }

    /// Publishes an active menu of `items` and waits until the view has them.
    pub async fn active_menu(&self, items: &[MenuItem]) -> anyhow::Result<Uuid> {
        let menu = Uuid::now_v7();
        let activated = MenuEvent::MenuActivated { name: "Dinner".to_owned(), items: items.to_vec() };
        self.publish(menu, 2, activated).await?;
        self.until_view(
            "the menu learnt",
            &format!("SELECT EXISTS (SELECT 1 FROM menus_seen WHERE menu_id = '{menu}' AND active)"),
        )
        .await?;
        Ok(menu)
    }

    /// One active menu of one EUR item; its id.
    pub async fn an_item(&self) -> anyhow::Result<MenuItemId> {
        let item = menu_item("Steak frites", 1450, "EUR");
        self.active_menu(std::slice::from_ref(&item)).await?;
        Ok(item.id)
    }

    /// POSTs `body` to `path` as `api`; returns the status, headers and body.
    pub async fn post_as(
        &self,
        api: &Api,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let response = api.client.post(api.url(path)).header("x-request-id", "req-test").json(body).send().await?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        Ok((status, headers, response.json().await.unwrap_or(Value::Null)))
    }

    /// Places `body` as staff; returns the order.
    pub async fn place(&self, body: &Value) -> anyhow::Result<Value> {
        let (status, _, order) = self.post_as(&self.api, "/api/v1/orders", body).await?;
        anyhow::ensure!(status == 202, "placing: {status} {order}");
        Ok(order)
    }

    /// The entries on `order-events` about `order`, waiting for `count`.
    pub async fn events_of(&self, order: &str, count: usize) -> anyhow::Result<Vec<Entry>> {
        let found = std::cell::RefCell::new(Vec::new());
        testkit::eventually(Duration::from_secs(10), &format!("{count} events of {order}"), || async {
            let all = testkit::stream::entries(&self.stream("order-events"), 0, Duration::ZERO).await?;
            found.replace(all.into_iter().filter(|entry| entry.aggregate_id == order).collect());
            Ok(found.borrow().len() >= count)
        })
        .await?;
        Ok(found.into_inner())
    }
}

/// The problem's `field`.
pub fn field(problem: &Value) -> &str {
    problem["field"].as_str().unwrap_or_default()
}

/// The order's id.
pub fn id(order: &Value) -> String {
    order["id"].as_str().unwrap_or_default().to_owned()
}
