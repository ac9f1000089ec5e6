//! The inbox: effectively-once handling on top of at-least-once delivery.
//!
//! Redis Streams may deliver an event more than once (a relay crash before it
//! marks rows, a consumer crash before `XACK`, a reclaim). A handler that
//! changes PostgreSQL state runs inside a transaction that also inserts
//! `(consumer_group, event_id)` into `processed_events`. If the row is already
//! there, the event was applied before and nothing is done; if the transaction
//! rolls back, neither the effects nor the record remain, and the next
//! delivery tries again.
//!
//! The records are kept for a replay window ([`Inbox::prune`],
//! [`Inbox::run_pruning`]): an event redelivered within it is recognised.
//! Redeliveries come from the relay (seconds), reclaims and restarts
//! (minutes) and re-drives of dead letters (as long as an operator takes),
//! so the window is days, well past any of them.

use crate::backoff::{Backoff, Outage};
use crate::consumer::{Handler, HandlerError};
use crate::envelope::{DomainEvent, Event};
use crate::ids::EventId;
use crate::outbox::{Outbox, UnitOfWork};
use sqlx::{PgPool, Postgres, Transaction};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Records which events a consumer group has applied.
#[derive(Debug, Clone)]
pub struct Inbox {
    pool: PgPool,
    group: String,
}

impl Inbox {
    /// The inbox of consumer group `group`, kept in `pool`'s schema.
    pub fn new(pool: PgPool, group: impl Into<String>) -> Self {
        Self { pool, group: group.into() }
    }

    /// Begins the transaction that applies `event_id`, or returns `None` if the
    /// group has applied it already. Commit the transaction to record the event
    /// as applied together with the handler's effects.
    ///
    /// A concurrent delivery of the same event waits on the first one's row
    /// lock and then sees it applied (or, if the first rolled back, applies it).
    ///
    /// # Errors
    /// PostgreSQL failed.
    pub async fn begin(&self, event_id: EventId) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        let inserted = sqlx::query(
            "INSERT INTO processed_events (consumer_group, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.group)
        .bind(event_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Ok((inserted == 1).then_some(tx))
    }

    /// Forgets which events this group applied more than `window` ago.
    /// Returns how many records were deleted.
    ///
    /// # Errors
    /// PostgreSQL failed.
    pub async fn prune(&self, window: Duration) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM processed_events WHERE consumer_group = $1 AND processed_at < now() - make_interval(secs => $2)",
        )
        .bind(&self.group)
        .bind(window.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    /// Prunes records older than `window` every `interval` until `cancel`
    /// fires; a failed prune is logged and tried again at the next interval.
    pub async fn run_pruning(self, window: Duration, interval: Duration, cancel: CancellationToken) {
        let mut outage = Outage::new(Backoff { initial: interval, max: interval });
        loop {
            let pruned = tokio::select! {
                () = cancel.cancelled() => return,
                pruned = self.prune(window) => pruned,
            };
            match pruned {
                Ok(deleted) => {
                    outage.ended();
                    if deleted > 0 {
                        tracing::debug!(group = %self.group, deleted, "pruned old inbox records");
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(interval) => {}
                    }
                }
                Err(error) => {
                    if !outage.wait_after(&error, "pruning the inbox failed; trying again later", &cancel).await {
                        return;
                    }
                }
            }
        }
    }
}

/// A handler whose effects are PostgreSQL writes, applied once per event.
///
/// Wrap it in [`Inboxed`] to get a [`Handler`] for a consumer.
pub trait TransactionalHandler<E: Event>: Send + Sync + 'static {
    /// Applies `event` in `work`, the inbox's transaction, appending any
    /// events or commands it causes; the inbox commits it. Returning an error
    /// rolls everything back and the event is retried as [`HandlerError`]
    /// says.
    fn apply(
        &self,
        work: &mut UnitOfWork,
        event: &DomainEvent<E>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether `event` is one [`Self::apply`] acts on. An event it does not
    /// want is acknowledged without a transaction and leaves no inbox row
    /// (applying it again would change nothing either): a consumer that acts
    /// on one event type of a busy stream costs nothing for the others.
    fn wants(&self, event: &DomainEvent<E>) -> bool {
        let _ = event;
        true
    }
}

/// Runs a [`TransactionalHandler`] inside the inbox transaction, so that a
/// redelivered event changes nothing, and commits it through the service's
/// outbox, so that what the handler appends is published.
#[derive(Debug, Clone)]
pub struct Inboxed<H> {
    inbox: Inbox,
    outbox: Outbox,
    handler: H,
}

impl<H> Inboxed<H> {
    /// `handler`, applied at most once per event for `inbox`'s group,
    /// appending to `outbox`.
    pub fn new(inbox: Inbox, outbox: Outbox, handler: H) -> Self {
        Self { inbox, outbox, handler }
    }
}

impl<E: Event, H: TransactionalHandler<E>> Handler<E> for Inboxed<H> {
    async fn handle(&self, event: &DomainEvent<E>) -> Result<(), HandlerError> {
        if !self.handler.wants(event) {
            return Ok(());
        }
        let Some(tx) = self.inbox.begin(event.id).await? else {
            tracing::debug!(event_id = %event.id, "event already applied; skipping");
            return Ok(());
        };
        let mut work = self.outbox.adopt(tx);
        self.handler.apply(&mut work, event).await?;
        work.commit().await?;
        Ok(())
    }
}
