//! Starting sagas, applying replies and the operators' actions, each inside
//! the caller's unit of work so that the saga's change and the command it
//! sends commit together.

use crate::definition::{Definition, Definitions, Envelope, Reply, Shape, Verdict};
use crate::error::Error;
use crate::plan::{self, Next};
use crate::state::{Phase, Position, SagaId, Status};
use crate::store::{self, Entry, Saga};
use crate::trace;
use chrono::{DateTime, Utc};
use events::trace::TraceContext;
use events::{EventId, Metadata, UnitOfWork};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

/// What a call did to one saga, for the service to update its own aggregate
/// (an order approved or rejected) in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The saga.
    pub saga_id: SagaId,
    /// Its type.
    pub saga_type: String,
    /// Its subject.
    pub subject: Uuid,
    /// What happened.
    pub effect: Effect,
}

/// What happened to a saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The step at this index was sent (the previous one completed).
    Advanced {
        /// The step now awaited.
        step: usize,
    },
    /// The current step or compensation was sent again.
    Resent {
        /// Which attempt this is (1 after an operator's retry).
        attempt: u32,
    },
    /// The compensation of this step was sent: the saga is undoing.
    Compensating {
        /// The step being undone.
        step: usize,
        /// Why the saga compensates.
        reason: String,
    },
    /// Every step completed.
    Completed,
    /// The saga failed and everything it did is undone.
    Failed {
        /// Why it failed.
        reason: String,
    },
    /// A compensation failed or kept timing out: an operator must look.
    Stuck {
        /// Why.
        reason: String,
    },
    /// The reply changed nothing.
    Ignored(Ignored),
}

/// Why a reply changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The saga has already taken this very event.
    Duplicate,
    /// It answers a command of a step the saga has left (the saga moved on,
    /// or began compensating). Recorded.
    Late,
    /// The step awaiting a reply does not expect it. Recorded.
    Unexpected,
}

/// Starts a saga of `definition` about `subject` with `data`, sending its
/// first step's command in `work`. `metadata` is the start's: its
/// correlation id goes on every command of the saga, its source names the
/// sender, its causation id is the first command's.
///
/// # Errors
/// The definition has no steps, the data does not encode, or the database failed.
pub async fn start<D>(
    work: &mut UnitOfWork,
    definition: &Definition<D>,
    subject: impl Into<Uuid>,
    data: &D,
    metadata: &Metadata,
) -> Result<SagaId, Error>
where
    D: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let shape: &dyn Shape = definition;
    if shape.len() == 0 {
        return Err(Error::NoSteps(definition.name().to_owned()));
    }
    let now = Utc::now();
    let data =
        serde_json::to_value(data).map_err(|source| Error::Data { saga_type: definition.name().to_owned(), source })?;
    let mut saga = Saga {
        id: SagaId::new(),
        saga_type: definition.name().to_owned(),
        subject: subject.into(),
        data,
        position: Position { phase: Phase::Forward, step: 0 },
        status: Status::Running,
        step_deadline: Some(now),
        step_started_at: None,
        attempts: 0,
        command_id: None,
        reason: None,
        stuck_reason: None,
        correlation_id: metadata.correlation_id.clone(),
        source: metadata.source.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
        trace: None,
    };
    let span = trace::span("start", shape, &saga);
    async {
        store::insert(work, &saga).await?;
        let started = Entry { kind: "started", detail: json!({ "subject": saga.subject }), ..Entry::default() };
        let first = saga.position;
        send(work, shape, &mut saga, first, 1, metadata.causation_id.clone(), now, vec![started]).await
    }
    .instrument(span)
    .await?;
    crate::metrics::started(shape.name());
    tracing::info!(saga = %saga.id, saga_type = shape.name(), subject = %saga.subject, "saga started");
    Ok(saga.id)
}

/// Applies a participant's `reply` to the open sagas of its subject whose
/// types `definitions` describes, in `work` (the inbox transaction of the
/// reply). Each saga is locked while it is judged; the outcomes come in the
/// order the sagas started, one per saga found (none if the subject has no
/// open saga).
///
/// A reply the saga already took, one answering a command of a step it has
/// left, and one its current step does not expect change nothing (the last
/// two are recorded in its history). A stuck saga takes the reply to its
/// outstanding compensation, so a participant that comes back unsticks it.
///
/// # Errors
/// The database failed, or a saga's data no longer decodes as its type's.
pub async fn on_reply(work: &mut UnitOfWork, definitions: &Definitions, reply: &Reply) -> Result<Vec<Outcome>, Error> {
    let now = Utc::now();
    let sagas = store::lock_open_for_subject(work, reply.subject, &definitions.names()).await?;
    let mut outcomes = Vec::with_capacity(sagas.len());
    for mut saga in sagas {
        let shape = shape_of(definitions, &saga)?;
        let span = trace::span("reply", shape, &saga);
        let effect = reply_to(work, shape, &mut saga, reply, now).instrument(span.clone()).await?;
        trace::effect(&span, &effect);
        outcomes.push(outcome(&saga, effect));
    }
    Ok(outcomes)
}

async fn reply_to(
    work: &mut UnitOfWork,
    shape: &dyn Shape,
    saga: &mut Saga,
    reply: &Reply,
    now: DateTime<Utc>,
) -> Result<Effect, Error> {
    let event_id = reply.event_id.as_uuid();
    let command = reply.causation();
    let (seen, answered) = store::look_up_reply(work, saga.id, event_id, command).await?;
    if seen {
        return Ok(Effect::Ignored(Ignored::Duplicate));
    }
    let ignored = |why: &str, detail: serde_json::Value| Entry {
        kind: "reply_ignored",
        step: Some(saga.position.step),
        event_type: Some(&reply.event_type),
        event_id: Some(event_id),
        detail: json!({ "why": why, "phase": saga.position.phase, "data": reply.data, "answers": detail }),
    };
    if let Some(answered) = answered
        && answered != saga.position
    {
        let entry = ignored("late", json!({ "step": answered.step, "phase": answered.phase, "command_id": command }));
        store::record(work, saga.id, now, vec![entry]).await?;
        return Ok(Effect::Ignored(Ignored::Late));
    }
    let verdict = shape
        .classify(saga.position, reply, &saga.data)
        .map_err(|source| Error::Data { saga_type: saga.saga_type.clone(), source })?
        .ok_or_else(|| corrupt_position(saga))?;
    let event = match verdict {
        Verdict::Ignore => {
            store::record(work, saga.id, now, vec![ignored("unexpected", serde_json::Value::Null)]).await?;
            return Ok(Effect::Ignored(Ignored::Unexpected));
        }
        Verdict::Completed => plan::Event::Completed,
        Verdict::Failed(reason) => plan::Event::Failed(reason),
    };
    let (verdict, reason) = match &event {
        plan::Event::Failed(reason) => ("failed", Some(reason.clone())),
        _ => ("completed", None),
    };
    let entry = Entry {
        kind: "reply_received",
        step: Some(saga.position.step),
        event_type: Some(&reply.event_type),
        event_id: Some(event_id),
        detail: json!({ "phase": saga.position.phase, "verdict": verdict, "reason": reason, "data": reply.data }),
    };
    if let Some(started) = saga.step_started_at {
        let latency = (now - started).to_std().unwrap_or_default();
        crate::metrics::step_latency(shape.name(), shape.step_name(saga.position.step), saga.position.phase, latency);
    }
    if let (Phase::Forward, Some(reason)) = (saga.position.phase, reason) {
        saga.reason = Some(format!("{}: {reason}", shape.step_name(saga.position.step)));
    }
    let next = plan::next(shape, saga.position, &event);
    apply(work, shape, saga, next, Some(reply.event_id.to_string()), now, vec![entry]).await
}

/// Resumes saga `id` where it stands: re-sends its current step's command
/// (or compensation's), with its attempts counted afresh. For a stuck saga
/// whose participant is back, or a running one an operator wants hurried.
///
/// # Errors
/// [`Error::NotFound`], [`Error::InvalidState`] for a completed or failed
/// saga, or the database failed.
pub async fn retry(work: &mut UnitOfWork, definitions: &Definitions, id: SagaId) -> Result<Outcome, Error> {
    let now = Utc::now();
    let mut saga = store::lock(work, id).await?.ok_or(Error::NotFound(id))?;
    if saga.status.is_terminal() {
        return Err(invalid(&saga, "retry", "running, compensating or stuck sagas"));
    }
    let shape = shape_of(definitions, &saga)?;
    let span = trace::operated("retry", shape, &saga);
    async {
        let entry = Entry {
            kind: "retried",
            step: Some(saga.position.step),
            detail: json!({ "phase": saga.position.phase, "status": saga.status, "stuck_reason": saga.stuck_reason }),
            ..Entry::default()
        };
        let position = saga.position;
        send(work, shape, &mut saga, position, 1, None, now, vec![entry]).await
    }
    .instrument(span)
    .await?;
    Ok(outcome(&saga, Effect::Resent { attempt: 1 }))
}

/// Makes running saga `id` compensate now, for `why`: everything it did,
/// including the step awaiting its reply (which may have happened), is
/// undone in reverse order, and the saga then fails with "aborted: `why`".
///
/// # Errors
/// [`Error::NotFound`], [`Error::InvalidState`] unless the saga is running,
/// or the database failed.
pub async fn abort(work: &mut UnitOfWork, definitions: &Definitions, id: SagaId, why: &str) -> Result<Outcome, Error> {
    let now = Utc::now();
    let mut saga = store::lock(work, id).await?.ok_or(Error::NotFound(id))?;
    if saga.status != Status::Running {
        return Err(invalid(&saga, "abort", "running sagas"));
    }
    let shape = shape_of(definitions, &saga)?;
    let span = trace::operated("abort", shape, &saga);
    let effect = async {
        let entry = Entry {
            kind: "aborted",
            step: Some(saga.position.step),
            detail: json!({ "why": why }),
            ..Entry::default()
        };
        saga.reason = Some(format!("aborted: {why}"));
        let next = plan::next(shape, saga.position, &plan::Event::Aborted);
        apply(work, shape, &mut saga, next, None, now, vec![entry]).await
    }
    .instrument(span.clone())
    .await?;
    trace::effect(&span, &effect);
    Ok(outcome(&saga, effect))
}

/// Carries out `next` for `saga`, whose row the caller holds locked;
/// `history` (what led to it) is recorded with the change, before what
/// `next` adds. On an error nothing of it is written: an
/// [`Error::Data`] (a command that cannot be built) comes before any write,
/// so the caller may apply something else with the same `history`.
pub(crate) async fn apply(
    work: &mut UnitOfWork,
    shape: &dyn Shape,
    saga: &mut Saga,
    next: Next,
    causation: Option<String>,
    now: DateTime<Utc>,
    mut history: Vec<Entry<'_>>,
) -> Result<Effect, Error> {
    match next {
        Next::Send(position) => {
            let entering = position.phase == Phase::Compensation && saga.position.phase == Phase::Forward;
            if entering {
                history.push(Entry {
                    kind: "compensating",
                    step: Some(saga.position.step),
                    detail: json!({ "reason": saga.reason }),
                    ..Entry::default()
                });
            }
            send(work, shape, saga, position, 1, causation, now, history).await?;
            if entering {
                crate::metrics::compensating(shape.name());
            }
            Ok(match position.phase {
                Phase::Forward => Effect::Advanced { step: position.step },
                Phase::Compensation => Effect::Compensating { step: position.step, reason: reason_of(saga) },
            })
        }
        Next::Resend => {
            let attempt = saga.attempts.saturating_add(1);
            let position = saga.position;
            send(work, shape, saga, position, attempt, causation, now, history).await?;
            Ok(Effect::Resent { attempt })
        }
        Next::Complete => {
            finish(work, shape, saga, Status::Completed, None, now, history).await?;
            Ok(Effect::Completed)
        }
        Next::Fail => {
            let reason = reason_of(saga);
            finish(work, shape, saga, Status::Failed, None, now, history).await?;
            Ok(Effect::Failed { reason })
        }
        Next::Stuck(why) => {
            let reason = format!(
                "{} of step {}: {why}",
                match saga.position.phase {
                    Phase::Forward => "command",
                    Phase::Compensation => "compensation",
                },
                shape.step_name(saga.position.step)
            );
            finish(work, shape, saga, Status::Stuck, Some(reason.clone()), now, history).await?;
            Ok(Effect::Stuck { reason })
        }
    }
}

/// Ends the wait for a reply: `status` is completed, failed or stuck;
/// `history` is recorded with it.
async fn finish(
    work: &mut UnitOfWork,
    shape: &dyn Shape,
    saga: &mut Saga,
    status: Status,
    stuck_reason: Option<String>,
    now: DateTime<Utc>,
    mut history: Vec<Entry<'_>>,
) -> Result<(), Error> {
    saga.status = status;
    saga.step_deadline = None;
    saga.stuck_reason = stuck_reason;
    saga.updated_at = now;
    let detail = json!({ "reason": saga.reason, "stuck_reason": saga.stuck_reason });
    history.push(Entry { kind: status.as_str(), step: Some(saga.position.step), detail, ..Entry::default() });
    store::update(work, saga, history).await?;
    crate::metrics::finished(shape.name(), status);
    tracing::info!(saga = %saga.id, saga_type = shape.name(), %status, reason = ?saga.reason, stuck = ?saga.stuck_reason, "saga ended its run");
    Ok(())
}

/// Sends the action at `position` as attempt `attempt`, with its deadline
/// from `now`, in a span of its own whose context the saga keeps; `history`
/// is recorded with it.
#[allow(clippy::too_many_arguments)] // The saga, where it goes, and what led there.
async fn send(
    work: &mut UnitOfWork,
    shape: &dyn Shape,
    saga: &mut Saga,
    position: Position,
    attempt: u32,
    causation: Option<String>,
    now: DateTime<Utc>,
    history: Vec<Entry<'_>>,
) -> Result<(), Error> {
    let span = trace::sending(shape, saga, position, attempt);
    saga.trace = TraceContext::of(&span);
    send_in(work, shape, saga, position, attempt, causation, now, history).instrument(span).await
}

/// [`send`], in its span.
#[allow(clippy::too_many_arguments)]
async fn send_in(
    work: &mut UnitOfWork,
    shape: &dyn Shape,
    saga: &mut Saga,
    position: Position,
    attempt: u32,
    causation: Option<String>,
    now: DateTime<Utc>,
    mut history: Vec<Entry<'_>>,
) -> Result<(), Error> {
    let command = shape
        .command(position, &saga.data)
        .map_err(|source| Error::Data { saga_type: saga.saga_type.clone(), source })?
        .ok_or_else(|| corrupt_position(saga))?;
    let timing = shape.timing(position).ok_or_else(|| corrupt_position(saga))?;
    let deadline = chrono::Duration::from_std(timing.deadline).unwrap_or(chrono::Duration::MAX);
    let id = EventId::new();
    if attempt == 1 || saga.position != position {
        saga.step_started_at = Some(now);
    }
    saga.position = position;
    saga.status = position.phase.awaiting();
    saga.attempts = attempt;
    saga.step_deadline = Some(now.checked_add_signed(deadline).unwrap_or(DateTime::<Utc>::MAX_UTC));
    saga.command_id = Some(id.as_uuid());
    saga.stuck_reason = None;
    saga.updated_at = now;
    history.push(Entry {
        kind: match position.phase {
            Phase::Forward => "command_sent",
            Phase::Compensation => "compensation_sent",
        },
        step: Some(position.step),
        event_type: Some(command.event_type()),
        event_id: Some(id.as_uuid()),
        detail: json!({
            "step_name": shape.step_name(position.step),
            "attempt": attempt,
            "stream": command.stream(),
            "deadline": saga.step_deadline,
        }),
    });
    store::update(work, saga, history).await?;
    let metadata =
        Metadata { correlation_id: saga.correlation_id.clone(), causation_id: causation, source: saga.source.clone() };
    let envelope = Envelope { id, subject: saga.subject, version: saga.version, metadata, at: now };
    command.append(work, envelope).await.map_err(|source| Error::Append {
        saga: saga.id,
        command: command.event_type(),
        source,
    })
}

fn shape_of<'d>(definitions: &'d Definitions, saga: &Saga) -> Result<&'d dyn Shape, Error> {
    definitions
        .get(&saga.saga_type)
        .ok_or_else(|| Error::UnknownType { saga: saga.id, saga_type: saga.saga_type.clone() })
}

fn corrupt_position(saga: &Saga) -> Error {
    Error::Corrupt {
        saga: saga.id,
        detail: format!("its definition has no {} at step {}", saga.position.phase.as_str(), saga.position.step),
    }
}

fn invalid(saga: &Saga, action: &'static str, applies_to: &'static str) -> Error {
    Error::InvalidState { saga: saga.id, status: saga.status, action, applies_to }
}

fn reason_of(saga: &Saga) -> String {
    saga.reason.clone().unwrap_or_else(|| "no reason given".to_owned())
}

pub(crate) fn outcome(saga: &Saga, effect: Effect) -> Outcome {
    Outcome { saga_id: saga.id, saga_type: saga.saga_type.clone(), subject: saga.subject, effect }
}
