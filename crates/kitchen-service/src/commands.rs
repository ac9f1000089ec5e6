//! `kitchen-commands`, as the order saga sends them. Each is applied once
//! through the inbox and answered, in the same transaction, by an event on
//! `kitchen-events` carrying the order id, so the saga always hears back:
//!
//! * `CreateTicket` → `TicketCreated` (pending). Asked again for an order that
//!   has a ticket, the answer is that ticket's `TicketCreated` again, and no
//!   second ticket is made.
//! * `ConfirmTicket` → `TicketConfirmed`, also when the ticket is past
//!   confirmation; a cancelled or rejected ticket answers `TicketCancelled`
//!   or `TicketRejected`. A confirmation for an order without a ticket is
//!   rejected (it ends in the dead-letter stream).
//! * `CancelTicket` → `TicketCancelled`, also for an order without a ticket
//!   (a compensation may run blind) or one already cancelled;
//!   `TicketCancellationRefused{status}` once cooking has begun (the ticket
//!   is left as it is); a rejected ticket answers `TicketRejected`.

use crate::domain::{Action, DomainError, StationMap, Ticket, TicketStatus};
use crate::store;
use events::kitchen::CommandLine;
use events::{DomainEvent, HandlerError, KitchenCommand, KitchenEvent, Metadata, OrderId};
use events::{TransactionalHandler, UnitOfWork};
use service_kit::database::StoreError;
use service_kit::write::{Aggregate, now};

/// Applies kitchen commands, putting each line on its station.
#[derive(Debug, Clone)]
pub struct Commands {
    stations: StationMap,
}

impl Commands {
    /// Commands whose tickets' lines go to `stations`.
    pub fn new(stations: StationMap) -> Self {
        Self { stations }
    }

    async fn create(
        &self,
        work: &mut UnitOfWork,
        order_id: OrderId,
        lines: &[CommandLine],
    ) -> Result<Answer, HandlerError> {
        if let Some(ticket) = store::lock_by_order(work, order_id).await.map_err(unavailable)? {
            return Ok((ticket.id.into(), ticket.version, ticket.created()));
        }
        let ids: Vec<_> = lines.iter().map(|line| line.menu_item_id).collect();
        let seen = store::items_seen(&mut **work, &ids).await.map_err(unavailable)?;
        let (ticket, created) =
            Ticket::create(order_id, lines.to_vec(), &self.stations, &seen, now()).map_err(rejected)?;
        store::insert(work, &ticket).await.map_err(unavailable)?;
        Ok((ticket.id.into(), ticket.version, created))
    }
}

/// An answer: its aggregate id, its version, the event.
type Answer = (uuid::Uuid, i64, KitchenEvent);

impl TransactionalHandler<KitchenCommand> for Commands {
    async fn apply(&self, work: &mut UnitOfWork, command: &DomainEvent<KitchenCommand>) -> Result<(), HandlerError> {
        let (aggregate, version, answer) = match &command.payload {
            KitchenCommand::CreateTicket { order_id, lines } => self.create(work, *order_id, lines).await?,
            KitchenCommand::ConfirmTicket { order_id } => confirm(work, *order_id).await?,
            KitchenCommand::CancelTicket { order_id } => cancel(work, *order_id).await?,
        };
        let metadata = Metadata::caused_by(crate::BLUEPRINT.name(), command);
        let event = DomainEvent::new(aggregate, version, answer, metadata);
        tracing::info!(
            command = command.event_type(),
            answer = event.event_type(),
            order_id = %command.aggregate_id,
            "kitchen command applied"
        );
        work.append(&[event]).await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}

async fn confirm(work: &mut UnitOfWork, order_id: OrderId) -> Result<Answer, HandlerError> {
    let Some(mut ticket) = store::lock_by_order(work, order_id).await.map_err(unavailable)? else {
        return Err(HandlerError::Rejected(anyhow::anyhow!("order {order_id} has no ticket to confirm")));
    };
    let answer = match ticket.status {
        TicketStatus::Pending => {
            let confirmed = ticket.apply(&Action::Confirm, now()).map_err(rejected)?;
            bump(work, &mut ticket).await?;
            confirmed.unwrap_or(KitchenEvent::TicketConfirmed { order_id })
        }
        TicketStatus::Cancelled => KitchenEvent::TicketCancelled { order_id },
        TicketStatus::Rejected => rejection(&ticket),
        _ => KitchenEvent::TicketConfirmed { order_id },
    };
    Ok((ticket.id.into(), ticket.version, answer))
}

async fn cancel(work: &mut UnitOfWork, order_id: OrderId) -> Result<Answer, HandlerError> {
    let Some(mut ticket) = store::lock_by_order(work, order_id).await.map_err(unavailable)? else {
        tracing::info!(order_id = %order_id, "no ticket to cancel; answering cancelled");
        return Ok((order_id.into(), 1, KitchenEvent::TicketCancelled { order_id }));
    };
    if ticket.status == TicketStatus::Rejected {
        return Ok((ticket.id.into(), ticket.version, rejection(&ticket)));
    }
    let answer = match ticket.apply(&Action::Cancel, now()).map_err(rejected)? {
        Some(refused @ KitchenEvent::TicketCancellationRefused { .. }) => refused,
        Some(cancelled) => {
            bump(work, &mut ticket).await?;
            cancelled
        }
        None => KitchenEvent::TicketCancelled { order_id },
    };
    Ok((ticket.id.into(), ticket.version, answer))
}

/// A new version of a changed ticket, written back.
async fn bump(work: &mut UnitOfWork, ticket: &mut Ticket) -> Result<(), HandlerError> {
    ticket.advance(ticket.version + 1, now());
    store::update(work, ticket).await.map_err(unavailable)
}

fn rejection(ticket: &Ticket) -> KitchenEvent {
    let reason = ticket.reject_reason.as_ref().map(|reason| reason.as_str().to_owned()).unwrap_or_default();
    KitchenEvent::TicketRejected { order_id: ticket.order_id, reason }
}

fn rejected(error: DomainError) -> HandlerError {
    HandlerError::Rejected(error.into())
}

fn unavailable(error: StoreError) -> HandlerError {
    anyhow::Error::from(error).into()
}
