//! Tickets whose promised time passed: `TicketOverdue` tells the floor, once
//! per ticket. Any number of instances may sweep side by side: each takes
//! the overdue tickets no other has locked.

use crate::store;
use chrono::{DateTime, Utc};
use events::{DomainEvent, Metadata, Outbox};
use service_kit::write::{Aggregate, WriteError};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many tickets one transaction announces at most.
const BATCH: i64 = 100;

/// Who the sweep's events say caused them.
pub const SWEEP_ACTOR: &str = "overdue-sweep";

/// Announces overdue tickets.
#[derive(Debug, Clone)]
pub struct Sweep {
    pool: PgPool,
    outbox: Outbox,
}

impl Sweep {
    /// Sweeps the tickets in `pool`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Self { pool, outbox }
    }

    /// Publishes `TicketOverdue` for every ticket overdue at `now` and not
    /// yet announced, in batches; returns how many.
    ///
    /// # Errors
    /// The database failed; the tickets of the batch under way stay
    /// unannounced, for the next sweep.
    pub async fn mark_overdue(&self, now: DateTime<Utc>) -> Result<usize, WriteError> {
        let mut marked = 0;
        loop {
            let mut work = self.outbox.begin(&self.pool).await?;
            let tickets = store::lock_overdue(&mut work, now, BATCH).await?;
            if tickets.is_empty() {
                return Ok(marked);
            }
            let metadata = Metadata::new(crate::BLUEPRINT.name(), SWEEP_ACTOR);
            let mut published = Vec::with_capacity(tickets.len());
            for mut ticket in tickets {
                let Some(event) = ticket.overdue(now) else { continue };
                ticket.advance(ticket.version + 1, service_kit::write::now());
                store::update(&mut work, &ticket).await?;
                published.push(DomainEvent::new(ticket.id, ticket.version, event, metadata.clone()));
            }
            let count = published.len();
            work.append(&published).await?;
            work.commit().await?;
            tracing::info!(tickets = count, "announced overdue tickets");
            marked += count;
            if count < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(marked);
            }
        }
    }

    /// Announces what is overdue every `interval` until `cancel` fires; a
    /// failed sweep is logged and tried again later.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        events::backoff::every(interval, "announcing overdue tickets", cancel, || {
            self.mark_overdue(service_kit::write::now())
        })
        .await;
    }
}
