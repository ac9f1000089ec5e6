//! Traces across the backbone: the W3C trace context an event carries from
//! the span that created it to every handler of it, so that one trace shows a
//! request, the events it caused and everything done because of them.
//!
//! # The path of a trace
//!
//! Spans follow the OpenTelemetry messaging conventions, with `redis` as
//! `messaging.system` and the stream as `messaging.destination.name`:
//!
//! 1. **Create.** [`crate::UnitOfWork::append`] opens a `create <stream>`
//!    span (kind `PRODUCER`) for each event, a child of whatever span appends
//!    it (a request, a handler, a saga step, a sweep), and stores that span's
//!    context with the outbox row (`traceparent`, `tracestate`): the event's
//!    *creation context*.
//! 2. **Send.** The relay puts the creation context on the stream entry as
//!    the fields `traceparent` and `tracestate`, beside the seven of the
//!    envelope ([`crate::encoding`]), and each batch it sends has a `send`
//!    span (kind `CLIENT`) that links to the creation context of every event
//!    it carries. It is a trace of its own: one batch carries the events
//!    of many requests.
//! 3. **Process.** A consumer handles each entry in a `process <stream>` span
//!    (kind `CONSUMER`, with `messaging.consumer.group.name`) that is a
//!    **child of the entry's creation context and links to it**: the
//!    conventions' opt-in "creation context as parent", allowed because a
//!    delivery handles exactly one message, so that a request and every
//!    downstream handler are one trace rather than traces joined by links.
//!    What the handler appends is created in that span, and the trace goes
//!    on to the next service. An entry without a creation context (written
//!    while tracing was off, or by an older producer) starts a trace of its
//!    own.
//!
//! Dead letters keep the fields, so a re-driven entry continues its trace.
//!
//! # Off unless enabled
//!
//! Until [`layer`] has been installed, everything here costs one relaxed
//! atomic load: no span is made, no context formatted, the outbox row and
//! the stream entry carry nothing more, and consumers read nothing more.

use crate::encoding::EncodedEvent;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::field::Empty;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Metadata, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// The entry field (and outbox column) holding the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// The entry field (and outbox column) holding the W3C `tracestate`, when there is one.
pub const TRACESTATE: &str = "tracestate";

/// `messaging.system` of the backbone's spans.
const SYSTEM: &str = "redis";

/// The field that makes a span the start of a trace (or of this process's
/// part of one): every span that declares it is exported.
const KIND: &str = "otel.kind";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported, so trace context is worth carrying.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The layer that turns `tracing` spans into OpenTelemetry spans of
/// `tracer`, for the spans that make up traces ([`Traced`]) at `level` and
/// above; installing it switches on the propagation of this module (and
/// sets the W3C propagator as OpenTelemetry's global one). Add it to the
/// process's subscriber once.
pub fn layer<S, T>(
    tracer: T,
    level: LevelFilter,
) -> Filtered<tracing_opentelemetry::OpenTelemetryLayer<S, T>, Traced, S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    ENABLED.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Traced { level })
}

/// Which `tracing` spans and events become part of a trace: a span that
/// declares `otel.kind` (a request, a delivery, a created event: where a
/// trace starts or enters the process), and any span or event inside one.
///
/// The long-lived spans of the relay, the consumers and the retention loop
/// declare no kind and are not inside one, so they and what happens in them
/// outside deliveries stay out of traces: exported, each would be a trace as
/// long as the process's life, gathering every span that ran inside it.
#[derive(Debug, Clone, Copy)]
pub struct Traced {
    level: LevelFilter,
}

impl<S: Subscriber + for<'span> LookupSpan<'span>> Filter<S> for Traced {
    fn enabled(&self, metadata: &Metadata<'_>, context: &Context<'_, S>) -> bool {
        metadata.level() <= &self.level
            && ((metadata.is_span() && metadata.fields().field(KIND).is_some()) || context.lookup_current().is_some())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.level() <= &self.level { Interest::sometimes() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level)
    }
}

/// The W3C trace context of one span, as text: what an outbox row stores, a
/// stream entry and an HTTP request carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`: version, trace id, parent span id, flags.
    pub traceparent: String,
    /// `tracestate`, when the trace has one.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The context of `span`, if it is part of a trace (always `None` while
    /// tracing is off).
    pub fn of(span: &Span) -> Option<Self> {
        if !enabled() {
            return None;
        }
        let mut carrier = Carrier::default();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        carrier.traceparent.map(|traceparent| Self { traceparent, tracestate: carrier.tracestate })
    }

    /// The context in `traceparent` and `tracestate` as they were received;
    /// `None` without a `traceparent`.
    pub fn from_parts(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        Some(Self { traceparent: traceparent?.to_owned(), tracestate: tracestate.map(str::to_owned) })
    }

    /// The context a stream entry carries in its [`TRACEPARENT`] and
    /// [`TRACESTATE`] fields, if any.
    pub fn from_entry(fields: &HashMap<String, redis::Value>) -> Option<Self> {
        let text = |name: &str| fields.get(name).and_then(|value| redis::from_redis_value_ref::<String>(value).ok());
        Some(Self { traceparent: text(TRACEPARENT)?, tracestate: text(TRACESTATE) })
    }

    /// The remote span it names, as a parent context; one without a valid
    /// span if the text does not parse (a span given it becomes a root).
    pub fn parent(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(self)
    }

    /// The remote span it names, to link to; invalid if the text does not parse.
    pub fn span_context(&self) -> SpanContext {
        self.parent().span().span_context().clone()
    }

    /// Makes `span` (not yet entered) a child of this context, and links it
    /// to it, as a consumer's span is to the creation context of what it
    /// processes. Does nothing for a span that is not traced.
    pub fn adopt(&self, span: &Span) {
        let parent = self.parent();
        let linked = parent.span().span_context().clone();
        if span.set_parent(parent).is_ok() {
            span.add_link(linked);
        }
    }
}

impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(&self.traceparent),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Where the propagator writes a context.
#[derive(Default)]
struct Carrier {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// The creation context of `event`, about to be appended for `stream`: the
/// context of a `create <stream>` span, a child of the current span, ended
/// at once. `None` while tracing is off.
pub(crate) fn created(stream: &str, event: &EncodedEvent) -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    let span = tracing::info_span!("create", otel.name = format!("create {stream}"), otel.kind = "producer");
    span.set_attribute("messaging.system", SYSTEM);
    span.set_attribute("messaging.operation.type", "create");
    span.set_attribute("messaging.operation.name", "create");
    span.set_attribute("messaging.destination.name", stream.to_owned());
    span.set_attribute("messaging.message.id", event.id.to_string());
    span.set_attribute("event.type", event.event_type.clone());
    TraceContext::of(&span)
}

/// The span of one batch of `count` events to the stream
/// `stream` names (`None` if they go to several), linked to the creation
/// context of each of `created`. [`Span::none`] while tracing is off.
pub(crate) fn sending<'a>(
    count: usize,
    stream: impl FnOnce() -> Option<&'a str>,
    created: impl Iterator<Item = &'a TraceContext>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let stream = stream();
    let name = stream.map_or_else(|| "send".to_owned(), |stream| format!("send {stream}"));
    let span = tracing::info_span!("send", otel.name = name, otel.kind = "client");
    span.set_attribute("messaging.system", SYSTEM);
    span.set_attribute("messaging.operation.type", "send");
    span.set_attribute("messaging.operation.name", "xadd");
    span.set_attribute("messaging.batch.message_count", i64::try_from(count).unwrap_or(i64::MAX));
    if let Some(stream) = stream {
        span.set_attribute("messaging.destination.name", stream.to_owned());
    }
    for context in created {
        span.add_link(context.span_context());
    }
    span
}

/// The span a consumer of `group` handles one delivery of the entry
/// `fields`, event `event`, of `stream` in: for the logs, its event id, type
/// and correlation id; traced, the `process <stream>` span described above.
pub(crate) fn processing<E: crate::Event>(
    stream: &str,
    group: &str,
    event: &crate::DomainEvent<E>,
    fields: &HashMap<String, redis::Value>,
) -> Span {
    let span = tracing::info_span!(
        "deliver",
        event_id = %event.id,
        event_type = event.event_type(),
        correlation_id = %event.metadata.correlation_id,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
    );
    if !enabled() {
        return span;
    }
    span.record("otel.name", format!("process {stream}"));
    span.record("otel.kind", "consumer");
    span.set_attribute("messaging.system", SYSTEM);
    span.set_attribute("messaging.operation.type", "process");
    span.set_attribute("messaging.operation.name", "process");
    span.set_attribute("messaging.destination.name", stream.to_owned());
    span.set_attribute("messaging.consumer.group.name", group.to_owned());
    span.set_attribute("messaging.message.id", event.id.to_string());
    span.set_attribute("messaging.message.conversation_id", event.metadata.correlation_id.clone());
    if let Some(created) = TraceContext::from_entry(fields) {
        created.adopt(&span);
    }
    span
}

/// Marks `span` as failed, for a delivery given up on.
pub(crate) fn failed(span: &Span) {
    if enabled() {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_traced_or_carried_until_the_layer_is_installed() {
        // This unit-test binary never installs the layer.
        assert!(!enabled());
        assert_eq!(TraceContext::of(&tracing::info_span!("request", otel.kind = "server")), None);
        assert!(sending(1, || Some("menu-events"), std::iter::empty()).is_none());
    }

    #[test]
    fn a_context_reads_back_from_an_entry_and_names_its_span() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let fields: HashMap<String, redis::Value> = [
            (TRACEPARENT.to_owned(), redis::Value::BulkString(traceparent.as_bytes().to_vec())),
            (TRACESTATE.to_owned(), redis::Value::BulkString(b"vendor=1".to_vec())),
        ]
        .into();
        let context = TraceContext::from_entry(&fields);
        assert_eq!(
            context,
            Some(TraceContext { traceparent: traceparent.to_owned(), tracestate: Some("vendor=1".to_owned()) })
        );
        let span = context.map(|context| context.span_context()).unwrap_or_else(SpanContext::empty_context);
        assert_eq!(span.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.is_remote() && span.is_sampled());
        assert_eq!(TraceContext::from_entry(&HashMap::new()), None);
        assert!(
            !TraceContext::from_parts(Some("garbage"), None).is_some_and(|context| context.span_context().is_valid())
        );
    }
}
