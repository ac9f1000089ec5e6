//! An identity provider's key set (JWKS), cached by `kid`.
//!
//! The set is fetched when a token names a `kid` not in the cache (the first
//! token included), but at most once per cooldown (`AUTH_JWKS_COOLDOWN_SECONDS`, 30 by default): a stream of
//! tokens with made-up `kid`s cannot make the service hammer the provider. A
//! failed fetch keeps the keys already known, so a provider outage does not
//! log everyone out. Only EdDSA (Ed25519) and ES256 (P-256) keys are taken;
//! others in the set (RSA, symmetric) are ignored. The URL may be https
//! (rustls with the webpki roots), as an identity provider's is.

use super::{AuthError, TokenError};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long one fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The key set at one URL and what is known of it.
#[derive(Debug)]
pub(super) struct JwksKeys {
    url: reqwest::Url,
    client: reqwest::Client,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

impl JwksKeys {
    /// The key set at `url`, not fetched yet, refetched at most once per `cooldown`.
    pub(super) fn new(url: &str, cooldown: Duration) -> Result<Self, AuthError> {
        let url = reqwest::Url::parse(url).map_err(|error| AuthError::JwksUrl(error.to_string()))?;
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_default();
        Ok(Self { url, client, cooldown, state: Mutex::new(State::default()) })
    }

    /// The key `kid` names (or the only key, for a token without `kid`),
    /// refetching the set if it is unknown and the cooldown has passed.
    pub(super) async fn key(&self, kid: Option<&str>) -> Result<(Algorithm, DecodingKey), TokenError> {
        let mut state = self.state.lock().await;
        if let Some(found) = find(&state.keys, kid) {
            return Ok(found);
        }
        let may_fetch = state.fetched_at.is_none_or(|at| at.elapsed() >= self.cooldown);
        if may_fetch {
            state.fetched_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => state.keys = keys,
                Err(error) => {
                    tracing::warn!(url = %self.url, %error, "fetching the JWKS failed; keeping the keys known")
                }
            }
        }
        if let Some(found) = find(&state.keys, kid) {
            return Ok(found);
        }
        if state.keys.is_empty() { Err(TokenError::KeysUnavailable) } else { Err(TokenError::UnknownKey) }
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, reqwest::Error> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = self.client.get(self.url.clone()).send().await?.error_for_status()?.json().await?;
        let keys: HashMap<_, _> = set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
            .filter_map(|jwk| {
                let algorithm = algorithm_of(&jwk)?;
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                Some((jwk.common.key_id.clone().unwrap_or_default(), (algorithm, key)))
            })
            .collect();
        tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
        Ok(keys)
    }
}

fn find(keys: &HashMap<String, (Algorithm, DecodingKey)>, kid: Option<&str>) -> Option<(Algorithm, DecodingKey)> {
    match kid {
        Some(kid) => keys.get(kid).cloned(),
        None if keys.len() == 1 => keys.values().next().cloned(),
        None => None,
    }
}

/// The algorithm a key pins, from its parameters (and its `alg`, which must agree).
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let stated = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(_) => return None,
    };
    stated.is_none_or(|stated| stated == algorithm).then_some(algorithm)
}
