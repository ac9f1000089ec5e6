//! Retention: streams are trimmed below what every consumer group has
//! acknowledged, never below the minimum age, and past a group only by the
//! hard cap, loudly. Entries are written and read here with plain
//! `XADD`/`XREADGROUP`/`XACK`: what the relay and consumers do, without them.

use crate::helpers::*;
use crate::metrics::Recorded;
use events::MenuEvent;
use events::metrics::{GROUP_LAG, TRIMMED, TRIMMED_UNACKNOWLEDGED};
use events::retention::{self, EntryId, HeldBack, Retention, RetentionConfig};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use std::time::{Duration, Instant};

/// Retention that keeps nothing for its age: only the groups hold entries back.
fn ageless() -> RetentionConfig {
    RetentionConfig { min_age: Duration::ZERO, ..RetentionConfig::default() }
}

/// A connection and a stream of this test's own.
async fn stream_of(harness: &Harness) -> anyhow::Result<(MultiplexedConnection, String)> {
    Ok((harness.connection().await?, harness.stream::<MenuEvent>()))
}

async fn create_group(connection: &mut MultiplexedConnection, stream: &str, group: &str) -> TestResult {
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(connection)
        .await?;
    Ok(())
}

/// Appends `count` entries with ids of now; returns their ids in order.
async fn add(connection: &mut MultiplexedConnection, stream: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut pipeline = redis::pipe();
    for n in 0..count {
        pipeline.cmd("XADD").arg(stream).arg("*").arg("n").arg(n);
    }
    Ok(pipeline.query_async(connection).await?)
}

/// Reads up to `count` new entries as a consumer of `group`; returns their ids.
async fn read(
    connection: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("consumer-1")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(connection)
        .await?;
    Ok(reply.keys.into_iter().flat_map(|key| key.ids).map(|entry| entry.id).collect())
}

async fn ack(connection: &mut MultiplexedConnection, stream: &str, group: &str, ids: &[String]) -> TestResult {
    redis::cmd("XACK").arg(stream).arg(group).arg(ids).query_async::<()>(connection).await?;
    Ok(())
}

/// The ids still in the stream, oldest first.
async fn ids(connection: &mut MultiplexedConnection, stream: &str) -> anyhow::Result<Vec<String>> {
    let range: StreamRangeReply = redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(connection).await?;
    Ok(range.ids.into_iter().map(|entry| entry.id).collect())
}

fn id(text: &str) -> anyhow::Result<EntryId> {
    Ok(text.parse()?)
}

/// Lets the clock pass the ids just written, so that a zero minimum age does
/// not keep them for being of this very millisecond.
async fn let_a_millisecond_pass() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[tokio::test]
async fn trimming_keeps_every_entry_from_a_groups_first_unacknowledged_on_and_removes_what_every_group_acked()
-> TestResult {
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "behind").await?;
    create_group(&mut connection, &stream, "caught-up").await?;
    let written = add(&mut connection, &stream, 10).await?;
    let first_four = read(&mut connection, &stream, "behind", 4).await?;
    ack(&mut connection, &stream, "behind", &first_four).await?;
    let all = read(&mut connection, &stream, "caught-up", 10).await?;
    ack(&mut connection, &stream, "caught-up", &all).await?;
    let_a_millisecond_pass().await;

    let report = retention::trim(&mut connection, &stream, &ageless()).await?;

    assert_eq!(ids(&mut connection, &stream).await?, written[4..], "the six entries `behind` was never handed stay");
    assert_eq!((report.trimmed, report.length), (4, 6));
    assert!(
        matches!(&report.held_back, HeldBack::Group { name, pending: 0, .. } if name == "behind"),
        "{:?}",
        report.held_back
    );
    let behind = report.groups.iter().find(|group| group.name == "behind");
    assert_eq!(behind.map(|group| (group.lag, group.pending)), Some((Some(6), 0)));
    Ok(())
}

#[tokio::test]
async fn a_group_with_pending_entries_holds_trimming_at_its_oldest_pending_entry() -> TestResult {
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "reservation-service").await?;
    let written = add(&mut connection, &stream, 10).await?;
    let delivered = read(&mut connection, &stream, "reservation-service", 8).await?;
    // 3, 4, 6 and 7 stay pending: delivered, their handlers not done.
    let mut acked = delivered[..3].to_vec();
    acked.push(delivered[5].clone());
    ack(&mut connection, &stream, "reservation-service", &acked).await?;
    let_a_millisecond_pass().await;

    let report = retention::trim(&mut connection, &stream, &ageless()).await?;

    assert_eq!(ids(&mut connection, &stream).await?, written[3..]);
    assert_eq!(
        report.held_back,
        HeldBack::Group { name: "reservation-service".to_owned(), at: id(&written[3])?, pending: 4 }
    );
    assert_eq!(report.trimmed_to, id(&written[3])?);
    let group = &report.groups[0];
    assert_eq!((group.pending, group.oldest_pending, group.lag), (4, Some(id(&written[3])?), Some(2)));
    assert_eq!(group.last_delivered, id(&written[7])?);
    assert_eq!(
        report.held_back.to_string(),
        format!("trimming held back by group reservation-service at {} (4 pending)", written[3])
    );
    Ok(())
}

#[tokio::test]
async fn a_group_that_never_read_anything_holds_every_entry() -> TestResult {
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "asleep").await?;
    let written = add(&mut connection, &stream, 10).await?;
    let_a_millisecond_pass().await;

    let report = retention::trim(&mut connection, &stream, &ageless()).await?;

    assert_eq!(ids(&mut connection, &stream).await?, written);
    assert_eq!(report.trimmed, 0);
    assert_eq!(report.groups[0].lag, Some(10));
    assert!(matches!(&report.held_back, HeldBack::Group { name, .. } if name == "asleep"), "{:?}", report.held_back);
    Ok(())
}

#[tokio::test]
async fn the_minimum_age_keeps_recent_entries_that_every_group_acknowledged() -> TestResult {
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    let ungrouped = format!("{stream}-ungrouped");
    create_group(&mut connection, &stream, "done").await?;
    for target in [&stream, &ungrouped] {
        // Two entries from the 1970s, then three of now.
        for old in ["1000-0", "1000-1"] {
            redis::cmd("XADD").arg(target).arg(old).arg("n").arg(old).query_async::<String>(&mut connection).await?;
        }
        add(&mut connection, target, 3).await?;
    }
    let everything = read(&mut connection, &stream, "done", 10).await?;
    ack(&mut connection, &stream, "done", &everything).await?;
    let config = RetentionConfig { min_age: Duration::from_secs(3600), ..RetentionConfig::default() };

    let report = retention::trim(&mut connection, &stream, &config).await?;

    assert_eq!(ids(&mut connection, &stream).await?, everything[2..], "the recent three stay though acknowledged");
    assert_eq!(report.trimmed, 2);
    assert!(matches!(report.held_back, HeldBack::MinAge { .. }), "{:?}", report.held_back);
    let ungrouped_report = retention::trim(&mut connection, &ungrouped, &config).await?;
    assert_eq!((ungrouped_report.trimmed, ungrouped_report.length), (2, 3), "without groups, by age alone");
    Ok(())
}

#[tokio::test]
async fn the_hard_cap_trims_past_a_lagging_group_and_counts_what_it_lost() -> TestResult {
    let recorded = Recorded::on_this_thread();
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "slow").await?;
    create_group(&mut connection, &stream, "done").await?;
    let written = add(&mut connection, &stream, 1000).await?;
    let delivered = read(&mut connection, &stream, "slow", 100).await?;
    ack(&mut connection, &stream, "slow", &delivered[..50]).await?;
    let everything = read(&mut connection, &stream, "done", 1000).await?;
    ack(&mut connection, &stream, "done", &everything).await?;
    let_a_millisecond_pass().await;
    let config = RetentionConfig { hard_cap: Some(300), ..ageless() };

    let report = retention::trim(&mut connection, &stream, &config).await?;

    assert_eq!(report.trimmed, 50, "the safe trim stops at slow's oldest pending entry");
    assert!(report.capped > 0 && report.length >= 300 && report.length < 950, "{report:?}");
    assert_eq!(report.length, 950 - report.capped);
    let left = ids(&mut connection, &stream).await?;
    assert_eq!(left, written[1000 - usize::try_from(report.length)?..]);
    // Every entry the cap removed was pending with slow or never handed to it.
    let [loss] = &report.lost[..] else { anyhow::bail!("expected slow's loss alone: {:?}", report.lost) };
    assert_eq!((loss.group.as_str(), loss.entries, loss.exact), ("slow", report.capped, true));
    let labels = [("stream", stream.as_str()), ("group", "slow")];
    assert_eq!(recorded.counter(TRIMMED_UNACKNOWLEDGED, &labels), report.capped);
    assert_eq!(recorded.counter(TRIMMED_UNACKNOWLEDGED, &[("stream", &stream), ("group", "done")]), 0);
    assert_eq!(recorded.counter(TRIMMED, &[("stream", &stream)]), 50 + report.capped);
    assert_eq!(recorded.gauge(GROUP_LAG, &labels), Some(900.0));
    Ok(())
}

#[tokio::test]
async fn a_deleted_group_no_longer_holds_trimming_back() -> TestResult {
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "retired").await?;
    add(&mut connection, &stream, 5).await?;
    let_a_millisecond_pass().await;
    assert_eq!(retention::trim(&mut connection, &stream, &ageless()).await?.length, 5);

    assert!(retention::delete_group(&mut connection, &stream, "retired").await?);
    assert!(!retention::delete_group(&mut connection, &stream, "retired").await?, "it is gone");

    assert!(retention::groups(&mut connection, &stream).await?.is_empty());
    let report = retention::trim(&mut connection, &stream, &ageless()).await?;
    assert_eq!((report.trimmed, report.length), (5, 0));
    Ok(())
}

#[tokio::test]
async fn the_retention_task_trims_on_its_interval_and_stops_promptly_when_cancelled() -> TestResult {
    let harness = Harness::new().await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "g").await?;
    let config = RetentionConfig { interval: Duration::from_millis(100), ..ageless() };
    let task = Retention::new(harness.redis.clone(), vec![stream.clone()], config);
    let retention = Running::spawn(|cancel| task.run(cancel));

    for round in 0..2 {
        let written = add(&mut connection, &stream, 5).await?;
        let handed = read(&mut connection, &stream, "g", 5).await?;
        assert_eq!(handed, written);
        ack(&mut connection, &stream, "g", &handed).await?;
        eventually(Duration::from_secs(5), &format!("round {round}'s entries trimmed"), || async {
            Ok(harness.stream_len(&stream).await? == 0)
        })
        .await?;
    }

    let started = Instant::now();
    retention.stop().await?;
    assert!(started.elapsed() < Duration::from_millis(500), "stopped after {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn the_retention_task_waits_out_a_redis_outage_and_trims_once_redis_is_back() -> TestResult {
    let mut server = testkit::RedisServer::start()?;
    let harness = Harness::on_redis(redis::Client::open(server.url())?).await?;
    let (mut connection, stream) = stream_of(&harness).await?;
    create_group(&mut connection, &stream, "g").await?;
    add(&mut connection, &stream, 5).await?;
    let handed = read(&mut connection, &stream, "g", 5).await?;
    ack(&mut connection, &stream, "g", &handed).await?;
    server.kill()?;
    let config = RetentionConfig { interval: Duration::from_millis(100), ..ageless() };
    let task = Retention::new(harness.redis.clone(), vec![stream.clone()], config);
    let retention = Running::spawn(|cancel| task.run(cancel));
    tokio::time::sleep(Duration::from_millis(500)).await;

    server.restart()?;
    eventually(Duration::from_secs(20), "the entries trimmed after the outage", || async {
        Ok(harness.stream_len(&stream).await? == 0)
    })
    .await?;
    retention.stop().await
}
