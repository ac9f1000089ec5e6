//! The inventory benchmark: how many orders a second the inventory service
//! alone reserves and then commits, when `ReserveStock` and `CommitStock`
//! commands are appended to `inventory-commands` as fast as it takes them,
//! beside pgbench's two-insert transaction on the same PostgreSQL; then the
//! time from appending a `CommitStock` to its `StockCommitted` on
//! `inventory-events` (p50/p99) at half that rate.
//!
//! The service runs in this process on a schema of its own (as the tests
//! start it), with 20 tracked items of 3-line recipes over 60 ingredients and
//! stock enough that no order is refused. Run it with
//! `cargo run --release -p inventory-service --example inventory_bench`;
//! `BENCH_ORDERS` (4000) and `PGBENCH_SECONDS` (10) tune it.

use anyhow::Context;
use events::inventory::OrderLine;
use events::{DomainEvent, EncodedEvent, InventoryCommand, Metadata, OrderId};
use rand::Rng;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::bench::Latencies;
use testkit::{Running, TestDb};

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

const ITEMS: usize = 20;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders: usize = setting("BENCH_ORDERS", 4000);
    let pgbench_seconds: u32 = setting("PGBENCH_SECONDS", 10);
    let db = TestDb::new().await?;
    let settings = service_kit::Settings {
        db_max_connections: 10,
        db_consumer_max_connections: 16,
        ..service_kit::Settings::ephemeral("platform_test", &db.schema, &testkit::unique("bench-"))
    };
    let application = inventory_service::build(&settings, &inventory_service::InventorySettings::default()).await?;
    let service = Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()?;
    let items = stock_the_kitchen(&service, &settings, &db).await?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "inventory benchmark: {orders} orders (reserve, then commit) over {ITEMS} items of 3-line recipes, {cores} CPUs"
    );

    let streams = settings.streams();
    let answers = Latencies::follow(&streams.of::<events::InventoryEvent>(), "StockCommitted").await?;
    let commands = streams.of::<InventoryCommand>();

    // 1. As fast as it takes them.
    let started = Instant::now();
    send(&commands, &answers, &items, orders, None).await?;
    answers.wait_for(orders, Duration::from_secs(300)).await?;
    let rate = orders as f64 / started.elapsed().as_secs_f64();
    let pgbench = testkit::bench::pgbench_two_inserts("platform_test", 16, pgbench_seconds)?;
    println!("reserve+commit: {rate:.0} orders/s ({:.0} commands/s)", rate * 2.0);
    println!("pgbench two-insert transaction: {pgbench:.0} tx/s");
    println!("orders / pgbench: {:.2}", rate / pgbench);

    // 2. At half that rate: command → answer.
    answers.reset();
    let paced = orders.min(4000);
    send(&commands, &answers, &items, paced, Some(rate / 2.0)).await?;
    answers.wait_for(paced, Duration::from_secs(300)).await?;
    let latency = answers.latency();
    println!(
        "CommitStock → StockCommitted at {:.0} orders/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        rate / 2.0,
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
    );
    Ok(())
}

/// Twenty menu items learnt from a menu event, each with a recipe of three
/// ingredients of its own, stocked for a million portions.
async fn stock_the_kitchen(
    service: &Running,
    settings: &service_kit::Settings,
    db: &TestDb,
) -> anyhow::Result<Vec<events::MenuItemId>> {
    let items: Vec<events::menu::MenuItem> = (0..ITEMS)
        .map(|n| events::menu::MenuItem {
            id: events::MenuItemId::new(),
            name: format!("Dish {n}"),
            description: None,
            category: "main".to_owned(),
            price_cents: 1000,
            currency: "EUR".to_owned(),
            available: true,
            switched_on: true,
            in_stock: true,
        })
        .collect();
    let created = events::MenuEvent::MenuCreated { name: "Bench".to_owned(), description: None, items: items.clone() };
    let event = DomainEvent::new(uuid::Uuid::now_v7(), 1, created, Metadata::new("menu-service", "bench"));
    let stream = settings.streams().of::<events::MenuEvent>();
    testkit::stream::append(&stream, &EncodedEvent::encode(&event)?.into_fields()).await?;
    testkit::eventually(Duration::from_secs(10), "the menu learnt", || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM menu_items_seen").fetch_one(&db.pool).await?;
        Ok(seen == ITEMS as i64)
    })
    .await?;
    for item in &items {
        let mut lines = Vec::new();
        for part in 0..3 {
            let body = json!({"name": format!("{} part {part}", item.name), "unit": "g"});
            let ingredient: Value = service.post("/api/v1/ingredients", &body).await?.json().await?;
            let id = ingredient["id"].as_str().context("an ingredient id")?.to_owned();
            let receipt =
                service.post(&format!("/api/v1/ingredients/{id}/receipts"), &json!({"quantity": 100_000_000})).await?;
            anyhow::ensure!(receipt.status() == 200, "receipt answered {}", receipt.status());
            lines.push(json!({"ingredient_id": id, "quantity": 10 + part}));
        }
        let recipe = service.put(&format!("/api/v1/recipes/{}", item.id), &json!({"lines": lines})).await?;
        anyhow::ensure!(recipe.status() == 200, "recipe answered {}", recipe.status());
    }
    Ok(items.iter().map(|item| item.id).collect())
}

/// Appends a `ReserveStock` and a `CommitStock` for each of `orders` orders
/// of one or two portions of a random item, in pipelines of 100 commands, at
/// `rate` orders a second if given; records when each commit was sent.
async fn send(
    stream: &str,
    answers: &Latencies,
    items: &[events::MenuItemId],
    orders: usize,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    let started = Instant::now();
    let per_batch = if rate.is_some() { 1 } else { 50 };
    let mut sent = 0;
    while sent < orders {
        let mut pipe = redis::pipe();
        let mut batch = Vec::new();
        for _ in 0..per_batch.min(orders - sent) {
            let order = OrderId::new();
            let (item, portions) = {
                let mut rng = rand::rng();
                (items[rng.random_range(0..items.len())], rng.random_range(1..=2))
            };
            let metadata = Metadata::new("order-service", format!("bench-{order}"));
            let lines = vec![OrderLine { menu_item_id: item, quantity: portions }];
            for payload in [
                InventoryCommand::ReserveStock { order_id: order, lines },
                InventoryCommand::CommitStock { order_id: order },
            ] {
                let command = DomainEvent::new(order, 1, payload, metadata.clone());
                pipe.cmd("XADD").arg(stream).arg("*").arg(&EncodedEvent::encode(&command)?.into_fields()[..]);
            }
            batch.push(order);
        }
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let now = Instant::now();
        for order in &batch {
            answers.sent(order.to_string(), now);
        }
        pipe.query_async::<()>(&mut connection).await?;
        sent += batch.len();
    }
    Ok(())
}
