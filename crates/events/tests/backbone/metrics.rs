//! The Prometheus metrics the relay and the consumer record, read back from a
//! recorder installed for the test's thread (a `#[tokio::test]` runs every
//! spawned task on that one thread).

use crate::helpers::*;
use events::MenuEvent;
use events::metrics::{CONSUMED, DEAD_LETTERED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, PENDING, PUBLISHED, RETRIED};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use testkit::RedisServer;

const WITHIN: Duration = Duration::from_secs(20);

type Handles = Mutex<HashMap<Key, Arc<AtomicU64>>>;

/// A recorder that keeps every counter and gauge by name and labels.
#[derive(Default)]
struct Values {
    counters: Handles,
    gauges: Handles,
}

impl Values {
    fn handle(handles: &Handles, key: &Key) -> Arc<AtomicU64> {
        Arc::clone(handles.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default())
    }

    /// The raw value of the metric `name` with exactly `labels`, in any order.
    fn find(handles: &Handles, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let mut wanted: Vec<(&str, &str)> = labels.to_vec();
        wanted.sort_unstable();
        let handles = handles.lock().unwrap_or_else(PoisonError::into_inner);
        handles.iter().find_map(|(key, value)| {
            let mut labels: Vec<(&str, &str)> = key.labels().map(|label| (label.key(), label.value())).collect();
            labels.sort_unstable();
            (key.name() == name && labels == wanted).then(|| value.load(Ordering::SeqCst))
        })
    }
}

impl metrics::Recorder for Values {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Self::handle(&self.counters, key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Self::handle(&self.gauges, key))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// The metrics recorded on this thread from now on.
pub struct Recorded {
    values: &'static Values,
    _installed: metrics::LocalRecorderGuard<'static>,
}

impl Recorded {
    pub fn on_this_thread() -> Self {
        // The guard wants a recorder that outlives it; one small leak per test.
        let values: &'static Values = Box::leak(Box::default());
        Self { values, _installed: metrics::set_default_local_recorder(values) }
    }

    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        Values::find(&self.values.counters, name, labels).unwrap_or(0)
    }

    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        Values::find(&self.values.gauges, name, labels).map(f64::from_bits)
    }
}

#[tokio::test]
async fn the_relay_reports_its_backlog_while_redis_is_down_and_counts_what_it_publishes() -> TestResult {
    let recorded = Recorded::on_this_thread();
    let mut server = RedisServer::start()?;
    let harness = Harness::on_redis(redis::Client::open(server.url())?).await?;
    server.kill()?;
    let events: Vec<_> = (0..30).map(|_| menu_created("Waiting")).collect();
    harness.append(&events).await?;
    let relay = harness.spawn_relay();

    eventually(WITHIN, "a backlog of 30 rows reported", || async {
        Ok(recorded.gauge(OUTBOX_BACKLOG, &[]) == Some(30.0))
    })
    .await?;
    let age = recorded.gauge(OUTBOX_OLDEST_AGE, &[]).unwrap_or_default();
    assert!(age > 0.0, "the oldest row's age was {age}");
    assert_eq!(recorded.counter(PUBLISHED, &[("stream", &harness.stream::<MenuEvent>())]), 0);

    server.restart()?;
    let stream = harness.stream::<MenuEvent>();
    eventually(WITHIN, "30 published and an empty backlog reported", || async {
        Ok(recorded.counter(PUBLISHED, &[("stream", &stream)]) == 30
            && recorded.gauge(OUTBOX_BACKLOG, &[]) == Some(0.0))
    })
    .await?;
    relay.stop().await
}

#[tokio::test]
async fn the_consumer_counts_successes_retries_dead_letters_and_unknown_types() -> TestResult {
    let recorded = Recorded::on_this_thread();
    let harness = Harness::new().await?;
    let stream = harness.stream::<MenuEvent>();
    let fine: Vec<_> = (0..4).map(|_| menu_created("Fine")).collect();
    let poison = menu_created("Poison");
    harness.append(&fine).await?;
    harness.append(std::slice::from_ref(&poison)).await?;
    let mut connection = harness.connection().await?;
    harness.relay().publish_batch(&mut connection).await?;
    let mut fields = events::EncodedEvent::encode(&menu_created("From the future"))?.to_fields();
    fields[1].1 = "MenuTeleported".to_owned();
    let _: String = redis::cmd("XADD").arg(&stream).arg("*").arg(&fields[..]).query_async(&mut connection).await?;

    let mut config = harness.consumer_config::<MenuEvent>("g", "c");
    config.max_deliveries = 3;
    config.claim_interval = Duration::from_millis(100);
    let consumer = harness.spawn_consumer::<MenuEvent, _>(config, Recorder::always_failing(poison.id));
    let labels = [("stream", stream.as_str()), ("group", "g")];
    let outcome = |outcome| [("stream", stream.as_str()), ("group", "g"), ("outcome", outcome)];
    eventually(WITHIN, "everything settled and nothing pending", || async {
        Ok(recorded.counter(DEAD_LETTERED, &labels) == 1 && recorded.gauge(PENDING, &labels) == Some(0.0))
    })
    .await?;
    consumer.stop().await?;

    assert_eq!(recorded.counter(CONSUMED, &outcome("ok")), 4);
    assert_eq!(recorded.counter(CONSUMED, &outcome("unknown_type")), 1);
    let rejected = [("stream", stream.as_str()), ("group", "g"), ("reason", "rejected")];
    assert_eq!(
        recorded.counter(RETRIED, &rejected),
        2,
        "the poison's first two attempts are retried, the third is not"
    );
    Ok(())
}
