//! Events of the `reservation-events` stream, published by the reservation service.

use crate::ids::MenuItemId;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything that happens to a reservation. The aggregate id is the `ReservationId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ReservationEvent {
    /// A guest booked a table; the reservation is pending.
    ReservationCreated {
        /// Who booked.
        guest_name: String,
        /// Contact email, if given.
        guest_email: Option<String>,
        /// Contact phone, if given.
        guest_phone: Option<String>,
        /// How many seats.
        party_size: u16,
        /// When the party arrives.
        starts_at: DateTime<Utc>,
        /// How long the seats are held.
        duration_minutes: u32,
        /// Items ordered ahead.
        pre_order: Vec<PreOrderLine>,
    },
    /// The restaurant confirmed the reservation.
    ReservationConfirmed {},
    /// The reservation was cancelled; its seats are free again.
    ReservationCancelled {
        /// Why, in words.
        reason: String,
    },
    /// The party arrived and sat down. Carries what the order service needs
    /// to open their dine-in order from the pre-order.
    ReservationSeated {
        /// Who booked.
        guest_name: String,
        /// How many sat down.
        party_size: u16,
        /// Items ordered ahead, for the kitchen; may be empty.
        pre_order: Vec<PreOrderLine>,
    },
    /// The party came and left.
    ReservationCompleted {},
    /// The party did not come within the grace period; its seats are free again.
    ReservationNoShow {},
    /// Nobody confirmed the pending booking in time; its seats are free again.
    ReservationExpired {},
}

crate::event_family!(
    ReservationEvent,
    "reservation-events",
    [
        ReservationCreated,
        ReservationConfirmed,
        ReservationCancelled,
        ReservationSeated,
        ReservationCompleted,
        ReservationNoShow,
        ReservationExpired,
    ]
);

/// One pre-ordered item of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreOrderLine {
    /// The menu item.
    pub menu_item_id: MenuItemId,
    /// How many, at least one.
    pub quantity: u32,
}
