//! The platform's event contract and its transport over Redis Streams.
//!
//! Services change state in PostgreSQL and tell each other what happened
//! through **domain events**. This crate is the only place that defines them:
//! the envelope ([`DomainEvent`]), one enum per stream ([`MenuEvent`],
//! [`ReservationEvent`], [`InventoryEvent`], [`InventoryCommand`],
//! [`KitchenEvent`], [`KitchenCommand`], [`OrderEvent`]), their wire
//! form ([`encoding`]), and the machinery that moves them without losing any.
//! The [`asyncapi`] document describes every stream, generated from these types.
//!
//! # The life of an event
//!
//! 1. **Append.** A service changes its tables and appends its events to the
//!    [`outbox::Outbox`] in the same transaction. Both commit or neither does:
//!    there is no moment at which the state changed but the event is lost, or
//!    the other way round.
//! 2. **Relay.** The service's [`outbox::OutboxRelay`], woken by the commit
//!    (polling as a fallback), reads committed rows in order and `XADD`s them to
//!    the family's stream (`menu-events`, …), deleting them in the same
//!    transaction. If Redis is down or refuses writes the rows wait; if the
//!    relay dies between `XADD` and its commit, the rows are sent again.
//!    Delivery is **at least once**.
//! 3. **Consume.** Every consuming service is a consumer group on the stream
//!    and each of its instances a consumer ([`consumer`]). An entry is
//!    acknowledged after its handler succeeds; failures are retried with
//!    backoff, entries stuck with a dead instance are claimed by a live one, and
//!    an entry the handler keeps refusing goes to the dead-letter stream
//!    ([`dead_letter`]) with its error. Types the consumer does not know are acknowledged and
//!    counted, so old consumers tolerate new producers.
//! 4. **Apply once.** A handler that writes to PostgreSQL runs through the
//!    [`inbox`]: its effects and the record "group G applied event E" commit in
//!    one transaction, so a repeated delivery changes nothing. At least once
//!    plus the inbox is effectively once.
//! 5. **Trim.** Each service's [`retention::Retention`] trims its streams
//!    below what every consumer group has acknowledged, keeping a minimum age
//!    for replay, so a consuming service that is down loses nothing; only an
//!    operator's hard cap can trim past a group, and it says so loudly.
//!
//! # Seeing inside
//!
//! Operators read the streams through [`inspect`]: entries decoded and
//! filtered, each stream's groups, consumers, dead letters and trim point.
//! `platform-ctl` and the console's pages show the same through it.
//!
//! # Traces
//!
//! An event carries the W3C trace context of the span that created it, from
//! its outbox row to its stream entry, and every consumer handles it in a
//! span of the same trace ([`trace`]), so a request and everything it caused
//! downstream read as one trace. Off unless the process exports traces.
//!
//! # Ordering
//!
//! Events of one aggregate are appended in version order and published in the
//! order they were appended; a consumer handles one aggregate's events one at a
//! time, in stream order. Events of different aggregates may be handled
//! concurrently. A restarted consumer first finishes the entries it had in
//! hand (its own pending entries) before it reads new ones, so the order holds
//! across restarts. Across several instances of a consuming service, ordering
//! per aggregate holds only while an aggregate's events are not in the hands
//! of two instances at once; handlers compare `version` with what they have
//! seen and ignore anything older.
//!
//! # Faults
//!
//! An outage is not poison. A handler says whether it failed because
//! something it needs is unavailable or because it refuses the event
//! ([`HandlerError`], classified by [`fault`]); only refusals count towards
//! the dead-letter cap, and while handlers wait out an outage the consumer
//! reads nothing new. Nothing is lost or dead-lettered by an outage of
//! PostgreSQL or Redis of any length.
//!
//! # Durability
//!
//! Redis must run with AOF (`appendonly yes`, and `appendfsync always` to lose
//! nothing on a crash) for a stream to survive a Redis restart. Without it, a
//! restart empties the streams: events already published are gone (the outbox
//! let go of them when they were published) and consumer groups are recreated.
//!
//! # Connections
//!
//! Each event costs its writer and its inbox a transaction of their own, so
//! round trips to PostgreSQL count: services build their pools from
//! [`pool::options`], which checks a pooled connection only after it has been
//! idle for a while instead of on every use.

#![deny(missing_docs)]

pub mod asyncapi;
pub mod backoff;
pub mod consumer;
pub mod dead_letter;
pub mod encoding;
pub mod envelope;
pub mod fault;
pub mod ids;
pub mod inbox;
pub mod inspect;
pub mod inventory;
pub mod kitchen;
pub mod lua;
pub mod menu;
pub mod metrics;
pub mod order;
pub mod outbox;
pub mod pool;
mod redis_link;
pub mod reservation;
pub mod retention;
pub mod schema;
pub mod trace;

pub use consumer::{Consumer, ConsumerConfig, Handler, HandlerError};
pub use encoding::{EncodedEvent, Streams};
pub use envelope::{DomainEvent, Event, Metadata};
pub use ids::{EventId, IngredientId, MenuId, MenuItemId, OrderId, ReservationId, TicketId};
pub use inbox::{Inbox, Inboxed, TransactionalHandler};
pub use inventory::{InventoryCommand, InventoryEvent};
pub use kitchen::{KitchenCommand, KitchenEvent};
pub use menu::MenuEvent;
pub use order::OrderEvent;
pub use outbox::{Outbox, OutboxRelay, RelayConfig, RelayWaker, UnitOfWork};
pub use reservation::ReservationEvent;

/// Implements [`Event`] for a `#[serde(tag = "type", content = "data")]` enum
/// whose variants all have named fields. Listing a variant twice or leaving
/// one out does not compile.
#[macro_export]
#[doc(hidden)]
macro_rules! event_family {
    ($family:ident, $stream:literal, [$($variant:ident),+ $(,)?]) => {
        impl $crate::Event for $family {
            const STREAM: &'static str = $stream;
            const TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];

            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant)),+
                }
            }
        }
    };
}
