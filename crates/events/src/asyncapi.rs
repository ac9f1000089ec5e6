//! The AsyncAPI 3.0 document of every stream: what is published on it, in
//! what envelope, by whom, and which consumer groups read it.
//!
//! The schemas are generated from the Rust types of this crate (JSON Schema
//! draft-07, as AsyncAPI 3.0 expects, by `schemars`): the doc comments of
//! the event enums and their fields become the descriptions, so the
//! document says what the code says. [`document`] builds it; the committed
//! copy, `crates/events/asyncapi.json` ([`COMMITTED`]), is what the gateway
//! serves and what the test suite validates with the AsyncAPI CLI. A unit
//! test fails when the two differ: after changing an event type, regenerate
//! the copy with
//!
//! ```text
//! UPDATE_ASYNCAPI=1 cargo test -p events --lib asyncapi
//! ```
//!
//! How the document maps a Redis stream entry: an entry is a flat map of
//! text fields ([`FIELDS`]). Its `data` field is the message's **payload**
//! (JSON); every other field is a message **header** (the envelope:
//! `type`, `aggregate_id`, `version`, `metadata` as JSON, …), described once
//! as the `Envelope` schema. Every stream is a channel whose address is the
//! stream's name (behind a deployment's prefix, empty in production), with
//! one send operation for its publisher and one receive operation per
//! consumer group; each stream's dead-letter stream is a channel too.

use crate::dead_letter;
use crate::encoding::{FIELDS, dead_letter_stream};
use crate::envelope::{Event, Metadata};
use crate::{InventoryCommand, InventoryEvent, KitchenCommand, KitchenEvent, MenuEvent, OrderEvent, ReservationEvent};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// The committed document (`crates/events/asyncapi.json`), as [`document`]
/// made it when it was last regenerated; a test keeps the two equal.
pub const COMMITTED: &str = include_str!("../asyncapi.json");

/// Where the definitions of shared types go, and so what their `$ref`s name.
const SCHEMAS: &str = "/components/schemas";

/// Why the document could not be built: a family's schema is not the shape
/// an adjacently tagged enum gives (`{"type": …, "data": {…}}`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    /// The schema of a family has no variant of this `type`.
    #[error("the schema of {stream} describes no `{event_type}`")]
    MissingType {
        /// The family's stream.
        stream: &'static str,
        /// The type the family's `TYPES` names.
        event_type: &'static str,
    },
    /// Two messages, shared types or operations have one name.
    #[error("`{0}` names two messages or schemas")]
    DuplicateName(String),
}

/// Whether a stream carries what happened or what to do.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Events,
    Commands,
}

/// One stream as the document tells it.
struct Stream {
    /// The stream's name: its family's `STREAM`.
    name: &'static str,
    /// Its family's `TYPES`.
    types: &'static [&'static str],
    /// Its family's schema, generated into the shared generator.
    schema: fn(&mut SchemaGenerator) -> Value,
    kind: Kind,
    /// The service that publishes on it.
    publisher: &'static str,
    /// The consumer groups that read it, each named after its service.
    consumers: &'static [&'static str],
    /// What the stream is for and what its aggregate ids name.
    description: &'static str,
}

impl Stream {
    fn of<E: Event>(
        kind: Kind,
        publisher: &'static str,
        consumers: &'static [&'static str],
        description: &'static str,
    ) -> Self {
        Self {
            name: E::STREAM,
            types: E::TYPES,
            schema: |generator| generator.root_schema_for::<E>().to_value(),
            kind,
            publisher,
            consumers,
            description,
        }
    }
}

/// Every stream of the platform, with its publisher and consumer groups
/// (the services' `consume::<…>` calls; a gateway test compares them with
/// the groups a running platform creates).
fn streams() -> [Stream; 7] {
    [
        Stream::of::<MenuEvent>(
            Kind::Events,
            "menu-service",
            &["inventory-service", "kitchen-service", "order-service", "reservation-service"],
            "Everything that happens to a menu and its items. The aggregate id is the menu's id.",
        ),
        Stream::of::<ReservationEvent>(
            Kind::Events,
            "reservation-service",
            &["order-service"],
            "Everything that happens to a table reservation. The aggregate id is the reservation's id.",
        ),
        Stream::of::<InventoryEvent>(
            Kind::Events,
            "inventory-service",
            &["menu-service", "order-service"],
            "Everything that happens to the restaurant's stock, and the inventory's answers to the order saga's \
             commands. The aggregate id is the ingredient's for ingredient events, the menu item's for recipe and \
             sold-out events, and the order's for the answers to a command (each event says which).",
        ),
        Stream::of::<InventoryCommand>(
            Kind::Commands,
            "order-service",
            &["inventory-service"],
            "What the order saga asks of the inventory service. The aggregate id is the order's; \
             `metadata.causation_id` is the event or command that caused the command. Each is answered by an event \
             on `inventory-events` that carries the same `order_id`.",
        ),
        Stream::of::<KitchenEvent>(
            Kind::Events,
            "kitchen-service",
            &["order-service"],
            "Everything that happens to a kitchen ticket, one per order. The aggregate id is the ticket's id; every \
             event carries the `order_id` of the ticket's order.",
        ),
        Stream::of::<KitchenCommand>(
            Kind::Commands,
            "order-service",
            &["kitchen-service"],
            "What the order saga asks of the kitchen. The aggregate id is the order's; `metadata.causation_id` is \
             the event or command that caused the command. Each is answered by an event on `kitchen-events` that \
             carries the same `order_id`.",
        ),
        Stream::of::<OrderEvent>(
            Kind::Events,
            "order-service",
            &[],
            "Everything that happens to an order. The aggregate id is the order's id.",
        ),
    ]
}

const DESCRIPTION: &str = "\
The restaurant platform's services tell each other what happened through domain events on Redis Streams, \
and the order saga tells the inventory and the kitchen what to do through commands on streams of the same form.

Each change commits with its event in one PostgreSQL transaction (a transactional outbox); a relay appends the \
event to its stream with `XADD`. Every consuming service reads a stream as one consumer group named after the \
service (`XREADGROUP`), acknowledges an entry once it is handled, and records it in its inbox, so a redelivered \
entry changes nothing: delivery is at least once, handling effectively once. An entry a group keeps refusing goes \
to the stream's dead-letter stream, `<stream>.dlq`, with the error.

An entry's fields are flat text, readable with `redis-cli XRANGE menu-events - +`: `data` is the message's \
payload as JSON, and every other field is a header described by the `Envelope` schema (`version` in decimal, \
`metadata` as JSON). A consumer that meets a `type` it does not know acknowledges and counts it; a newer \
producer may have sent it.";

/// The AsyncAPI 3.0 document of every stream.
///
/// # Errors
/// A family's schema does not describe one of its `TYPES`, or two messages
/// or shared types have one name: a change to the types this crate's tests
/// catch.
pub fn document() -> Result<Value, DocumentError> {
    let mut generator =
        SchemaSettings::draft07().with(|settings| settings.definitions_path = SCHEMAS.into()).into_generator();
    let metadata = generator.subschema_for::<Metadata>().to_value();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schemas = Map::new();
    for stream in streams() {
        let mut family = (stream.schema)(&mut generator);
        take_definitions(&mut family, &mut schemas)?;
        let mut channel_messages = Map::new();
        for &event_type in stream.types {
            let variant =
                variant(&family, event_type).ok_or(DocumentError::MissingType { stream: stream.name, event_type })?;
            if messages.insert(event_type.to_owned(), message(&stream, event_type, variant)).is_some() {
                return Err(DocumentError::DuplicateName(event_type.to_owned()));
            }
            channel_messages.insert(event_type.to_owned(), reference(&format!("#/components/messages/{event_type}")));
        }
        channels.insert(stream.name.to_owned(), channel(&stream, channel_messages));
        for (id, operation) in stream_operations(&stream) {
            if operations.insert(id.clone(), operation).is_some() {
                return Err(DocumentError::DuplicateName(id));
            }
        }
        let dead_letters = dead_letter_stream(stream.name);
        channels.insert(dead_letters.clone(), dead_letter_channel(&stream, &dead_letters));
        if !stream.consumers.is_empty() {
            operations.insert(format!("dead-letter-{}", stream.name), dead_letter_operation(&stream, &dead_letters));
        }
    }
    messages.insert("DeadLetter".to_owned(), dead_letter_message());
    for (name, schema) in [("Envelope", envelope(metadata)), ("DeadLetterEnvelope", dead_letter_envelope())] {
        if schemas.insert(name.to_owned(), schema).is_some() {
            return Err(DocumentError::DuplicateName(name.to_owned()));
        }
    }
    Ok(json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Restaurant platform events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": env!("CARGO_PKG_LICENSE") },
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "localhost:6379",
                "protocol": "redis",
                "description": "The platform's Redis: REDIS_HOST and REDIS_PORT, database REDIS_DB. Run it with AOF \
                                (appendonly yes) for a stream to survive a restart.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "correlationIds": {
                "request": {
                    "description": "The X-Request-Id of the request that started the chain, copied from event to \
                                    the events and commands it causes.",
                    "location": "$message.header#/metadata/correlation_id",
                },
            },
        },
    }))
}

/// Moves the definitions `schemars` put under [`SCHEMAS`] in a family's
/// root schema to `schemas`. A type two families share is defined once; two
/// different types of one name are an error.
fn take_definitions(family: &mut Value, schemas: &mut Map<String, Value>) -> Result<(), DocumentError> {
    let definitions =
        family.pointer_mut(SCHEMAS).and_then(Value::as_object_mut).map(std::mem::take).unwrap_or_default();
    for (name, schema) in definitions {
        match schemas.get(&name) {
            Some(known) if *known != schema => return Err(DocumentError::DuplicateName(name)),
            Some(_) => {}
            None => {
                schemas.insert(name, schema);
            }
        }
    }
    Ok(())
}

/// The subschema of the variant whose `type` is `event_type`: an object
/// with a `type` constant and its `data`.
fn variant<'a>(family: &'a Value, event_type: &str) -> Option<&'a Value> {
    let variants = family.get("oneOf").or_else(|| family.get("anyOf"))?.as_array()?;
    variants.iter().find(|variant| {
        let tag = variant.pointer("/properties/type");
        let constant = tag.and_then(|tag| tag.get("const").or_else(|| tag.pointer("/enum/0")));
        constant.and_then(Value::as_str) == Some(event_type)
    })
}

fn reference(to: &str) -> Value {
    json!({ "$ref": to })
}

/// The first sentence of `text`, for a summary.
fn first_sentence(text: &str) -> &str {
    text.find(". ").map_or(text, |end| &text[..=end]).trim_end()
}

fn message(stream: &Stream, event_type: &str, variant: &Value) -> Value {
    let description = variant.get("description").and_then(Value::as_str).unwrap_or_default();
    let payload = variant.pointer("/properties/data").cloned().unwrap_or_else(|| json!({ "type": "object" }));
    let kind = match stream.kind {
        Kind::Events => "event",
        Kind::Commands => "command",
    };
    json!({
        "name": event_type,
        "title": event_type,
        "summary": first_sentence(description),
        "description": format!("{description}\n\nA{} {kind} on `{}`: the entry's `type` is `{event_type}` and its \
                                `data` is this payload.", if kind == "event" { "n" } else { "" }, stream.name),
        "contentType": "application/json",
        "correlationId": reference("#/components/correlationIds/request"),
        "headers": {
            "type": "object",
            "allOf": [
                reference("#/components/schemas/Envelope"),
                { "type": "object", "properties": { "type": { "const": event_type } } },
            ],
        },
        "payload": payload,
    })
}

fn channel(stream: &Stream, messages: Map<String, Value>) -> Value {
    let consumers = if stream.consumers.is_empty() {
        "No service consumes it yet.".to_owned()
    } else {
        format!(
            "Consumer groups: {}.",
            stream.consumers.iter().map(|group| format!("`{group}`")).collect::<Vec<_>>().join(", ")
        )
    };
    json!({
        "address": stream.name,
        "title": stream.name,
        "summary": first_sentence(stream.description),
        "description": format!("{} Published by `{}`. {consumers} Dead letters go to `{}`.",
                               stream.description, stream.publisher, dead_letter_stream(stream.name)),
        "messages": messages,
        "x-consumer-groups": stream.consumers,
    })
}

fn channel_messages(stream: &Stream) -> Vec<Value> {
    stream
        .types
        .iter()
        .map(|event_type| reference(&format!("#/channels/{}/messages/{event_type}", stream.name)))
        .collect()
}

/// The publisher's send operation and one receive operation per consumer group.
fn stream_operations(stream: &Stream) -> Map<String, Value> {
    let (what, verb) = match stream.kind {
        Kind::Events => ("what happened", "publishes"),
        Kind::Commands => ("what it asks", "sends"),
    };
    let mut operations = Map::new();
    operations.insert(
        format!("{}-{verb}-{}", stream.publisher, stream.name),
        json!({
            "action": "send",
            "channel": reference(&format!("#/channels/{}", stream.name)),
            "title": format!("{} {verb} on {}", stream.publisher, stream.name),
            "summary": format!("{} appends {what} to {} through its outbox.", stream.publisher, stream.name),
            "messages": channel_messages(stream),
        }),
    );
    for group in stream.consumers {
        operations.insert(
            format!("{group}-consumes-{}", stream.name),
            json!({
                "action": "receive",
                "channel": reference(&format!("#/channels/{}", stream.name)),
                "title": format!("{group} consumes {}", stream.name),
                "summary": format!("{group} reads {} as consumer group `{group}`, one consumer per instance, \
                                    and acknowledges each entry once handled.", stream.name),
                "messages": channel_messages(stream),
                "x-consumer-group": group,
            }),
        );
    }
    operations
}

fn dead_letter_channel(stream: &Stream, dead_letters: &str) -> Value {
    json!({
        "address": dead_letters,
        "title": dead_letters,
        "summary": format!("Entries of {} that a consumer group gave up on, with why.", stream.name),
        "description": format!("An entry of `{}` goes here when it cannot be decoded, or when its handler refused \
                                it on every delivery up to the cap; an outage never sends one here. The dead letter \
                                keeps every field of the entry and adds `dlq_*` fields. An operator re-drives it \
                                (`platform-ctl`), which appends it to `{}` again for that group alone.",
                               stream.name, stream.name),
        "messages": { "DeadLetter": reference("#/components/messages/DeadLetter") },
    })
}

fn dead_letter_operation(stream: &Stream, dead_letters: &str) -> Value {
    json!({
        "action": "send",
        "channel": reference(&format!("#/channels/{dead_letters}")),
        "title": format!("Consumer groups of {} dead-letter entries", stream.name),
        "summary": format!("A consumer group of {} moves an entry it gives up on to {dead_letters} and \
                            acknowledges it, atomically.", stream.name),
        "messages": [reference(&format!("#/channels/{dead_letters}/messages/DeadLetter"))],
    })
}

fn dead_letter_message() -> Value {
    json!({
        "name": "DeadLetter",
        "title": "DeadLetter",
        "summary": "An entry a consumer group gave up on, with its last error.",
        "description": "Every field of the original entry, its `data` unchanged (or whatever could not be decoded), \
                        and the `dlq_*` fields that say where it came from and why it failed.",
        "contentType": "application/json",
        "headers": reference("#/components/schemas/DeadLetterEnvelope"),
        "payload": { "description": "The original entry's `data`, as it was." },
    })
}

/// The headers of every entry: the fields other than `data`.
fn envelope(metadata: Value) -> Value {
    json!({
        "type": "object",
        "description": "The fields of a stream entry other than `data`. Every field is text on the stream: \
                        `version` is written in decimal and `metadata` is JSON.",
        "required": FIELDS.iter().filter(|field| **field != "data").collect::<Vec<_>>(),
        "properties": {
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "The event's id (UUID v7, so ids sort by creation time), unique across all \
                                streams; consumers deduplicate by it.",
            },
            "type": {
                "type": "string",
                "description": "The message's name, such as `MenuCreated`.",
            },
            "aggregate_id": {
                "type": "string",
                "format": "uuid",
                "description": "The aggregate the event happened to, or the order a command is about; the \
                                channel says which.",
            },
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "The aggregate's version after the change; handlers ignore what is older than \
                                what they have seen.",
            },
            "occurred_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the change happened: RFC 3339, UTC, microseconds.",
            },
            "metadata": {
                "allOf": [metadata],
                "description": "Correlation, causation and source, as a JSON object.",
            },
            (dead_letter::REDRIVEN_FOR): {
                "type": "string",
                "description": "Only on an entry an operator re-drove from the dead-letter stream: the one \
                                consumer group that handles it; every other group acknowledges it unhandled.",
            },
        },
    })
}

/// The headers of a dead letter: the entry's and the failure's.
fn dead_letter_envelope() -> Value {
    let text = |description: &str| json!({ "type": "string", "description": description });
    json!({
        "type": "object",
        "description": "The original entry's fields (see `Envelope`; they are copied as they were, so a field \
                        that could not be decoded may be missing or malformed) and the failure's.",
        "allOf": [{ "$ref": "#/components/schemas/Envelope" }],
        "required": [dead_letter::ERROR, dead_letter::SOURCE_STREAM, dead_letter::SOURCE_ENTRY_ID,
                     dead_letter::GROUP, dead_letter::DELIVERIES, dead_letter::FAILED_AT],
        "properties": {
            (dead_letter::ERROR): text("The handler's last error, or why the entry could not be decoded."),
            (dead_letter::SOURCE_STREAM): text("The stream the entry came from."),
            (dead_letter::SOURCE_ENTRY_ID): text("The entry's id on that stream, such as `1764000000000-0`."),
            (dead_letter::GROUP): text("The consumer group that gave up."),
            (dead_letter::DELIVERIES): {
                "type": "integer",
                "minimum": 1,
                "description": "How many times the entry was delivered to the group.",
            },
            (dead_letter::FAILED_AT): {
                "type": "string",
                "format": "date-time",
                "description": "When the entry was dead-lettered (RFC 3339, UTC).",
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn generated() -> Value {
        document().unwrap_or_else(|error| panic!("the document cannot be built: {error}"))
    }

    /// The first place where `left` and `right` differ, as a JSON pointer.
    fn first_difference(left: &Value, right: &Value, at: &str) -> Option<String> {
        match (left, right) {
            (Value::Object(left), Value::Object(right)) => {
                let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
                keys.into_iter().find_map(|key| match (left.get(key), right.get(key)) {
                    (Some(l), Some(r)) => first_difference(l, r, &format!("{at}/{key}")),
                    _ => Some(format!("{at}/{key}")),
                })
            }
            (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
                l.iter().zip(r).enumerate().find_map(|(i, (l, r))| first_difference(l, r, &format!("{at}/{i}")))
            }
            _ if left == right => None,
            _ => Some(at.to_owned()),
        }
    }

    #[test]
    fn the_committed_asyncapi_document_is_the_one_the_types_make() {
        let generated = generated();
        let text = serde_json::to_string_pretty(&generated).unwrap_or_else(|e| panic!("{e}")) + "\n";
        if std::env::var_os("UPDATE_ASYNCAPI").is_some() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("asyncapi.json");
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        let committed: Value = serde_json::from_str(COMMITTED).unwrap_or_else(|e| panic!("asyncapi.json: {e}"));
        if let Some(pointer) = first_difference(&committed, &generated, "") {
            panic!(
                "crates/events/asyncapi.json is stale: the event types describe another document (first \
                 difference at {pointer}). Regenerate it with `UPDATE_ASYNCAPI=1 cargo test -p events --lib \
                 asyncapi`, then review and commit it."
            );
        }
        assert_eq!(COMMITTED, text, "asyncapi.json is not formatted as generated; regenerate it as above");
    }

    #[test]
    fn every_stream_and_type_of_the_contract_is_a_channel_with_its_messages() {
        let document = generated();
        let names = crate::Streams::default().all();
        for stream in streams() {
            assert!(names.contains(&stream.name.to_owned()), "{} is not a stream of the contract", stream.name);
            let channel = &document["channels"][stream.name];
            let listed: BTreeSet<&str> =
                channel["messages"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
            assert_eq!(listed, stream.types.iter().copied().collect(), "messages of {}", stream.name);
            assert!(document["channels"][dead_letter_stream(stream.name)].is_object());
        }
        assert_eq!(streams().len(), names.len(), "every stream of Streams::all is documented");
    }

    #[test]
    fn a_message_carries_its_fields_docs_and_the_envelope_every_entry_has() {
        let document = generated();
        let created = &document["components"]["messages"]["MenuCreated"];
        assert_eq!(created["summary"], "A menu was created as a draft, with its first items.");
        assert_eq!(created["payload"]["properties"]["name"]["description"], "The menu's name.");
        assert_eq!(created["payload"]["required"], json!(["name", "items"]), "an absent option is null");
        let items = &created["payload"]["properties"]["items"]["items"]["$ref"];
        assert_eq!(items, "#/components/schemas/MenuItem");
        assert!(document["components"]["schemas"]["MenuItem"]["properties"]["price_cents"].is_object());
        let envelope = &document["components"]["schemas"]["Envelope"];
        let mut fields: Vec<&str> =
            envelope["properties"].as_object().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
        fields.push("data");
        for field in FIELDS {
            assert!(fields.contains(&field), "the envelope describes {field}");
        }
        assert_eq!(envelope["properties"]["metadata"]["allOf"][0]["$ref"], "#/components/schemas/Metadata");
        let metadata = &document["components"]["schemas"]["Metadata"]["properties"];
        assert!(metadata["correlation_id"]["description"].is_string());
    }

    #[test]
    fn each_consumer_group_has_a_receive_operation_and_commands_are_sent_by_the_saga() {
        let document = generated();
        let groups: BTreeSet<(String, String)> = document["operations"]
            .as_object()
            .map(|operations| {
                operations
                    .values()
                    .filter(|operation| operation["action"] == "receive")
                    .map(|operation| {
                        let channel = operation["channel"]["$ref"].as_str().unwrap_or_default();
                        let group = operation["x-consumer-group"].as_str().unwrap_or_default();
                        (channel.trim_start_matches("#/channels/").to_owned(), group.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(groups.contains(&("menu-events".to_owned(), "reservation-service".to_owned())));
        assert!(groups.contains(&("kitchen-commands".to_owned(), "kitchen-service".to_owned())));
        assert_eq!(document["operations"]["order-service-sends-inventory-commands"]["action"], "send");
    }
}
