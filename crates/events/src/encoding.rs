//! The wire form of an event: seven flat fields that `redis-cli XRANGE` shows as they are.
//!
//! ```text
//! id            0193…-7…   (UUID v7)
//! type          MenuActivated
//! aggregate_id  4f0c…
//! version       2
//! occurred_at   2026-11-24T14:03:11.123456Z
//! data          {"name": "Lunch", "items": […]}
//! metadata      {"source": "menu-service", "correlation_id": "…", "causation_id": "…"}
//! ```

use crate::envelope::{DomainEvent, Event, Metadata};
use crate::ids::EventId;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// The names of an entry's fields, in the order they are written.
pub const FIELDS: [&str; 7] = ["id", "type", "aggregate_id", "version", "occurred_at", "data", "metadata"];

/// An event in wire form, independent of its Rust type: what the outbox stores,
/// what the relay publishes, and what a consumer reads before it knows the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The event id.
    pub id: EventId,
    /// The `type` name.
    pub event_type: String,
    /// The aggregate the event happened to.
    pub aggregate_id: Uuid,
    /// The aggregate's version after the change.
    pub version: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The payload as a JSON object.
    pub data: String,
    /// The metadata as a JSON object.
    pub metadata: String,
}

/// Why an entry could not be turned into an event.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The entry lacks one of the seven fields.
    #[error("the entry has no `{0}` field")]
    MissingField(&'static str),
    /// A field is present but does not parse.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The `type` is not one this consumer knows; a newer producer may have sent it.
    #[error("unknown event type `{0}`")]
    UnknownType(String),
}

impl EncodedEvent {
    /// Encodes a typed event.
    ///
    /// # Errors
    /// Fails only if the payload cannot be serialized to JSON, which the event
    /// enums of this crate never do.
    pub fn encode<E: Event>(event: &DomainEvent<E>) -> Result<Self, serde_json::Error> {
        let mut tagged = serde_json::to_value(&event.payload)?;
        let data = tagged
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        Ok(Self {
            id: event.id,
            event_type: event.event_type().to_owned(),
            aggregate_id: event.aggregate_id,
            version: event.version,
            occurred_at: event.occurred_at,
            data: serde_json::to_string(&data)?,
            metadata: serde_json::to_string(&event.metadata)?,
        })
    }

    /// Decodes into the event family `E`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownType`] if `E` has no such `type`, and
    /// [`DecodeError::InvalidField`] if `data` or `metadata` do not match it.
    pub fn decode<E: Event>(&self) -> Result<DomainEvent<E>, DecodeError> {
        if !E::TYPES.contains(&self.event_type.as_str()) {
            return Err(DecodeError::UnknownType(self.event_type.clone()));
        }
        let data: serde_json::Value = serde_json::from_str(&self.data).map_err(invalid("data"))?;
        let tagged = serde_json::json!({ "type": self.event_type, "data": data });
        let payload = serde_json::from_value(tagged).map_err(invalid("data"))?;
        let metadata: Metadata = serde_json::from_str(&self.metadata).map_err(invalid("metadata"))?;
        Ok(DomainEvent {
            id: self.id,
            aggregate_id: self.aggregate_id,
            version: self.version,
            occurred_at: self.occurred_at,
            metadata,
            payload,
        })
    }

    /// The entry's fields in [`FIELDS`] order, ready for `XADD`. This and
    /// [`Self::from_fields`] are the only places that know the wire form.
    pub fn into_fields(self) -> [(&'static str, String); 7] {
        [
            ("id", self.id.to_string()),
            ("type", self.event_type),
            ("aggregate_id", self.aggregate_id.to_string()),
            ("version", self.version.to_string()),
            ("occurred_at", self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            ("data", self.data),
            ("metadata", self.metadata),
        ]
    }

    /// [`Self::into_fields`] of a copy.
    pub fn to_fields(&self) -> [(&'static str, String); 7] {
        self.clone().into_fields()
    }

    /// Reads an entry's fields as `XREADGROUP` returns them.
    ///
    /// # Errors
    /// A missing field, or one that is not of its kind (UUID, integer, RFC 3339 time, UTF-8).
    pub fn from_fields(fields: &HashMap<String, Value>) -> Result<Self, DecodeError> {
        let text = |name: &'static str| -> Result<String, DecodeError> {
            let value = fields.get(name).ok_or(DecodeError::MissingField(name))?;
            redis::from_redis_value_ref::<String>(value).map_err(invalid(name))
        };
        Ok(Self {
            id: text("id")?.parse().map_err(invalid("id"))?,
            event_type: text("type")?,
            aggregate_id: text("aggregate_id")?.parse().map_err(invalid("aggregate_id"))?,
            version: text("version")?.parse().map_err(invalid("version"))?,
            occurred_at: DateTime::parse_from_rfc3339(&text("occurred_at")?)
                .map_err(invalid("occurred_at"))?
                .with_timezone(&Utc),
            data: text("data")?,
            metadata: text("metadata")?,
        })
    }
}

fn invalid<E: std::fmt::Display>(field: &'static str) -> impl Fn(E) -> DecodeError {
    move |error| DecodeError::InvalidField { field, reason: error.to_string() }
}

/// Where a deployment's streams live. The prefix (empty in production, unique
/// per test) is put in front of every stream name so that tests sharing one
/// Redis never see each other's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streams {
    prefix: String,
}

impl Streams {
    /// Streams whose names start with `prefix`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The stream of the event family `E`, such as `menu-events`.
    pub fn of<E: Event>(&self) -> String {
        self.named(E::STREAM)
    }

    /// The stream called `name`, such as `menu-events`.
    pub fn named(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Every event family's stream.
    pub fn all(&self) -> Vec<String> {
        vec![
            self.of::<crate::MenuEvent>(),
            self.of::<crate::ReservationEvent>(),
            self.of::<crate::InventoryEvent>(),
            self.of::<crate::InventoryCommand>(),
            self.of::<crate::KitchenEvent>(),
            self.of::<crate::KitchenCommand>(),
            self.of::<crate::OrderEvent>(),
        ]
    }
}

/// The dead-letter stream of `stream`: `<stream>.dlq`.
pub fn dead_letter_stream(stream: &str) -> String {
    format!("{stream}.dlq")
}

/// What the tests of every stream's types check them with.
#[cfg(test)]
pub(crate) mod wire {
    use super::EncodedEvent;
    use crate::envelope::{DomainEvent, Event, Metadata};
    use redis::Value;
    use serde::Serialize;
    use std::collections::{HashMap, HashSet};

    /// Encodes to stream fields, reads them back as Redis returns them, decodes.
    pub(crate) fn round_trip<E: Event + PartialEq>(payload: E) {
        let event = DomainEvent::new(uuid::Uuid::now_v7(), 7, payload, Metadata::new("test", "req-1"));
        let fields: HashMap<String, Value> = EncodedEvent::encode(&event)
            .unwrap_or_else(|e| panic!("encode: {e}"))
            .to_fields()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::BulkString(value.into_bytes())))
            .collect();
        let decoded = EncodedEvent::from_fields(&fields).and_then(|encoded| encoded.decode::<E>());
        assert_eq!(decoded, Ok(event));
    }

    /// Fails unless `samples` has a value of every type of `E`.
    pub(crate) fn covers_every_type<E: Event>(samples: &[E]) {
        let seen: HashSet<&str> = samples.iter().map(Event::event_type).collect();
        assert_eq!(seen, E::TYPES.iter().copied().collect(), "samples must cover every variant of {}", E::STREAM);
    }

    /// `value` as JSON.
    pub(crate) fn json<T: Serialize>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).unwrap_or_else(|e| panic!("serialize: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::wire::{covers_every_type, round_trip};
    use super::*;
    use crate::ids::MenuItemId;
    use crate::menu::{MenuEvent, MenuItem};
    use crate::reservation::{PreOrderLine, ReservationEvent};
    use chrono::SubsecRound;

    fn item() -> MenuItem {
        MenuItem {
            id: MenuItemId::new(),
            name: "Tomato soup".to_owned(),
            description: Some("With basil".to_owned()),
            category: "starter".to_owned(),
            price_cents: 650,
            currency: "EUR".to_owned(),
            available: true,
            switched_on: true,
            in_stock: true,
        }
    }

    fn menu_events() -> Vec<MenuEvent> {
        vec![
            MenuEvent::MenuCreated { name: "Lunch".to_owned(), description: None, items: vec![item()] },
            MenuEvent::MenuActivated { name: "Lunch".to_owned(), items: vec![item(), item()] },
            MenuEvent::MenuDeactivated {},
            MenuEvent::MenuItemAdded { item: item() },
            MenuEvent::MenuItemUpdated { item: item() },
            MenuEvent::ItemAvailabilityChanged {
                item_id: MenuItemId::new(),
                available: false,
                cause: crate::menu::AvailabilityCause::Staff,
            },
        ]
    }

    fn reservation_events() -> Vec<ReservationEvent> {
        vec![
            ReservationEvent::ReservationCreated {
                guest_name: "Ada".to_owned(),
                guest_email: Some("ada@example.com".to_owned()),
                guest_phone: None,
                party_size: 4,
                starts_at: Utc::now().trunc_subsecs(6),
                duration_minutes: 90,
                pre_order: vec![PreOrderLine { menu_item_id: MenuItemId::new(), quantity: 2 }],
            },
            ReservationEvent::ReservationConfirmed {},
            ReservationEvent::ReservationCancelled { reason: "Guest called".to_owned() },
            ReservationEvent::ReservationSeated {
                guest_name: "Ada".to_owned(),
                party_size: 4,
                pre_order: vec![PreOrderLine { menu_item_id: MenuItemId::new(), quantity: 2 }],
            },
            ReservationEvent::ReservationCompleted {},
            ReservationEvent::ReservationNoShow {},
            ReservationEvent::ReservationExpired {},
        ]
    }

    #[test]
    fn every_menu_event_survives_the_wire() {
        covers_every_type(&menu_events());
        menu_events().into_iter().for_each(round_trip);
    }

    #[test]
    fn every_reservation_event_survives_the_wire() {
        covers_every_type(&reservation_events());
        reservation_events().into_iter().for_each(round_trip);
    }

    #[test]
    fn data_holds_only_the_payload_and_type_names_the_variant() {
        let event = DomainEvent::new(
            uuid::Uuid::now_v7(),
            3,
            MenuEvent::ItemAvailabilityChanged {
                item_id: MenuItemId::new(),
                available: false,
                cause: crate::menu::AvailabilityCause::Staff,
            },
            Metadata::new("menu-service", "req-9"),
        );
        let encoded = EncodedEvent::encode(&event).unwrap_or_else(|e| panic!("encode: {e}"));
        assert_eq!(encoded.event_type, "ItemAvailabilityChanged");
        let data: serde_json::Value = serde_json::from_str(&encoded.data).unwrap_or_default();
        assert_eq!(data["available"], false);
        assert!(data.get("type").is_none());
        let metadata: serde_json::Value = serde_json::from_str(&encoded.metadata).unwrap_or_default();
        assert_eq!(metadata["correlation_id"], "req-9");
        assert_eq!(metadata["source"], "menu-service");
    }

    #[test]
    fn an_unknown_type_and_a_bad_field_are_told_apart() {
        let event = DomainEvent::new(uuid::Uuid::now_v7(), 1, MenuEvent::MenuDeactivated {}, Metadata::new("t", "r"));
        let mut encoded = EncodedEvent::encode(&event).unwrap_or_else(|e| panic!("encode: {e}"));
        encoded.event_type = "MenuTeleported".to_owned();
        assert_eq!(encoded.decode::<MenuEvent>(), Err(DecodeError::UnknownType("MenuTeleported".to_owned())));

        let mut fields: HashMap<String, Value> = EncodedEvent::encode(&event)
            .unwrap_or_else(|e| panic!("encode: {e}"))
            .to_fields()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::BulkString(value.into_bytes())))
            .collect();
        fields.insert("version".to_owned(), Value::BulkString(b"seven".to_vec()));
        assert!(matches!(EncodedEvent::from_fields(&fields), Err(DecodeError::InvalidField { field: "version", .. })));
        fields.insert("version".to_owned(), Value::BulkString(b"1".to_vec()));
        fields.remove("occurred_at");
        assert!(matches!(EncodedEvent::from_fields(&fields), Err(DecodeError::MissingField("occurred_at"))));
    }
}
