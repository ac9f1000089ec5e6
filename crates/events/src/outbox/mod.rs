//! The transactional outbox: events are rows written with the state change, and
//! a relay moves committed rows to Redis.
//!
//! A service never talks to Redis while it changes state. It appends its
//! events inside its own transaction (a [`UnitOfWork`]), so the change and
//! its events commit or vanish together. The [`OutboxRelay`] then publishes
//! committed rows with `XADD` in `seq` order, deleting them in the same
//! PostgreSQL transaction: if `XADD` fails the delete rolls back and the rows
//! wait for the next attempt.
//!
//! * **Waking.** [`UnitOfWork::commit`] commits and wakes the relay of its own
//!   process ([`RelayWaker`]); the relay also polls, so rows committed by
//!   another process wait at most one poll interval. If another instance's
//!   relay is publishing at that moment, the woken relay looks again a few
//!   milliseconds later, until it has had its own look. This departs from
//!   `LISTEN/NOTIFY` on purpose: a transaction that sends `NOTIFY` holds a
//!   cluster-wide lock from its commit until the commit is on disk, so every
//!   writing transaction of every service would commit one after the other
//!   (`pgbench` of two inserts per transaction: 8,000 transactions/s without,
//!   3,400 with a `NOTIFY` in each).
//! * **Order.** Every relay transaction first takes a per-schema advisory
//!   lock and claims nothing without it. Several relays (one per service
//!   instance) can therefore run: one publishes at a time and the others stand
//!   by, so the stream never shows a later batch before an earlier one.
//!   Holding that lock, a relay is the only one deleting rows, so it claims a
//!   range of `seq` rather than locking rows one by one with `FOR UPDATE SKIP
//!   LOCKED` (which costs a second write per row). Rows of one aggregate are
//!   committed in version order (writers of an aggregate serialize on its
//!   row), and a claim takes every row visible to it in `seq` order, so each
//!   aggregate's events reach the stream in commit order.
//! * **Overlap.** One relay transaction publishes up to eight batches.
//!   PostgreSQL deletes the next batch while the current one is on its way
//!   to Redis, and the relay encodes it meanwhile.
//! * **Prefixes.** A batch is one `MULTI` … `EXEC` transaction of `XADD`s,
//!   which Redis runs whole or refuses whole per stream, and the next batch
//!   is sent only after Redis answered for the one before. So what reaches a
//!   stream is always a prefix of what was claimed, however Redis's state
//!   changes meanwhile: with plain pipelined `XADD`s, a key deleted or memory
//!   freed between two commands let later rows onto the stream before earlier
//!   ones that had been refused.
//! * **Dead rows.** The relay scans from a horizon below which no row can
//!   appear any more, instead of stepping over every deleted row that vacuum
//!   has not removed yet (see `claim` for why the horizon is safe).
//! * **Redis down or refusing.** Rows stay unpublished and the relay retries
//!   with backoff; when Redis accepts writes again it catches up in batches.
//! * **Never wedged.** Any failure on either side of a transaction (an error
//!   reply such as `WRONGTYPE`, `OOM` or `READONLY`, a timeout, a dropped
//!   connection, a PostgreSQL error) ends both sides, rolls the transaction
//!   back and closes its database connection, so the publishing lock is free
//!   at once; every transaction also has a deadline
//!   ([`RelayConfig::transaction_deadline`]), and shutdown abandons the one
//!   under way. The horizon is forgotten whenever it may be stale.
//! * **At least once.** A crash between `XADD` and the commit that deletes the
//!   rows leaves them in the outbox, and they are sent again: consumers
//!   deduplicate by event id (see [`crate::inbox`]).
//! * **Retention.** A published row leaves the outbox at once (marking rows
//!   and pruning them later costs ten times more per row: an `UPDATE` of 500
//!   rows took 6–8 ms here, a `DELETE` 0.7 ms). What was published is on the
//!   stream, which [`crate::retention`] trims only below what every consumer
//!   group has acknowledged.

mod claim;
mod relay;

pub use relay::{OutboxRelay, RelayConfig, RelayError, RelayWaker};

use crate::encoding::{EncodedEvent, Streams};
use crate::envelope::{DomainEvent, Event};
use crate::trace::TraceContext;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// Why appending to the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// An event could not be encoded.
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
    /// The insert failed; the caller's transaction should be rolled back.
    #[error("inserting into the outbox: {0}")]
    Database(#[from] sqlx::Error),
}

/// A service's outbox: the streams its events go to, and the relay that
/// publishes them.
///
/// Writes go through a [`UnitOfWork`] begun here: it owns the transaction,
/// appends the events and commits them, waking the relay. There is no other
/// way to append, so no change can commit its events without waking the relay.
#[derive(Debug, Clone)]
pub struct Outbox {
    streams: Streams,
    relay: RelayWaker,
}

impl Outbox {
    /// Events appended here go to `streams`, published by the relay `relay` wakes.
    pub fn new(streams: Streams, relay: RelayWaker) -> Self {
        Self { streams, relay }
    }

    /// Begins a unit of work on `pool`, at `READ COMMITTED` whatever the
    /// server's default (so each statement sees what committed before it,
    /// which writers that lock rows and then read them rely on).
    ///
    /// # Errors
    /// No connection, or `BEGIN` failed.
    pub async fn begin(&self, pool: &PgPool) -> Result<UnitOfWork, sqlx::Error> {
        let tx = pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        Ok(self.adopt(tx))
    }

    /// Makes `tx`, begun elsewhere (by the inbox), a unit of work of this outbox.
    pub fn adopt(&self, tx: Transaction<'static, Postgres>) -> UnitOfWork {
        UnitOfWork { tx, outbox: self.clone() }
    }
}

/// One transaction of a service: its state changes and the events they
/// cause, committed together. Dereferences to the connection, for the
/// service's own statements.
#[derive(Debug)]
pub struct UnitOfWork {
    tx: Transaction<'static, Postgres>,
    outbox: Outbox,
}

impl UnitOfWork {
    /// Appends `events` to the outbox inside this transaction; they are
    /// published only if and when it commits.
    ///
    /// # Errors
    /// Encoding or the insert failed; drop the unit of work to roll back.
    pub async fn append<E: Event>(&mut self, events: &[DomainEvent<E>]) -> Result<(), AppendError> {
        append(&mut self.tx, &self.outbox.streams, events).await
    }

    /// Commits and wakes the relay to publish what was appended.
    ///
    /// # Errors
    /// The commit failed: nothing was written (unless the connection broke
    /// during the commit, when its outcome is unknown; the relay's poll still
    /// publishes what did commit).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        self.outbox.relay.wake();
        Ok(())
    }
}

impl std::ops::Deref for UnitOfWork {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for UnitOfWork {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// The insert of [`append`].
const APPEND: &str =
    "INSERT INTO outbox (event_id, stream, event_type, aggregate_id, version, occurred_at, data, metadata)
     SELECT id, $2, event_type, aggregate_id, version, occurred_at, data::json, metadata::json
     FROM UNNEST($1::uuid[], $3::text[], $4::uuid[], $5::int8[], $6::timestamptz[], $7::text[], $8::text[])
          AS e(id, event_type, aggregate_id, version, occurred_at, data, metadata)
     WHERE pg_current_xact_id() IS NOT NULL";

/// [`APPEND`] with each row's creation context.
const APPEND_TRACED: &str =
    "INSERT INTO outbox (event_id, stream, event_type, aggregate_id, version, occurred_at, data, metadata,
                         traceparent, tracestate)
     SELECT id, $2, event_type, aggregate_id, version, occurred_at, data::json, metadata::json, traceparent, tracestate
     FROM UNNEST($1::uuid[], $3::text[], $4::uuid[], $5::int8[], $6::timestamptz[], $7::text[], $8::text[],
                 $9::text[], $10::text[])
          AS e(id, event_type, aggregate_id, version, occurred_at, data, metadata, traceparent, tracestate)
     WHERE pg_current_xact_id() IS NOT NULL";

/// Appends `events` to the outbox inside `tx`, each with its creation
/// context while traces are exported ([`crate::trace`]).
async fn append<E: Event>(
    tx: &mut PgConnection,
    streams: &Streams,
    events: &[DomainEvent<E>],
) -> Result<(), AppendError> {
    if events.is_empty() {
        return Ok(());
    }
    let stream = streams.of::<E>();
    let encoded = events.iter().map(EncodedEvent::encode).collect::<Result<Vec<_>, _>>()?;
    // `pg_current_xact_id()` is evaluated once, before the first row takes its
    // `seq`: a writer has its transaction id before it holds a `seq`, which the
    // relay's scan horizon relies on (see `claim`). Without traces the
    // statement binds nothing for them, so that it costs what it did before.
    let created = crate::trace::enabled().then(|| {
        encoded
            .iter()
            .map(|event| match crate::trace::created(&stream, event) {
                Some(TraceContext { traceparent, tracestate }) => (Some(traceparent), tracestate),
                None => (None, None),
            })
            .unzip::<_, _, Vec<_>, Vec<_>>()
    });
    let statement = if created.is_some() { APPEND_TRACED } else { APPEND };
    let mut query = sqlx::query(statement)
        .bind(encoded.iter().map(|e| e.id.as_uuid()).collect::<Vec<_>>())
        .bind(&stream)
        .bind(encoded.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(encoded.iter().map(|e| e.aggregate_id).collect::<Vec<_>>())
        .bind(encoded.iter().map(|e| e.version).collect::<Vec<_>>())
        .bind(encoded.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
        .bind(encoded.iter().map(|e| e.data.as_str()).collect::<Vec<_>>())
        .bind(encoded.iter().map(|e| e.metadata.as_str()).collect::<Vec<_>>());
    if let Some((traceparents, tracestates)) = created {
        query = query.bind(traceparents).bind(tracestates);
    }
    query.execute(tx).await?;
    Ok(())
}
