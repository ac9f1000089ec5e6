//! Saga types as data plus code: ordered steps, each a command built from the
//! saga's data, a classifier of the replies, an optional compensation, a
//! deadline and a retry limit.
//!
//! ```ignore
//! Definition::new("CreateOrder")
//!     .step(Step::new("reserve_stock", Action::new(reserve, reserved).deadline(secs(5)).retries(2))
//!         .compensate_with(Action::new(release, released)))
//!     .step(Step::new("create_ticket", Action::new(create_ticket, ticket_created))
//!         .compensate_with(Action::new(cancel_ticket, ticket_cancelled)))
//!     .step(Step::new("confirm_ticket", Action::new(confirm_ticket, ticket_confirmed)))
//! ```

use crate::state::{Phase, Position};
use chrono::{DateTime, SubsecRound, Utc};
use events::outbox::AppendError;
use events::{DomainEvent, Event, EventId, Metadata, UnitOfWork};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A command of any family ([`events::InventoryCommand`],
/// [`events::KitchenCommand`], …), ready to be appended to the outbox on its
/// family's stream. One saga sends commands of several families.
pub struct Command(Box<dyn ErasedCommand>);

impl Command {
    /// Wraps a typed command.
    pub fn new<E: Event>(payload: E) -> Self {
        Self(Box::new(Typed(payload)))
    }

    /// The command's `type` name, such as `ReserveStock`.
    #[must_use]
    pub fn event_type(&self) -> &'static str {
        self.0.event_type()
    }

    /// The family's stream name (before any prefix), such as `inventory-commands`.
    #[must_use]
    pub fn stream(&self) -> &'static str {
        self.0.stream()
    }

    /// Appends the command in `work` as event `id` about `subject`.
    pub(crate) async fn append(&self, work: &mut UnitOfWork, envelope: Envelope) -> Result<(), AppendError> {
        self.0.append(work, envelope).await
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command").field("type", &self.event_type()).field("stream", &self.stream()).finish()
    }
}

/// The envelope fields the engine chooses for a command it sends.
pub(crate) struct Envelope {
    pub id: EventId,
    pub subject: Uuid,
    pub version: i64,
    pub metadata: Metadata,
    pub at: DateTime<Utc>,
}

trait ErasedCommand: Send + Sync {
    fn event_type(&self) -> &'static str;
    fn stream(&self) -> &'static str;
    fn append<'a>(&'a self, work: &'a mut UnitOfWork, envelope: Envelope) -> BoxFuture<'a, Result<(), AppendError>>;
}

struct Typed<E>(E);

impl<E: Event> ErasedCommand for Typed<E> {
    fn event_type(&self) -> &'static str {
        self.0.event_type()
    }

    fn stream(&self) -> &'static str {
        E::STREAM
    }

    fn append<'a>(&'a self, work: &'a mut UnitOfWork, envelope: Envelope) -> BoxFuture<'a, Result<(), AppendError>> {
        let event = DomainEvent {
            id: envelope.id,
            aggregate_id: envelope.subject,
            version: envelope.version,
            occurred_at: envelope.at.trunc_subsecs(6),
            metadata: envelope.metadata,
            payload: self.0.clone(),
        };
        Box::pin(async move { work.append(&[event]).await })
    }
}

/// A participant's event as the engine sees it: its type, its JSON payload,
/// the saga subject it is about and its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The event's id; a reply applied once is recognised by it.
    pub event_id: EventId,
    /// The event's `type`, such as `StockReserved`.
    pub event_type: String,
    /// The subject of the saga it answers (the order id).
    pub subject: Uuid,
    /// The payload (`data`) as JSON.
    pub data: serde_json::Value,
    /// Its metadata; `causation_id` names the command it answers.
    pub metadata: Metadata,
}

impl Reply {
    /// The reply `event` about `subject`.
    ///
    /// # Errors
    /// The payload does not serialize to JSON (the contract's enums always do).
    pub fn new<E: Event>(event: &DomainEvent<E>, subject: impl Into<Uuid>) -> Result<Self, crate::Error> {
        let event_type = event.event_type();
        let mut tagged = serde_json::to_value(&event.payload)
            .map_err(|source| crate::Error::Reply { event_type: event_type.to_owned(), source })?;
        let data = tagged.get_mut("data").map(serde_json::Value::take).unwrap_or(serde_json::Value::Null);
        Ok(Self {
            event_id: event.id,
            event_type: event_type.to_owned(),
            subject: subject.into(),
            data,
            metadata: event.metadata.clone(),
        })
    }

    /// The reply `event` about the order its payload names in `order_id`, as
    /// every participant's answer does; `None` if it names none.
    ///
    /// # Errors
    /// As [`Reply::new`].
    pub fn about_order<E: Event>(event: &DomainEvent<E>) -> Result<Option<Self>, crate::Error> {
        let reply = Self::new(event, Uuid::nil())?;
        let order = reply.data.get("order_id").and_then(serde_json::Value::as_str).and_then(|id| id.parse().ok());
        Ok(order.map(|subject| Self { subject, ..reply }))
    }

    /// The reply as a typed event of family `E`, if it is one.
    #[must_use]
    pub fn payload<E: Event>(&self) -> Option<E> {
        serde_json::from_value(serde_json::json!({ "type": self.event_type, "data": self.data })).ok()
    }

    /// The command this reply answers, if its metadata names one.
    pub(crate) fn causation(&self) -> Option<Uuid> {
        self.metadata.causation_id.as_deref().and_then(|id| id.parse().ok())
    }
}

/// What a reply means for the step (or compensation) awaiting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The participant did it: the saga moves on.
    Completed,
    /// The participant refused, for this reason: the saga compensates (or,
    /// for a compensation, becomes stuck). Only for a definite "no"; never for
    /// an unknown outcome.
    Failed(String),
    /// Not an answer to this step; recorded and otherwise ignored.
    Ignore,
}

type BuildCommand<D> = Arc<dyn Fn(&D) -> Command + Send + Sync>;
type Classify<D> = Arc<dyn Fn(&Reply, &D) -> Verdict + Send + Sync>;

/// One command the saga sends and how it learns the outcome: a step's
/// forward action or its compensation.
pub struct Action<D> {
    command: BuildCommand<D>,
    classify: Classify<D>,
    deadline: Duration,
    retries: u32,
}

impl<D> Clone for Action<D> {
    fn clone(&self) -> Self {
        Self { command: self.command.clone(), classify: self.classify.clone(), ..*self }
    }
}

impl<D> Action<D> {
    /// The deadline when none is given.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
    /// The re-sends when none are given.
    pub const DEFAULT_RETRIES: u32 = 3;
    /// The shortest deadline: a sweep must never find a command it just re-sent overdue.
    pub const MIN_DEADLINE: Duration = Duration::from_millis(1);

    /// Sends the command `command` builds from the saga's data (again on every
    /// re-send: participants are idempotent per subject) and judges replies
    /// with `classify`.
    pub fn new(
        command: impl Fn(&D) -> Command + Send + Sync + 'static,
        classify: impl Fn(&Reply, &D) -> Verdict + Send + Sync + 'static,
    ) -> Self {
        Self {
            command: Arc::new(command),
            classify: Arc::new(classify),
            deadline: Self::DEFAULT_DEADLINE,
            retries: Self::DEFAULT_RETRIES,
        }
    }

    /// How long to wait for a reply before re-sending (at least [`Action::MIN_DEADLINE`]).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline.max(Self::MIN_DEADLINE);
        self
    }

    /// How many times to re-send after a deadline passes before giving up
    /// (compensating a step, or becoming stuck for a compensation).
    #[must_use]
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// One step of a saga: its action and the compensation that undoes it.
pub struct Step<D> {
    name: String,
    action: Action<D>,
    compensation: Option<Action<D>>,
}

impl<D> Clone for Step<D> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), action: self.action.clone(), compensation: self.compensation.clone() }
    }
}

impl<D> Step<D> {
    /// A step named `name` (shown in the history) that runs `action`.
    pub fn new(name: impl Into<String>, action: Action<D>) -> Self {
        Self { name: name.into(), action, compensation: None }
    }

    /// Undoes the step with `compensation` when the saga unwinds. It is sent
    /// also when the step's own outcome is unknown (its re-sends ran out), so
    /// it must tolerate "never happened".
    #[must_use]
    pub fn compensate_with(mut self, compensation: Action<D>) -> Self {
        self.compensation = Some(compensation);
        self
    }
}

/// A saga type: its name and its ordered steps, over saga data of type `D`
/// (stored as JSON).
pub struct Definition<D> {
    name: String,
    steps: Vec<Step<D>>,
}

impl<D> Clone for Definition<D> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), steps: self.steps.clone() }
    }
}

impl<D> Definition<D> {
    /// A saga type named `name`, stored in `sagas.saga_type`, without steps yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), steps: Vec::new() }
    }

    /// Appends `step`.
    #[must_use]
    pub fn step(mut self, step: Step<D>) -> Self {
        self.steps.push(step);
        self
    }

    /// The saga type's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The saga types a service runs, by name: what replies, sweeps and operator
/// actions look sagas' definitions up in.
#[derive(Clone, Default)]
pub struct Definitions {
    types: HashMap<String, Arc<dyn Shape>>,
}

impl fmt::Debug for Definitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definitions").field("types", &self.names()).finish()
    }
}

impl Definitions {
    /// No saga types.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `definition` (replacing one of the same name).
    #[must_use]
    pub fn with<D>(mut self, definition: Definition<D>) -> Self
    where
        D: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.types.insert(definition.name.clone(), Arc::new(definition));
        self
    }

    /// The names of the saga types, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.types.keys().cloned().collect();
        names.sort();
        names
    }

    /// The saga type named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&dyn Shape> {
        self.types.get(name).map(AsRef::as_ref)
    }
}

/// A step's action, without its code: what the engine needs to schedule it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub deadline: Duration,
    pub retries: u32,
}

/// A definition with its data type erased, so that sagas of several types
/// are handled by one registry.
pub(crate) trait Shape: Send + Sync {
    fn name(&self) -> &str;
    fn len(&self) -> usize;
    fn step_name(&self, step: usize) -> &str;
    fn has_compensation(&self, step: usize) -> bool;
    /// The action at `position`; `None` if there is none (a corrupt position).
    fn timing(&self, position: Position) -> Option<Timing>;
    fn command(&self, position: Position, data: &serde_json::Value) -> Result<Option<Command>, serde_json::Error>;
    fn classify(
        &self,
        position: Position,
        reply: &Reply,
        data: &serde_json::Value,
    ) -> Result<Option<Verdict>, serde_json::Error>;
}

impl<D> Definition<D> {
    fn action(&self, position: Position) -> Option<&Action<D>> {
        let step = self.steps.get(position.step)?;
        match position.phase {
            Phase::Forward => Some(&step.action),
            Phase::Compensation => step.compensation.as_ref(),
        }
    }
}

impl<D> Shape for Definition<D>
where
    D: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.steps.len()
    }

    fn step_name(&self, step: usize) -> &str {
        self.steps.get(step).map_or("?", |step| step.name.as_str())
    }

    fn has_compensation(&self, step: usize) -> bool {
        self.steps.get(step).is_some_and(|step| step.compensation.is_some())
    }

    fn timing(&self, position: Position) -> Option<Timing> {
        self.action(position).map(|action| Timing { deadline: action.deadline, retries: action.retries })
    }

    fn command(&self, position: Position, data: &serde_json::Value) -> Result<Option<Command>, serde_json::Error> {
        let Some(action) = self.action(position) else { return Ok(None) };
        let data: D = serde_json::from_value(data.clone())?;
        Ok(Some((action.command)(&data)))
    }

    fn classify(
        &self,
        position: Position,
        reply: &Reply,
        data: &serde_json::Value,
    ) -> Result<Option<Verdict>, serde_json::Error> {
        let Some(action) = self.action(position) else { return Ok(None) };
        let data: D = serde_json::from_value(data.clone())?;
        Ok(Some((action.classify)(reply, &data)))
    }
}
