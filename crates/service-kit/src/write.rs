//! The one write path of every service: a change of one aggregate and the
//! events it causes commit together, through the outbox, once per
//! idempotency key.
//!
//! [`Writer::create`] inserts a new aggregate; [`Writer::change`] locks one,
//! checks `If-Match`, lets the domain decide, bumps the version and writes it
//! back. Both are [`Writer::begin`] → the service's own statements →
//! [`Work::finish`], which a service with a write of its own shape (a booking
//! that takes seat locks first) calls directly.

use crate::database::StoreError;
use crate::extract::{IfMatch, StaleVersion};
use crate::idempotency::{self, Idempotency, IdempotencyError, Reply};
use chrono::{DateTime, Utc};
use events::{DomainEvent, Event, Metadata, Outbox, UnitOfWork};
use sqlx::{PgConnection, PgPool};
use std::fmt::Display;
use uuid::Uuid;

/// An aggregate a service keeps in its tables and changes one at a time
/// under a row lock: how it is identified, versioned and stored.
pub trait Aggregate: Sized + Send + Sync {
    /// Its id type.
    type Id: Copy + Display + Into<Uuid> + Send + Sync;
    /// The event family its changes publish.
    type Event: Event;
    /// What it is called in messages ("menu").
    const KIND: &'static str;

    /// Its id.
    fn id(&self) -> Self::Id;
    /// Its version: 1 when created, one more with every change.
    fn version(&self) -> i64;
    /// Records that a change made it `version`, at `at`.
    fn advance(&mut self, version: i64, at: DateTime<Utc>);

    /// Loads it and locks its row until the transaction ends.
    fn lock(tx: &mut PgConnection, id: Self::Id) -> impl Future<Output = Result<Option<Self>, StoreError>> + Send;
    /// Writes a changed one back.
    fn update(&self, tx: &mut PgConnection) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Inside an `impl Aggregate`, the three methods of an aggregate whose
/// fields are named `id`, `version` and `updated_at`, as the services' are.
#[macro_export]
macro_rules! aggregate_fields {
    () => {
        fn id(&self) -> Self::Id {
            self.id
        }

        fn version(&self) -> i64 {
            self.version
        }

        fn advance(&mut self, version: i64, at: chrono::DateTime<chrono::Utc>) {
            self.version = version;
            self.updated_at = at;
        }
    };
}

/// An aggregate that is created from its fields alone, by [`Writer::create`].
pub trait Insert: Aggregate {
    /// Inserts it, new.
    fn insert(&self, tx: &mut PgConnection) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// No aggregate of that kind with that id. HTTP 404.
#[derive(Debug, Clone, thiserror::Error)]
#[error("there is no {kind} {id}")]
pub struct NotFound {
    /// Its kind ([`Aggregate::KIND`]).
    pub kind: &'static str,
    /// The id asked for.
    pub id: Uuid,
}

impl From<NotFound> for crate::Problem {
    fn from(missing: NotFound) -> Self {
        Self::not_found(missing.to_string())
    }
}

/// Why a write failed outside the domain's rules.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No such aggregate.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// `If-Match` names another version.
    #[error("the {kind} {stale}")]
    Stale {
        /// The aggregate's kind.
        kind: &'static str,
        /// The versions.
        stale: StaleVersion,
    },
    /// The database failed, or the events could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The idempotency key is in use or was used for another request.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
}

impl WriteError {
    /// No aggregate of kind `A` with id `id`.
    pub fn not_found<A: Aggregate>(id: A::Id) -> Self {
        Self::NotFound(NotFound { kind: A::KIND, id: id.into() })
    }

    /// The problem it answers with; `database` names the service's database.
    pub fn problem(&self, database: &str) -> crate::Problem {
        match self {
            Self::NotFound(missing) => missing.clone().into(),
            Self::Stale { .. } => crate::Problem::conflict(self.to_string()),
            Self::Store(error) => error.problem(database),
            Self::Idempotency(error) => error.problem(database),
        }
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

impl From<events::outbox::AppendError> for WriteError {
    fn from(error: events::outbox::AppendError) -> Self {
        Self::Store(error.into())
    }
}

/// Who asks for a write: the request id events carry as their correlation
/// id, and the request's idempotency key, if any.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The request id.
    pub correlation_id: &'a str,
    /// Its `Idempotency-Key`.
    pub key: Option<&'a Idempotency>,
}

impl<'a> Request<'a> {
    /// A request with id `correlation_id` and no idempotency key.
    pub fn new(correlation_id: &'a str) -> Self {
        Self { correlation_id, key: None }
    }

    /// The same request with `key`.
    #[must_use]
    pub fn keyed(self, key: Option<&'a Idempotency>) -> Self {
        Self { key, ..self }
    }
}

/// A service's writes: its pool, its outbox, and the name its events carry
/// as their `source`.
#[derive(Debug, Clone)]
pub struct Writer {
    pool: PgPool,
    outbox: Outbox,
    source: &'static str,
}

/// A write begun: either the reply stored for its idempotency key, or the
/// unit of work to do it in.
#[derive(Debug)]
pub enum Begun<'a> {
    /// The key was used before; this is the first reply, to send again.
    Replay(Reply),
    /// A new write.
    Work(Work<'a>),
}

/// A write under way: its transaction, and what it needs to finish.
#[derive(Debug)]
pub struct Work<'a> {
    unit: UnitOfWork,
    request: Request<'a>,
    source: &'static str,
}

impl Writer {
    /// Writes to `pool`, publishing through `outbox` as `source`.
    pub fn new(pool: PgPool, outbox: Outbox, source: &'static str) -> Self {
        Self { pool, outbox, source }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins the transaction of `request`; with a key used before, answers
    /// with its first reply instead (see [`crate::idempotency`]).
    ///
    /// # Errors
    /// No connection, or the key is in use or was used for another request.
    pub async fn begin<'a>(&self, request: Request<'a>) -> Result<Begun<'a>, WriteError> {
        let mut unit = self.outbox.begin(&self.pool).await?;
        if let Some(replay) = idempotency::begin(&mut unit, request.key).await? {
            return Ok(Begun::Replay(replay));
        }
        Ok(Begun::Work(Work { unit, request, source: self.source }))
    }

    /// Inserts `aggregate`, new, with the event `created` that made it, and
    /// answers with what `respond` makes of it.
    ///
    /// # Errors
    /// See [`Self::begin`]; or the insert failed.
    pub async fn create<A: Insert>(
        &self,
        aggregate: A,
        created: A::Event,
        request: Request<'_>,
        respond: impl FnOnce(&A) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, WriteError> {
        let mut work = match self.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        aggregate.insert(work.connection()).await?;
        let event = work.event(&aggregate, created);
        let reply = respond(&aggregate).map_err(StoreError::Encode)?;
        work.finish(&[event], reply).await
    }

    /// Applies `command` to the aggregate `id` under its row lock. If the
    /// command yields an event, the version is bumped and the aggregate and
    /// its event commit together; if not, nothing is written. The version
    /// `if_match` names, if any, must be the stored one.
    ///
    /// # Errors
    /// [`WriteError`] (as `E`): no such aggregate, a stale version, the
    /// database; or the command's own error.
    pub async fn change<A, E>(
        &self,
        id: A::Id,
        if_match: IfMatch,
        request: Request<'_>,
        command: impl FnOnce(&mut A) -> Result<Option<A::Event>, E>,
        respond: impl FnOnce(&A) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, E>
    where
        A: Aggregate,
        E: From<WriteError>,
    {
        let mut work = match self.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let (aggregate, payload) = change_in(work.connection(), id, if_match, command).await?;
        let encode = |e| WriteError::Store(StoreError::Encode(e));
        let Some(payload) = payload else {
            return Ok(respond(&aggregate).map_err(encode)?);
        };
        let event = work.event(&aggregate, payload);
        let reply = respond(&aggregate).map_err(encode)?;
        tracing::info!(kind = A::KIND, id = %id, event_type = event.event_type(), version = aggregate.version(), "changed");
        Ok(work.finish(&[event], reply).await?)
    }
}

impl Work<'_> {
    /// The transaction's connection, for the service's own statements.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.unit
    }

    /// The transaction as a unit of work, for writers that append events of
    /// other families with the change (a saga sending its first command).
    pub fn unit(&mut self) -> &mut UnitOfWork {
        &mut self.unit
    }

    /// The event `payload` of `aggregate` as it is now, caused by this request.
    pub fn event<A: Aggregate>(&self, aggregate: &A, payload: A::Event) -> DomainEvent<A::Event> {
        DomainEvent::new(aggregate.id(), aggregate.version(), payload, self.metadata())
    }

    /// The metadata of the events this request causes.
    pub fn metadata(&self) -> Metadata {
        Metadata::new(self.source, self.request.correlation_id)
    }

    /// Appends `events`, stores `reply` for the request's idempotency key,
    /// commits (waking the relay) and returns the reply.
    ///
    /// # Errors
    /// Appending, storing the reply or the commit failed: nothing was written.
    pub async fn finish<E: Event>(mut self, events: &[DomainEvent<E>], reply: Reply) -> Result<Reply, WriteError> {
        self.unit.append(events).await?;
        idempotency::record(&mut self.unit, self.request.key, &reply).await?;
        self.unit.commit().await?;
        Ok(reply)
    }

    /// Appends `events` and commits (waking the relay), for a write that
    /// answers no one, such as a sweep.
    ///
    /// # Errors
    /// Appending or the commit failed: nothing was written.
    pub async fn commit<E: Event>(mut self, events: &[DomainEvent<E>]) -> Result<(), WriteError> {
        self.unit.append(events).await?;
        self.unit.commit().await?;
        Ok(())
    }
}

/// Applies `command` to the aggregate `id` inside the caller's transaction,
/// under the aggregate's row lock: the versioned change of [`Writer::change`],
/// for writers that commit something more with it (an event handler in its
/// inbox transaction). If the command yields an event payload, the version is
/// bumped and the aggregate written back; the caller appends the event.
///
/// # Errors
/// [`WriteError`] (as `E`): no such aggregate, a stale version, the
/// database; or the command's own error.
pub async fn change_in<A, E>(
    tx: &mut PgConnection,
    id: A::Id,
    if_match: IfMatch,
    command: impl FnOnce(&mut A) -> Result<Option<A::Event>, E>,
) -> Result<(A, Option<A::Event>), E>
where
    A: Aggregate,
    E: From<WriteError>,
{
    let mut aggregate = A::lock(tx, id)
        .await
        .map_err(WriteError::from)?
        .ok_or(NotFound { kind: A::KIND, id: id.into() })
        .map_err(WriteError::from)?;
    if_match.check(aggregate.version()).map_err(|stale| WriteError::Stale { kind: A::KIND, stale })?;
    let Some(payload) = command(&mut aggregate)? else {
        return Ok((aggregate, None));
    };
    aggregate.advance(aggregate.version() + 1, now());
    aggregate.update(tx).await.map_err(WriteError::from)?;
    Ok((aggregate, Some(payload)))
}

/// Now, to the microsecond PostgreSQL keeps (the system [`crate::clock::Clock`]).
pub fn now() -> DateTime<Utc> {
    crate::clock::Clock::system().now()
}
