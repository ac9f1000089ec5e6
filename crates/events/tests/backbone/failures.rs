//! What happens when handlers fail, entries are malformed, or consumers die.

use crate::helpers::*;
use events::dead_letter;
use events::{EventId, MenuEvent};
use redis::streams::StreamReadReply;
use std::collections::HashSet;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(20);

/// Reads entries for `consumer` of `group` and never acknowledges them: a consumer that died.
async fn deliver_to_a_consumer_that_dies(harness: &Harness, group: &str, count: usize) -> anyhow::Result<usize> {
    let stream = harness.stream::<MenuEvent>();
    let mut connection = harness.connection().await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut connection)
        .await?;
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("doomed")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut connection)
        .await?;
    Ok(reply.keys.iter().map(|key| key.ids.len()).sum())
}

#[tokio::test]
async fn entries_left_pending_by_a_dead_consumer_are_reclaimed_by_another() -> TestResult {
    let harness = Harness::new().await?;
    let events: Vec<_> = (0..15).map(|_| menu_created("Orphan")).collect();
    harness.append(&events).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(deliver_to_a_consumer_that_dies(&harness, "g", 100).await?, 15);
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "g").await?, 15);

    let mut config = harness.consumer_config::<MenuEvent>("g", "survivor");
    config.claim_idle = Duration::from_millis(300);
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, harness.applier("g"));
    eventually(WITHIN, "the orphans applied", || async { Ok(harness.applied().await? == (15, 15)) }).await?;
    eventually(WITHIN, "nothing pending", || async {
        Ok(harness.pending(&harness.stream::<MenuEvent>(), "g").await? == 0)
    })
    .await?;
    consumer.stop().await
}

#[tokio::test]
async fn a_poison_event_reaches_the_dead_letter_stream_after_the_cap_with_its_error() -> TestResult {
    let harness = Harness::new().await?;
    let events: Vec<_> = (0..5).map(|_| menu_created("Fine")).collect();
    let poison = menu_created("Poison");
    harness.append(&events[..2]).await?;
    harness.append(std::slice::from_ref(&poison)).await?;
    harness.append(&events[2..]).await?;

    let recorder = Recorder::always_failing(poison.id);
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.max_deliveries = 3;
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, recorder.clone());
    let relay = harness.spawn_relay();

    let stream = harness.stream::<MenuEvent>();
    let dlq = format!("{stream}.dlq");
    eventually(WITHIN, "the poison dead-lettered and the rest handled", || async {
        Ok(harness.stream_len(&dlq).await? == 1 && recorder.count() == 5)
    })
    .await?;
    consumer.stop().await?;
    relay.stop().await?;

    let letters = dead_letter::list(&mut harness.connection().await?, &dlq, 10).await?;
    let [letter] = &letters[..] else { anyhow::bail!("expected one dead letter") };
    assert_eq!(letter.deliveries, 3);
    assert_eq!(letter.group, "g");
    assert_eq!(letter.source_stream, stream);
    assert!(letter.error.contains("the kitchen is on fire (attempt 3)"), "error was {:?}", letter.error);
    let names: Vec<&str> = letter.fields.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, events::encoding::FIELDS, "a dead letter keeps the original fields in wire order");
    assert!(letter.fields.contains(&("id".to_owned(), poison.id.to_string())));
    assert_eq!(harness.pending(&stream, "g").await?, 0);
    let handled: HashSet<EventId> = recorder.ids().into_iter().collect();
    assert_eq!(handled, events.iter().map(|e| e.id).collect());
    Ok(())
}

#[tokio::test]
async fn an_undecodable_entry_is_dead_lettered_at_once_and_an_unknown_type_is_skipped() -> TestResult {
    let harness = Harness::new().await?;
    let stream = harness.stream::<MenuEvent>();
    let mut connection = harness.connection().await?;
    let garbage: String =
        redis::cmd("XADD").arg(&stream).arg("*").arg("hello").arg("world").query_async(&mut connection).await?;
    let mut future = menu_created("From the future");
    let encoded = events::EncodedEvent::encode(&future)?;
    let mut fields = encoded.to_fields();
    fields[1].1 = "MenuTeleported".to_owned();
    let _: String = redis::cmd("XADD").arg(&stream).arg("*").arg(&fields[..]).query_async(&mut connection).await?;
    future.id = EventId::new();
    harness.append(&[future.clone()]).await?;
    harness.relay().publish_batch(&mut connection).await?;

    let recorder = Recorder::default();
    let consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c"), recorder.clone());
    eventually(WITHIN, "the good event handled", || async { Ok(recorder.count() == 1) }).await?;
    eventually(WITHIN, "nothing pending", || async { Ok(harness.pending(&stream, "g").await? == 0) }).await?;
    consumer.stop().await?;

    let letters = dead_letter::list(&mut connection, &format!("{stream}.dlq"), 10).await?;
    let [letter] = &letters[..] else {
        anyhow::bail!("expected only the garbage dead-lettered, got {}", letters.len())
    };
    assert_eq!(letter.fields, vec![("hello".to_owned(), "world".to_owned())]);
    assert!(letter.error.contains("no `id` field"), "error was {:?}", letter.error);
    assert_eq!(letter.deliveries, 1);
    assert_eq!(letter.source_entry_id, garbage);
    assert_eq!(recorder.ids(), vec![future.id]);
    Ok(())
}

#[tokio::test]
async fn dead_letters_are_redriven_for_the_group_that_gave_up_on_them_only() -> TestResult {
    let harness = Harness::new().await?;
    let poison = menu_created("Fixed later");
    harness.append(std::slice::from_ref(&poison)).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.max_deliveries = 2;
    let stream = harness.stream::<MenuEvent>();
    let dlq = format!("{stream}.dlq");
    let healthy = Recorder::default();
    let other_group =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("h", "c"), healthy.clone());
    let failing = harness.spawn_consumer::<MenuEvent, _>(config.clone(), Recorder::always_failing(poison.id));
    eventually(WITHIN, "dead-lettered", || async { Ok(harness.stream_len(&dlq).await? == 1) }).await?;
    failing.stop().await?;

    let mut connection = harness.connection().await?;
    assert_eq!(dead_letter::redrive(&mut connection, &dlq, 100, Some("another-group")).await?, 0);
    assert_eq!(harness.stream_len(&dlq).await?, 1, "a letter of another group stays");
    assert_eq!(dead_letter::redrive(&mut connection, &dlq, 100, Some("g")).await?, 1);
    assert_eq!(harness.stream_len(&dlq).await?, 0);

    let fixed = Recorder::default();
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, fixed.clone());
    eventually(WITHIN, "handled after the redrive", || async { Ok(fixed.count() == 1) }).await?;
    eventually(WITHIN, "the other group passed over it", || harness.caught_up(&stream, "h")).await?;
    consumer.stop().await?;
    other_group.stop().await?;
    assert_eq!(fixed.ids(), vec![poison.id]);
    assert_eq!(healthy.ids(), vec![poison.id], "the group that had handled it did not handle it again");
    Ok(())
}

#[tokio::test]
async fn an_entry_whose_dead_letter_cannot_be_written_stays_pending_until_it_can() -> TestResult {
    let harness = Harness::new().await?;
    let poison = menu_created("Nowhere to go");
    harness.append(std::slice::from_ref(&poison)).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let stream = harness.stream::<MenuEvent>();
    let dlq = format!("{stream}.dlq");
    let mut connection = harness.connection().await?;
    harness.refuse_writes_to(&dlq).await?;
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.max_deliveries = 1;
    let recorder = Recorder::always_failing(poison.id);
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, recorder);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(harness.pending(&stream, "g").await?, 1, "acknowledged although its dead letter was not written");

    let _: () = redis::cmd("DEL").arg(&dlq).query_async(&mut connection).await?;
    eventually(WITHIN, "dead-lettered once the stream can take it", || async {
        Ok(harness.stream_len(&dlq).await? == 1 && harness.pending(&stream, "g").await? == 0)
    })
    .await?;
    consumer.stop().await?;
    Ok(())
}

#[tokio::test]
async fn pending_entries_deleted_from_the_stream_are_reported_lost_and_not_looped_on() -> TestResult {
    let harness = Harness::new().await?;
    harness.append(&(0..10).map(|_| menu_created("Trimmed")).collect::<Vec<_>>()).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(deliver_to_a_consumer_that_dies(&harness, "g", 100).await?, 10);
    let stream = harness.stream::<MenuEvent>();
    let _: i64 =
        redis::cmd("XTRIM").arg(&stream).arg("MAXLEN").arg(0).query_async(&mut harness.connection().await?).await?;

    let recorder = Recorder::default();
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.claim_idle = Duration::from_millis(100);
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, recorder.clone());
    eventually(WITHIN, "the trimmed entries acknowledged", || async { Ok(harness.pending(&stream, "g").await? == 0) })
        .await?;
    consumer.stop().await?;
    assert_eq!(recorder.count(), 0, "trimmed entries have nothing to hand over");
    Ok(())
}

#[tokio::test]
async fn a_consumer_recreates_its_group_when_redis_loses_it() -> TestResult {
    let harness = Harness::new().await?;
    let recorder = Recorder::default();
    let consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c"), recorder.clone());
    let relay = harness.spawn_relay();
    harness.append(&[menu_created("Before")]).await?;
    eventually(WITHIN, "first event", || async { Ok(recorder.count() == 1) }).await?;

    let stream = harness.stream::<MenuEvent>();
    let _: i64 =
        redis::cmd("XGROUP").arg("DESTROY").arg(&stream).arg("g").query_async(&mut harness.connection().await?).await?;
    let after = menu_created("After");
    harness.append(std::slice::from_ref(&after)).await?;
    // The group comes back reading from the start, so the first event is seen
    // again (an inbox absorbs that) and the new one arrives.
    eventually(WITHIN, "the event after the loss", || async { Ok(recorder.ids().contains(&after.id)) }).await?;
    consumer.stop().await?;
    relay.stop().await
}
