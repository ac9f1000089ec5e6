//! Typed identifiers shared by every service that speaks the contract.
//!
//! A `MenuId` cannot be passed where a `ReservationId` is expected, even though
//! both are UUIDs underneath; the type says which aggregate an id names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (v7) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID underneath.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// The id of one event, unique across all streams (UUID v7, so ids sort by creation time).
    EventId
);
typed_id!(
    /// The id of a menu aggregate.
    MenuId
);
typed_id!(
    /// The id of an item on a menu.
    MenuItemId
);
typed_id!(
    /// The id of a reservation aggregate.
    ReservationId
);
typed_id!(
    /// The id of an ingredient the inventory service stocks.
    IngredientId
);
typed_id!(
    /// The id of an order aggregate; commands about an order and their answers carry it.
    OrderId
);
typed_id!(
    /// The id of a kitchen ticket, one per order.
    TicketId
);
