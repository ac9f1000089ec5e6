//! The order benchmark: orders placed through the gateway and approved by the
//! CreateOrder saga over the real inventory and kitchen services (all in this
//! process, each on a schema of its own, one Redis), beside pgbench's
//! two-insert transaction on the same PostgreSQL: orders/s from the first
//! `POST /api/v1/orders` to the last `OrderApproved`, then p50/p99 of
//! placed → approved (the 202's send to the `OrderApproved` on the stream)
//! at half that rate. Stock is ample, so every order is approved.
//!
//! `cargo run --release -p api-gateway --example order_bench`;
//! `BENCH_ORDERS` (2000), `BENCH_CLIENTS` (32), `PGBENCH_SECONDS` (10).

use api_gateway::GatewaySettings;
use serde_json::{Value, json};
use service_kit::Settings;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::bench::Latencies;
use testkit::{Running, TestDb};

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn settings(db: &TestDb, prefix: &str) -> Settings {
    Settings {
        db_max_connections: 16,
        db_consumer_max_connections: 16,
        ..Settings::ephemeral("platform_test", &db.schema, prefix)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders: usize = setting("BENCH_ORDERS", 2000);
    let clients: usize = setting("BENCH_CLIENTS", 32);
    let pgbench_seconds: u32 = setting("PGBENCH_SECONDS", 10);
    let prefix = testkit::unique("bench-");
    let dbs = [TestDb::new().await?, TestDb::new().await?, TestDb::new().await?];
    let order = order_service::build(&settings(&dbs[0], &prefix), &order_service::OrderSettings::default()).await?;
    let order = Running::spawn(order.port()?, |cancel| order.run_until_stopped(cancel));
    let inventory =
        inventory_service::build(&settings(&dbs[1], &prefix), &inventory_service::InventorySettings::default()).await?;
    let inventory = Running::spawn(inventory.port()?, |cancel| inventory.run_until_stopped(cancel)).as_staff()?;
    let kitchen =
        kitchen_service::build(&settings(&dbs[2], &prefix), &kitchen_service::KitchenSettings::default()).await?;
    let kitchen = Running::spawn(kitchen.port()?, |cancel| kitchen.run_until_stopped(cancel));
    let nowhere = "http://127.0.0.1:9";
    let gateway_settings = GatewaySettings::for_upstreams(nowhere, nowhere)
        .with_upstream(service_kit::catalog::INVENTORY.name, &inventory.base)
        .with_upstream(service_kit::catalog::KITCHEN.name, &kitchen.base)
        .with_upstream(service_kit::catalog::ORDER.name, &order.base);
    let gateway = api_gateway::Application::build(&gateway_settings).await?;
    let gateway = Running::spawn(gateway.port()?, |cancel| gateway.run_until_stopped(cancel)).as_staff()?;

    // Twenty dishes, each a 3-line recipe over ingredients of its own, stocked for ever.
    let items: Vec<events::menu::MenuItem> = (0..20)
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
    let activated = events::MenuEvent::MenuActivated { name: "Bench".to_owned(), items: items.clone() };
    let event =
        events::DomainEvent::new(uuid::Uuid::now_v7(), 2, activated, events::Metadata::new("menu-service", "bench"));
    testkit::stream::append(&format!("{prefix}menu-events"), &events::EncodedEvent::encode(&event)?.into_fields())
        .await?;
    for item in &items {
        let mut lines = Vec::new();
        for part in 0..3 {
            let ingredient: Value = inventory
                .post("/api/v1/ingredients", &json!({"name": format!("{} {part}", item.name), "unit": "g"}))
                .await?
                .json()
                .await?;
            let id = ingredient["id"].as_str().unwrap_or_default().to_owned();
            inventory.post(&format!("/api/v1/ingredients/{id}/receipts"), &json!({"quantity": 1_000_000_000})).await?;
            lines.push(json!({"ingredient_id": id, "quantity": 10}));
        }
        testkit::eventually(Duration::from_secs(10), "the inventory learns the menu", || async {
            Ok(inventory.put(&format!("/api/v1/recipes/{}", item.id), &json!({"lines": lines})).await?.status() == 200)
        })
        .await?;
    }
    let probe = json!({"kind": "takeaway", "lines": [{"menu_item_id": items[0].id, "quantity": 1}]});
    testkit::eventually(Duration::from_secs(10), "the order service learns the menu", || async {
        Ok(gateway.post("/api/v1/orders", &probe).await?.status() == 202)
    })
    .await?;

    let approvals = Latencies::follow(&format!("{prefix}order-events"), "OrderApproved").await?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("order benchmark via the gateway: {orders} orders, {clients} clients, {cores} CPUs");
    let started = Instant::now();
    place(&gateway, &items, &approvals, orders, clients, None).await?;
    approvals.wait_for(orders, Duration::from_secs(600)).await?;
    let rate = orders as f64 / started.elapsed().as_secs_f64();
    let pgbench = testkit::bench::pgbench_two_inserts("platform_test", 16, pgbench_seconds)?;
    println!("orders placed → approved: {rate:.0}/s");
    println!("pgbench two-insert transaction: {pgbench:.0} tx/s");
    println!("orders / pgbench: {:.3}", rate / pgbench);

    approvals.reset();
    let paced = (orders / 2).max(1);
    place(&gateway, &items, &approvals, paced, clients, Some(rate / 2.0)).await?;
    approvals.wait_for(paced, Duration::from_secs(600)).await?;
    let latency = approvals.latency();
    println!(
        "placed → approved at {:.0} orders/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        rate / 2.0,
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    Ok(())
}

/// Places `count` takeaways of one random dish from `clients` concurrent
/// clients, at `rate` orders a second if given.
async fn place(
    gateway: &Running,
    items: &[events::menu::MenuItem],
    approvals: &Latencies,
    count: usize,
    clients: usize,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..clients).map(|_| {
        let (api, next, approvals) = (gateway.api.clone(), next.clone(), approvals.clone());
        let items: Vec<events::MenuItemId> = items.iter().map(|item| item.id).collect();
        async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= count {
                    return anyhow::Ok(());
                }
                if let Some(rate) = rate {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / rate)).into()).await;
                }
                let item = items[n % items.len()];
                let body = json!({"kind": "takeaway", "lines": [{"menu_item_id": item, "quantity": 1}]});
                let sent = Instant::now();
                let response = api.post("/api/v1/orders", &body).await?;
                anyhow::ensure!(response.status() == 202, "placing answered {}", response.status());
                let order: Value = response.json().await?;
                approvals.sent(order["id"].as_str().unwrap_or_default().to_owned(), sent);
            }
        }
    });
    futures::future::try_join_all(workers).await?;
    Ok(())
}
