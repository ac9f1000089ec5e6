//! Real faults on the publishing and consuming paths: Redis refusing writes
//! with a backlog waiting, Redis killed mid-publish, handlers whose
//! dependencies are down, consumers restarted with entries in hand.

use crate::helpers::*;
use events::{DomainEvent, Event, Handler, HandlerError, MenuEvent, RelayConfig, ReservationEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use testkit::RedisServer;

const WITHIN: Duration = Duration::from_secs(30);

/// A relay that publishes small batches, so that a modest backlog takes many
/// multi-batch transactions.
fn small_batches() -> RelayConfig {
    RelayConfig { batch_size: 50, ..fast_relay() }
}

/// Asserts that the stream of `E` holds versions `1..=count`, each taken where
/// it first appears: at least once may repeat a version, but never move one
/// before an earlier one or leave one out. A failure names the first place
/// where the order breaks, rather than printing thousands of versions.
async fn assert_published_in_order<E: Event>(harness: &Harness, count: i64) -> TestResult {
    let mut seen = std::collections::HashSet::new();
    let first_seen: Vec<i64> = harness
        .entries::<E>()
        .await?
        .iter()
        .filter_map(|entry| entry.get::<i64>("version"))
        .filter(|version| seen.insert(*version))
        .collect();
    if let Some(at) = first_seen.iter().zip(1..=count).position(|(seen, wanted)| *seen != wanted) {
        let around = &first_seen[at.saturating_sub(3)..(at + 5).min(first_seen.len())];
        panic!("{} goes out of order after version {at}: {around:?}", harness.stream::<E>());
    }
    assert_eq!(i64::try_from(first_seen.len())?, count, "versions missing from {}", harness.stream::<E>());
    Ok(())
}

#[tokio::test]
async fn a_relay_refused_by_redis_with_a_backlog_of_many_batches_publishes_everything_once_redis_accepts_again()
-> TestResult {
    let harness = Harness::new().await?;
    let stream = harness.stream::<MenuEvent>();
    let mut connection = harness.connection().await?;
    // A key of the wrong type: every XADD is answered WRONGTYPE.
    harness.refuse_writes_to(&stream).await?;
    let aggregate = uuid::Uuid::now_v7();
    for chunk in availability_changes(aggregate, 1200).chunks(100) {
        harness.append(chunk).await?;
    }
    let first = Running::spawn(|cancel| harness.relay_with(small_batches()).run(cancel));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // While the first relay keeps failing, it holds the publishing lock only
    // for moments: a second one gets it too.
    let second = Running::spawn(|cancel| harness.relay_with(small_batches()).run(cancel));
    let mut lock_was_free = false;
    let mut observer = harness.pool().acquire().await?;
    for _ in 0..100 {
        // Taken and given back at once, in a transaction of its own.
        let free: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext(concat('events.outbox.', current_schema()))::bigint)",
        )
        .fetch_one(&mut *observer)
        .await?;
        if free {
            lock_was_free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(observer);
    assert!(lock_was_free, "a failing relay kept the publishing lock");
    // This test's sessions only: others beside it hold transactions open on purpose.
    let idle_in_transaction: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE application_name = $1
           AND state = 'idle in transaction' AND now() - state_change > interval '2 seconds'",
    )
    .bind(&harness.db.schema)
    .fetch_one(harness.pool())
    .await?;
    assert_eq!(idle_in_transaction, 0, "a relay transaction was left idle in transaction");

    // Stopping a relay that is failing ends at once.
    let stopping = Instant::now();
    first.stop().await?;
    assert!(stopping.elapsed() < Duration::from_secs(2), "the failing relay took {:?} to stop", stopping.elapsed());

    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut connection).await?;
    eventually(WITHIN, "the whole backlog published", || async { Ok(harness.unpublished().await? == 0) }).await?;
    second.stop().await?;
    assert_published_in_order::<MenuEvent>(&harness, 1200).await?;
    Ok(())
}

#[tokio::test]
async fn a_stream_refused_beside_one_that_accepts_gets_every_event_in_order_once_it_accepts() -> TestResult {
    let harness = Harness::new().await?;
    let refusing = harness.stream::<ReservationEvent>();
    let mut connection = harness.connection().await?;
    harness.refuse_writes_to(&refusing).await?;
    // Every batch holds entries of both streams: Redis runs the menu's and
    // refuses the reservations' inside one transaction.
    let menu = availability_changes(uuid::Uuid::now_v7(), 300);
    let reservation = uuid::Uuid::now_v7();
    let reservations: Vec<_> = (1..=300)
        .map(|version| DomainEvent::new(reservation, version, ReservationEvent::ReservationConfirmed {}, metadata()))
        .collect();
    for (menu, reservations) in menu.chunks(10).zip(reservations.chunks(10)) {
        let mut work = harness.outbox().begin(harness.pool()).await?;
        work.append(menu).await?;
        work.append(reservations).await?;
        work.commit().await?;
    }
    let relay = Running::spawn(|cancel| harness.relay_with(small_batches()).run(cancel));
    // A first batch holds 25 entries of each; three tries of it have put the
    // menu's on their stream three times.
    let menu_entries = || async { harness.stream_len(&harness.stream::<MenuEvent>()).await };
    eventually(WITHIN, "three tries", || async { Ok(menu_entries().await? >= 75) }).await?;
    assert_eq!(harness.unpublished().await?, 600, "a batch Redis refused in part was taken as published");

    let _: () = redis::cmd("DEL").arg(&refusing).query_async(&mut connection).await?;
    eventually(WITHIN, "the whole backlog published", || async { Ok(harness.unpublished().await? == 0) }).await?;
    relay.stop().await?;
    assert_published_in_order::<MenuEvent>(&harness, 300).await?;
    assert_published_in_order::<ReservationEvent>(&harness, 300).await?;
    Ok(())
}

/// How many times [`flap_memory`] makes Redis refuse writes at most: after
/// that the relay may finish undisturbed however slow the machine is.
const FLAPS: u32 = 50;

/// Out of memory for writes (`maxmemory 1`) for 3 ms, then back for 20 ms,
/// [`FLAPS`] times or until told to stop. Returns how many times it flapped.
async fn flap_memory(mut connection: redis::aio::MultiplexedConnection, stop: &AtomicBool) -> anyhow::Result<u32> {
    let mut flaps = 0;
    while flaps < FLAPS && !stop.load(Ordering::Relaxed) {
        for (maxmemory, held) in [(1, 3), (0, 20)] {
            let _: () =
                redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(maxmemory).query_async(&mut connection).await?;
            tokio::time::sleep(Duration::from_millis(held)).await;
        }
        flaps += 1;
    }
    Ok(flaps)
}

/// How many commands Redis has refused with `OOM` since it started (its
/// `INFO errorstats`).
async fn refused_for_memory(connection: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let stats: String = redis::cmd("INFO").arg("errorstats").query_async(connection).await?;
    let count = stats.lines().find_map(|line| line.strip_prefix("errorstat_OOM:count=")).map_or(Ok(0), str::parse)?;
    Ok(count)
}

#[tokio::test]
async fn a_redis_that_refuses_and_accepts_writes_by_turns_gets_every_event_in_order() -> TestResult {
    const ROWS: i64 = 20_000;
    // Its own server: the whole server refuses writes.
    let server = RedisServer::start()?;
    let harness = Harness::on_redis(redis::Client::open(server.url())?).await?;
    let aggregate = uuid::Uuid::now_v7();
    for chunk in availability_changes(aggregate, ROWS).chunks(500) {
        harness.append(chunk).await?;
    }
    let quick_retries = events::backoff::Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(5) };
    let relay = Running::spawn(|cancel| {
        harness.relay_with(RelayConfig { batch_size: 50, backoff: quick_retries, ..fast_relay() }).run(cancel)
    });
    let stop_flapping = AtomicBool::new(false);
    let published = async {
        let published =
            eventually(WITHIN, "the whole backlog published", || async { Ok(harness.unpublished().await? == 0) }).await;
        stop_flapping.store(true, Ordering::Relaxed);
        published
    };
    let (flaps, published) = tokio::join!(flap_memory(harness.connection().await?, &stop_flapping), published);
    let flaps = flaps?;
    published?;
    relay.stop().await?;
    let refused = refused_for_memory(&mut harness.connection().await?).await?;
    assert!(refused >= 100, "Redis refused the relay {refused} times over {flaps} turns of refusing writes");
    assert_published_in_order::<MenuEvent>(&harness, ROWS).await?;
    Ok(())
}

#[tokio::test]
async fn a_relay_stops_promptly_while_redis_refuses_every_write() -> TestResult {
    let harness = Harness::new().await?;
    let stream = harness.stream::<MenuEvent>();
    harness.refuse_writes_to(&stream).await?;
    harness.append(&availability_changes(uuid::Uuid::now_v7(), 2000)).await?;
    let relay = Running::spawn(|cancel| harness.relay_with(small_batches()).run(cancel));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = Instant::now();
    relay.stop().await?;
    assert!(stopping.elapsed() < Duration::from_secs(2), "took {:?}", stopping.elapsed());
    assert_eq!(harness.unpublished().await?, 2000, "every row waits for the next start");
    Ok(())
}

#[tokio::test]
async fn a_redis_killed_in_the_middle_of_a_multi_batch_publish_loses_nothing_and_keeps_the_order() -> TestResult {
    let mut server = RedisServer::start()?;
    let harness = Harness::on_redis(redis::Client::open(server.url())?).await?;
    let aggregate = uuid::Uuid::now_v7();
    for chunk in availability_changes(aggregate, 5000).chunks(500) {
        harness.append(chunk).await?;
    }
    let relay = Running::spawn(|cancel| harness.relay_with(RelayConfig { batch_size: 50, ..fast_relay() }).run(cancel));
    eventually(WITHIN, "publishing under way", || async {
        Ok(harness.stream_len(&harness.stream::<MenuEvent>()).await.unwrap_or(0) >= 500)
    })
    .await?;
    server.kill()?;
    let published_before = 5000 - harness.unpublished().await?;
    assert!(published_before < 5000, "Redis died before the backlog was through");
    server.restart()?;

    eventually(WITHIN, "the whole backlog published", || async { Ok(harness.unpublished().await? == 0) }).await?;
    relay.stop().await?;
    assert_published_in_order::<MenuEvent>(&harness, 5000).await?;
    Ok(())
}

/// Answers "unavailable" while `down` is set, as a handler whose database is
/// unreachable does, and records what it handled once it is not.
#[derive(Clone)]
struct DependsOn {
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicU32>,
    seen: Recorder,
}

impl DependsOn {
    fn down() -> Self {
        Self { down: Arc::new(AtomicBool::new(true)), attempts: Arc::default(), seen: Recorder::default() }
    }
}

impl Handler<MenuEvent> for DependsOn {
    async fn handle(&self, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(sqlx::Error::PoolTimedOut.into());
        }
        self.seen.handle(event).await
    }
}

#[tokio::test]
async fn an_event_whose_handler_cannot_reach_its_database_waits_past_the_delivery_cap_and_is_never_dead_lettered()
-> TestResult {
    let harness = Harness::new().await?;
    let handler = DependsOn::down();
    let mut config = harness.consumer_config::<MenuEvent>("patient", "c");
    config.max_deliveries = 2;
    config.outage_retry.initial = Duration::from_millis(5);
    config.outage_retry.max = Duration::from_millis(20);
    let dead_letters = config.dead_letter_stream.clone();
    let consumer = harness.spawn_consumer(config, handler.clone());
    let event = menu_created("Through the outage");
    harness.append(std::slice::from_ref(&event)).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;

    eventually(WITHIN, "many failed attempts", || async { Ok(handler.attempts.load(Ordering::SeqCst) >= 20) }).await?;
    assert_eq!(harness.stream_len(&dead_letters).await?, 0, "an outage is not poison");
    handler.down.store(false, Ordering::SeqCst);
    eventually(WITHIN, "handled once the database is back", || async { Ok(handler.seen.ids() == vec![event.id]) })
        .await?;
    consumer.stop().await?;
    assert_eq!(harness.stream_len(&dead_letters).await?, 0);
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "patient").await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_consumer_whose_handlers_cannot_reach_their_database_reads_nothing_new_until_they_can() -> TestResult {
    let harness = Harness::new().await?;
    let stream = harness.stream::<MenuEvent>();
    let handler = DependsOn::down();
    let consumer = harness.spawn_consumer(harness.consumer_config::<MenuEvent>("paused", "c"), handler.clone());
    harness.append(&[menu_created("First")]).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    eventually(WITHIN, "the first event tried", || async { Ok(handler.attempts.load(Ordering::SeqCst) >= 2) }).await?;
    // Longer than a blocking read: the read under way when the outage began has ended.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let later: Vec<_> = (0..20).map(|_| menu_created("Later")).collect();
    harness.append(&later).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(harness.pending(&stream, "paused").await?, 1, "entries were read while the database was down");

    handler.down.store(false, Ordering::SeqCst);
    eventually(WITHIN, "all 21 handled", || async { Ok(handler.seen.count() == 21) }).await?;
    consumer.stop().await?;
    Ok(())
}

/// Rejects the first attempts at `version` 1 of each aggregate, then handles
/// everything, recording the order.
#[derive(Clone, Default)]
struct RejectsFirstVersionAtFirst {
    rejected: Arc<AtomicU32>,
    seen: Recorder,
}

impl Handler<MenuEvent> for RejectsFirstVersionAtFirst {
    async fn handle(&self, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        if event.version == 1 && self.rejected.fetch_add(1, Ordering::SeqCst) < 1000 {
            return Err(HandlerError::rejected(anyhow::anyhow!("not yet")));
        }
        self.seen.handle(event).await
    }
}

#[tokio::test]
async fn a_restarted_consumer_finishes_its_own_pending_entries_before_newer_ones_of_the_same_aggregate() -> TestResult {
    let harness = Harness::new().await?;
    let aggregate = uuid::Uuid::now_v7();
    let changes = availability_changes(aggregate, 3);
    let mut config = harness.consumer_config::<MenuEvent>("ordered", "instance-1");
    config.max_deliveries = 1000;
    config.retry.initial = Duration::from_millis(50);
    config.retry.max = Duration::from_millis(50);
    config.claim_idle = Duration::from_secs(60);

    // The first run takes version 1 and stops while still retrying it.
    let first_run = RejectsFirstVersionAtFirst::default();
    let consumer = harness.spawn_consumer(config.clone(), first_run.clone());
    harness.append(&changes[..1]).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    eventually(WITHIN, "version 1 in hand", || async { Ok(first_run.rejected.load(Ordering::SeqCst) >= 1) }).await?;
    consumer.stop().await?;
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "ordered").await?, 1);

    // Versions 2 and 3 arrive while it is down; the same instance restarts.
    harness.append(&changes[1..]).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let second_run = Recorder::default();
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, second_run.clone());
    eventually(WITHIN, "all three handled", || async { Ok(second_run.count() == 3) }).await?;
    consumer.stop().await?;
    let versions: Vec<i64> = second_run.handled().iter().map(|seen| seen.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    Ok(())
}

#[tokio::test]
async fn the_inbox_forgets_only_its_own_records_older_than_the_window() -> TestResult {
    let harness = Harness::new().await?;
    for (group, age_hours) in [("mine", 200), ("mine", 1), ("theirs", 200)] {
        sqlx::query(
            "INSERT INTO processed_events (consumer_group, event_id, processed_at)
             VALUES ($1, $2, now() - make_interval(hours => $3))",
        )
        .bind(group)
        .bind(uuid::Uuid::now_v7())
        .bind(age_hours)
        .execute(harness.pool())
        .await?;
    }
    let inbox = events::Inbox::new(harness.pool().clone(), "mine");
    assert_eq!(inbox.prune(Duration::from_secs(168 * 3600)).await?, 1);
    let left: Vec<(String, i32)> = sqlx::query_as(
        "SELECT consumer_group, extract(hour FROM now() - processed_at)::int4 + extract(day FROM now() - processed_at)::int4 * 24
         FROM processed_events ORDER BY consumer_group, processed_at",
    )
    .fetch_all(harness.pool())
    .await?;
    assert_eq!(left, vec![("mine".to_owned(), 1), ("theirs".to_owned(), 200)]);
    Ok(())
}

#[tokio::test]
async fn postgres_unreachable_while_entries_wait_dead_letters_nothing_and_every_event_is_applied_once_it_returns()
-> TestResult {
    let harness = Harness::new().await?;
    let proxy = testkit::proxy::FaultProxy::start(testkit::postgres_addr().await?).await?;
    let through_proxy = events::pool::options()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(300))
        .connect_with(harness.db.options.clone().host("127.0.0.1").port(proxy.port()))
        .await?;
    let handler =
        events::Inboxed::new(events::Inbox::new(through_proxy, "read-model"), harness.outbox(), RecordApplied);
    let mut config = harness.consumer_config::<MenuEvent>("read-model", "c");
    config.max_deliveries = 2;
    config.outage_retry.initial = Duration::from_millis(10);
    config.outage_retry.max = Duration::from_millis(100);
    let dead_letters = config.dead_letter_stream.clone();
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, handler);

    proxy.cut();
    let events: Vec<_> = (0..50).map(|_| menu_created("During the outage")).collect();
    harness.append(&events).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    // Many times the delivery cap's worth of failed attempts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(harness.applied().await?, (0, 0));
    assert_eq!(harness.stream_len(&dead_letters).await?, 0, "an outage dead-lettered events");

    proxy.restore();
    eventually(WITHIN, "every event applied once", || async { Ok(harness.applied().await? == (50, 50)) }).await?;
    consumer.stop().await?;
    assert_eq!(harness.stream_len(&dead_letters).await?, 0);
    assert_eq!(harness.pending(&harness.stream::<MenuEvent>(), "read-model").await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_row_that_appears_below_the_relays_horizon_is_still_published() -> TestResult {
    let harness = Harness::new().await?;
    let relay = harness.spawn_relay();
    for round in 0..4 {
        harness.append(&[menu_created(&format!("Round {round}"))]).await?;
        eventually(WITHIN, "published", || async { Ok(harness.unpublished().await? == 0) }).await?;
    }
    // A row below every seq the relay has claimed, as if its view of the
    // outbox had gone stale (a restored backup, a sequence reset).
    let late = menu_created("Below the horizon");
    let encoded = events::EncodedEvent::encode(&late)?;
    sqlx::query(
        "INSERT INTO outbox (seq, event_id, stream, event_type, aggregate_id, version, occurred_at, data, metadata)
         OVERRIDING SYSTEM VALUE
         VALUES (1, $1, $2, $3, $4, $5, $6, $7::json, $8::json)",
    )
    .bind(encoded.id.as_uuid())
    .bind(harness.stream::<MenuEvent>())
    .bind(&encoded.event_type)
    .bind(encoded.aggregate_id)
    .bind(encoded.version)
    .bind(encoded.occurred_at)
    .bind(&encoded.data)
    .bind(&encoded.metadata)
    .execute(harness.pool())
    .await?;

    eventually(WITHIN, "the late row published", || async { Ok(harness.unpublished().await? == 0) }).await?;
    relay.stop().await?;
    let ids: Vec<String> =
        harness.entries::<MenuEvent>().await?.iter().filter_map(|entry| entry.get::<String>("id")).collect();
    assert!(ids.contains(&late.id.to_string()));
    Ok(())
}
