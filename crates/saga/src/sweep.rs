//! Deadlines: a step or compensation without a reply in time is re-sent up
//! to its retry limit; then a step's saga compensates (the step included, as
//! its outcome is unknown) and a compensation's saga becomes stuck.
//!
//! The deadline is a column, so it survives restarts. Any number of
//! instances may sweep side by side: each batch locks the due sagas with
//! `FOR UPDATE SKIP LOCKED`, and a re-send moves the deadline forward in the
//! same transaction, so one deadline causes one re-send whoever sweeps. A
//! reply being applied holds its saga's lock, so the sweep skips that saga
//! (and the reply sees the sweep's re-send, which it then answers just as well).

use crate::definition::{Definitions, Shape};
use crate::engine;
use crate::error::{Context, Error};
use crate::plan;
use crate::state::Status;
use crate::store::{self, Entry, Saga};
use chrono::{DateTime, Utc};
use events::Outbox;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How many sagas one transaction handles at most.
const BATCH: i64 = 100;

/// Handles the sagas whose deadline passed.
#[derive(Debug, Clone)]
pub struct Sweeper {
    pool: PgPool,
    outbox: Outbox,
    definitions: Definitions,
}

impl Sweeper {
    /// Sweeps the sagas of `definitions`' types in `pool`, sending through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox, definitions: Definitions) -> Self {
        Self { pool, outbox, definitions }
    }

    /// Handles every saga whose deadline is at or before `now`, in batches of
    /// one transaction each; returns how many deadlines it handled. New
    /// deadlines count from `now`.
    ///
    /// # Errors
    /// The database failed; the batch under way is rolled back and its sagas
    /// wait for the next sweep.
    pub async fn sweep_deadlines(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let types = self.definitions.names();
        let mut handled = 0;
        loop {
            let mut work = self.outbox.begin(&self.pool).await.context("beginning a deadline sweep")?;
            let due = store::lock_due(&mut work, now, &types, BATCH).await?;
            if due.is_empty() {
                return Ok(handled);
            }
            let count = due.len();
            for mut saga in due {
                let Some(shape) = self.definitions.get(&saga.saga_type) else { continue };
                let span = crate::trace::timed_out(shape, &saga);
                timed_out(&mut work, shape, &mut saga, now).instrument(span).await?;
            }
            work.commit().await.context("committing a deadline sweep")?;
            handled += count;
            if i64::try_from(count).unwrap_or(i64::MAX) < BATCH {
                return Ok(handled);
            }
        }
    }

    /// Sweeps every `interval` until `cancel` fires; a failed sweep is logged
    /// and tried again later.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        events::backoff::every(interval, "sweeping saga deadlines", cancel, || self.sweep_deadlines(Utc::now())).await;
    }
}

/// Saga `saga`, locked, passed its deadline at `now`.
async fn timed_out(
    work: &mut events::UnitOfWork,
    shape: &dyn Shape,
    saga: &mut Saga,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let position = saga.position;
    let step_name = shape.step_name(position.step).to_owned();
    crate::metrics::timed_out(shape.name(), &step_name, position.phase);
    let entry = Entry {
        kind: "timed_out",
        step: Some(position.step),
        event_id: saga.command_id,
        detail: json!({ "phase": position.phase, "attempt": saga.attempts, "deadline": saga.step_deadline }),
        ..Entry::default()
    };
    let Some(timing) = shape.timing(position) else {
        // A position the definition no longer has: stop and show it rather than loop.
        let why = "its definition has no such step any more".to_owned();
        engine::apply(work, shape, saga, plan::Next::Stuck(why), None, now, vec![entry]).await?;
        return Ok(());
    };
    let event = plan::Event::TimedOut { attempts: saga.attempts, retries: timing.retries };
    let next = plan::next(shape, position, &event);
    if matches!(next, plan::Next::Send(_) | plan::Next::Fail) && saga.status == Status::Running {
        saga.reason =
            Some(format!("{step_name}: no reply within {:?} after {} attempts", timing.deadline, saga.attempts));
    }
    let causation = saga.command_id.map(|id| id.to_string());
    match engine::apply(work, shape, saga, next, causation, now, vec![entry.clone()]).await {
        Ok(_) => Ok(()),
        // Data that no longer decodes cannot be sent, now or later: stuck, not a poisoned sweep.
        Err(Error::Data { source, .. }) => {
            let why = format!("its data does not decode: {source}");
            engine::apply(work, shape, saga, plan::Next::Stuck(why), None, now, vec![entry]).await.map(|_| ())
        }
        Err(error) => Err(error),
    }
}
