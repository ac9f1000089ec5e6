//! The order's sagas over the inventory and the kitchen, on the [`saga`]
//! engine, and the handler of the participants' replies.
//!
//! * **CreateOrder**: `ReserveStock` (undone by `ReleaseStock`) →
//!   `CreateTicket` (undone by `CancelTicket`) → `ConfirmTicket` → the order
//!   is `approved`. Out of stock, the order is `rejected` naming the
//!   shortages; a step that never answers is re-sent, then undone.
//! * **CancelOrder**: `CancelTicket` → `ReleaseStock` → `cancelled`; the
//!   kitchen refusing (it is cooking) returns the order to its status with the
//!   refusal visible.
//! * After approval the order follows its ticket: `TicketPreparationStarted`
//!   → `preparing` and `CommitStock`; `TicketReady` → `ready`;
//!   `TicketPickedUp` → `picked_up`; `TicketRejected` → `rejected` and
//!   `ReleaseStock`.
//!
//! Every reply is applied through the inbox, in one transaction with the
//! saga's state, the order's change and the commands and events they send.

use crate::domain::Order;
use crate::service::{self, Applied, Hook, Hooks};
use events::inventory::OrderLine;
use events::kitchen::CommandLine;
use events::{
    DomainEvent, Event, HandlerError, InventoryCommand, InventoryEvent, KitchenCommand, KitchenEvent, Metadata,
    OrderId, TransactionalHandler, UnitOfWork,
};
use saga::{Action, Command, Definition, Definitions, Effect, Reply, Step, Verdict};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The saga type that places an order.
pub const CREATE_ORDER: &str = "CreateOrder";
/// The saga type that cancels one.
pub const CANCEL_ORDER: &str = "CancelOrder";

/// How long each step waits for its reply, and how often it is re-sent.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A step's deadline.
    pub deadline: Duration,
    /// Re-sends before the saga compensates (or, compensating, is stuck).
    pub retries: u32,
}

/// What the order's sagas know of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderData {
    /// The order.
    pub order_id: OrderId,
    /// Its lines.
    pub lines: Vec<SagaLine>,
}

/// One line, as the participants need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SagaLine {
    /// The item.
    pub menu_item_id: events::MenuItemId,
    /// Portions.
    pub quantity: u32,
    /// The guest's notes, for the kitchen.
    pub notes: Option<String>,
}

impl OrderData {
    /// The data of `order`'s sagas.
    pub fn of(order: &Order) -> Self {
        let lines = order
            .lines
            .iter()
            .map(|line| SagaLine {
                menu_item_id: line.menu_item_id,
                quantity: line.quantity.get(),
                notes: line.notes.as_ref().map(|notes| notes.as_str().to_owned()),
            })
            .collect();
        Self { order_id: order.id, lines }
    }
}

fn reserve(data: &OrderData) -> Command {
    let lines = data
        .lines
        .iter()
        .map(|line| OrderLine { menu_item_id: line.menu_item_id, quantity: i64::from(line.quantity) })
        .collect();
    Command::new(InventoryCommand::ReserveStock { order_id: data.order_id, lines })
}

fn release(data: &OrderData) -> Command {
    Command::new(InventoryCommand::ReleaseStock { order_id: data.order_id })
}

fn create_ticket(data: &OrderData) -> Command {
    let lines = data
        .lines
        .iter()
        .map(|line| CommandLine { menu_item_id: line.menu_item_id, quantity: line.quantity, notes: line.notes.clone() })
        .collect();
    Command::new(KitchenCommand::CreateTicket { order_id: data.order_id, lines })
}

fn confirm_ticket(data: &OrderData) -> Command {
    Command::new(KitchenCommand::ConfirmTicket { order_id: data.order_id })
}

fn cancel_ticket(data: &OrderData) -> Command {
    Command::new(KitchenCommand::CancelTicket { order_id: data.order_id })
}

/// `StockReserved` completes the reservation; a rejection fails it naming
/// each short item.
fn reserved(reply: &Reply, _: &OrderData) -> Verdict {
    match reply.payload::<InventoryEvent>() {
        Some(InventoryEvent::StockReserved { .. }) => Verdict::Completed,
        Some(InventoryEvent::StockReservationRejected { shortages, .. }) => {
            let named: Vec<String> = shortages
                .iter()
                .map(|s| format!("item {} ({} asked, {} available)", s.menu_item_id, s.requested, s.available))
                .collect();
            Verdict::Failed(format!("out of stock: {}", named.join(", ")))
        }
        Some(InventoryEvent::StockReservationExpired { .. }) => Verdict::Failed("the stock hold expired".to_owned()),
        _ => Verdict::Ignore,
    }
}

/// The stock is free again, whichever way.
fn released(reply: &Reply, _: &OrderData) -> Verdict {
    match reply.payload::<InventoryEvent>() {
        Some(
            InventoryEvent::StockReleased { .. }
            | InventoryEvent::StockReservationExpired { .. }
            | InventoryEvent::StockCommitted { .. },
        ) => Verdict::Completed,
        _ => Verdict::Ignore,
    }
}

fn ticket_created(reply: &Reply, _: &OrderData) -> Verdict {
    match reply.payload::<KitchenEvent>() {
        Some(KitchenEvent::TicketCreated { .. }) => Verdict::Completed,
        _ => Verdict::Ignore,
    }
}

fn ticket_confirmed(reply: &Reply, _: &OrderData) -> Verdict {
    match reply.payload::<KitchenEvent>() {
        Some(KitchenEvent::TicketConfirmed { .. }) => Verdict::Completed,
        Some(KitchenEvent::TicketRejected { reason, .. }) => {
            Verdict::Failed(format!("the kitchen rejected it: {reason}"))
        }
        Some(KitchenEvent::TicketCancelled { .. }) => Verdict::Failed("the kitchen cancelled the ticket".to_owned()),
        _ => Verdict::Ignore,
    }
}

/// The ticket will not be cooked: cancelled, or rejected by the kitchen. A
/// refusal (cooking started) fails the step with the kitchen's status.
fn ticket_cancelled(reply: &Reply, _: &OrderData) -> Verdict {
    match reply.payload::<KitchenEvent>() {
        Some(KitchenEvent::TicketCancelled { .. } | KitchenEvent::TicketRejected { .. }) => Verdict::Completed,
        Some(KitchenEvent::TicketCancellationRefused { status, .. }) => Verdict::Failed(status),
        _ => Verdict::Ignore,
    }
}

/// An action of a step, with `timing`.
fn action(
    timing: Timing,
    command: fn(&OrderData) -> Command,
    classify: fn(&Reply, &OrderData) -> Verdict,
) -> Action<OrderData> {
    Action::new(command, classify).deadline(timing.deadline).retries(timing.retries)
}

/// CreateOrder: reserve the stock, create the ticket, confirm it.
pub fn create_order(timing: Timing) -> Definition<OrderData> {
    Definition::new(CREATE_ORDER)
        .step(
            Step::new("reserve_stock", action(timing, reserve, reserved))
                .compensate_with(action(timing, release, released)),
        )
        .step(Step::new("create_ticket", action(timing, create_ticket, ticket_created)).compensate_with(action(
            timing,
            cancel_ticket,
            ticket_cancelled,
        )))
        .step(Step::new("confirm_ticket", action(timing, confirm_ticket, ticket_confirmed)))
}

/// CancelOrder: cancel the ticket, release the stock.
pub fn cancel_order(timing: Timing) -> Definition<OrderData> {
    Definition::new(CANCEL_ORDER)
        .step(Step::new("cancel_ticket", action(timing, cancel_ticket, ticket_cancelled)))
        .step(Step::new("release_stock", action(timing, release, released)))
}

/// Both sagas, as the reply handler and the deadline sweep know them.
pub fn definitions(timing: Timing) -> Definitions {
    Definitions::new().with(create_order(timing)).with(cancel_order(timing))
}

/// The hooks that start the sagas in the write's transaction: CreateOrder
/// when an order is placed, CancelOrder when its cancellation is requested.
pub fn hooks(timing: Timing) -> Hooks {
    Hooks { placed: starts(create_order(timing)), cancel_requested: starts(cancel_order(timing)) }
}

fn starts(definition: Definition<OrderData>) -> Hook {
    let definition = Arc::new(definition);
    Arc::new(move |work: &mut UnitOfWork, order: &Order, metadata: &Metadata| {
        let (definition, data, metadata) = (definition.clone(), OrderData::of(order), metadata.clone());
        Box::pin(async move {
            saga::start(work, &definition, data.order_id, &data, &metadata).await?;
            Ok(())
        })
    })
}

/// Applies the participants' replies to the sagas and the orders.
#[derive(Debug, Clone)]
pub struct Replies {
    definitions: Arc<Definitions>,
}

impl Replies {
    /// Replies to the sagas of `definitions`.
    pub fn new(definitions: Definitions) -> Self {
        Self { definitions: Arc::new(definitions) }
    }

    async fn apply<E: Event>(&self, work: &mut UnitOfWork, event: &DomainEvent<E>) -> Result<(), HandlerError> {
        let Some(reply) = Reply::about_order(event).map_err(rejected)? else { return Ok(()) };
        let order = OrderId::from(reply.subject);
        let metadata = Metadata::caused_by(crate::BLUEPRINT.name(), event);
        let outcomes = saga::on_reply(work, &self.definitions, &reply).await.map_err(saga_error)?;
        for outcome in outcomes {
            let applied = match (outcome.saga_type.as_str(), &outcome.effect) {
                (CREATE_ORDER, Effect::Completed) => service::approve(work, order, &metadata).await,
                (CREATE_ORDER, Effect::Failed { reason }) => service::reject(work, order, reason, &metadata).await,
                (CANCEL_ORDER, Effect::Completed) => service::cancelled(work, order, &metadata).await,
                (CANCEL_ORDER, Effect::Failed { reason }) => {
                    // The kitchen's own word for where the ticket is, if it refused.
                    let status = match reply.payload::<KitchenEvent>() {
                        Some(KitchenEvent::TicketCancellationRefused { status, .. }) => status,
                        _ => reason.clone(),
                    };
                    service::cancellation_refused(work, order, &status, &metadata).await
                }
                _ => continue,
            };
            publish(work, applied).await?;
        }
        self.follow_ticket(work, order, &reply, &metadata).await
    }

    /// After approval, the order follows its ticket.
    async fn follow_ticket(
        &self,
        work: &mut UnitOfWork,
        order: OrderId,
        reply: &Reply,
        metadata: &Metadata,
    ) -> Result<(), HandlerError> {
        let applied = match reply.payload::<KitchenEvent>() {
            Some(KitchenEvent::TicketPreparationStarted { .. }) => {
                let applied = service::preparing(work, order, metadata).await;
                if matches!(&applied, Ok(Applied { event: Some(_), .. })) {
                    send(work, order, InventoryCommand::CommitStock { order_id: order }, metadata).await?;
                }
                applied
            }
            Some(KitchenEvent::TicketReady { .. }) => service::ready(work, order, metadata).await,
            Some(KitchenEvent::TicketPickedUp { .. }) => service::picked_up(work, order, metadata).await,
            Some(KitchenEvent::TicketRejected { reason, .. }) => {
                let applied =
                    service::reject(work, order, &format!("the kitchen rejected it: {reason}"), metadata).await;
                if matches!(&applied, Ok(Applied { event: Some(_), .. })) {
                    send(work, order, InventoryCommand::ReleaseStock { order_id: order }, metadata).await?;
                }
                applied
            }
            _ => return Ok(()),
        };
        match applied {
            Ok(applied) => publish(work, Ok(applied)).await,
            // An order that is not where the event would move it from (a
            // ticket event for an order the saga already settled) is left alone.
            Err(crate::error::Error::Domain(refusal)) => {
                tracing::debug!(order_id = %order, %refusal, "ticket event does not move the order");
                Ok(())
            }
            Err(error) => Err(classify(error)),
        }
    }
}

impl TransactionalHandler<InventoryEvent> for Replies {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<InventoryEvent>) -> Result<(), HandlerError> {
        Replies::apply(self, work, event).await
    }
}

impl TransactionalHandler<KitchenEvent> for Replies {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<KitchenEvent>) -> Result<(), HandlerError> {
        Replies::apply(self, work, event).await
    }
}

/// Appends the order's event, if the change made one.
async fn publish(work: &mut UnitOfWork, applied: Result<Applied, crate::error::Error>) -> Result<(), HandlerError> {
    let applied = applied.map_err(classify)?;
    if let Some(event) = applied.event {
        work.append(&[event]).await.map_err(|error| HandlerError::from(anyhow::Error::from(error)))?;
    }
    Ok(())
}

/// Sends `command` about `order` outside any saga (committing or releasing
/// stock as the ticket moves).
async fn send(
    work: &mut UnitOfWork,
    order: OrderId,
    command: InventoryCommand,
    metadata: &Metadata,
) -> Result<(), HandlerError> {
    let command = DomainEvent::new(order, 1, command, metadata.clone());
    work.append(&[command]).await.map_err(|error| HandlerError::from(anyhow::Error::from(error)))
}

fn classify(error: crate::error::Error) -> HandlerError {
    anyhow::Error::from(error).into()
}

fn saga_error(error: saga::Error) -> HandlerError {
    anyhow::Error::from(error).into()
}

fn rejected(error: saga::Error) -> HandlerError {
    HandlerError::Rejected(error.into())
}
