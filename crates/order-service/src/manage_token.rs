//! An order's manage token: the guest's capability to read and cancel that
//! one order, with no account.
//!
//! A copy of reservation-service's `manage_token` with the prefix `ord_`
//! (generalising both into service-kit is left for later, to keep this
//! change to one crate). It is 256 random bits, base64url, behind the prefix,
//! shown once in the order's 202 and stored only as its SHA-256. A token of
//! another order is answered like an unknown id (404).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The prefix of every order's token; one of [`service_kit::auth::CAPABILITY_PREFIXES`].
pub const PREFIX: &str = "ord_";

/// A freshly made manage token, in the clear: returned once, then dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageToken(String);

impl ManageToken {
    /// A new random token.
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(secret)))
    }

    /// The token as the guest sends it back.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is stored: the SHA-256 of the token.
    pub fn hash(&self) -> [u8; 32] {
        hash(&self.0)
    }
}

/// The SHA-256 of `token`.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `presented` is the token whose hash is `stored`, comparing in
/// time independent of where the hashes differ.
pub fn matches(presented: &str, stored: &[u8]) -> bool {
    let presented = hash(presented);
    stored.len() == presented.len() && stored.iter().zip(presented).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_prefixed_holds_256_bits_and_matches_only_its_own_hash() {
        let token = ManageToken::generate();
        let other = ManageToken::generate();
        assert!(token.as_str().starts_with("ord_"));
        assert_eq!(URL_SAFE_NO_PAD.decode(&token.as_str()[4..]).map(|bytes| bytes.len()), Ok(32));
        assert!(matches(token.as_str(), &token.hash()));
        assert!(!matches(other.as_str(), &token.hash()));
        assert!(!matches(token.as_str(), &[]));
        assert!(service_kit::auth::is_capability(token.as_str()));
    }
}
