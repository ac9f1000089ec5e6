//! The envelope every event travels in, and the trait that makes an enum an event family.

use crate::ids::EventId;
use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use uuid::Uuid;

/// A family of events published on one stream, written as one Rust enum.
///
/// The enum is serialized with `#[serde(tag = "type", content = "data")]`, so
/// the variant name is the event's `type` and its fields are the `data`.
/// Implementations live in this crate only: the contract has one home, and
/// its JSON Schema is the family's part of the [`asyncapi`](crate::asyncapi)
/// document.
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Clone + Debug + Send + Sync + 'static {
    /// The stream the family is published on, such as `menu-events`.
    const STREAM: &'static str;
    /// Every `type` name of the family; a consumer acknowledges and counts any other.
    const TYPES: &'static [&'static str];

    /// This event's `type` name as it appears on the stream.
    fn event_type(&self) -> &'static str;
}

/// Who caused an event and why: copied from request to event to the events it causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// The request id (`X-Request-Id`) of the request that started the chain.
    pub correlation_id: String,
    /// The id of the event or request that directly caused this event, if any.
    pub causation_id: Option<String>,
    /// The service that published the event, such as `menu-service`.
    pub source: String,
}

impl Metadata {
    /// Metadata for an event caused directly by a request.
    pub fn new(source: impl Into<String>, correlation_id: impl Into<String>) -> Self {
        let correlation_id = correlation_id.into();
        Self { causation_id: Some(correlation_id.clone()), correlation_id, source: source.into() }
    }

    /// Metadata for an event that `cause` caused: same correlation, causation is the cause's id.
    pub fn caused_by<E>(source: impl Into<String>, cause: &DomainEvent<E>) -> Self {
        Self {
            correlation_id: cause.metadata.correlation_id.clone(),
            causation_id: Some(cause.id.to_string()),
            source: source.into(),
        }
    }
}

/// One event with its envelope: what happened (`payload`) to which aggregate, when, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent<E> {
    /// Unique id; consumers deduplicate by it.
    pub id: EventId,
    /// The aggregate the event happened to.
    pub aggregate_id: Uuid,
    /// The aggregate's version after the change.
    pub version: i64,
    /// When the change happened (UTC, microsecond precision like PostgreSQL).
    pub occurred_at: DateTime<Utc>,
    /// Correlation, causation and source.
    pub metadata: Metadata,
    /// The event itself.
    pub payload: E,
}

impl<E: Event> DomainEvent<E> {
    /// Wraps `payload` in a new envelope with a fresh v7 id, stamped now.
    pub fn new(aggregate_id: impl Into<Uuid>, version: i64, payload: E, metadata: Metadata) -> Self {
        Self {
            id: EventId::new(),
            aggregate_id: aggregate_id.into(),
            version,
            occurred_at: Utc::now().trunc_subsecs(6),
            metadata,
            payload,
        }
    }

    /// The event's `type` name.
    pub fn event_type(&self) -> &'static str {
        self.payload.event_type()
    }
}
