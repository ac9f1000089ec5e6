//! The staff console in a real browser: Debian's Chromium, driven by
//! `tests/browser/kitchen-display.mjs` (playwright-core), against the gateway
//! in front of the real kitchen service. The display must show a ticket the
//! saga creates without a reload, drive it through its steps, and catch up
//! after a dropped connection; each step is on `kitchen-events`.

use crate::helpers::{TestResult, spawn_gateway};
use api_gateway::GatewaySettings;
use events::kitchen::CommandLine;
use events::menu::MenuItem;
use events::{DomainEvent, EncodedEvent, KitchenCommand, MenuEvent, MenuItemId, Metadata, OrderId};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use testkit::{Running, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};

fn browser_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
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
