//! Dine-in orders from seated parties: a `ReservationSeated` that carries a
//! pre-order opens the party's order, placed through the CreateOrder saga as
//! any other order, in the inbox transaction of the event (so a redelivery
//! places nothing twice).
//!
//! The order holds the pre-ordered items the menu still offers at seating;
//! items that can no longer be served (the booking was flagged for them
//! when the menu changed) are left out and logged, and a pre-order of
//! nothing servable opens no order: the waiter takes the order at the table.

use crate::domain::{Draft, DraftLine, Kind, Order, Quantity};
use crate::service::Hook;
use crate::{menu_view, store};
use events::consumer::HandlerError;
use events::inbox::TransactionalHandler;
use events::{DomainEvent, Metadata, OrderId, ReservationEvent, ReservationId, UnitOfWork};

/// Opens the dine-in orders of seated parties, running the placing `hook`
/// (the CreateOrder saga's start) with each.
#[derive(Clone)]
pub struct SeatedParties {
    placed: Hook,
}

impl SeatedParties {
    /// Seated parties whose orders start with `placed`.
    pub fn new(placed: Hook) -> Self {
        Self { placed }
    }
}

impl std::fmt::Debug for SeatedParties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeatedParties")
    }
}

impl TransactionalHandler<ReservationEvent> for SeatedParties {
    fn wants(&self, event: &DomainEvent<ReservationEvent>) -> bool {
        matches!(&event.payload, ReservationEvent::ReservationSeated { pre_order, .. } if !pre_order.is_empty())
    }

    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<ReservationEvent>) -> Result<(), HandlerError> {
        let ReservationEvent::ReservationSeated { pre_order, .. } = &event.payload else { return Ok(()) };
        if pre_order.is_empty() {
            return Ok(());
        }
        let reservation_id = ReservationId::from(event.aggregate_id);
        let items: Vec<_> = pre_order.iter().map(|line| line.menu_item_id).collect();
        let offers = menu_view::offers(&mut **work, &items).await?;
        let (servable, gone): (Vec<_>, Vec<_>) =
            pre_order.iter().partition(|line| offers.get(&line.menu_item_id).is_some_and(Result::is_ok));
        if !gone.is_empty() {
            let gone: Vec<String> = gone.iter().map(|line| line.menu_item_id.to_string()).collect();
            tracing::warn!(%reservation_id, items = %gone.join(", "), "pre-ordered items the menu no longer offers are left out");
        }
        let lines = servable
            .iter()
            .map(|line| {
                let quantity = Quantity::try_from(i64::from(line.quantity)).map_err(|e| anyhow::anyhow!(e.0))?;
                Ok(DraftLine { menu_item_id: line.menu_item_id, quantity, notes: None })
            })
            .collect::<Result<Vec<_>, anyhow::Error>>()
            .map_err(HandlerError::rejected)?;
        if lines.is_empty() {
            tracing::info!(%reservation_id, "nothing pre-ordered can be served; no dine-in order opened");
            return Ok(());
        }
        let draft = Draft::new(Kind::DineIn, Some(reservation_id), None, lines).map_err(HandlerError::rejected)?;
        let priced = draft.price(&offers).map_err(HandlerError::rejected)?;
        let (order, placed) = Order::place(OrderId::new(), draft, priced, service_kit::write::now());
        store::insert(work, &order).await.map_err(anyhow::Error::new)?;
        let metadata = Metadata::caused_by(crate::BLUEPRINT.name(), event);
        work.append(&[DomainEvent::new(order.id, order.version, placed, metadata.clone())])
            .await
            .map_err(anyhow::Error::new)?;
        (self.placed)(work, &order, &metadata).await?;
        tracing::info!(%reservation_id, order_id = %order.id, "dine-in order opened from the pre-order");
        Ok(())
    }
}
