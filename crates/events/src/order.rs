//! Events of the `order-events` stream, published by the order service.
//!
//! The aggregate id of every event is the [`OrderId`](crate::OrderId), so no
//! payload repeats it. An order's life: `OrderPlaced` (approval pending) →
//! `OrderApproved` or `OrderRejected` → `OrderPreparing` → `OrderReady` →
//! `OrderPickedUp` → `OrderCompleted`; an approved order may be cancelled
//! (`OrderCancellationRequested` → `OrderCancelled`), and a cancellation the
//! kitchen refuses is `OrderCancellationRefused`, the order back where it was.

use crate::ids::{MenuItemId, ReservationId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything that happens to an order. The aggregate id is the order's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    /// An order was placed and awaits approval (stock and kitchen).
    OrderPlaced {
        /// `dine_in` or `takeaway`.
        kind: String,
        /// The reservation a dine-in order belongs to, if any.
        reservation_id: Option<ReservationId>,
        /// The table a dine-in order is served at, if given.
        table: Option<String>,
        /// What was ordered, with names and prices as they were at placing.
        lines: Vec<OrderLine>,
        /// ISO 4217 code of every line's price and of the total.
        currency: String,
        /// The sum of the lines, in minor units of `currency`.
        total_cents: i64,
    },
    /// Stock is held and the kitchen has the ticket: the order goes ahead.
    OrderApproved {},
    /// The order cannot be served.
    OrderRejected {
        /// Why, naming the items (and their shortage) or the kitchen's reason.
        reason: String,
    },
    /// Someone asked to cancel the order; the cancellation is under way.
    OrderCancellationRequested {},
    /// The order was called off: no ticket, no stock held.
    OrderCancelled {},
    /// The cancellation was refused (cooking has begun); the order is back
    /// in the status it had.
    OrderCancellationRefused {
        /// The kitchen ticket's status when it refused, such as `preparing`.
        status: String,
    },
    /// The kitchen began cooking the order.
    OrderPreparing {},
    /// The order is cooked and waits at the pass.
    OrderReady {},
    /// The order left the kitchen.
    OrderPickedUp {},
    /// The order was served or handed over and is closed.
    OrderCompleted {},
}

crate::event_family!(
    OrderEvent,
    "order-events",
    [
        OrderPlaced,
        OrderApproved,
        OrderRejected,
        OrderCancellationRequested,
        OrderCancelled,
        OrderCancellationRefused,
        OrderPreparing,
        OrderReady,
        OrderPickedUp,
        OrderCompleted,
    ]
);

/// One line of an order as placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    /// The menu item ordered.
    pub menu_item_id: MenuItemId,
    /// Its name when the order was placed.
    pub name: String,
    /// Its price when the order was placed, in minor units.
    pub unit_price_cents: i64,
    /// How many portions, 1 to 100.
    pub quantity: u32,
    /// What the guest asked for, such as `no onions`.
    pub notes: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::wire::{covers_every_type, round_trip};
    use crate::envelope::Event;

    fn line() -> OrderLine {
        OrderLine {
            menu_item_id: MenuItemId::new(),
            name: "Steak frites".to_owned(),
            unit_price_cents: 1450,
            quantity: 2,
            notes: Some("medium rare".to_owned()),
        }
    }

    fn order_events() -> Vec<OrderEvent> {
        vec![
            OrderEvent::OrderPlaced {
                kind: "dine_in".to_owned(),
                reservation_id: Some(ReservationId::new()),
                table: Some("12".to_owned()),
                lines: vec![line(), OrderLine { notes: None, ..line() }],
                currency: "EUR".to_owned(),
                total_cents: 5800,
            },
            OrderEvent::OrderApproved {},
            OrderEvent::OrderRejected { reason: "\"Steak frites\": 2 short".to_owned() },
            OrderEvent::OrderCancellationRequested {},
            OrderEvent::OrderCancelled {},
            OrderEvent::OrderCancellationRefused { status: "preparing".to_owned() },
            OrderEvent::OrderPreparing {},
            OrderEvent::OrderReady {},
            OrderEvent::OrderPickedUp {},
            OrderEvent::OrderCompleted {},
        ]
    }

    #[test]
    fn every_order_event_survives_the_wire() {
        covers_every_type(&order_events());
        order_events().into_iter().for_each(round_trip);
        assert_eq!(OrderEvent::STREAM, "order-events");
    }

    #[test]
    fn a_placed_order_is_tagged_by_type_with_its_lines_in_data() {
        let line = line();
        let placed = OrderEvent::OrderPlaced {
            kind: "takeaway".to_owned(),
            reservation_id: None,
            table: None,
            lines: vec![line.clone()],
            currency: "EUR".to_owned(),
            total_cents: 2900,
        };
        let expected = serde_json::json!({
            "type": "OrderPlaced",
            "data": {
                "kind": "takeaway", "reservation_id": null, "table": null, "currency": "EUR", "total_cents": 2900,
                "lines": [{
                    "menu_item_id": line.menu_item_id.to_string(), "name": "Steak frites",
                    "unit_price_cents": 1450, "quantity": 2, "notes": "medium rare",
                }],
            },
        });
        assert_eq!(serde_json::to_value(&placed).unwrap_or_else(|e| panic!("{e}")), expected);
        let parsed: OrderEvent = serde_json::from_value(expected).unwrap_or_else(|e| panic!("parse: {e}"));
        assert_eq!(parsed, placed);
        let refused = OrderEvent::OrderCancellationRefused { status: "ready".to_owned() };
        assert_eq!(
            serde_json::to_value(&refused).unwrap_or_else(|e| panic!("{e}")),
            serde_json::json!({"type": "OrderCancellationRefused", "data": {"status": "ready"}})
        );
    }
}
