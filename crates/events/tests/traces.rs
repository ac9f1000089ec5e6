//! Traces across the backbone, recorded in memory: an event's creation
//! context goes from the span that appended it, through its outbox row and
//! its stream entry, to the span its consumer handles it in. Real PostgreSQL
//! and Redis; a schema and stream names of the test's own.

use events::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use events::{
    Consumer, ConsumerConfig, DomainEvent, EncodedEvent, Handler, HandlerError, MenuEvent, Metadata, Outbox,
    OutboxRelay, RelayConfig, RelayWaker, Streams,
};
use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use redis::streams::StreamRangeReply;
use std::time::Duration;
use testkit::TestDb;
use testkit::traces::{Recorder, Trace, attribute};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(10);

fn recorder() -> &'static Recorder {
    Recorder::global(|provider| events::trace::layer(provider.tracer("events-test"), LevelFilter::INFO))
}

/// One test's schema with the outbox, its streams, and the Redis of the machine.
struct World {
    db: TestDb,
    streams: Streams,
    redis: redis::Client,
}

impl World {
    async fn new() -> anyhow::Result<Self> {
        recorder();
        let db = TestDb::new().await?;
        events::schema::migrate(&db.pool).await?;
        Ok(Self { db, streams: Streams::with_prefix(testkit::unique("test-")), redis: testkit::redis_client()? })
    }

    fn stream(&self) -> String {
        self.streams.of::<MenuEvent>()
    }

    /// Appends `event` and commits, inside whatever span is current.
    async fn append(&self, event: &DomainEvent<MenuEvent>) -> anyhow::Result<()> {
        let mut work = Outbox::new(self.streams.clone(), RelayWaker::default()).begin(&self.db.pool).await?;
        work.append(std::slice::from_ref(event)).await?;
        work.commit().await?;
        Ok(())
    }

    /// Publishes what waits in the outbox.
    async fn relay(&self) -> anyhow::Result<()> {
        let mut relay = OutboxRelay::new(self.db.pool.clone(), self.redis.clone(), RelayConfig::default());
        let mut connection = self.redis.get_multiplexed_async_connection().await?;
        relay.publish_batch(&mut connection).await?;
        Ok(())
    }

    async fn entries(&self) -> anyhow::Result<StreamRangeReply> {
        let mut connection = self.redis.get_multiplexed_async_connection().await?;
        Ok(redis::cmd("XRANGE").arg(self.stream()).arg("-").arg("+").query_async(&mut connection).await?)
    }

    /// Consumes the stream as `group` with `Applies` until the token fires.
    fn consume(&self, group: &str) -> CancellationToken {
        let mut config = ConsumerConfig::new(self.stream(), group, "consumer-1");
        config.block = Duration::from_millis(100);
        let consumer = Consumer::new(self.redis.clone(), config, Applies);
        let cancel = CancellationToken::new();
        tokio::spawn(consumer.run(cancel.clone()));
        cancel
    }
}

/// Handles an event in a span of its own, as a service's handler does.
struct Applies;

impl Handler<MenuEvent> for Applies {
    async fn handle(&self, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        let _applying = tracing::info_span!("apply menu event", event_id = %event.id).entered();
        Ok(())
    }
}

fn menu_deactivated() -> DomainEvent<MenuEvent> {
    DomainEvent::new(Uuid::now_v7(), 2, MenuEvent::MenuDeactivated {}, Metadata::new("menu-service", "req-1"))
}

fn trace_id(span: &tracing::Span) -> TraceId {
    span.context().span().span_context().trace_id()
}

#[tokio::test]
async fn an_event_carries_its_creation_context_from_the_appending_span_to_the_span_its_consumer_handles_it_in()
-> anyhow::Result<()> {
    let world = World::new().await?;
    let stream = world.stream();
    let request = tracing::info_span!("PATCH /menus/{id}", otel.kind = "server");
    let trace = trace_id(&request);
    let event = menu_deactivated();
    world.append(&event).instrument(request.clone()).await?;
    drop(request);

    let stored: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT traceparent, tracestate FROM outbox").fetch_one(&world.db.pool).await?;
    let traceparent = stored.0.clone().unwrap_or_default();
    assert!(traceparent.starts_with(&format!("00-{trace}-")), "the row holds the request's trace: {stored:?}");
    assert_eq!(stored.1, None, "no tracestate was given");

    world.relay().await?;
    let entries = world.entries().await?;
    let [entry] = entries.ids.as_slice() else { anyhow::bail!("one entry expected: {entries:?}") };
    assert_eq!(entry.get::<String>(TRACEPARENT), Some(traceparent.clone()), "the entry carries the row's context");
    assert_eq!(entry.get::<String>(TRACESTATE), None);
    let envelope = EncodedEvent::from_fields(&entry.map)?.decode::<MenuEvent>()?;
    assert_eq!(envelope, event, "the envelope is the event's alone");

    let stop = world.consume("reservation-service");
    let process = format!("process {stream}");
    let complete = |trace: &Trace| !trace.named("apply menu event").is_empty();
    let recorded = recorder().trace(trace, PATIENCE, complete).await;
    stop.cancel();
    let recorded = recorded?;

    let root = recorded.one("PATCH /menus/{id}")?;
    let created = recorded.one(&format!("create {stream}"))?;
    let processed = recorded.one(&process)?;
    let applied = recorded.one("apply menu event")?;
    assert_eq!(created.span_kind, SpanKind::Producer);
    assert_eq!(created.parent_span_id, root.span_context.span_id(), "{}", recorded.render());
    assert_eq!(
        traceparent,
        format!("00-{trace}-{}-01", created.span_context.span_id()),
        "the row holds the create span"
    );
    assert_eq!(processed.span_kind, SpanKind::Consumer);
    assert_eq!(processed.parent_span_id, created.span_context.span_id(), "{}", recorded.render());
    assert!(
        processed.links.iter().any(|link| link.span_context.span_id() == created.span_context.span_id()
            && link.span_context.trace_id() == trace),
        "the process span links to the creation context: {:?}",
        processed.links
    );
    assert_eq!(
        attribute(processed, "messaging.consumer.group.name").map(ToString::to_string).as_deref(),
        Some("reservation-service")
    );
    assert_eq!(attribute(processed, "messaging.destination.name").map(ToString::to_string), Some(stream.clone()));
    assert_eq!(attribute(processed, "messaging.message.id").map(ToString::to_string), Some(event.id.to_string()));
    assert_eq!(applied.parent_span_id, processed.span_context.span_id(), "{}", recorded.render());

    let sent = recorder()
        .spans()
        .into_iter()
        .find(|span| span.links.iter().any(|link| link.span_context.span_id() == created.span_context.span_id()));
    let sent = sent.ok_or_else(|| anyhow::anyhow!("no span links to the create span"))?;
    assert_eq!(sent.name, format!("send {stream}"));
    assert_eq!(sent.span_kind, SpanKind::Client);
    assert_ne!(sent.span_context.trace_id(), trace, "a batch is a trace of its own, linked to what it carries");
    Ok(())
}

#[tokio::test]
async fn an_entry_without_a_creation_context_is_handled_in_a_trace_of_its_own() -> anyhow::Result<()> {
    let world = World::new().await?;
    let event = menu_deactivated();
    testkit::stream::append(&world.stream(), &EncodedEvent::encode(&event)?.into_fields()).await?;

    let stop = world.consume("kitchen-service");
    let process = format!("process {}", world.stream());
    let found = testkit::eventually(PATIENCE, "the entry was handled", || {
        let found = recorder().spans().into_iter().any(|span| {
            span.name == process
                && attribute(&span, "messaging.message.id").map(ToString::to_string) == Some(event.id.to_string())
        });
        async move { Ok(found) }
    })
    .await;
    stop.cancel();
    found?;
    let spans = recorder().spans();
    let processed = spans.iter().find(|span| span.name == process).ok_or_else(|| anyhow::anyhow!("no process span"))?;
    assert_eq!(processed.parent_span_id, SpanId::INVALID, "a root");
    assert!(processed.links.is_empty());
    let handled_in: Vec<_> = spans
        .iter()
        .filter(|span| span.span_context.trace_id() == processed.span_context.trace_id())
        .map(|span| span.name.to_string())
        .collect();
    assert_eq!(handled_in.len(), 2, "the delivery and its handler, and nothing of the consumer's loop: {handled_in:?}");
    Ok(())
}

#[tokio::test]
async fn an_event_appended_outside_any_span_starts_its_trace_with_its_create_span() -> anyhow::Result<()> {
    let world = World::new().await?;
    // A sweep or a timer appends without a request around it.
    world.append(&menu_deactivated()).await?;
    let (traceparent,): (Option<String>,) =
        sqlx::query_as("SELECT traceparent FROM outbox").fetch_one(&world.db.pool).await?;
    let context = TraceContext::from_parts(traceparent.as_deref(), None).map(|context| context.span_context());
    let context = context.ok_or_else(|| anyhow::anyhow!("no context stored"))?;
    let spans = recorder().spans();
    let created = spans
        .iter()
        .find(|span| span.span_context.span_id() == context.span_id())
        .ok_or_else(|| anyhow::anyhow!("the stored context names no recorded span"))?;
    assert_eq!(created.name, format!("create {}", world.stream()));
    assert_eq!(created.parent_span_id, SpanId::INVALID, "a root");
    Ok(())
}
