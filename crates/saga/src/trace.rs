//! The saga's spans, made only while traces are exported
//! ([`events::trace`]): a start, each reply applied, each command sent, each
//! deadline and operator action, named `saga <what> <type>` with the saga's
//! id, subject and step as attributes.
//!
//! A start, a reply and an operator's action run inside the span of the
//! request or delivery that caused them, so the saga's steps are part of the
//! order's trace, and so are the commands they send (their create spans are
//! children of the step's span). A deadline passes with no such span around
//! it: the saga row keeps the context of the span that sent its latest
//! command, and the sweep's span is a child of it (and links to it), so that
//! the re-send or the compensation stays in the order's trace too. An
//! operator's retry or abort links to it from the operator's request.

use crate::definition::Shape;
use crate::state::Position;
use crate::store::Saga;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A span `saga <what> <type>` about `saga`; [`Span::none`] while traces are off.
pub(crate) fn span(what: &str, shape: &dyn Shape, saga: &Saga) -> Span {
    if !events::trace::enabled() {
        return Span::none();
    }
    // Declaring a kind makes it part of a trace wherever it is made (see
    // `events::trace::Traced`): a sweep has no span around it.
    let span = tracing::info_span!("saga", otel.name = format!("saga {what} {}", shape.name()), otel.kind = Empty);
    span.set_attribute("saga.id", saga.id.to_string());
    span.set_attribute("saga.type", shape.name().to_owned());
    span.set_attribute("saga.subject", saga.subject.to_string());
    span
}

/// The span of sending the action at `position` as attempt `attempt`: its
/// context becomes the saga's ([`Saga::trace`]).
pub(crate) fn sending(shape: &dyn Shape, saga: &Saga, position: Position, attempt: u32) -> Span {
    let span = span("step", shape, saga);
    if !span.is_none() {
        span.record("otel.name", format!("saga step {}/{}", shape.name(), shape.step_name(position.step)));
        span.set_attribute("saga.step", shape.step_name(position.step).to_owned());
        span.set_attribute("saga.phase", position.phase.as_str());
        span.set_attribute("saga.attempt", i64::from(attempt));
    }
    span
}

/// The span of the sweep handling `saga`'s deadline: a child of the span
/// that sent its latest command, if the saga kept its context, else the
/// start of a trace.
pub(crate) fn timed_out(shape: &dyn Shape, saga: &Saga) -> Span {
    let span = span("timeout", shape, saga);
    if let Some(sent) = &saga.trace {
        sent.adopt(&span);
    }
    span
}

/// The span of an operator's `what` (retry, abort) on `saga`, in the
/// operator's request, linked to the span that sent its latest command.
pub(crate) fn operated(what: &str, shape: &dyn Shape, saga: &Saga) -> Span {
    let span = span(what, shape, saga);
    if let Some(sent) = &saga.trace {
        span.add_link(sent.span_context());
    }
    span
}

/// Records what a span's call did to the saga.
pub(crate) fn effect(span: &Span, effect: &crate::Effect) {
    if !span.is_none() {
        let name = match effect {
            crate::Effect::Advanced { .. } => "advanced",
            crate::Effect::Resent { .. } => "resent",
            crate::Effect::Compensating { .. } => "compensating",
            crate::Effect::Completed => "completed",
            crate::Effect::Failed { .. } => "failed",
            crate::Effect::Stuck { .. } => "stuck",
            crate::Effect::Ignored(_) => "ignored",
        };
        span.set_attribute("saga.effect", name);
    }
}
