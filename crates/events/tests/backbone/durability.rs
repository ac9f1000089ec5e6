//! Nothing committed is lost: Redis restarts, Redis outages, relay crashes.

use crate::helpers::*;
use events::MenuEvent;
use std::sync::Arc;
use std::time::Duration;
use testkit::RedisServer;

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_redis_restart_in_the_middle_of_a_run_loses_no_committed_event() -> TestResult {
    let mut server = RedisServer::start()?;
    let harness = Arc::new(Harness::on_redis(redis::Client::open(server.url())?).await?);
    let relay = harness.spawn_relay();
    let consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c"), harness.applier("g"));
    let publisher = {
        let harness = Arc::clone(&harness);
        tokio::spawn(async move {
            for _ in 0..400 {
                harness.append(&[menu_created("Through the storm")]).await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok(())
        })
    };
    eventually(WITHIN, "some events applied", || async { Ok(harness.applied().await?.1 >= 50) }).await?;
    server.kill()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart()?;
    publisher.await??;

    eventually(WITHIN, "all 400 applied exactly once", || async { Ok(harness.applied().await? == (400, 400)) }).await?;
    consumer.stop().await?;
    relay.stop().await?;
    assert_eq!(harness.unpublished().await?, 0);
    Ok(())
}

#[tokio::test]
async fn outbox_rows_written_while_redis_is_down_are_all_published_when_it_returns() -> TestResult {
    let mut server = RedisServer::start()?;
    let harness = Harness::on_redis(redis::Client::open(server.url())?).await?;
    let relay = harness.spawn_relay();
    server.kill()?;

    for _ in 0..50 {
        harness.append(&[menu_created("Written in the dark")]).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.unpublished().await?, 50, "rows must wait while Redis is down");

    server.restart()?;
    eventually(WITHIN, "all rows published", || async { Ok(harness.unpublished().await? == 0) }).await?;
    relay.stop().await?;
    assert_eq!(harness.stream_len(&harness.stream::<MenuEvent>()).await?, 50);
    Ok(())
}

#[tokio::test]
async fn a_relay_killed_between_xadd_and_commit_publishes_twice_and_the_inbox_absorbs_it() -> TestResult {
    let harness = Harness::new().await?;
    let events: Vec<_> = (0..20).map(|_| menu_created("Twice")).collect();
    harness.append(&events).await?;

    // A relay that dies after its XADDs and before its commit leaves
    // the entries on the stream and, its delete rolled back, the same rows in
    // the outbox. Re-appending the very same events (same ids) is that state.
    let mut relay = harness.relay();
    relay.publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(harness.unpublished().await?, 0);
    harness.append(&events).await?;
    // The restarted relay publishes them again.
    relay.publish_batch(&mut harness.connection().await?).await?;
    assert_eq!(harness.stream_len(&harness.stream::<MenuEvent>()).await?, 40, "every event is on the stream twice");

    let consumer =
        harness.spawn_consumer::<MenuEvent, _>(harness.consumer_config::<MenuEvent>("g", "c"), harness.applier("g"));
    eventually(WITHIN, "all 40 entries handed over and acknowledged", || async {
        harness.caught_up(&harness.stream::<MenuEvent>(), "g").await
    })
    .await?;
    consumer.stop().await?;
    assert_eq!(harness.applied().await?, (20, 20), "a duplicate delivery changed the state");
    Ok(())
}
