//! The guest's capability for one order ([`service_kit::capability`]):
//! tokens behind the prefix `ord_`.

pub use service_kit::capability::{ManageToken, hash, matches};

/// The prefix of every order's token; one of [`service_kit::auth::CAPABILITY_PREFIXES`].
pub const PREFIX: &str = "ord_";

/// A new token for a order.
pub fn generate() -> ManageToken {
    ManageToken::generate(PREFIX)
}
