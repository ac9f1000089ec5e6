//! Publishing: outbox → relay → stream.

use crate::helpers::*;
use events::encoding::FIELDS;
use events::{EncodedEvent, MenuEvent, ReservationEvent, Streams};
use std::time::Duration;

#[tokio::test]
async fn published_entries_carry_the_seven_readable_fields_and_decode_to_the_same_event() -> TestResult {
    let harness = Harness::new().await?;
    let event = menu_created("Lunch");
    harness.append(std::slice::from_ref(&event)).await?;

    let published = harness.relay().publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(published, 1);

    let entries = harness.entries::<MenuEvent>().await?;
    let [entry] = &entries[..] else { anyhow::bail!("expected one entry, got {}", entries.len()) };
    let mut names: Vec<&str> = entry.map.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(entry.get::<String>("type").as_deref(), Some("MenuCreated"));
    assert_eq!(entry.get::<String>("version").as_deref(), Some("1"));
    let data: serde_json::Value = serde_json::from_str(&entry.get::<String>("data").unwrap_or_default())?;
    assert_eq!(data["name"], "Lunch");
    let metadata: serde_json::Value = serde_json::from_str(&entry.get::<String>("metadata").unwrap_or_default())?;
    assert_eq!(metadata["source"], "test-service");
    assert_eq!(metadata["correlation_id"], event.metadata.correlation_id.as_str());

    let decoded = EncodedEvent::from_fields(&entry.map)?.decode::<MenuEvent>()?;
    assert_eq!(decoded, event);
    Ok(())
}

#[tokio::test]
async fn the_real_menu_events_stream_shows_readable_fields_to_redis_cli() -> TestResult {
    // Publishes to the unprefixed `menu-events`, as a running platform would,
    // so that `redis-cli XRANGE menu-events - +` shows what an entry looks like.
    let mut harness = Harness::new().await?;
    harness.streams = Streams::default();
    let event = menu_created("Seen with redis-cli");
    harness.append(std::slice::from_ref(&event)).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;

    let output = tokio::process::Command::new("redis-cli")
        .args(["-u", &testkit::redis_url(), "XRANGE", "menu-events", "-", "+"])
        .output()
        .await?;
    let text = String::from_utf8(output.stdout)?;
    let id = event.id.to_string();
    assert!(text.contains(&id), "redis-cli output lacks the event id {id}");
    for field in FIELDS {
        assert!(text.lines().any(|line| line.trim() == field), "redis-cli output lacks the field {field}");
    }
    Ok(())
}

#[tokio::test]
async fn the_relay_publishes_in_append_order_and_empties_the_outbox() -> TestResult {
    let harness = Harness::new().await?;
    let aggregate = uuid::Uuid::now_v7();
    let events = availability_changes(aggregate, 1200);
    for chunk in events.chunks(100) {
        harness.append(chunk).await?;
    }
    let relay = harness.spawn_relay();
    eventually(Duration::from_secs(10), "all rows published", || async { Ok(harness.unpublished().await? == 0) })
        .await?;
    relay.stop().await?;

    let entries = harness.entries::<MenuEvent>().await?;
    let versions: Vec<i64> = entries.iter().filter_map(|entry| entry.get::<i64>("version")).collect();
    assert_eq!(versions, (1..=1200).collect::<Vec<_>>());
    Ok(())
}

/// A fresh harness with a running relay that polls only every 30 s, past
/// its first look (it found nothing and waits), and an outbox that wakes it.
async fn sleepy_relay() -> anyhow::Result<(Harness, Running, events::Outbox)> {
    let harness = Harness::new().await?;
    let relay = harness.relay_with(events::RelayConfig { poll_interval: Duration::from_secs(30), ..fast_relay() });
    let outbox = events::Outbox::new(harness.streams.clone(), relay.waker());
    let running = Running::spawn(|cancel| relay.run(cancel));
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok((harness, running, outbox))
}

/// Waits for the one entry on the menu stream, far less long than a sleepy
/// relay's poll interval.
async fn one_entry_soon(harness: &Harness) -> TestResult {
    let stream = harness.stream::<MenuEvent>();
    eventually(Duration::from_secs(2), "the entry on the stream", || async {
        Ok(harness.stream_len(&stream).await? == 1)
    })
    .await
}

async fn commit_one(harness: &Harness, outbox: &events::Outbox, name: &str) -> TestResult {
    let mut work = outbox.begin(harness.pool()).await?;
    work.append(&[menu_created(name)]).await?;
    work.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_commit_through_the_outbox_wakes_the_relay_well_before_its_poll_interval() -> TestResult {
    let (harness, running, outbox) = sleepy_relay().await?;
    commit_one(&harness, &outbox, "Quick").await?;
    one_entry_soon(&harness).await?;
    running.stop().await
}

#[tokio::test]
async fn a_relay_woken_while_another_one_publishes_looks_again_once_it_is_done() -> TestResult {
    let (harness, running, outbox) = sleepy_relay().await?;
    // Another instance's relay is in the middle of a transaction: it holds the
    // publishing lock, and its claim came before this commit.
    let mut other_relay = harness.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(concat('events.outbox.', current_schema()))::bigint)")
        .execute(&mut *other_relay)
        .await?;
    commit_one(&harness, &outbox, "While another publishes").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stream = harness.stream::<MenuEvent>();
    assert_eq!(harness.stream_len(&stream).await?, 0, "published without the lock");
    other_relay.rollback().await?;
    one_entry_soon(&harness).await?;
    running.stop().await
}

#[tokio::test]
async fn an_idle_relay_leaves_the_publishing_lock_to_others() -> TestResult {
    let (harness, running, _outbox) = sleepy_relay().await?;

    harness.append(&[menu_created("For the other relay")]).await?;
    let published = harness.relay().publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(published, 1, "the idle relay kept the publishing lock");
    running.stop().await
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() -> TestResult {
    let harness = Harness::new().await?;
    let mut work = harness.outbox().begin(harness.pool()).await?;
    work.append(&[menu_created("Never")]).await?;
    drop(work);

    assert_eq!(harness.relay().publish_batch(&mut harness.connection().await?).await?, 0);
    assert_eq!(harness.stream_len(&harness.stream::<MenuEvent>()).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_row_committed_after_later_rows_were_published_is_still_published() -> TestResult {
    let harness = Harness::new().await?;
    let mut relay = harness.relay();
    let mut connection = harness.connection().await?;
    // The late writer takes the lowest seq and keeps its transaction open…
    let late = menu_created("Late");
    let mut late_writer = harness.outbox().begin(harness.pool()).await?;
    late_writer.append(std::slice::from_ref(&late)).await?;
    // …while others commit and are published, claim after claim, which would
    // carry the relay's scan horizon past the late row if nothing held it.
    for round in 0..6 {
        harness.append(&[menu_created(&format!("On time {round}"))]).await?;
        assert_eq!(relay.publish_batch(&mut connection).await?, 1);
    }
    late_writer.commit().await?;

    assert_eq!(relay.publish_batch(&mut connection).await?, 1, "the late row was skipped");
    harness.append(&[menu_created("After")]).await?;
    assert_eq!(relay.publish_batch(&mut connection).await?, 1);
    assert_eq!(harness.unpublished().await?, 0);
    let entries = harness.entries::<MenuEvent>().await?;
    let ids: Vec<String> = entries.iter().filter_map(|entry| entry.get("id")).collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[6], late.id.to_string());
    Ok(())
}

#[tokio::test]
async fn a_row_whose_writer_got_its_transaction_id_after_a_published_rows_writer_is_still_published() -> TestResult {
    let harness = Harness::new().await?;
    let mut relay = harness.relay();
    let mut connection = harness.connection().await?;
    let transaction_id = "SELECT pg_current_xact_id()::text";
    // The early writer gets its transaction id first; the late writer gets a
    // higher one but takes the lower seq and keeps its transaction open.
    let outbox = harness.outbox();
    let mut early_writer = outbox.begin(harness.pool()).await?;
    sqlx::query(transaction_id).execute(&mut *early_writer).await?;
    let mut late_writer = outbox.begin(harness.pool()).await?;
    sqlx::query(transaction_id).execute(&mut *late_writer).await?;
    let late = menu_created("Late");
    late_writer.append(std::slice::from_ref(&late)).await?;
    early_writer.append(&[menu_created("Early")]).await?;
    early_writer.commit().await?;
    // A claim's snapshot sees the early row and, its xmax being one past the
    // latest completed transaction, counts the late writer among those not
    // yet started. The claims after it must not move the scan horizon past
    // the late row while its writer runs.
    assert_eq!(relay.publish_batch(&mut connection).await?, 1);
    for round in 0..3 {
        harness.append(&[menu_created(&format!("On time {round}"))]).await?;
        assert_eq!(relay.publish_batch(&mut connection).await?, 1);
    }
    late_writer.commit().await?;

    assert_eq!(relay.publish_batch(&mut connection).await?, 1, "the late row was skipped");
    assert_eq!(harness.unpublished().await?, 0);
    let entries = harness.entries::<MenuEvent>().await?;
    let ids: Vec<String> = entries.iter().filter_map(|entry| entry.get("id")).collect();
    assert_eq!(ids.last(), Some(&late.id.to_string()));
    Ok(())
}

#[tokio::test]
async fn each_family_goes_to_its_own_stream() -> TestResult {
    let harness = Harness::new().await?;
    harness.append(&[menu_created("A"), menu_created("B")]).await?;
    harness
        .append(&[events::DomainEvent::new(
            uuid::Uuid::now_v7(),
            2,
            ReservationEvent::ReservationConfirmed {},
            metadata(),
        )])
        .await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(harness.stream_len(&harness.stream::<MenuEvent>()).await?, 2);
    assert_eq!(harness.stream_len(&harness.stream::<ReservationEvent>()).await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_failed_xadd_keeps_the_rows_for_the_next_attempt() -> TestResult {
    let harness = Harness::new().await?;
    harness.append(&[menu_created("Kept")]).await?;
    // A stream key holding a string makes XADD fail with WRONGTYPE.
    let stream = harness.stream::<MenuEvent>();
    let mut connection = harness.connection().await?;
    harness.refuse_writes_to(&stream).await?;
    assert!(harness.relay().publish_batch(&mut connection).await.is_err());
    assert_eq!(harness.unpublished().await?, 1, "the row must survive a failed XADD");

    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut connection).await?;
    assert_eq!(harness.relay().publish_batch(&mut connection).await?, 1);
    assert_eq!(harness.unpublished().await?, 0);
    assert_eq!(harness.stream_len(&stream).await?, 1);
    Ok(())
}

#[tokio::test]
async fn two_relays_on_one_outbox_publish_every_row_exactly_once_in_order() -> TestResult {
    let harness = Harness::new().await?;
    let first = harness.spawn_relay();
    let second = harness.spawn_relay();
    let aggregate = uuid::Uuid::now_v7();
    for chunk in availability_changes(aggregate, 600).chunks(20) {
        harness.append(chunk).await?;
    }
    eventually(Duration::from_secs(10), "all rows published", || async { Ok(harness.unpublished().await? == 0) })
        .await?;
    first.stop().await?;
    second.stop().await?;

    let entries = harness.entries::<MenuEvent>().await?;
    let versions: Vec<i64> = entries.iter().filter_map(|entry| entry.get::<i64>("version")).collect();
    assert_eq!(versions, (1..=600).collect::<Vec<_>>());
    Ok(())
}
