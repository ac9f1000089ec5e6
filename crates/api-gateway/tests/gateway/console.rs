//! The staff console in a real browser: Debian's Chromium, driven by the
//! scripts in `tests/browser` (playwright-core), against the gateway in
//! front of the real services.
//!
//! The kitchen display (`kitchen-display.mjs`, the real kitchen service)
//! must show a ticket the saga creates without a reload, drive it through its
//! steps, and catch up after a dropped connection; each step is on
//! `kitchen-events`. The operator pages (`operator-console.mjs`, the real
//! order service, the test answering for the inventory and the kitchen on
//! their streams) must show an order's events live, filter them and follow
//! its correlation id across streams, re-drive a dead letter the order
//! service's consumer made, and abort, then retry, its saga.

use crate::helpers::{TestResult, spawn_gateway};
use api_gateway::GatewaySettings;
use events::kitchen::CommandLine;
use events::menu::MenuItem;
use events::{DomainEvent, EncodedEvent, KitchenCommand, MenuEvent, MenuItemId, Metadata, OrderId};
use events::{InventoryCommand, InventoryEvent, KitchenEvent};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use testkit::{Running, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};

fn browser_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where Chromium is, once it and playwright-core are known to be installed.
fn chromium() -> anyhow::Result<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    anyhow::ensure!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: scripts/test installs Debian's chromium"
    );
    anyhow::ensure!(
        browser_tests().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: scripts/test runs npm ci in {}",
        browser_tests().display()
    );
    Ok(chromium)
}

fn item(name: &str, category: &str) -> MenuItem {
    MenuItem {
        id: MenuItemId::new(),
        name: name.to_owned(),
        description: None,
        category: category.to_owned(),
        price_cents: 1200,
        currency: "EUR".to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    }
}

async fn append<E: events::Event>(stream: &str, event: &DomainEvent<E>) -> anyhow::Result<()> {
    testkit::stream::append(stream, &EncodedEvent::encode(event)?.into_fields()).await?;
    Ok(())
}

#[tokio::test]
async fn the_kitchen_display_shows_a_new_ticket_live_and_drives_it_to_picked_up_in_chromium() -> TestResult {
    let chromium = chromium()?;

    let db = TestDb::new().await?;
    let settings = service_kit::Settings::ephemeral("platform_test", &db.schema, &testkit::unique("test-"));
    let streams = settings.streams();
    let kitchen = kitchen_service::build(&settings, &kitchen_service::KitchenSettings::default()).await?;
    let kitchen = Running::spawn(kitchen.port()?, |cancel| kitchen.run_until_stopped(cancel));
    let nowhere = "http://127.0.0.1:9";
    let gateway_settings = GatewaySettings::for_upstreams(nowhere, nowhere)
        .with_upstream(service_kit::catalog::INVENTORY.name, nowhere)
        .with_upstream(service_kit::catalog::KITCHEN.name, &kitchen.base)
        .with_upstream(service_kit::catalog::ORDER.name, nowhere);
    let gateway = spawn_gateway(gateway_settings).await?;
    // The browser's way to the gateway, which the test cuts to drop the feed.
    let gateway_addr: std::net::SocketAddr = gateway.base.trim_start_matches("http://").parse()?;
    let line = testkit::proxy::FaultProxy::start(gateway_addr).await?;
    let console_base = format!("http://127.0.0.1:{}", line.port());

    let (risotto, tiramisu) = (item("Risotto", "main"), item("Tiramisu", "dessert"));
    let menu = MenuEvent::MenuCreated {
        name: "Dinner".to_owned(),
        description: None,
        items: vec![risotto.clone(), tiramisu.clone()],
    };
    append(
        &streams.of::<MenuEvent>(),
        &DomainEvent::new(uuid::Uuid::now_v7(), 1, menu, Metadata::new("menu-service", "req-menu")),
    )
    .await?;

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kitchen-display.png");
    let mut browser = tokio::process::Command::new("node")
        .arg(browser_tests().join("kitchen-display.mjs"))
        .args([&console_base, &gateway.base, &testkit::auth::staff_token()?, &screenshot.display().to_string()])
        .env("CHROMIUM", &chromium)
        .current_dir(browser_tests())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(browser.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??;
    anyhow::ensure!(ready.as_deref() == Some("READY"), "the display did not come up: {ready:?}");

    let order = OrderId::new();
    let lines_ordered = vec![
        CommandLine { menu_item_id: risotto.id, quantity: 2, notes: Some("no cheese".to_owned()) },
        CommandLine { menu_item_id: tiramisu.id, quantity: 1, notes: None },
    ];
    let commands = streams.of::<KitchenCommand>();
    let saga = |payload| DomainEvent::new(order, 1, payload, Metadata::new("order-service", format!("req-{order}")));
    append(&commands, &saga(KitchenCommand::CreateTicket { order_id: order, lines: lines_ordered })).await?;
    append(&commands, &saga(KitchenCommand::ConfirmTicket { order_id: order })).await?;

    let outcome = loop {
        let said = tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await??.unwrap_or_default();
        match said.as_str() {
            "CUT" => line.cut(),
            "RESTORE" => line.restore(),
            _ => break said,
        }
    };
    let status = browser.wait().await?;
    println!("browser: {outcome}; screenshot {}", screenshot.display());
    anyhow::ensure!(status.success() && outcome.starts_with("DONE"), "the display failed: {outcome}");
    assert!(screenshot.exists(), "a screenshot was saved");

    let entries = testkit::stream::entries(&streams.of::<events::KitchenEvent>(), 9, Duration::from_secs(5)).await?;
    let steps: Vec<&str> = entries.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(
        steps,
        [
            "TicketCreated",
            "TicketConfirmed",
            "TicketAccepted",
            "TicketPreparationStarted",
            "TicketLineDone",
            "TicketLineDone",
            "TicketLineRecalled",
            "TicketReady",
            "TicketPickedUp"
        ]
    );
    let staff_steps = &entries[2..];
    assert!(
        staff_steps.iter().all(|entry| entry.metadata["correlation_id"].as_str().is_some_and(|id| !id.is_empty())),
        "each step carries its request id"
    );
    Ok(())
}

/// The latest command of `kind` for `order` on `stream`, waiting for it.
async fn command(stream: &str, kind: &str, order: &str) -> anyhow::Result<testkit::stream::Entry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let entries = testkit::stream::entries(stream, 1, Duration::from_secs(1)).await?;
        let found = entries.into_iter().rev().find(|entry| entry.event_type == kind && entry.aggregate_id == order);
        if let Some(found) = found {
            return Ok(found);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no {kind} for {order} on {stream}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Appends `payload` to `stream` as the participant's answer to `command`.
async fn answer<E: events::Event>(
    stream: &str,
    source: &str,
    command: &testkit::stream::Entry,
    payload: E,
) -> anyhow::Result<()> {
    let mut metadata = Metadata::new(source, command.metadata["correlation_id"].as_str().unwrap_or_default());
    metadata.causation_id = Some(command.event_id.clone());
    let order: uuid::Uuid = command.aggregate_id.parse()?;
    append(stream, &DomainEvent::new(order, 1, payload, metadata)).await
}

#[tokio::test]
async fn the_operator_pages_show_events_live_redrive_a_dead_letter_and_abort_and_retry_a_saga_in_chromium() -> TestResult
{
    let chromium = chromium()?;
    let db = TestDb::new().await?;
    let prefix = testkit::unique("test-");
    let settings = service_kit::Settings {
        db_consumer_max_connections: 10,
        ..service_kit::Settings::ephemeral("platform_test", &db.schema, &prefix)
    };
    let streams = settings.streams();
    // Long deadlines: the saga moves only when the test answers for the participants.
    let timing = order_service::OrderSettings {
        saga_step_deadline_ms: 600_000,
        saga_step_retries: 3,
        saga_sweep_interval_ms: 500,
    };
    let orders = order_service::build(&settings, &timing).await?;
    let orders = Running::spawn(orders.port()?, |cancel| orders.run_until_stopped(cancel));
    let nowhere = "http://127.0.0.1:9";
    let gateway_settings = GatewaySettings::for_upstreams(nowhere, nowhere)
        .with_upstream(service_kit::catalog::INVENTORY.name, nowhere)
        .with_upstream(service_kit::catalog::KITCHEN.name, nowhere)
        .with_upstream(service_kit::catalog::ORDER.name, &orders.base)
        .with_stream_prefix(&prefix);
    let gateway = spawn_gateway(gateway_settings).await?;

    let menu = uuid::Uuid::now_v7();
    let risotto = item("Risotto", "main");
    let activated = MenuEvent::MenuActivated { name: "Dinner".to_owned(), items: vec![risotto.clone()] };
    let menu_events = streams.of::<MenuEvent>();
    append(&menu_events, &DomainEvent::new(menu, 2, activated, Metadata::new("menu-service", "req-menu"))).await?;
    testkit::eventually(Duration::from_secs(20), "the order service learns the menu", || async {
        Ok(sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM menus_seen WHERE active)")
            .fetch_one(&db.pool)
            .await?)
    })
    .await?;

    // A deployment that broke the order service's menu view for one item:
    // its consumer gives up on the item's event and dead-letters it.
    sqlx::query("ALTER TABLE menu_items_seen ADD CONSTRAINT no_squid CHECK (name IS DISTINCT FROM 'Squid')")
        .execute(&db.pool)
        .await?;
    let squid = item("Squid", "main");
    let added = MenuEvent::MenuItemAdded { item: squid.clone() };
    append(&menu_events, &DomainEvent::new(menu, 3, added, Metadata::new("menu-service", "req-squid"))).await?;
    let mut redis = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    let dead_letters = format!("{menu_events}.dlq");
    testkit::eventually(Duration::from_secs(30), "the Squid is dead-lettered", || {
        let mut redis = redis.clone();
        let dead_letters = dead_letters.clone();
        async move { Ok(redis::cmd("XLEN").arg(&dead_letters).query_async::<u64>(&mut redis).await? == 1) }
    })
    .await?;
    // The fix is deployed: the letter can be re-driven.
    sqlx::query("ALTER TABLE menu_items_seen DROP CONSTRAINT no_squid").execute(&db.pool).await?;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = tokio::process::Command::new("node")
        .arg(browser_tests().join("operator-console.mjs"))
        .args([&gateway.base, &testkit::auth::staff_token()?, &shots.display().to_string(), &risotto.id.to_string()])
        .env("CHROMIUM", &chromium)
        .current_dir(browser_tests())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut said = BufReader::new(browser.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), said.next_line()).await??;
    anyhow::ensure!(ready.as_deref() == Some("READY"), "the events page did not come up: {ready:?}");

    let (inventory_commands, kitchen_commands) =
        (streams.of::<InventoryCommand>(), streams.of::<events::KitchenCommand>());
    let (inventory_events, kitchen_events) = (streams.of::<InventoryEvent>(), streams.of::<KitchenEvent>());
    let outcome = loop {
        let line = tokio::time::timeout(Duration::from_secs(120), said.next_line()).await??.unwrap_or_default();
        let (asked, order) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let order_id = || -> anyhow::Result<OrderId> { Ok(OrderId::from(order.parse::<uuid::Uuid>()?)) };
        match asked {
            "RESERVE" => {
                let reserve = command(&inventory_commands, "ReserveStock", order).await?;
                let lines = serde_json::from_value(reserve.data["lines"].clone())?;
                let expires_at = chrono::Utc::now() + chrono::TimeDelta::minutes(15);
                let reserved = InventoryEvent::StockReserved { order_id: order_id()?, lines, expires_at };
                answer(&inventory_events, "inventory-service", &reserve, reserved).await?;
            }
            "REFUSE" => {
                let cancel = command(&kitchen_commands, "CancelTicket", order).await?;
                let refused =
                    KitchenEvent::TicketCancellationRefused { order_id: order_id()?, status: "preparing".to_owned() };
                answer(&kitchen_events, "kitchen-service", &cancel, refused).await?;
            }
            "CANCEL" => {
                let cancel = command(&kitchen_commands, "CancelTicket", order).await?;
                answer(
                    &kitchen_events,
                    "kitchen-service",
                    &cancel,
                    KitchenEvent::TicketCancelled { order_id: order_id()? },
                )
                .await?;
                let release = command(&inventory_commands, "ReleaseStock", order).await?;
                answer(
                    &inventory_events,
                    "inventory-service",
                    &release,
                    InventoryEvent::StockReleased { order_id: order_id()? },
                )
                .await?;
            }
            "REDRIVEN" => {}
            _ => break line,
        }
    };
    let status = browser.wait().await?;
    println!("browser: {outcome}; screenshots console-*.png in {}", shots.display());
    anyhow::ensure!(status.success() && outcome.starts_with("DONE"), "the operator pages failed: {outcome}");

    // The re-driven letter was handled by the group that had given up on it.
    testkit::eventually(Duration::from_secs(10), "the Squid is in the order service's menu view", || async {
        Ok(sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM menu_items_seen WHERE name = 'Squid')")
            .fetch_one(&db.pool)
            .await?)
    })
    .await?;
    assert_eq!(
        redis::cmd("XLEN").arg(&dead_letters).query_async::<u64>(&mut redis).await?,
        0,
        "no dead letter is left"
    );
    for shot in ["console-events.png", "console-groups.png", "console-sagas.png"] {
        assert!(shots.join(shot).exists(), "{shot} was saved");
    }
    Ok(())
}
