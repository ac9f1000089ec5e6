//! The guest's capability for one booking ([`service_kit::capability`]):
//! tokens behind the prefix `rsv_`.

pub use service_kit::capability::{ManageToken, hash, matches};

/// The prefix of every booking's token; one of [`service_kit::auth::CAPABILITY_PREFIXES`].
pub const PREFIX: &str = "rsv_";

/// A new token for a booking.
pub fn generate() -> ManageToken {
    ManageToken::generate(PREFIX)
}
