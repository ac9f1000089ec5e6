//! Holds nobody decides on lapse: past its expiry a hold's stock is free
//! again and `StockReservationExpired` tells the order saga. Any number of
//! instances may sweep side by side: each takes the due holds no other has
//! locked.

use crate::service::signals;
use crate::store::{self, EXPIRY_ACTOR};
use chrono::{DateTime, Utc};
use events::{DomainEvent, IngredientId, Metadata, Outbox};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many holds one transaction expires at most.
const BATCH: i64 = 100;

/// Expires lapsed holds.
#[derive(Debug, Clone)]
pub struct Sweep {
    pool: PgPool,
    outbox: Outbox,
}

impl Sweep {
    /// Sweeps the holds in `pool`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Self { pool, outbox }
    }

    /// Expires every hold due at `now`, in batches, each with its events;
    /// returns how many.
    ///
    /// # Errors
    /// The database failed; the holds of the batch under way stay held.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> Result<usize, crate::error::Error> {
        let mut expired = 0;
        loop {
            let mut work = self.outbox.begin(&self.pool).await.map_err(service_kit::write::WriteError::from)?;
            let holds = store::expire_due(&mut work, now, BATCH).await?;
            if holds.is_empty() {
                return Ok(expired);
            }
            let metadata = Metadata::new(crate::BLUEPRINT.name(), EXPIRY_ACTOR);
            let mut published: Vec<_> = holds
                .iter()
                .map(|hold| DomainEvent::new(hold.order_id, hold.version, hold.event(), metadata.clone()))
                .collect();
            let touched: Vec<IngredientId> =
                holds.iter().flat_map(|hold| hold.ingredients.iter().map(|held| held.ingredient_id)).collect();
            published.extend(signals(&mut work, &touched, &metadata).await?);
            work.append(&published).await.map_err(service_kit::write::WriteError::from)?;
            work.commit().await.map_err(service_kit::write::WriteError::from)?;
            tracing::info!(holds = holds.len(), "expired lapsed holds");
            expired += holds.len();
            if holds.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(expired);
            }
        }
    }

    /// Expires what is due every `interval` until `cancel` fires; a failed
    /// sweep is logged and tried again later.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        events::backoff::every(interval, "expiring lapsed holds", cancel, || {
            self.expire_due(service_kit::write::now())
        })
        .await;
    }
}
