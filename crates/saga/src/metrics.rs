//! What the engine counts: sagas started and finished by type and status,
//! step latency, timeouts and compensations. Recorded as the decisions are
//! made, inside the transaction; a rolled-back transaction may leave a count
//! one too high, never a saga uncounted.

use crate::state::{Phase, Status};
use std::time::Duration;

/// A saga of `saga_type` started.
pub(crate) fn started(saga_type: &str) {
    metrics::counter!("saga_started_total", "saga_type" => saga_type.to_owned()).increment(1);
}

/// A saga of `saga_type` reached `status` (completed, failed or stuck).
pub(crate) fn finished(saga_type: &str, status: Status) {
    metrics::counter!("saga_finished_total", "saga_type" => saga_type.to_owned(), "status" => status.as_str())
        .increment(1);
}

/// A step (or compensation) got its answer `latency` after its first send.
pub(crate) fn step_latency(saga_type: &str, step: &str, phase: Phase, latency: Duration) {
    metrics::histogram!(
        "saga_step_duration_seconds",
        "saga_type" => saga_type.to_owned(), "step" => step.to_owned(), "phase" => phase.as_str()
    )
    .record(latency.as_secs_f64());
}

/// A step (or compensation) passed its deadline without an answer.
pub(crate) fn timed_out(saga_type: &str, step: &str, phase: Phase) {
    metrics::counter!(
        "saga_timeouts_total",
        "saga_type" => saga_type.to_owned(), "step" => step.to_owned(), "phase" => phase.as_str()
    )
    .increment(1);
}

/// A saga of `saga_type` began compensating.
pub(crate) fn compensating(saga_type: &str) {
    metrics::counter!("saga_compensations_total", "saga_type" => saga_type.to_owned()).increment(1);
}
