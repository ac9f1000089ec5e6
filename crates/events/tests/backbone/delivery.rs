//! Delivery through consumer groups: who gets what, in which order, how often.

use crate::helpers::*;
use events::{DomainEvent, EventId, Handler, HandlerError, Inbox, Inboxed, MenuEvent, ReservationEvent};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_subscriber_receives_the_published_event_with_its_metadata() -> TestResult {
    let harness = Harness::new().await?;
    let recorder = Recorder::default();
    let consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c1"), recorder.clone());
    let relay = harness.spawn_relay();
    let event = menu_created("Dinner");
    harness.append(std::slice::from_ref(&event)).await?;

    eventually(WITHIN, "the event handled", || async { Ok(recorder.count() == 1) }).await?;
    let [seen] = &recorder.handled()[..] else { anyhow::bail!("expected one") };
    assert_eq!((seen.id, seen.aggregate_id, seen.version), (event.id, event.aggregate_id, 1));
    assert_eq!(seen.correlation_id, event.metadata.correlation_id);
    consumer.stop().await?;
    relay.stop().await
}

#[tokio::test]
async fn many_concurrent_publishers_and_several_consumers_in_one_group_handle_every_event_once() -> TestResult {
    let harness = Arc::new(Harness::new().await?);
    let consumers: Vec<Running> = (0..3)
        .map(|n| {
            harness.spawn_consumer::<MenuEvent, _>(
                harness.consumer_config::<MenuEvent>("kitchen", &format!("c{n}")),
                harness.applier("kitchen"),
            )
        })
        .collect();
    let relay = harness.spawn_relay();

    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let harness = Arc::clone(&harness);
            tokio::spawn(async move {
                for _ in 0..50 {
                    harness.append(&[menu_created("Concurrent")]).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await??;
    }

    eventually(WITHIN, "400 events applied", || async { Ok(harness.applied().await? == (400, 400)) }).await?;
    for consumer in consumers {
        consumer.stop().await?;
    }
    relay.stop().await?;
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "kitchen").await?, 0);
    Ok(())
}

#[tokio::test]
async fn consumers_of_different_streams_never_see_each_others_events() -> TestResult {
    let harness = Harness::new().await?;
    let menus = Recorder::default();
    let reservations = Recorder::default();
    let menu_consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c"), menus.clone());
    let reservation_consumer = harness.spawn_consumer::<ReservationEvent, _>(
        harness.consumer_config::<ReservationEvent>("g", "c"),
        reservations.clone(),
    );
    let relay = harness.spawn_relay();

    let menu_events: Vec<_> = (0..5).map(|_| menu_created("M")).collect();
    let reservation_events: Vec<_> = (0..3)
        .map(|_| DomainEvent::new(Uuid::now_v7(), 2, ReservationEvent::ReservationConfirmed {}, metadata()))
        .collect();
    harness.append(&menu_events).await?;
    harness.append(&reservation_events).await?;

    eventually(WITHIN, "both families handled", || async { Ok(menus.count() == 5 && reservations.count() == 3) })
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids = |events: &[DomainEvent<_>]| events.iter().map(|e| e.id).collect::<HashSet<EventId>>();
    assert_eq!(menus.ids().into_iter().collect::<HashSet<_>>(), ids(&menu_events));
    assert_eq!(reservations.ids().into_iter().collect::<HashSet<_>>(), {
        reservation_events.iter().map(|e| e.id).collect::<HashSet<_>>()
    });
    menu_consumer.stop().await?;
    reservation_consumer.stop().await?;
    relay.stop().await
}

#[tokio::test]
async fn every_group_gets_every_event() -> TestResult {
    let harness = Harness::new().await?;
    let groups = ["reservation-service", "kitchen-service", "analytics"];
    let recorders: Vec<Recorder> = groups.iter().map(|_| Recorder::default()).collect();
    let consumers: Vec<Running> = groups
        .iter()
        .zip(&recorders)
        .map(|(group, recorder)| {
            harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>(group, "c"), recorder.clone())
        })
        .collect();
    let relay = harness.spawn_relay();
    let events: Vec<_> = (0..20).map(|_| menu_created("Shared")).collect();
    harness.append(&events).await?;

    eventually(WITHIN, "every group handled all 20", || async { Ok(recorders.iter().all(|r| r.count() == 20)) })
        .await?;
    for recorder in &recorders {
        assert_eq!(recorder.ids().into_iter().collect::<HashSet<_>>(), events.iter().map(|e| e.id).collect());
    }
    for consumer in consumers {
        consumer.stop().await?;
    }
    relay.stop().await
}

#[tokio::test]
async fn a_handler_that_fails_its_first_attempts_still_gets_every_event() -> TestResult {
    let harness = Harness::new().await?;
    let recorder = Recorder::failing_first(3);
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.max_deliveries = 5;
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, recorder.clone());
    let events: Vec<_> = (0..10).map(|_| menu_created("Flaky")).collect();
    harness.append(&events).await?;
    let relay = harness.spawn_relay();

    eventually(WITHIN, "all 10 handled", || async { Ok(recorder.count() == 10) }).await?;
    consumer.stop().await?;
    relay.stop().await?;
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "g").await?, 0);
    assert_eq!(harness.stream_len(&format!("{}.dlq", harness.stream::<MenuEvent>())).await?, 0);
    Ok(())
}

/// Checks, each time it is handed an event, that the previous one is acknowledged.
#[derive(Clone)]
struct AckWatcher {
    redis: redis::Client,
    stream: String,
    seen: Recorder,
    violated: Arc<AtomicBool>,
}

impl Handler<MenuEvent> for AckWatcher {
    async fn handle(&self, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        let mut connection = self.redis.get_multiplexed_async_connection().await?;
        let pending: redis::streams::StreamPendingReply =
            redis::cmd("XPENDING").arg(&self.stream).arg("in-order").query_async(&mut connection).await?;
        // Entries of the batch not yet handed over are pending too; what must not
        // be pending is anything this handler has already finished.
        let handled = self.seen.count();
        let range: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(&self.stream).arg("-").arg("+").query_async(&mut connection).await?;
        let finished: Vec<&str> = range.ids.iter().take(handled).map(|entry| entry.id.as_str()).collect();
        let still_pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg("in-order")
            .arg("-")
            .arg("+")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if still_pending.ids.iter().any(|p| finished.contains(&p.id.as_str())) || pending.count() == 0 {
            self.violated.store(true, Ordering::SeqCst);
        }
        self.seen.handle(event).await
    }
}

#[tokio::test]
async fn a_single_in_order_consumer_gets_no_next_event_before_the_current_is_acked() -> TestResult {
    let harness = Harness::new().await?;
    let stream = harness.stream::<MenuEvent>();
    let watcher = AckWatcher {
        redis: harness.redis.clone(),
        stream: stream.clone(),
        seen: Recorder::default(),
        violated: Arc::new(AtomicBool::new(false)),
    };
    let events: Vec<_> = (0..30).map(|_| menu_created("One at a time")).collect();
    harness.append(&events).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;

    let mut config = harness.consumer_config::<MenuEvent>("in-order", "only");
    config.concurrency = 1;
    config.batch_size = 10;
    let consumer = harness.spawn_consumer(config, watcher.clone());
    eventually(WITHIN, "all 30 handled", || async { Ok(watcher.seen.count() == 30) }).await?;
    consumer.stop().await?;

    assert!(!watcher.violated.load(Ordering::SeqCst), "an event was handed over before the previous one was acked");
    assert_eq!(watcher.seen.ids(), events.iter().map(|e| e.id).collect::<Vec<_>>(), "not in stream order");
    Ok(())
}

/// Takes its time with one aggregate's events only.
#[derive(Clone)]
struct SlowFor {
    aggregate_id: Uuid,
    delay: Duration,
    started: Arc<AtomicBool>,
    seen: Recorder,
}

impl Handler<MenuEvent> for SlowFor {
    async fn handle(&self, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        if event.aggregate_id == self.aggregate_id {
            self.started.store(true, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
        }
        self.seen.handle(event).await
    }
}

#[tokio::test]
async fn a_slow_handler_holds_up_its_own_aggregate_not_the_entries_read_after_it() -> TestResult {
    let harness = Harness::new().await?;
    let slow = menu_created("Slow");
    let handler = SlowFor {
        aggregate_id: slow.aggregate_id,
        delay: Duration::from_secs(3),
        started: Arc::new(AtomicBool::new(false)),
        seen: Recorder::default(),
    };
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.concurrency = 4;
    config.batch_size = 10;
    let consumer = harness.spawn_consumer(config, handler.clone());
    harness.append(std::slice::from_ref(&slow)).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    eventually(WITHIN, "the slow handler started", || async { Ok(handler.started.load(Ordering::SeqCst)) }).await?;

    // Read after the slow one, in batches of ten, all of other aggregates
    // whose lanes differ from the slow one's: the consumer picks a lane by
    // aggregate id modulo its lane count, a multiple of 4.
    let lane = |event: &DomainEvent<MenuEvent>| event.aggregate_id.as_u128() % 4;
    let others: Vec<_> =
        std::iter::repeat_with(|| menu_created("Quick")).filter(|event| lane(event) != lane(&slow)).take(30).collect();
    harness.append(&others).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    eventually(Duration::from_secs(2), "the others handled while the slow one runs", || async {
        Ok(handler.seen.count() == 30)
    })
    .await?;
    assert!(!handler.seen.ids().contains(&slow.id), "the slow handler finished too early for this test");

    consumer.stop().await?;
    assert_eq!(handler.seen.count(), 31, "a graceful stop finishes everything read");
    Ok(())
}

#[tokio::test]
async fn one_consumer_preserves_each_aggregates_order_while_handling_aggregates_concurrently() -> TestResult {
    let harness = Harness::new().await?;
    let aggregates: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    let per_aggregate: Vec<Vec<_>> = aggregates.iter().map(|id| availability_changes(*id, 30)).collect();
    // Interleave: v1 of every aggregate, then v2 of every aggregate, …
    for version in 0..30 {
        let round: Vec<_> = per_aggregate.iter().map(|events| events[version].clone()).collect();
        harness.append(&round).await?;
    }
    let recorder = Recorder::slow(Duration::from_millis(1));
    let consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c"), recorder.clone());
    let relay = harness.spawn_relay();

    eventually(WITHIN, "all 300 handled", || async { Ok(recorder.count() == 300) }).await?;
    consumer.stop().await?;
    relay.stop().await?;
    let mut versions: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for seen in recorder.handled() {
        versions.entry(seen.aggregate_id).or_default().push(seen.version);
    }
    for aggregate in &aggregates {
        assert_eq!(versions[aggregate], (1..=30).collect::<Vec<_>>(), "aggregate {aggregate} out of order");
    }
    Ok(())
}

#[tokio::test]
async fn consumers_closed_and_reopened_in_batches_lose_nothing() -> TestResult {
    let harness = Arc::new(Harness::new().await?);
    let relay = harness.spawn_relay();
    let publisher = {
        let harness = Arc::clone(&harness);
        tokio::spawn(async move {
            for _ in 0..300 {
                harness.append(&[menu_created("Steady")]).await?;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            anyhow::Ok(())
        })
    };
    for round in 0..5 {
        let consumers: Vec<Running> = (0..3)
            .map(|n| {
                let config = harness.consumer_config::<MenuEvent>("g", &format!("round{round}-c{n}"));
                harness.spawn_consumer::<MenuEvent, _>(config, harness.applier("g"))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(250)).await;
        for consumer in consumers {
            consumer.stop().await?;
        }
    }
    publisher.await??;
    let last =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "last"), harness.applier("g"));
    eventually(WITHIN, "all 300 applied", || async { Ok(harness.applied().await? == (300, 300)) }).await?;
    last.stop().await?;
    relay.stop().await?;
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "g").await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_new_group_replays_the_stream_from_the_start() -> TestResult {
    let harness = Harness::new().await?;
    let events: Vec<_> = (0..25).map(|_| menu_created("History")).collect();
    harness.append(&events).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let early = Recorder::default();
    let first =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("early", "c"), early.clone());
    eventually(WITHIN, "the first group done", || async { Ok(early.count() == 25) }).await?;
    first.stop().await?;

    let late = Recorder::default();
    let second =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("late-joiner", "c"), late.clone());
    eventually(WITHIN, "the new group replayed everything", || async { Ok(late.count() == 25) }).await?;
    second.stop().await?;
    // Each event is its own aggregate, so they may be handled in any order.
    let mut replayed = late.ids();
    replayed.sort_unstable();
    let mut published: Vec<_> = events.iter().map(|e| e.id).collect();
    published.sort_unstable();
    assert_eq!(replayed, published);
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_handlers_and_leaves_nothing_half_handled() -> TestResult {
    let harness = Harness::new().await?;
    let events: Vec<_> = (0..200).map(|_| menu_created("Slow")).collect();
    harness.append(&events).await?;
    while harness.relay().publish_batch(&mut harness.connection().await?).await? > 0 {}

    let recorder = Recorder::slow(Duration::from_millis(20));
    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.batch_size = 20;
    config.concurrency = 4;
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, recorder.clone());
    eventually(WITHIN, "handling under way", || async { Ok(recorder.count() >= 10) }).await?;
    consumer.stop().await?;

    let handled: HashSet<EventId> = recorder.ids().into_iter().collect();
    assert!(handled.len() < 200, "the test should stop the consumer mid-stream");
    let stream = harness.stream::<MenuEvent>();
    let mut connection = harness.connection().await?;
    let pending: redis::streams::StreamPendingCountReply =
        redis::cmd("XPENDING").arg(&stream).arg("g").arg("-").arg("+").arg(1000).query_async(&mut connection).await?;
    assert!(pending.ids.is_empty(), "{} entries left pending after a graceful stop", pending.ids.len());

    // Everything delivered was handled and acked; the rest is still there for the next consumer.
    let next = Recorder::default();
    let after = harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c2"), next.clone());
    eventually(WITHIN, "the rest handled", || async { Ok(handled.len() + next.count() == 200) }).await?;
    after.stop().await?;
    assert!(next.ids().iter().all(|id| !handled.contains(id)), "an event was handled twice");
    Ok(())
}

#[tokio::test]
async fn events_a_transactional_handler_does_not_want_cost_no_inbox_row() -> TestResult {
    let harness = Harness::new().await?;
    let handler = Inboxed::new(Inbox::new(harness.pool().clone(), "evens"), harness.outbox(), RecordEvenVersions);
    let changes = availability_changes(Uuid::now_v7(), 4);
    for event in changes.iter().chain(&changes) {
        handler.handle(event).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    assert_eq!(harness.applied().await?, (2, 2), "versions 2 and 4, once each");
    let inbox_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer_group = 'evens'")
        .fetch_one(harness.pool())
        .await?;
    assert_eq!(inbox_rows, 2, "no row for the events it does not want");
    Ok(())
}
