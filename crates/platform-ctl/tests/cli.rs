//! The CLI against the real Redis, on streams of its own.

use events::consumer::{Handler, HandlerError};
use events::menu::MenuItem;
use events::{Consumer, ConsumerConfig, DomainEvent, EncodedEvent, MenuEvent, Metadata};
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

type TestResult = anyhow::Result<()>;

/// Runs `platform-ctl` with `args` on streams under `prefix`; returns stdout.
fn ctl(prefix: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_platform-ctl")).env("STREAM_PREFIX", prefix).args(args).output()?;
    anyhow::ensure!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

/// Refuses every event, so that each is dead-lettered.
struct Refuse;

impl Handler<MenuEvent> for Refuse {
    async fn handle(&self, _event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        Err(HandlerError::rejected(anyhow::anyhow!("the kitchen is closed")))
    }
}

async fn publish(stream: &str, event: &DomainEvent<MenuEvent>) -> anyhow::Result<()> {
    testkit::stream::append(stream, &EncodedEvent::encode(event)?.into_fields()).await?;
    Ok(())
}

async fn length(stream: &str) -> anyhow::Result<usize> {
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    Ok(redis::cmd("XLEN").arg(stream).query_async(&mut connection).await?)
}

#[tokio::test]
async fn shows_lag_lists_and_redrives_dead_letters_and_tails_decoded_events() -> TestResult {
    let prefix = testkit::unique("ctl-");
    let stream = format!("{prefix}menu-events");
    let menu = uuid::Uuid::now_v7();
    let item = MenuItem {
        id: events::MenuItemId::new(),
        name: "Soup".into(),
        description: None,
        category: "starter".into(),
        price_cents: 650,
        currency: "EUR".into(),
        available: true,
        switched_on: true,
        in_stock: true,
    };
    let created = MenuEvent::MenuCreated { name: "Lunch".into(), description: None, items: vec![item] };
    publish(&stream, &DomainEvent::new(menu, 1, created, Metadata::new("menu-service", "req-ctl-1"))).await?;

    let config = ConsumerConfig {
        max_deliveries: 1,
        block: Duration::from_millis(100),
        ..ConsumerConfig::new(&stream, "reservation-service", "ctl-test")
    };
    let cancel = CancellationToken::new();
    let consumer = tokio::spawn(Consumer::new(testkit::redis_client()?, config, Refuse).run(cancel.clone()));
    testkit::eventually(Duration::from_secs(5), "the event is dead-lettered", || async {
        Ok(length(&format!("{stream}.dlq")).await? == 1)
    })
    .await?;
    cancel.cancel();
    consumer.await?;

    let groups = ctl(&prefix, &["groups"])?;
    assert!(groups.contains(&format!("{stream}: 1 entries, 1 dead letters")), "{groups}");
    assert!(groups.contains("group reservation-service: 1 consumers, 0 pending, lag 0"), "{groups}");
    assert!(groups.contains("    consumer ctl-test: 0 pending, idle "), "{groups}");
    assert!(groups.contains(&format!("{prefix}reservation-events: 0 entries, 0 dead letters")), "{groups}");

    let letters = ctl(&prefix, &["dead-letters", "menu-events"])?;
    assert!(letters.starts_with(&format!("1 dead letters of {stream}")), "{letters}");
    assert!(letters.contains("group=reservation-service deliveries=1"), "{letters}");
    assert!(letters.contains(&format!("type=MenuCreated aggregate={menu} version=1")), "{letters}");
    assert!(letters.contains("error: the kitchen is closed"), "{letters}");

    let letter = letters.lines().nth(1).and_then(|line| line.split_whitespace().next()).unwrap_or_default();
    let refused = ctl(&prefix, &["redrive", "menu-events", "--entry", "1-1"]).err().map(|e| e.to_string());
    assert!(refused.unwrap_or_default().contains(&format!("{stream} has no dead letter 1-1")));
    let redriven = ctl(&prefix, &["redrive", "menu-events", "--entry", letter])?;
    assert_eq!(redriven.trim(), format!("re-drove dead letter {letter} onto {stream}"));
    let redriven = ctl(&prefix, &["redrive", "menu-events"])?;
    assert_eq!(redriven.trim(), format!("re-drove 0 dead letters onto {stream}"), "none left");
    assert_eq!((length(&stream).await?, length(&format!("{stream}.dlq")).await?), (2, 0));

    let tail = ctl(&prefix, &["tail", "menu-events", "--from-start", "--count", "2"])?;
    let headlines: Vec<&str> = tail.lines().filter(|line| !line.starts_with("    ")).collect();
    assert_eq!(headlines.len(), 2, "{tail}");
    for line in headlines {
        assert!(line.contains(&format!("{stream}  MenuCreated  aggregate={menu} version=1")), "{line}");
        assert!(line.contains("correlation=req-ctl-1") && line.contains("source=menu-service"), "{line}");
    }
    assert!(tail.contains(r#""name":"Lunch""#), "the payload is shown: {tail}");
    Ok(())
}

#[tokio::test]
async fn tail_follows_new_entries_and_shows_what_is_not_an_event() -> TestResult {
    let prefix = testkit::unique("ctl-");
    let stream = format!("{prefix}menu-events");
    let follower = std::thread::spawn({
        let prefix = prefix.clone();
        move || ctl(&prefix, &["tail", "--count", "1"])
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    redis::cmd("XADD").arg(&stream).arg("*").arg("type").arg("Garbage").query_async::<String>(&mut connection).await?;
    let printed =
        tokio::task::spawn_blocking(move || follower.join()).await?.map_err(|_| anyhow::anyhow!("panicked"))??;
    assert!(printed.contains("(not an event: the entry has no `id` field)"), "{printed}");
    assert!(printed.contains("type=Garbage"), "{printed}");
    Ok(())
}

#[tokio::test]
async fn groups_shows_what_holds_trimming_back_and_delete_group_retires_a_group() -> TestResult {
    let prefix = testkit::unique("ctl-");
    let stream = format!("{prefix}menu-events");
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("reservation-service")
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut connection)
        .await?;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            redis::cmd("XADD").arg(&stream).arg("*").arg("n").arg(n).query_async::<String>(&mut connection).await?,
        );
    }
    // Two handed to the group, the first of them acknowledged: the second is pending.
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("reservation-service")
        .arg("instance-1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async::<redis::Value>(&mut connection)
        .await?;
    redis::cmd("XACK").arg(&stream).arg("reservation-service").arg(&ids[0]).query_async::<()>(&mut connection).await?;

    let groups = ctl(&prefix, &["groups", "menu-events"])?;
    assert!(groups.contains(&format!("{stream}: 3 entries, 0 dead letters")), "{groups}");
    let expected = format!(
        "group reservation-service: 1 consumers, 1 pending, lag 1, oldest pending {}, last delivered {}",
        ids[1], ids[1]
    );
    assert!(groups.contains(&expected), "{groups}");
    let held = format!("trimming held back by group reservation-service at {} (1 pending)", ids[1]);
    assert!(groups.contains(&held), "{groups}");

    let deleted = ctl(&prefix, &["delete-group", "menu-events", "reservation-service"])?;
    assert_eq!(
        deleted.trim(),
        format!("deleted consumer group reservation-service of {stream}: it no longer holds trimming back")
    );
    let groups = ctl(&prefix, &["groups", "menu-events"])?;
    assert!(groups.contains("no consumer groups: trimmed by age alone"), "{groups}");
    assert!(!groups.contains("held back"), "{groups}");

    let again = ctl(&prefix, &["delete-group", "menu-events", "reservation-service"]);
    let refused = again.err().map(|error| error.to_string()).unwrap_or_default();
    assert!(refused.contains(&format!("{stream} has no consumer group reservation-service")), "{refused}");
    Ok(())
}

#[test]
fn services_lists_the_catalog_as_scripts_run_reads_it() -> TestResult {
    let listed = ctl("", &["services"])?;
    let rows: Vec<Vec<&str>> = listed.lines().map(|line| line.split('\t').collect()).collect();
    assert_eq!(rows.len(), service_kit::catalog::SERVICES.len());
    for (row, service) in rows.iter().zip(service_kit::catalog::SERVICES) {
        assert_eq!(row[..3], [service.name, &service.port.to_string(), service.schema]);
        assert_eq!(row[3], service.routes.join(","));
    }
    Ok(())
}

// Multi-threaded: `ctl` waits for the CLI on this thread while the order
// service it talks to serves on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_lists_shows_and_aborts_an_order_saga_through_the_api() -> TestResult {
    let db = testkit::TestDb::new().await?;
    let prefix = testkit::unique("test-");
    let settings = service_kit::Settings::ephemeral("platform_test", &db.schema, &prefix);
    let orders = order_service::build(&settings, &order_service::OrderSettings::default()).await?;
    let orders = testkit::Running::spawn(orders.port()?, |cancel| orders.run_until_stopped(cancel)).as_staff()?;
    let item = MenuItem {
        id: events::MenuItemId::new(),
        name: "Soup".to_owned(),
        description: None,
        category: "starter".to_owned(),
        price_cents: 650,
        currency: "EUR".to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    };
    let menu = MenuEvent::MenuActivated { name: "Lunch".to_owned(), items: vec![item.clone()] };
    publish(
        &format!("{prefix}menu-events"),
        &DomainEvent::new(uuid::Uuid::now_v7(), 2, menu, Metadata::new("menu-service", "req")),
    )
    .await?;
    let body = serde_json::json!({"kind": "takeaway", "lines": [{"menu_item_id": item.id, "quantity": 1}]});
    let placed = std::cell::RefCell::new(None);
    testkit::eventually(Duration::from_secs(10), "the order placed", || async {
        let response = orders.post("/api/v1/orders", &body).await?;
        if response.status() == 202 {
            placed.replace(Some(response.json::<serde_json::Value>().await?));
        }
        Ok(placed.borrow().is_some())
    })
    .await?;

    // Nobody answers the saga's ReserveStock: it is running.
    let token = testkit::auth::staff_token()?;
    let operate = |args: &[&str]| {
        let mut all = vec!["sagas", "--gateway", orders.base.as_str(), "--token", token.as_str()];
        all.extend_from_slice(args);
        ctl(&prefix, &all)
    };
    let listed = operate(&["list", "--status", "running"])?;
    let line = listed.lines().next().unwrap_or_default().to_owned();
    assert!(line.contains("CreateOrder\trunning\tstep 0"), "{listed}");
    let saga = line.split('\t').next().unwrap_or_default().to_owned();

    let aborted: serde_json::Value = serde_json::from_str(&operate(&["abort", &saga])?)?;
    assert_eq!(aborted["status"], "compensating");
    let shown: serde_json::Value = serde_json::from_str(&operate(&["show", &saga])?)?;
    let kinds: Vec<&str> =
        shown["history"].as_array().into_iter().flatten().filter_map(|entry| entry["kind"].as_str()).collect();
    assert!(kinds.contains(&"aborted"), "{kinds:?}");
    assert!(operate(&["retry", &uuid::Uuid::now_v7().to_string()]).is_err(), "an unknown saga is refused");
    Ok(())
}
