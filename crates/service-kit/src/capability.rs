//! A guest's capability: a token that lets its holder act on one thing they
//! made (a booking, an order) with no account. It is 256 random bits,
//! base64url, behind a prefix that says what it is for (one of
//! [`crate::auth::CAPABILITY_PREFIXES`]), shown once when the thing is made
//! and stored only as its SHA-256. A token of another thing is answered like
//! an unknown id (404).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A freshly made capability, in the clear: returned once, then dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageToken(String);

impl ManageToken {
    /// A new random token behind `prefix` (`rsv_`, `ord_`).
    pub fn generate(prefix: &str) -> Self {
        let secret: [u8; 32] = rand::random();
        Self(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret)))
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
        for prefix in crate::auth::CAPABILITY_PREFIXES {
            let token = ManageToken::generate(prefix);
            let other = ManageToken::generate(prefix);
            assert!(token.as_str().starts_with(prefix));
            let secret = URL_SAFE_NO_PAD.decode(&token.as_str()[prefix.len()..]);
            assert_eq!(secret.map(|bytes| bytes.len()), Ok(32));
            assert!(matches(token.as_str(), &token.hash()));
            assert!(!matches(other.as_str(), &token.hash()));
            assert!(!matches(token.as_str(), &[]));
            assert!(crate::auth::is_capability(token.as_str()));
        }
    }
}
