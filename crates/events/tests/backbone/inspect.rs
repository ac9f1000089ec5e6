//! What operators see of the streams (`events::inspect`): the newest entries
//! filtered, what comes next after a position, and a stream's overview.

use crate::helpers::*;
use events::inspect::{self, Filter};
use events::retention::{EntryId, HeldBack};
use events::{InventoryEvent, MenuEvent, Streams};
use std::time::Duration;

#[tokio::test]
async fn a_scan_finds_the_newest_matching_entries_and_reading_after_a_position_finds_only_new_ones() -> TestResult {
    let harness = Harness::new().await?;
    let (lunch, dinner) = (menu_created("Lunch"), menu_created("Dinner"));
    harness.append(&[lunch.clone(), dinner.clone()]).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let mut connection = harness.connection().await?;
    let streams = vec![harness.stream::<MenuEvent>(), harness.stream::<InventoryEvent>()];

    let mut position = inspect::last_ids(&mut connection, &streams).await?;
    assert_eq!(position[1], EntryId::ZERO, "a stream that does not exist yet starts at 0-0");
    let all = inspect::scan(&mut connection, &streams[0], position[0], &Filter::default(), 10, 100).await?;
    let ids: Vec<_> = all.entries.iter().map(|entry| entry.event.as_ref().map(|event| event.id)).collect();
    assert_eq!(ids, [Ok(dinner.id), Ok(lunch.id)], "newest first");
    assert!(all.reached_start);
    let by_correlation = Filter { correlation_id: Some(lunch.metadata.correlation_id.clone()), ..Filter::default() };
    let found = inspect::scan(&mut connection, &streams[0], position[0], &by_correlation, 10, 100).await?;
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].correlation_id(), Some(lunch.metadata.correlation_id.as_str()));
    let limited = inspect::scan(&mut connection, &streams[0], position[0], &by_correlation, 10, 1).await?;
    assert_eq!((limited.entries.len(), limited.scanned, limited.reached_start), (0, 1, false), "stops at the limit");

    let nothing = inspect::read_after(&mut connection, &streams, &mut position, 10, None).await?;
    assert!(nothing.is_empty(), "nothing after the last ids");
    let later = menu_created("Supper");
    harness.append(std::slice::from_ref(&later)).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let blocking = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    let mut blocking = harness.redis.get_multiplexed_async_connection_with_config(&blocking).await?;
    let new = inspect::read_after(&mut blocking, &streams, &mut position, 10, Some(Duration::from_secs(2))).await?;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].event.as_ref().map(|event| event.id), Ok(later.id));
    assert_eq!(position[0], new[0].id, "the position moved to the entry read");
    Ok(())
}

#[tokio::test]
async fn an_overview_shows_the_groups_their_consumers_the_dead_letters_and_what_holds_trimming_back() -> TestResult {
    let harness = Harness::new().await?;
    harness.append(&[menu_created("One"), menu_created("Two")]).await?;
    harness.relay().publish_batch(&mut harness.connection().await?).await?;
    let stream = harness.stream::<MenuEvent>();
    let mut config = harness.consumer_config::<MenuEvent>("g", "instance-1");
    config.max_deliveries = 1;
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, Recorder::failing_first(u32::MAX));
    eventually(Duration::from_secs(10), "both dead-lettered", || async {
        Ok(harness.stream_len(&format!("{stream}.dlq")).await? == 2)
    })
    .await?;
    consumer.stop().await?;

    let mut connection = harness.connection().await?;
    let overview = inspect::overview(&mut connection, &stream, Duration::ZERO).await?;
    assert_eq!((overview.length, overview.dead_letters), (2, 2));
    assert_eq!(overview.trim.groups.len(), 1);
    assert_eq!(overview.consumers.len(), 1);
    assert_eq!((overview.consumers[0].group.as_str(), overview.consumers[0].name.as_str()), ("g", "instance-1"));
    assert!(
        matches!(&overview.trim.held_back, HeldBack::Group { name, pending: 0, .. } if name == "g"),
        "with no history kept, the group is what stops a trim: {:?}",
        overview.trim.held_back
    );
    assert!(overview.trim.at > overview.last.unwrap_or(EntryId::MAX), "after everything it was handed");
    let kept = inspect::overview(&mut connection, &stream, Duration::from_secs(3600)).await?;
    assert!(matches!(kept.trim.held_back, HeldBack::MinAge { .. }));
    assert!(kept.trim.at < overview.first.unwrap_or(EntryId::MAX), "an hour's history is kept");

    let empty = Streams::with_prefix(testkit::unique("test-")).of::<MenuEvent>();
    let none = inspect::overview(&mut connection, &empty, Duration::ZERO).await?;
    assert_eq!((none.length, none.first, none.dead_letters, none.consumers.len()), (0, None, 0, 0));
    Ok(())
}
