//! `inventory-commands`, as the order saga sends them: hold an order's stock,
//! commit it, release it. Each is applied once through the inbox and
//! answered, in the same transaction, by an event on `inventory-events` that
//! carries the order id, so the saga always hears back:
//!
//! * `ReserveStock` → `StockReserved`, or `StockReservationRejected` naming
//!   the shortages. Asked again for an order that has a hold, the answer is
//!   the hold as it is (a retry after a lost answer gets the same answer).
//! * `ReleaseStock` → `StockReleased`, `CommitStock` → `StockCommitted`, also
//!   when the order has no hold or it is already so (compensations may run
//!   blind). A hold that cannot go that way (committing an expired hold) is
//!   answered with its own state, and logged.
//!
//! A command the domain refuses (no lines, a silly quantity) is rejected and
//! ends in the dead-letter stream after the delivery cap: retrying it cannot
//! help, and an operator can see it.

use crate::domain::{Hold, OrderLines};
use crate::service::signals_of_locked;
use crate::store::{self, HoldChange, Reservation};
use chrono::TimeDelta;
use events::{DomainEvent, HandlerError, InventoryCommand, InventoryEvent, Metadata, OrderId};
use events::{TransactionalHandler, UnitOfWork};

/// Applies inventory commands; holds last `hold_expiry` unless committed or released.
#[derive(Debug, Clone)]
pub struct Commands {
    hold_expiry: TimeDelta,
}

impl Commands {
    /// Commands whose holds last `hold_expiry`.
    pub fn new(hold_expiry: TimeDelta) -> Self {
        Self { hold_expiry }
    }
}

impl TransactionalHandler<InventoryCommand> for Commands {
    async fn apply(&self, work: &mut UnitOfWork, command: &DomainEvent<InventoryCommand>) -> Result<(), HandlerError> {
        let actor = command.metadata.source.clone();
        let (answer, moved) = match &command.payload {
            InventoryCommand::ReserveStock { order_id, lines } => {
                let lines = OrderLines::from_event(lines).map_err(rejected)?;
                let expires_at = service_kit::write::now() + self.hold_expiry;
                let (reservation, moved) =
                    store::reserve(work, *order_id, &lines, expires_at, &actor).await.map_err(unavailable)?;
                let answer = match reservation {
                    Reservation::Held(hold) | Reservation::AlreadyDecided(hold) => answer_of(&hold),
                    Reservation::Rejected(shortages) => {
                        let rejected = InventoryEvent::StockReservationRejected { order_id: *order_id, shortages };
                        (order_id.as_uuid(), 1, rejected)
                    }
                };
                (answer, moved)
            }
            InventoryCommand::ReleaseStock { order_id } => {
                let (change, moved) = store::release(work, *order_id, &actor).await.map_err(unavailable)?;
                (settle(*order_id, change, InventoryEvent::StockReleased { order_id: *order_id }), moved)
            }
            InventoryCommand::CommitStock { order_id } => {
                let (change, moved) = store::commit(work, *order_id, &actor).await.map_err(unavailable)?;
                (settle(*order_id, change, InventoryEvent::StockCommitted { order_id: *order_id }), moved)
            }
        };
        let metadata = Metadata::caused_by(crate::BLUEPRINT.name(), command);
        let (order, version, event) = answer;
        let mut published = vec![DomainEvent::new(order, version, event, metadata.clone())];
        // The moved ingredients are locked and current: no need to read them again.
        published.extend(signals_of_locked(work, moved, &metadata).await.map_err(anyhow::Error::from)?);
        tracing::info!(
            command = command.event_type(),
            answer = published[0].event_type(),
            order_id = %order,
            "inventory command applied"
        );
        work.append(&published).await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}

/// An answer: the order it is about, its version, the event.
type Answer = (uuid::Uuid, i64, InventoryEvent);

/// What a release or commit answers.
fn settle(order_id: OrderId, change: HoldChange, requested: InventoryEvent) -> Answer {
    match change {
        HoldChange::Applied(hold) => answer_of(&hold),
        HoldChange::Unchanged { hold, refusal: None } => (order_id.as_uuid(), hold.version, requested),
        HoldChange::Unchanged { hold, refusal: Some(refusal) } => {
            tracing::warn!(order_id = %order_id, %refusal, "answering with the hold as it is");
            answer_of(&hold)
        }
        HoldChange::NotFound => (order_id.as_uuid(), 1, requested),
    }
}

fn answer_of(hold: &Hold) -> Answer {
    (hold.order_id.as_uuid(), hold.version, hold.event())
}

fn rejected(error: crate::domain::DomainError) -> HandlerError {
    HandlerError::Rejected(error.into())
}

fn unavailable(error: service_kit::database::StoreError) -> HandlerError {
    anyhow::Error::from(error).into()
}
