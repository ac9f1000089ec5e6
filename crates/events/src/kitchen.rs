//! Events of the `kitchen-events` stream, published by the kitchen service,
//! and the commands of the `kitchen-commands` stream, which the order saga
//! sends it.
//!
//! The kitchen keeps one **ticket** per order. Every event carries the
//! [`OrderId`] of the ticket's order, so that the saga can match an answer to
//! its command without knowing ticket ids; the aggregate id of an event is the
//! [`TicketId`](crate::TicketId), and that of a command the order's.
//!
//! A ticket's life: `TicketCreated` (pending) → `TicketConfirmed` (awaiting
//! acceptance) → `TicketAccepted` or `TicketRejected` → `TicketPreparationStarted`
//! → `TicketReady` → `TicketPickedUp`; it can be cancelled until preparation
//! starts (`TicketCancelled`), and after that a cancellation is answered by
//! `TicketCancellationRefused`.

use crate::ids::{MenuItemId, OrderId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything that happens to a kitchen ticket. The aggregate id is the ticket's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum KitchenEvent {
    /// A ticket was made for an order, pending until the order is confirmed.
    /// Answers `CreateTicket`.
    TicketCreated {
        /// The order the ticket is for.
        order_id: OrderId,
        /// What to cook, in the order's order.
        lines: Vec<TicketLine>,
    },
    /// The order went through: the ticket awaits the kitchen's acceptance.
    /// Answers `ConfirmTicket`.
    TicketConfirmed {
        /// The order the ticket is for.
        order_id: OrderId,
    },
    /// The kitchen took the ticket on and promised a time.
    TicketAccepted {
        /// The order the ticket is for.
        order_id: OrderId,
        /// When the kitchen expects the order to be ready.
        ready_by: DateTime<Utc>,
    },
    /// The kitchen refused the ticket; the order cannot be served.
    TicketRejected {
        /// The order the ticket is for.
        order_id: OrderId,
        /// Why, in the kitchen's words.
        reason: String,
    },
    /// Cooking began; from now on the ticket can no longer be cancelled.
    TicketPreparationStarted {
        /// The order the ticket is for.
        order_id: OrderId,
    },
    /// A cook bumped a line: it is done.
    TicketLineDone {
        /// The order the ticket is for.
        order_id: OrderId,
        /// The line's position on the ticket, from 1.
        line: u32,
    },
    /// A line bumped by mistake was recalled: it is not done after all.
    TicketLineRecalled {
        /// The order the ticket is for.
        order_id: OrderId,
        /// The line's position on the ticket, from 1.
        line: u32,
    },
    /// Everything is cooked; the order waits at the pass.
    TicketReady {
        /// The order the ticket is for.
        order_id: OrderId,
    },
    /// The order left the kitchen.
    TicketPickedUp {
        /// The order the ticket is for.
        order_id: OrderId,
    },
    /// The ticket was called off before cooking began. Answers `CancelTicket`.
    TicketCancelled {
        /// The order the ticket is for.
        order_id: OrderId,
    },
    /// The ticket could not be cancelled: cooking has begun. Answers `CancelTicket`.
    TicketCancellationRefused {
        /// The order the ticket is for.
        order_id: OrderId,
        /// The ticket's status when the cancellation was refused, such as `preparing`.
        status: String,
    },
    /// The promised time passed before the ticket was ready. Published once per ticket.
    TicketOverdue {
        /// The order the ticket is for.
        order_id: OrderId,
        /// The time the kitchen had promised.
        ready_by: DateTime<Utc>,
    },
}

crate::event_family!(
    KitchenEvent,
    "kitchen-events",
    [
        TicketCreated,
        TicketConfirmed,
        TicketAccepted,
        TicketRejected,
        TicketPreparationStarted,
        TicketLineDone,
        TicketLineRecalled,
        TicketReady,
        TicketPickedUp,
        TicketCancelled,
        TicketCancellationRefused,
        TicketOverdue,
    ]
);

/// What the order saga asks of the kitchen. The aggregate id is the order's;
/// the kitchen answers each with a [`KitchenEvent`] carrying the same `order_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum KitchenCommand {
    /// Make a pending ticket for the order. Answered by `TicketCreated`, also
    /// when the ticket already exists.
    CreateTicket {
        /// The order to cook.
        order_id: OrderId,
        /// What the order asks for.
        lines: Vec<CommandLine>,
    },
    /// The order went through: put its ticket before the kitchen. Answered by
    /// `TicketConfirmed`.
    ConfirmTicket {
        /// The order whose ticket to confirm.
        order_id: OrderId,
    },
    /// Call the order's ticket off. Answered by `TicketCancelled`, or by
    /// `TicketCancellationRefused` once cooking has begun.
    CancelTicket {
        /// The order whose ticket to cancel.
        order_id: OrderId,
    },
}

crate::event_family!(KitchenCommand, "kitchen-commands", [CreateTicket, ConfirmTicket, CancelTicket]);

/// One line of a ticket as the kitchen sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketLine {
    /// Its position on the ticket, from 1; `TicketLineDone` names it.
    pub line: u32,
    /// The menu item to cook.
    pub menu_item_id: MenuItemId,
    /// The item's name, if the kitchen has seen it on a menu.
    pub name: Option<String>,
    /// How many portions, at least one.
    pub quantity: u32,
    /// The station that cooks it, from the item's menu category.
    pub station: String,
    /// What the guest asked for, such as `no onions`.
    pub notes: Option<String>,
    /// Whether the kitchen has seen the item on a menu; an unknown item goes
    /// to the default station with no name.
    pub known: bool,
}

/// One line of a `CreateTicket` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandLine {
    /// The menu item ordered.
    pub menu_item_id: MenuItemId,
    /// How many portions, at least one.
    pub quantity: u32,
    /// What the guest asked for.
    pub notes: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::wire::{covers_every_type, json, round_trip};
    use crate::envelope::Event;
    use chrono::SubsecRound;

    fn ticket_line(line: u32) -> TicketLine {
        TicketLine {
            line,
            menu_item_id: MenuItemId::new(),
            name: Some("Steak frites".to_owned()),
            quantity: 2,
            station: "grill".to_owned(),
            notes: Some("medium rare".to_owned()),
            known: true,
        }
    }

    fn kitchen_events() -> Vec<KitchenEvent> {
        let order_id = OrderId::new();
        let ready_by = Utc::now().trunc_subsecs(6);
        let unknown =
            TicketLine { name: None, station: "pass".to_owned(), notes: None, known: false, ..ticket_line(2) };
        vec![
            KitchenEvent::TicketCreated { order_id, lines: vec![ticket_line(1), unknown] },
            KitchenEvent::TicketConfirmed { order_id },
            KitchenEvent::TicketAccepted { order_id, ready_by },
            KitchenEvent::TicketRejected { order_id, reason: "out of gas".to_owned() },
            KitchenEvent::TicketPreparationStarted { order_id },
            KitchenEvent::TicketLineDone { order_id, line: 1 },
            KitchenEvent::TicketLineRecalled { order_id, line: 1 },
            KitchenEvent::TicketReady { order_id },
            KitchenEvent::TicketPickedUp { order_id },
            KitchenEvent::TicketCancelled { order_id },
            KitchenEvent::TicketCancellationRefused { order_id, status: "preparing".to_owned() },
            KitchenEvent::TicketOverdue { order_id, ready_by },
        ]
    }

    fn kitchen_commands() -> Vec<KitchenCommand> {
        let order_id = OrderId::new();
        vec![
            KitchenCommand::CreateTicket {
                order_id,
                lines: vec![CommandLine { menu_item_id: MenuItemId::new(), quantity: 1, notes: None }],
            },
            KitchenCommand::ConfirmTicket { order_id },
            KitchenCommand::CancelTicket { order_id },
        ]
    }

    #[test]
    fn every_kitchen_event_and_command_survives_the_wire() {
        covers_every_type(&kitchen_events());
        kitchen_events().into_iter().for_each(round_trip);
        covers_every_type(&kitchen_commands());
        kitchen_commands().into_iter().for_each(round_trip);
        assert_eq!((KitchenEvent::STREAM, KitchenCommand::STREAM), ("kitchen-events", "kitchen-commands"));
    }

    #[test]
    fn a_create_command_is_tagged_by_type_with_its_lines_in_data() {
        let order_id = OrderId::new();
        let menu_item_id = MenuItemId::new();
        let command = KitchenCommand::CreateTicket {
            order_id,
            lines: vec![CommandLine { menu_item_id, quantity: 2, notes: Some("no onions".to_owned()) }],
        };
        let expected = serde_json::json!({
            "type": "CreateTicket",
            "data": {
                "order_id": order_id.to_string(),
                "lines": [{ "menu_item_id": menu_item_id.to_string(), "quantity": 2, "notes": "no onions" }],
            },
        });
        assert_eq!(json(&command), expected);
        let parsed: KitchenCommand = serde_json::from_value(expected).unwrap_or_else(|e| panic!("parse: {e}"));
        assert_eq!(parsed, command);
    }

    #[test]
    fn a_created_ticket_lists_each_line_with_its_position_station_and_whether_it_is_known() {
        let order_id = OrderId::new();
        let line = ticket_line(1);
        let created = KitchenEvent::TicketCreated { order_id, lines: vec![line.clone()] };
        assert_eq!(
            json(&created),
            serde_json::json!({
                "type": "TicketCreated",
                "data": {
                    "order_id": order_id.to_string(),
                    "lines": [{
                        "line": 1,
                        "menu_item_id": line.menu_item_id.to_string(),
                        "name": "Steak frites",
                        "quantity": 2,
                        "station": "grill",
                        "notes": "medium rare",
                        "known": true,
                    }],
                },
            })
        );
    }

    #[test]
    fn a_refused_cancellation_says_what_status_the_ticket_is_in() {
        let order_id = OrderId::new();
        let refused = KitchenEvent::TicketCancellationRefused { order_id, status: "ready".to_owned() };
        assert_eq!(
            json(&refused),
            serde_json::json!({
                "type": "TicketCancellationRefused",
                "data": { "order_id": order_id.to_string(), "status": "ready" },
            })
        );
    }
}
