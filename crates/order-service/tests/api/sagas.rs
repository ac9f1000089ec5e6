//! Orders placed through the sagas, against the real inventory and kitchen
//! services on the same streams: approved, rejected out of stock, rejected
//! by the kitchen, cancelled before cooking and refused after; a kitchen that
//! is down while an order is placed; a storm of orders for scarce stock.

use crate::helpers::*;
use events::menu::MenuItem;
use events::{EncodedEvent, MenuEvent};
use order_service::OrderSettings;
use serde_json::{Value, json};
use service_kit::Settings;
use std::time::Duration;
use testkit::{Running, TestDb};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

/// The order, inventory and kitchen services on one set of streams; the
/// inventory stocked with rice for `portions` risottos.
struct Restaurant {
    orders: Running,
    inventory: Running,
    kitchen: Option<Running>,
    settings: Settings,
    kitchen_db: TestDb,
    risotto: MenuItem,
    rice: String,
    _dbs: [TestDb; 2],
}

fn on_streams(db: &TestDb, prefix: &str) -> Settings {
    Settings::ephemeral("platform_test", &db.schema, prefix)
}

async fn spawn_kitchen(settings: &Settings) -> anyhow::Result<Running> {
    let kitchen = kitchen_service::build(settings, &kitchen_service::KitchenSettings::default()).await?;
    Running::spawn(kitchen.port()?, |cancel| kitchen.run_until_stopped(cancel)).as_staff()
}

async fn restaurant(portions: i64, timing: OrderSettings, with_kitchen: bool) -> anyhow::Result<Restaurant> {
    let prefix = testkit::unique("test-");
    let order_db = TestDb::new().await?;
    let orders = order_service::build(&on_streams(&order_db, &prefix), &timing).await?;
    let orders = Running::spawn(orders.port()?, |cancel| orders.run_until_stopped(cancel)).as_staff()?;
    restaurant_around(orders, order_db, prefix, portions, with_kitchen).await
}

/// The inventory and kitchen around an order service already running on
/// `order_db` and the streams under `prefix`.
async fn restaurant_around(
    orders: Running,
    order_db: TestDb,
    prefix: String,
    portions: i64,
    with_kitchen: bool,
) -> anyhow::Result<Restaurant> {
    testkit::init_tracing();
    let (inventory_db, kitchen_db) = (TestDb::new().await?, TestDb::new().await?);
    let inventory =
        inventory_service::build(&on_streams(&inventory_db, &prefix), &inventory_service::InventorySettings::default())
            .await?;
    let inventory = Running::spawn(inventory.port()?, |cancel| inventory.run_until_stopped(cancel)).as_staff()?;
    let kitchen_settings = on_streams(&kitchen_db, &prefix);
    let kitchen = if with_kitchen { Some(spawn_kitchen(&kitchen_settings).await?) } else { None };

    let risotto = menu_item("Risotto", 1450, "EUR");
    let activated = MenuEvent::MenuActivated { name: "Dinner".to_owned(), items: vec![risotto.clone()] };
    let event =
        events::DomainEvent::new(Uuid::now_v7(), 2, activated, events::Metadata::new("menu-service", "req-menu"));
    testkit::stream::append(&format!("{prefix}menu-events"), &EncodedEvent::encode(&event)?.into_fields()).await?;

    let rice: Value =
        inventory.post("/api/v1/ingredients", &json!({"name": "Rice", "unit": "g"})).await?.json().await?;
    let rice = rice["id"].as_str().unwrap_or_default().to_owned();
    if portions > 0 {
        let receipt = inventory
            .post(&format!("/api/v1/ingredients/{rice}/receipts"), &json!({"quantity": 100 * portions}))
            .await?;
        anyhow::ensure!(receipt.status() == 200, "receipt: {}", receipt.status());
    }
    let recipe = json!({"lines": [{"ingredient_id": rice, "quantity": 100}]});
    testkit::eventually(WAIT, "the inventory learns the menu", || async {
        Ok(inventory.put(&format!("/api/v1/recipes/{}", risotto.id), &recipe).await?.status() == 200)
    })
    .await?;
    testkit::eventually(WAIT, "the order service learns the menu", || async {
        let seen: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM menus_seen WHERE active)")
            .fetch_one(&order_db.pool)
            .await?;
        Ok(seen)
    })
    .await?;
    Ok(Restaurant {
        orders,
        inventory,
        kitchen,
        settings: kitchen_settings,
        kitchen_db,
        risotto,
        rice,
        _dbs: [order_db, inventory_db],
    })
}

impl Restaurant {
    async fn place(&self, portions: i64) -> anyhow::Result<String> {
        let response = self.orders.post("/api/v1/orders", &takeaway(&[line(self.risotto.id, portions)])).await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status == 202, "placing: {status} {body}");
        Ok(id(&body))
    }

    async fn order(&self, order: &str) -> anyhow::Result<Value> {
        self.orders.get_json(&format!("/api/v1/orders/{order}")).await
    }

    async fn until_status(&self, order: &str, status: &str) -> anyhow::Result<Value> {
        testkit::eventually(WAIT, &format!("order {order} {status}"), || async {
            Ok(self.order(order).await?["status"] == status)
        })
        .await?;
        self.order(order).await
    }

    async fn rice(&self) -> anyhow::Result<(i64, i64)> {
        let rice = self.inventory.get_json(&format!("/api/v1/ingredients/{}", self.rice)).await?;
        Ok((rice["on_hand"].as_i64().unwrap_or(-1), rice["reserved"].as_i64().unwrap_or(-1)))
    }

    fn kitchen(&self) -> anyhow::Result<&Running> {
        self.kitchen.as_ref().ok_or_else(|| anyhow::anyhow!("no kitchen running"))
    }

    /// The kitchen's ticket of `order`.
    async fn ticket(&self, order: &str) -> anyhow::Result<Value> {
        let page = self.kitchen()?.get_json("/api/v1/tickets?limit=100").await?;
        let found =
            page["tickets"].as_array().into_iter().flatten().find(|ticket| ticket["order_id"] == order).cloned();
        found.ok_or_else(|| anyhow::anyhow!("no active ticket for {order}"))
    }

    async fn kitchen_does(&self, order: &str, step: &str, body: Value) -> anyhow::Result<Value> {
        let response = self.kitchen_tries(order, step, body).await?;
        anyhow::ensure!(response.status() == 200, "{step}: {}", response.status());
        Ok(response.json().await?)
    }

    /// The kitchen's answer to `step` on the ticket of `order`, whatever it is.
    async fn kitchen_tries(&self, order: &str, step: &str, body: Value) -> anyhow::Result<reqwest::Response> {
        let ticket = self.ticket(order).await?;
        let path = format!("/api/v1/tickets/{}/{step}", ticket["id"].as_str().unwrap_or_default());
        self.kitchen()?.post(&path, &body).await
    }
}

fn fast() -> OrderSettings {
    OrderSettings { saga_step_deadline_ms: 2000, saga_step_retries: 3, saga_sweep_interval_ms: 100 }
}

fn in_twenty_minutes() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::minutes(20)).to_rfc3339()
}

#[tokio::test]
async fn an_order_is_approved_then_follows_its_ticket_and_the_stock_is_used_when_cooking_starts() -> TestResult {
    let r = restaurant(5, fast(), true).await?;
    let order = r.place(2).await?;
    let approved = r.until_status(&order, "approved").await?;
    assert_eq!(r.rice().await?, (500, 200), "held for the order");
    let history: Vec<String> = approved["sagas"][0]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["event_type"].as_str().map(str::to_owned))
        .collect();
    for step in ["ReserveStock", "StockReserved", "CreateTicket", "TicketCreated", "ConfirmTicket", "TicketConfirmed"] {
        assert!(history.iter().any(|seen| seen == step), "{step} missing from the saga's history {history:?}");
    }
    assert_eq!(approved["sagas"][0]["status"], "completed");

    r.kitchen_does(&order, "accept", json!({"ready_by": in_twenty_minutes()})).await?;
    r.kitchen_does(&order, "start", json!({})).await?;
    r.until_status(&order, "preparing").await?;
    testkit::eventually(WAIT, "the stock is used", || async { Ok(r.rice().await? == (300, 0)) }).await?;
    r.kitchen_does(&order, "ready", json!({})).await?;
    r.until_status(&order, "ready").await?;
    r.kitchen_does(&order, "pick-up", json!({})).await?;
    r.until_status(&order, "picked_up").await?;
    let completed = r.orders.post(&format!("/api/v1/orders/{order}/complete"), &json!({})).await?;
    assert_eq!(completed.status(), 200);
    let types: Vec<String> = testkit::stream::entries(&r.settings.streams().of::<events::OrderEvent>(), 7, WAIT)
        .await?
        .into_iter()
        .filter(|entry| entry.aggregate_id == order)
        .map(|entry| entry.event_type)
        .collect();
    assert_eq!(
        types,
        ["OrderPlaced", "OrderApproved", "OrderPreparing", "OrderReady", "OrderPickedUp", "OrderCompleted"]
    );
    Ok(())
}

#[tokio::test]
async fn an_order_beyond_the_stock_is_rejected_naming_the_shortage_and_nothing_is_left_held() -> TestResult {
    let r = restaurant(1, fast(), true).await?;
    let order = r.place(3).await?;
    let rejected = r.until_status(&order, "rejected").await?;
    let reason = rejected["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("out of stock") && reason.contains(&r.risotto.id.to_string()), "{reason}");
    assert!(reason.contains("3 asked, 1 available"), "{reason}");
    assert_eq!(r.rice().await?, (100, 0));
    let tickets = r.kitchen()?.get_json("/api/v1/tickets?limit=100").await?;
    assert_eq!(tickets["tickets"].as_array().map(Vec::len), Some(0), "no ticket for a rejected order");
    Ok(())
}

#[tokio::test]
async fn the_kitchen_rejecting_an_approved_order_rejects_it_and_releases_its_stock() -> TestResult {
    let r = restaurant(5, fast(), true).await?;
    let order = r.place(2).await?;
    r.until_status(&order, "approved").await?;
    r.kitchen_does(&order, "reject", json!({"reason": "the oven is broken"})).await?;
    let rejected = r.until_status(&order, "rejected").await?;
    assert!(rejected["reason"].as_str().unwrap_or_default().contains("the oven is broken"));
    testkit::eventually(WAIT, "the stock is released", || async { Ok(r.rice().await? == (500, 0)) }).await?;
    Ok(())
}

#[tokio::test]
async fn an_order_cancelled_before_cooking_is_cancelled_and_after_it_is_refused() -> TestResult {
    let r = restaurant(5, fast(), true).await?;
    let early = r.place(1).await?;
    let late = r.place(1).await?;
    r.until_status(&early, "approved").await?;
    r.until_status(&late, "approved").await?;

    assert_eq!(r.orders.post(&format!("/api/v1/orders/{early}/cancel"), &json!({})).await?.status(), 202);
    r.until_status(&early, "cancelled").await?;

    r.kitchen_does(&late, "accept", json!({"ready_by": in_twenty_minutes()})).await?;
    r.kitchen_does(&late, "start", json!({})).await?;
    r.until_status(&late, "preparing").await?;
    assert_eq!(
        r.orders.post(&format!("/api/v1/orders/{late}/cancel"), &json!({})).await?.status(),
        409,
        "too late at once"
    );
    testkit::eventually(WAIT, "the early order's stock is free and the late one's used", || async {
        Ok(r.rice().await? == (400, 0))
    })
    .await?;
    let cancelled_ticket = r.ticket(&early).await;
    assert!(cancelled_ticket.is_err(), "the cancelled order's ticket is no longer active");
    Ok(())
}

#[tokio::test]
async fn a_kitchen_down_while_an_order_is_placed_gets_the_ticket_when_it_comes_back() -> TestResult {
    let timing = OrderSettings { saga_step_deadline_ms: 300, saga_step_retries: 50, saga_sweep_interval_ms: 50 };
    let mut r = restaurant(5, timing, false).await?;
    let order = r.place(1).await?;
    testkit::eventually(WAIT, "CreateTicket sent again", || async {
        let view = r.order(&order).await?;
        let sends = view["sagas"][0]["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["event_type"] == "CreateTicket")
            .count();
        Ok(sends >= 2)
    })
    .await?;
    r.kitchen = Some(spawn_kitchen(&r.settings).await?);
    r.until_status(&order, "approved").await?;
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets").fetch_one(&r.kitchen_db.pool).await?;
    assert_eq!(tickets, 1, "one ticket however often it was asked for");
    Ok(())
}

#[tokio::test]
async fn two_hundred_orders_for_fifty_portions_approve_exactly_fifty() -> TestResult {
    const ORDERS: usize = 200;
    let r = restaurant(50, OrderSettings { saga_step_deadline_ms: 20_000, ..fast() }, true).await?;
    let placing: Vec<_> = (0..ORDERS).map(|_| r.place(1)).collect();
    let placed: Vec<String> = futures::future::try_join_all(placing).await?;
    let counted = std::cell::RefCell::new(std::collections::HashMap::new());
    testkit::eventually(Duration::from_secs(120), "every order decided", || async {
        let mut statuses = std::collections::HashMap::new();
        for offset in (0..).step_by(100).take(3) {
            let list = r.orders.get_json(&format!("/api/v1/orders?limit=100&offset={offset}")).await?;
            for order in list["orders"].as_array().into_iter().flatten() {
                *statuses.entry(order["status"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
            }
        }
        let decided = statuses.get("approved").copied().unwrap_or(0) + statuses.get("rejected").copied().unwrap_or(0);
        counted.replace(statuses);
        Ok(decided == ORDERS)
    })
    .await
    .map_err(|error| anyhow::anyhow!("{error}: {:?}", counted.borrow()))?;
    let statuses = counted.into_inner();
    assert_eq!(statuses.get("approved"), Some(&50), "{statuses:?}");
    assert_eq!(statuses.get("rejected"), Some(&150), "{statuses:?}");
    assert_eq!(r.rice().await?, (5000, 5000), "reserved stock is what the approved orders need");
    for order in placed.iter().take(20) {
        let view = r.order(order).await?;
        if view["status"] == "rejected" {
            assert!(view["reason"].as_str().unwrap_or_default().contains("out of stock"), "{view}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_cancellation_the_kitchen_refuses_returns_the_order_to_cooking_with_the_refusal_shown() -> TestResult {
    let r = restaurant(10, fast(), true).await?;
    // The kitchen starts cooking at the moment the guest cancels: the order
    // service has not heard yet, so it asks the kitchen, which refuses.
    for _ in 0..5 {
        let order = r.place(1).await?;
        r.until_status(&order, "approved").await?;
        r.kitchen_does(&order, "accept", json!({"ready_by": in_twenty_minutes()})).await?;
        let (path, empty) = (format!("/api/v1/orders/{order}/cancel"), json!({}));
        let cancel = r.orders.post(&path, &empty);
        let (cancelled, started) = tokio::join!(cancel, r.kitchen_tries(&order, "start", json!({})));
        match started?.status().as_u16() {
            200 => {}
            409 => continue, // the cancellation reached the kitchen first: the ticket is cancelled
            other => anyhow::bail!("start: {other}"),
        }
        if cancelled?.status() != 202 {
            continue; // the order service heard of the cooking first: 409 at once
        }
        let refused = r.until_status(&order, "preparing").await.map_err(|e| anyhow::anyhow!("{e}"));
        let refused = match refused {
            Ok(refused) => refused,
            Err(error) => anyhow::bail!("{error}: {}", r.order(&order).await?),
        };
        assert!(refused["refusal"].as_str().unwrap_or_default().contains("preparing"), "{refused}");
        let sagas: Vec<&str> =
            refused["sagas"].as_array().into_iter().flatten().filter_map(|s| s["saga_type"].as_str()).collect();
        assert_eq!(sagas, ["CreateOrder", "CancelOrder"]);
        assert_eq!(refused["sagas"][1]["status"], "failed");
        return Ok(());
    }
    anyhow::bail!("in five tries the kitchen never started before the cancellation reached it")
}

/// The real `order-service` binary on `db` and the streams under `prefix`.
fn order_binary(db: &TestDb, prefix: &str, port: u16) -> anyhow::Result<tokio::process::Child> {
    Ok(tokio::process::Command::new(env!("CARGO_BIN_EXE_order-service"))
        .env("DB_HOST", "127.0.0.1")
        .env("DB_NAME", "platform_test")
        .env("DB_SCHEMA", &db.schema)
        .env("DB_CONSUMER_MAX_CONNECTIONS", "10")
        .env("REDIS_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("STREAM_PREFIX", prefix)
        .env("CONSUMER_NAME", "order-service-1")
        .env("SAGA_STEP_DEADLINE_MS", "1000")
        .env("SAGA_SWEEP_INTERVAL_MS", "100")
        .env("RUST_LOG", "warn")
        .env("AUTH_PUBLIC_KEY_FILE", testkit::auth::TestKeys::shared()?.public_key_file())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

async fn until_ready(base: &str) -> TestResult {
    let client = reqwest::Client::new();
    testkit::eventually(WAIT, "the order service to be ready", || async {
        Ok(client.get(format!("{base}/ready")).send().await.is_ok_and(|response| response.status().is_success()))
    })
    .await
}

#[tokio::test]
async fn the_order_service_killed_mid_saga_finishes_every_saga_when_it_is_back_and_the_books_agree() -> TestResult {
    const ORDERS: usize = 40;
    let prefix = testkit::unique("test-");
    let order_db = TestDb::new().await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut binary = order_binary(&order_db, &prefix, port)?;
    let base = format!("http://127.0.0.1:{port}");
    until_ready(&base).await?;
    // The test's own handle on the running binary; `Running` only stops
    // what it spawned itself, so this one stops nothing.
    let api = testkit::Running::spawn(port, |cancel| async move { cancel.cancelled().await }).as_staff()?;
    let r = restaurant_around(api, order_db, prefix.clone(), 20, true).await?;

    let mut placed = Vec::new();
    for _ in 0..ORDERS {
        placed.push(r.place(1).await?);
    }
    // Mid-saga: some orders approved, others with commands or replies in flight.
    let pid = binary.id().ok_or_else(|| anyhow::anyhow!("the binary is running"))?;
    assert!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status()?.success());
    binary.wait().await?;
    let mut binary = order_binary(&r._dbs[0], &prefix, port)?;
    until_ready(&base).await?;

    let settled = std::cell::RefCell::new(Vec::new());
    testkit::eventually(Duration::from_secs(60), "every order decided", || async {
        let mut statuses = Vec::new();
        for order in &placed {
            statuses.push(r.order(order).await?["status"].as_str().unwrap_or_default().to_owned());
        }
        let decided = statuses.iter().all(|status| status == "approved" || status == "rejected");
        settled.replace(statuses);
        Ok(decided)
    })
    .await
    .map_err(|error| anyhow::anyhow!("{error}: {:?}", settled.borrow()))?;
    let statuses = settled.into_inner();
    let approved = statuses.iter().filter(|status| *status == "approved").count();
    assert_eq!(approved, 20, "as many approved as there is stock for: {statuses:?}");
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM sagas WHERE status NOT IN ('completed', 'failed')")
        .fetch_one(&r._dbs[0].pool)
        .await?;
    assert_eq!(running, 0, "every saga ended");
    testkit::eventually(WAIT, "the stock held is what the approved orders need", || async {
        Ok(r.rice().await? == (2000, 100 * i64::try_from(approved)?))
    })
    .await?;
    let tickets: Vec<(String, String)> =
        sqlx::query_as("SELECT order_id::text, status FROM tickets").fetch_all(&r.kitchen_db.pool).await?;
    for (order, status) in &tickets {
        let order_status = &statuses[placed.iter().position(|id| id == order).unwrap_or(usize::MAX).min(ORDERS - 1)];
        if order_status == "rejected" {
            assert_eq!(status, "cancelled", "a rejected order's ticket is cancelled");
        } else {
            assert_eq!(status, "awaiting_acceptance");
        }
    }
    assert_eq!(tickets.iter().filter(|(_, status)| status == "awaiting_acceptance").count(), approved);
    binary.kill().await?;
    Ok(())
}

#[tokio::test]
async fn a_seated_party_s_pre_order_opens_its_dine_in_order_which_the_saga_approves() -> TestResult {
    let r = restaurant(5, fast(), true).await?;
    // The reservation service on the same streams, at a clock the test moves.
    let reservation_db = TestDb::new().await?;
    let prefix = r.settings.stream_prefix.clone();
    let clock = service_kit::clock::Clock::manual(chrono::Utc::now());
    let all_day = reservation_service::BookingSettings {
        opening_hours: "00:00-24:00".to_owned(),
        ..reservation_service::BookingSettings::default()
    };
    let reservations =
        reservation_service::build_with_clock(&on_streams(&reservation_db, &prefix), &all_day, clock.clone()).await?;
    let reservations =
        Running::spawn(reservations.port()?, |cancel| reservations.run_until_stopped(cancel)).as_staff()?;
    let day = chrono::TimeDelta::days(1);
    let starts_at =
        chrono::DurationRound::duration_trunc(chrono::Utc::now() + day, day)? + chrono::TimeDelta::hours(19);
    let booking = json!({
        "guest_name": "Ada", "guest_email": "ada@example.com", "party_size": 2, "starts_at": starts_at,
        "pre_order": [{"menu_item_id": r.risotto.id, "quantity": 2}]
    });
    let booked = std::cell::RefCell::new(None);
    testkit::eventually(WAIT, "the reservation service learns the menu and takes the pre-order", || async {
        let response = reservations.post("/api/v1/reservations", &booking).await?;
        if response.status() == 201 {
            booked.replace(Some(response.json::<Value>().await?));
        }
        Ok(booked.borrow().is_some())
    })
    .await?;
    let reservation = booked.into_inner().map(|body| id(&body)).unwrap_or_default();
    reservations.patch_empty(&format!("/api/v1/reservations/{reservation}/confirm")).await?;
    clock.advance(starts_at - chrono::TimeDelta::minutes(30) - clock.now());
    let seated = reservations.patch_empty(&format!("/api/v1/reservations/{reservation}/seat")).await?;
    anyhow::ensure!(seated.status() == 200, "seating: {}", seated.status());

    let order_db = &r._dbs[0];
    let order = std::cell::RefCell::new(None);
    testkit::eventually(WAIT, "the dine-in order is opened", || async {
        let found = sqlx::query_scalar::<_, Uuid>("SELECT id FROM orders WHERE reservation_id = $1")
            .bind(Uuid::parse_str(&reservation)?)
            .fetch_optional(&order_db.pool)
            .await?;
        order.replace(found);
        Ok(order.borrow().is_some())
    })
    .await?;
    let order = order.into_inner().map(|id| id.to_string()).unwrap_or_default();
    let approved = r.until_status(&order, "approved").await?;
    assert_eq!(approved["kind"], "dine_in");
    assert_eq!(approved["reservation_id"], reservation);
    assert_eq!(approved["lines"][0]["quantity"], 2);
    assert_eq!(approved["total_cents"], 2900);
    assert_eq!(r.rice().await?, (500, 200), "the pre-order's stock is held");
    Ok(())
}
