//! The harness: a fresh schema, a unique stream prefix, and typed helpers to
//! append, relay, consume and inspect.

use events::menu::MenuItem;
use events::{
    Consumer, ConsumerConfig, DomainEvent, Event, EventId, Handler, HandlerError, Inbox, Inboxed, MenuEvent,
    MenuItemId, Metadata, OutboxRelay, RelayConfig, Streams, TransactionalHandler, UnitOfWork,
};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::TestDb;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub type TestResult = anyhow::Result<()>;

/// One test's world: its schema, its streams, and the Redis it talks to.
pub struct Harness {
    pub db: TestDb,
    pub redis: redis::Client,
    pub streams: Streams,
}

impl Harness {
    /// A harness on the machine's shared Redis.
    pub async fn new() -> anyhow::Result<Self> {
        Self::on_redis(testkit::redis_client()?).await
    }

    /// A harness on the Redis behind `redis`.
    pub async fn on_redis(redis: redis::Client) -> anyhow::Result<Self> {
        let db = TestDb::new().await?;
        events::schema::migrate(&db.pool).await?;
        sqlx::query(
            "CREATE TABLE applied (event_id uuid NOT NULL, aggregate_id uuid NOT NULL, version bigint NOT NULL)",
        )
        .execute(&db.pool)
        .await?;
        Ok(Self { db, redis, streams: Streams::with_prefix(testkit::unique("test-")) })
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub fn stream<E: Event>(&self) -> String {
        self.streams.of::<E>()
    }

    /// A connection that waits long enough for a whole stream to be read back.
    pub async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        Ok(self.redis.get_multiplexed_async_connection_with_config(&config).await?)
    }

    /// An outbox on this harness's streams whose commits wake no relay: the
    /// rows wait for a relay's poll or an explicit `publish_batch`.
    pub fn outbox(&self) -> events::Outbox {
        events::Outbox::new(self.streams.clone(), events::RelayWaker::default())
    }

    /// Appends `events` in one committed transaction.
    pub async fn append<E: Event>(&self, events: &[DomainEvent<E>]) -> TestResult {
        let mut work = self.outbox().begin(self.pool()).await?;
        work.append(events).await?;
        work.commit().await?;
        Ok(())
    }

    pub fn relay(&self) -> OutboxRelay {
        self.relay_with(fast_relay())
    }

    pub fn relay_with(&self, config: RelayConfig) -> OutboxRelay {
        OutboxRelay::new(self.pool().clone(), self.redis.clone(), config)
    }

    /// Runs a relay until the returned task is stopped.
    pub fn spawn_relay(&self) -> Running {
        Running::spawn(|cancel| self.relay().run(cancel))
    }

    pub fn consumer_config<E: Event>(&self, group: &str, consumer: &str) -> ConsumerConfig {
        let mut config = ConsumerConfig::new(self.stream::<E>(), group, consumer);
        config.block = Duration::from_millis(100);
        config.claim_interval = Duration::from_millis(200);
        config.retry.initial = Duration::from_millis(5);
        config.retry.max = Duration::from_millis(50);
        config.reconnect.initial = Duration::from_millis(20);
        config.reconnect.max = Duration::from_millis(200);
        config
    }

    pub fn spawn_consumer<E: Event, H: Handler<E>>(&self, config: ConsumerConfig, handler: H) -> Running {
        let consumer = Consumer::new(self.redis.clone(), config, handler);
        Running::spawn(|cancel| consumer.run(cancel))
    }

    /// A handler that records each event into `applied` through the inbox of `group`.
    pub fn applier(&self, group: &str) -> Inboxed<RecordApplied> {
        Inboxed::new(Inbox::new(self.pool().clone(), group), self.outbox(), RecordApplied)
    }

    /// How many rows `applied` holds, and how many distinct events.
    pub async fn applied(&self) -> anyhow::Result<(i64, i64)> {
        Ok(sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM applied").fetch_one(self.pool()).await?)
    }

    /// Makes every `XADD` to `stream` answer `WRONGTYPE` (a string stands
    /// where the stream should be) until the key is deleted.
    pub async fn refuse_writes_to(&self, stream: &str) -> TestResult {
        let _: () =
            redis::cmd("SET").arg(stream).arg("not a stream").query_async(&mut self.connection().await?).await?;
        Ok(())
    }

    pub async fn unpublished(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(self.pool()).await?)
    }

    /// Every entry of the family `E`'s stream, oldest first.
    pub async fn entries<E: Event>(&self) -> anyhow::Result<Vec<StreamId>> {
        let range: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.stream::<E>())
            .arg("-")
            .arg("+")
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(range.ids)
    }

    pub async fn stream_len(&self, stream: &str) -> anyhow::Result<usize> {
        Ok(redis::cmd("XLEN").arg(stream).query_async(&mut self.connection().await?).await?)
    }

    /// Whether `group` has been handed every entry of `stream` and acknowledged them all.
    pub async fn caught_up(&self, stream: &str, group: &str) -> anyhow::Result<bool> {
        let mut connection = self.connection().await?;
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(&mut connection).await?;
        let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await?;
        let last_id = last.ids.first().map(|entry| entry.id.as_str());
        Ok(groups
            .groups
            .iter()
            .any(|info| info.name == group && info.pending == 0 && Some(info.last_delivered_id.as_str()) == last_id))
    }

    pub async fn pending(&self, stream: &str, group: &str) -> anyhow::Result<usize> {
        let reply: redis::streams::StreamPendingReply =
            redis::cmd("XPENDING").arg(stream).arg(group).query_async(&mut self.connection().await?).await?;
        Ok(reply.count())
    }
}

/// A background task with its own cancellation token.
pub struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    pub fn spawn<F, Fut>(start: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(start(cancel.clone()));
        Self { cancel, task }
    }

    /// Cancels the task and waits for it to return on its own.
    pub async fn stop(self) -> TestResult {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await??;
        Ok(())
    }
}

pub fn fast_relay() -> RelayConfig {
    RelayConfig { poll_interval: Duration::from_millis(50), ..RelayConfig::default() }
}

pub use testkit::eventually;

pub fn metadata() -> Metadata {
    Metadata::new("test-service", testkit::unique("req-"))
}

pub fn item(name: &str) -> MenuItem {
    MenuItem {
        id: MenuItemId::new(),
        name: name.to_owned(),
        description: None,
        category: "main".to_owned(),
        price_cents: 1250,
        currency: "EUR".to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    }
}

/// `MenuCreated` for a new aggregate at version 1.
pub fn menu_created(name: &str) -> DomainEvent<MenuEvent> {
    DomainEvent::new(
        Uuid::now_v7(),
        1,
        MenuEvent::MenuCreated { name: name.to_owned(), description: None, items: vec![item("Soup")] },
        metadata(),
    )
}

/// `count` availability changes of one aggregate, versions 1..=count.
pub fn availability_changes(aggregate_id: Uuid, count: i64) -> Vec<DomainEvent<MenuEvent>> {
    let item_id = MenuItemId::new();
    (1..=count)
        .map(|version| {
            DomainEvent::new(
                aggregate_id,
                version,
                MenuEvent::ItemAvailabilityChanged {
                    item_id,
                    available: version % 2 == 0,
                    cause: events::menu::AvailabilityCause::Staff,
                },
                metadata(),
            )
        })
        .collect()
}

/// Writes each event it applies to `applied`, once per event thanks to the inbox.
#[derive(Debug, Clone, Copy)]
pub struct RecordApplied;

impl<E: Event> TransactionalHandler<E> for RecordApplied {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<E>) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO applied (event_id, aggregate_id, version) VALUES ($1, $2, $3)")
            .bind(event.id)
            .bind(event.aggregate_id)
            .bind(event.version)
            .execute(&mut **work)
            .await?;
        Ok(())
    }
}

/// [`RecordApplied`] for the events of even versions only: it wants no others.
#[derive(Debug, Clone, Copy)]
pub struct RecordEvenVersions;

impl<E: Event> TransactionalHandler<E> for RecordEvenVersions {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<E>) -> Result<(), HandlerError> {
        RecordApplied.apply(work, event).await
    }

    fn wants(&self, event: &DomainEvent<E>) -> bool {
        event.version % 2 == 0
    }
}

/// What a [`Recorder`] remembers of a handled event.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub id: EventId,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub correlation_id: String,
}

/// Keeps every event it is handed, in order; can fail the first attempts of
/// each event, fail some events always, and take its time.
#[derive(Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    attempts: Arc<Mutex<HashMap<EventId, u32>>>,
    fail_first: u32,
    always_fail: Option<EventId>,
    delay: Duration,
}

impl Recorder {
    pub fn failing_first(attempts: u32) -> Self {
        Self { fail_first: attempts, ..Self::default() }
    }

    pub fn always_failing(event: EventId) -> Self {
        Self { always_fail: Some(event), ..Self::default() }
    }

    pub fn slow(delay: Duration) -> Self {
        Self { delay, ..Self::default() }
    }

    /// Ids of the events handled successfully, in the order they were handled.
    pub fn ids(&self) -> Vec<EventId> {
        self.lock().iter().map(|seen| seen.id).collect()
    }

    /// Each handled event, in order.
    pub fn handled(&self) -> Vec<Seen> {
        self.lock().clone()
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<E: Event> Handler<E> for Recorder {
    async fn handle(&self, event: &DomainEvent<E>) -> Result<(), HandlerError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let attempt = attempts.entry(event.id).or_default();
            *attempt += 1;
            *attempt
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.always_fail == Some(event.id) {
            return Err(HandlerError::rejected(anyhow::anyhow!("the kitchen is on fire (attempt {attempt})")));
        }
        if attempt <= self.fail_first {
            return Err(HandlerError::rejected(anyhow::anyhow!("flaky dependency (attempt {attempt})")));
        }
        self.lock().push(Seen {
            id: event.id,
            aggregate_id: event.aggregate_id,
            version: event.version,
            correlation_id: event.metadata.correlation_id.clone(),
        });
        Ok(())
    }
}
