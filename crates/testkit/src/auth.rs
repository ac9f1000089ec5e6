//! Key pairs and tokens for tests of the platform's authentication.
//!
//! [`TestKeys::shared`] is a fixed Ed25519 pair whose public key
//! `service_kit::Settings::ephemeral` trusts, so every service a test starts
//! accepts the tokens it mints ([`staff_token`] carries every scope).
//! [`TestKeys::new`] and [`TestKeys::es256`] make fresh pairs in a temporary
//! directory, for tests of the key file, of JWKS, and of a token signed by a
//! key the service does not trust.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The private half of `service_kit::auth::TEST_PUBLIC_KEY_PEM`. Test-only:
/// it is public, so nothing that trusts its public key is safe.
pub const TEST_PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIG/RjU6KL103XbKf675EFGX4yDg0i8Jem6x77u+r0+Wg
-----END PRIVATE KEY-----
";

/// The issuer and audience services expect by default.
pub const PLATFORM: &str = "restaurant-platform";

/// Every scope of the platform.
pub const ALL_SCOPES: [&str; 6] =
    ["menus:write", "reservations:manage", "inventory:manage", "kitchen:operate", "orders:manage", "platform:operate"];

/// A key pair that signs tokens, its PEM files in a temporary directory.
pub struct TestKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    private_pem: String,
    public_pem: String,
    dir: TempDir,
}

impl std::fmt::Debug for TestKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKeys").field("algorithm", &self.algorithm).field("dir", &self.dir.path()).finish()
    }
}

impl TestKeys {
    /// A fresh Ed25519 (EdDSA) pair.
    ///
    /// # Errors
    /// The temporary directory or a file in it cannot be written.
    pub fn new() -> anyhow::Result<Self> {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let private_pem = signing.to_pkcs8_pem(LineEnding::LF).context("encoding the private key")?.to_string();
        let public_pem =
            signing.verifying_key().to_public_key_pem(LineEnding::LF).context("encoding the public key")?;
        Self::from_pems(Algorithm::EdDSA, private_pem, public_pem)
    }

    /// A fresh P-256 (ES256) pair.
    ///
    /// # Errors
    /// The temporary directory or a file in it cannot be written.
    pub fn es256() -> anyhow::Result<Self> {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let secret = loop {
            if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break secret;
            }
        };
        let private_pem = secret.to_pkcs8_pem(LineEnding::LF).context("encoding the private key")?.to_string();
        let public_pem = secret.public_key().to_public_key_pem(LineEnding::LF).context("encoding the public key")?;
        Self::from_pems(Algorithm::ES256, private_pem, public_pem)
    }

    /// The fixed pair `Settings::ephemeral` trusts.
    ///
    /// # Errors
    /// The temporary directory cannot be written.
    pub fn shared() -> anyhow::Result<&'static Self> {
        static SHARED: OnceLock<TestKeys> = OnceLock::new();
        if let Some(keys) = SHARED.get() {
            return Ok(keys);
        }
        let public_pem = {
            use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
            let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(TEST_PRIVATE_KEY_PEM)
                .map_err(|error| anyhow::anyhow!("decoding the test key: {error}"))?;
            signing.verifying_key().to_public_key_pem(LineEnding::LF).context("encoding the public key")?
        };
        let keys = Self::from_pems(Algorithm::EdDSA, TEST_PRIVATE_KEY_PEM.to_owned(), public_pem)?;
        Ok(SHARED.get_or_init(|| keys))
    }

    fn from_pems(algorithm: Algorithm, private_pem: String, public_pem: String) -> anyhow::Result<Self> {
        let encoding = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_ed_pem(private_pem.as_bytes()),
        }
        .context("reading the private key")?;
        let dir = tempfile::tempdir().context("making a directory for the keys")?;
        std::fs::write(dir.path().join("private.pem"), &private_pem).context("writing the private key")?;
        std::fs::write(dir.path().join("public.pem"), &public_pem).context("writing the public key")?;
        Ok(Self { algorithm, encoding, private_pem, public_pem, dir })
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key as PEM (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The private key as PEM (PKCS#8).
    pub fn private_key_pem(&self) -> &str {
        &self.private_pem
    }

    /// The file holding the public key: what `AUTH_PUBLIC_KEY_FILE` names.
    pub fn public_key_file(&self) -> PathBuf {
        self.dir.path().join("public.pem")
    }

    /// The file holding the private key.
    pub fn private_key_file(&self) -> PathBuf {
        self.dir.path().join("private.pem")
    }

    /// The claims of a valid staff token with `scopes`: subject `test-staff`,
    /// the platform's issuer and audience, valid from now for an hour, with a
    /// fresh `jti` so that no two tokens are alike.
    pub fn claims(scopes: &[&str]) -> Value {
        let now = now();
        json!({
            "sub": "test-staff",
            "iss": PLATFORM,
            "aud": PLATFORM,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "scope": scopes.join(" "),
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// A valid staff token with `scopes`.
    ///
    /// # Errors
    /// Signing failed.
    pub fn token(&self, scopes: &[&str]) -> anyhow::Result<String> {
        self.sign(&Self::claims(scopes))
    }

    /// `claims` signed by this key, with a header naming its algorithm.
    ///
    /// # Errors
    /// Signing failed.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign_with(&Header::new(self.algorithm), claims)
    }

    /// `claims` signed by this key under `header` (a `kid`, a `crit`, …).
    ///
    /// # Errors
    /// Signing failed.
    pub fn sign_with(&self, header: &Header, claims: &Value) -> anyhow::Result<String> {
        jsonwebtoken::encode(header, claims, &self.encoding).context("signing a token")
    }

    /// The public key as a JWK with key id `kid`, for a JWKS.
    ///
    /// # Errors
    /// The key cannot be expressed as a JWK.
    pub fn jwk(&self, kid: &str) -> anyhow::Result<Value> {
        // SubjectPublicKeyInfo ends with the raw key: 32 bytes for Ed25519,
        // the 65-byte uncompressed point (0x04, x, y) for P-256.
        let body: String = self.public_pem.lines().filter(|line| !line.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).context("decoding the public key")?;
        let tail = |n: usize| der.get(der.len().saturating_sub(n)..).unwrap_or_default();
        Ok(match self.algorithm {
            Algorithm::ES256 => {
                let point = tail(64);
                let (x, y) = point.split_at(point.len() / 2);
                json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                       "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
            }
            _ => json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                        "x": URL_SAFE_NO_PAD.encode(tail(32))}),
        })
    }
}

/// A token of [`TestKeys::shared`] with every scope: what test helpers send as staff.
///
/// # Errors
/// Signing failed.
pub fn staff_token() -> anyhow::Result<String> {
    TestKeys::shared()?.token(&ALL_SCOPES)
}

/// A token with `header` and `claims` as given and `signature` as its third
/// part, signed by nothing: for `alg: none` and other forgeries.
pub fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

/// An HS256 token signed with `secret` as the HMAC key: the classic attack of
/// using the service's public key bytes as the shared secret.
///
/// # Errors
/// Signing failed.
pub fn hmac_signed(claims: &Value, secret: &[u8]) -> anyhow::Result<String> {
    let key = EncodingKey::from_secret(secret).context("making an HMAC key")?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).context("signing with HMAC")
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// A token the platform must refuse, and the reason it must give.
#[derive(Debug, Clone)]
pub struct BadToken {
    /// What is wrong with it, for assertion messages.
    pub case: &'static str,
    /// The token.
    pub token: String,
    /// The `error_description` and problem `detail` a refusal carries.
    pub reason: &'static str,
}

/// Every kind of bad token a service and the gateway must answer 401: each
/// would carry scope `menus:write` were it valid.
///
/// # Errors
/// Signing failed.
pub fn bad_tokens() -> anyhow::Result<Vec<BadToken>> {
    let keys = TestKeys::shared()?;
    let claims = |change: &dyn Fn(&mut Value)| {
        let mut claims = TestKeys::claims(&["menus:write"]);
        change(&mut claims);
        claims
    };
    let valid = keys.token(&["menus:write"])?;
    let mut critical = Header::new(keys.algorithm());
    critical.crit = Some(vec!["b64".to_owned()]);
    critical.extras.insert("b64".to_owned(), true);
    let bad = |case, token, reason| BadToken { case, token, reason };
    Ok(vec![
        bad("expired", keys.sign(&claims(&|c| c["exp"] = json!(now() - 120)))?, "the token has expired"),
        bad("not yet valid", keys.sign(&claims(&|c| c["nbf"] = json!(now() + 600)))?, "the token is not valid yet"),
        bad(
            "wrong audience",
            keys.sign(&claims(&|c| c["aud"] = json!("another-platform")))?,
            "the token is meant for another audience",
        ),
        bad("wrong issuer", keys.sign(&claims(&|c| c["iss"] = json!("evil")))?, "the token is from another issuer"),
        bad("wrong key", TestKeys::new()?.token(&["menus:write"])?, "the token's signature does not verify"),
        bad(
            "alg none",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &TestKeys::claims(&["menus:write"]), b""),
            "the token is malformed",
        ),
        bad(
            "HS256 keyed with the public key",
            hmac_signed(&TestKeys::claims(&["menus:write"]), keys.public_key_pem().as_bytes())?,
            "the token is not signed with the algorithm of the platform's key",
        ),
        // Cut inside the claims. (Cut inside the signature, a token is
        // malformed or merely unverifiable, depending on its last bits.)
        bad("truncated", valid[..valid.find('.').map_or(0, |dot| dot + 10)].to_owned(), "the token is malformed"),
        bad("garbage", "garbage".to_owned(), "the token is malformed"),
        bad(
            "an unknown critical header",
            keys.sign_with(&critical, &TestKeys::claims(&["menus:write"]))?,
            "the token has critical header parameters this service does not understand",
        ),
    ])
}
