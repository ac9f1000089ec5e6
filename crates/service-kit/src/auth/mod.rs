//! Who is calling: staff JWTs verified against the platform's public key (or
//! an identity provider's JWKS), and the scopes they carry.
//!
//! Every service checks authorization itself, because each is reachable on
//! its own port; the gateway only rejects bad tokens early. So verification
//! lives here once, and a service states what a route needs with an
//! extractor ([`Staff`], or [`Credential`] where a guest's capability is
//! accepted too).
//!
//! The algorithm is pinned by the configured key: an Ed25519 key verifies
//! only EdDSA tokens, a P-256 key only ES256 ones, whatever the token's header
//! claims. `none`, HMAC and RSA are never accepted, and neither is a token
//! with a `crit` header, since this verifier understands no extension.
//! `iss`, `aud`, `exp` and `sub` are required; `exp` and `nbf` are checked
//! with [`AuthSettings::leeway_seconds`] of clock skew.
//!
//! Verifying a signature costs tens to hundreds of microseconds, so a
//! verified token is remembered by the SHA-256 of its text until its `exp`
//! (at most [`CACHE_CAPACITY`] of them); the hot path is a hash and a lookup.
//!
//! **No key configured** is a configuration error: [`Verifier::from_settings`]
//! fails and the service (or gateway) refuses to start, saying how to make a
//! key. There is deliberately no switch that turns authentication off.

mod extract;
mod jwks;
#[cfg(test)]
mod tests;

pub use extract::{
    Credential, MissingScope, RequiredScope, Staff, insufficient_scope, invalid_token, missing_token, scopes,
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The issuer and audience the platform's own tokens carry by default.
pub const PLATFORM: &str = "restaurant-platform";

/// How many verified tokens a process remembers at most.
pub const CACHE_CAPACITY: usize = 10_000;

/// The public key of the fixed key pair tests sign with (`testkit::auth`).
/// [`AuthSettings::for_tests`] trusts it; a deployment never should.
pub const TEST_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAdC/fv+Rcb4CfSKlg4TJGNuq4cxKL5PMepj/Ch3pqGsg=
-----END PUBLIC KEY-----
";

/// Where the keys that sign staff tokens come from, and what the tokens must say.
/// Flattened into [`crate::Settings`] and the gateway's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// A PEM public key (Ed25519 for EdDSA, P-256 for ES256) that signs staff
    /// tokens, as `platform-ctl auth init` writes it.
    #[arg(long = "auth-public-key-file", env = "AUTH_PUBLIC_KEY_FILE")]
    pub public_key_file: Option<PathBuf>,
    /// An identity provider's JWKS URL, used instead of a key file: keys are
    /// cached by `kid` and refetched (at most once per `AUTH_JWKS_COOLDOWN_SECONDS`) when a token names
    /// an unknown one.
    #[arg(long = "auth-jwks-url", env = "AUTH_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The shortest time, in seconds, between two fetches of the JWKS, however
    /// many tokens name a `kid` it does not know.
    #[arg(long = "auth-jwks-cooldown-seconds", env = "AUTH_JWKS_COOLDOWN_SECONDS", default_value_t = 30)]
    pub jwks_cooldown_seconds: u64,
    /// The `iss` every token must carry.
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER", default_value = PLATFORM)]
    pub issuer: String,
    /// The `aud` every token must carry (one of its audiences).
    #[arg(long = "auth-audience", env = "AUTH_AUDIENCE", default_value = PLATFORM)]
    pub audience: String,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds.
    #[arg(long = "auth-leeway-seconds", env = "AUTH_LEEWAY_SECONDS", default_value_t = 30)]
    pub leeway_seconds: u64,
    /// A PEM public key given in code rather than in a file (tests); used
    /// before `public_key_file`.
    #[arg(skip)]
    pub public_key_pem: Option<String>,
}

impl AuthSettings {
    /// Settings trusting [`TEST_PUBLIC_KEY_PEM`], with the default issuer,
    /// audience and leeway: what tests start services with.
    pub fn for_tests() -> Self {
        Self {
            public_key_file: None,
            jwks_url: None,
            jwks_cooldown_seconds: 30,
            issuer: PLATFORM.to_owned(),
            audience: PLATFORM.to_owned(),
            leeway_seconds: 30,
            public_key_pem: Some(TEST_PUBLIC_KEY_PEM.to_owned()),
        }
    }
}

/// A permission a staff token carries in its `scope` claim (space-separated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Create, activate, deactivate menus and change their items.
    MenusWrite,
    /// List reservations (guest PII) and change any of them.
    ReservationsManage,
    /// Manage stock.
    InventoryManage,
    /// Work the kitchen's tickets.
    KitchenOperate,
    /// Manage orders.
    OrdersManage,
    /// Operate the platform: dead letters, sagas, consumer groups.
    PlatformOperate,
}

impl Scope {
    /// Every scope, in the order DESIGN.md lists them.
    pub const ALL: [Self; 6] = [
        Self::MenusWrite,
        Self::ReservationsManage,
        Self::InventoryManage,
        Self::KitchenOperate,
        Self::OrdersManage,
        Self::PlatformOperate,
    ];

    /// The scope as tokens carry it, such as `menus:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MenusWrite => "menus:write",
            Self::ReservationsManage => "reservations:manage",
            Self::InventoryManage => "inventory:manage",
            Self::KitchenOperate => "kitchen:operate",
            Self::OrdersManage => "orders:manage",
            Self::PlatformOperate => "platform:operate",
        }
    }

    /// The scope named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller a verified staff token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub subject: String,
    /// The platform scopes in its `scope` claim (others are ignored).
    pub scopes: Vec<Scope>,
    /// Its `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

impl Identity {
    /// Whether the token carries `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a service or gateway cannot set up verification. It refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither a key file nor a JWKS URL is configured.
    #[error(
        "no key to verify staff tokens with: set AUTH_PUBLIC_KEY_FILE (make one with `platform-ctl auth init`) \
         or AUTH_JWKS_URL"
    )]
    NotConfigured,
    /// Both a key file and a JWKS URL are configured; which is meant is unclear.
    #[error("set AUTH_PUBLIC_KEY_FILE or AUTH_JWKS_URL, not both")]
    BothConfigured,
    /// The key file cannot be read.
    #[error("reading the public key file {path}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key is neither an Ed25519 nor an EC public key in PEM.
    #[error("the public key is neither an Ed25519 nor a P-256 public key in PEM (SubjectPublicKeyInfo)")]
    UnsupportedKey,
    /// The JWKS URL is not a URL.
    #[error("AUTH_JWKS_URL is not a valid URL: {0}")]
    JwksUrl(String),
}

/// Why a token was refused: the `error_description` of a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and claims.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than the configured key's (`none` and HMAC included).
    #[error("the token is not signed with the algorithm of the platform's key")]
    WrongAlgorithm,
    /// The header has a `crit` extension this verifier does not understand.
    #[error("the token has critical header parameters this service does not understand")]
    CriticalHeader,
    /// The JWKS has no key of that `kid`.
    #[error("the token is signed by an unknown key")]
    UnknownKey,
    /// The JWKS could not be fetched and no key is known yet.
    #[error("the keys that sign tokens cannot be fetched right now")]
    KeysUnavailable,
    /// The signature does not verify with the key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing or of the wrong type.
    #[error("the token lacks a required claim or has one of the wrong type")]
    MissingClaim,
}

/// The claims the platform reads from a token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    scope: String,
}

/// Where a verifier's keys come from.
#[derive(Debug)]
enum Keys {
    /// One configured key and the algorithm it pins.
    Fixed(Algorithm, DecodingKey),
    /// An identity provider's key set.
    Jwks(jwks::JwksKeys),
}

/// Verifies staff tokens; cheap to clone (one cache and key set shared by clones).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway: u64,
    cache: Mutex<HashMap<[u8; 32], Identity>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `settings`: the key in code or in the file, or the JWKS
    /// URL (fetched on the first token).
    ///
    /// # Errors
    /// No key source or two are configured, the key file cannot be read, or
    /// the key is not an Ed25519 or P-256 public key in PEM.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthError> {
        let keys = match (&settings.public_key_pem, &settings.public_key_file, &settings.jwks_url) {
            (_, Some(_), Some(_)) | (Some(_), _, Some(_)) => return Err(AuthError::BothConfigured),
            (Some(pem), _, None) => pem_key(pem.as_bytes())?,
            (None, Some(path), None) => {
                let pem = std::fs::read(path).map_err(|source| AuthError::ReadKey { path: path.clone(), source })?;
                pem_key(&pem)?
            }
            (None, None, Some(url)) => {
                Keys::Jwks(jwks::JwksKeys::new(url, Duration::from_secs(settings.jwks_cooldown_seconds))?)
            }
            (None, None, None) => return Err(AuthError::NotConfigured),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway: settings.leeway_seconds,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The caller `token` names, if it verifies: a signature by the
    /// configured key in that key's algorithm, the configured `iss` and
    /// `aud`, an `exp` not past and an `nbf` (if any) not ahead, allowing the
    /// leeway. A token verified before and not expired since is answered from
    /// the cache.
    ///
    /// # Errors
    /// What is wrong with the token ([`TokenError`]).
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(identity) = self.cached(&digest, now) {
            return Ok(identity);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.crit.is_some() {
            return Err(TokenError::CriticalHeader);
        }
        let (algorithm, key) = match &self.inner.keys {
            Keys::Fixed(algorithm, key) => (*algorithm, key.clone()),
            Keys::Jwks(keys) => keys.key(header.kid.as_deref()).await?,
        };
        if header.alg != algorithm {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.inner.leeway;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|error| token_error(&error))?;
        let identity = Identity {
            subject: claims.claims.sub,
            scopes: claims.claims.scope.split_whitespace().filter_map(Scope::parse).collect(),
            expires_at: claims.claims.exp,
        };
        self.remember(digest, &identity, now);
        Ok(identity)
    }

    fn cached(&self, digest: &[u8; 32], now: u64) -> Option<Identity> {
        let cache = self.inner.cache.lock().ok()?;
        cache.get(digest).filter(|identity| identity.expires_at > now).cloned()
    }

    /// Keeps `identity` until its `exp`. A full cache first drops what has
    /// expired, and if that frees nothing, everything: a flood of distinct
    /// tokens costs verification, never unbounded memory.
    fn remember(&self, digest: [u8; 32], identity: &Identity, now: u64) {
        let Ok(mut cache) = self.inner.cache.lock() else { return };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, identity| identity.expires_at > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(digest, identity.clone());
    }
}

/// The key in `pem` and the algorithm it pins: Ed25519 → EdDSA, EC → ES256.
fn pem_key(pem: &[u8]) -> Result<Keys, AuthError> {
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(Keys::Fixed(Algorithm::EdDSA, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok(Keys::Fixed(Algorithm::ES256, key));
    }
    Err(AuthError::UnsupportedKey)
}

fn token_error(error: &jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => {
            TokenError::BadSignature
        }
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            TokenError::MissingClaim
        }
        _ => TokenError::Malformed,
    }
}

/// The prefixes of guest capabilities: random secrets a service hands out
/// once (a booking's manage token, `rsv_…`; an order's, `ord_…`) and checks against a stored
/// hash. They are bearer tokens too, but not JWTs: the gateway passes them
/// through and [`Credential`] hands them to the service to check.
pub const CAPABILITY_PREFIXES: &[&str] = &["rsv_", "ord_"];

/// Whether `token` is a guest capability rather than a JWT.
pub fn is_capability(token: &str) -> bool {
    CAPABILITY_PREFIXES.iter().any(|prefix| token.starts_with(prefix))
}

/// The bearer token in an `Authorization` header value, if it is one.
pub fn bearer(value: &axum::http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}
