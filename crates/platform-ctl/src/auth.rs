//! Staff tokens for a platform without an identity provider: `auth init`
//! makes an Ed25519 key pair, `token` signs a JWT with it that the services
//! accept when `AUTH_PUBLIC_KEY_FILE` names the public half.
//!
//! Both find the key pair in one directory without flags: `--dir`, else
//! `PLATFORM_AUTH_DIR`, else `$XDG_CONFIG_HOME/restaurant-platform`, else
//! `~/.config/restaurant-platform`. The private key is written with mode
//! 0600 in a directory of mode 0700, and never overwritten without `--force`.

use anyhow::{Context, bail};
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use service_kit::auth::Scope;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The private key's file name in the key directory.
pub const PRIVATE_KEY_FILE: &str = "auth_private_key.pem";
/// The public key's file name: what `AUTH_PUBLIC_KEY_FILE` names.
pub const PUBLIC_KEY_FILE: &str = "auth_public_key.pem";

/// The key directory: `given`, else `PLATFORM_AUTH_DIR`, else the user's config directory.
///
/// # Errors
/// None of them is set (no `HOME` either).
pub fn key_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    if let Some(dir) = env("PLATFORM_AUTH_DIR") {
        return Ok(dir);
    }
    let config = env("XDG_CONFIG_HOME")
        .or_else(|| env("HOME").map(|home| home.join(".config")))
        .context("cannot tell where to keep the keys: set PLATFORM_AUTH_DIR or HOME, or pass --dir")?;
    Ok(config.join("restaurant-platform"))
}

/// Writes a new Ed25519 key pair as PEM into `dir` (PKCS#8 private key,
/// mode 0600; SubjectPublicKeyInfo public key), refusing to replace one
/// unless `force`.
///
/// # Errors
/// A key pair is there and `force` is not set, or a file cannot be written.
pub fn init(dir: &Path, force: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let (private, public) = (dir.join(PRIVATE_KEY_FILE), dir.join(PUBLIC_KEY_FILE));
    if !force && (private.exists() || public.exists()) {
        bail!("a key pair is already in {}; pass --force to replace it (tokens it signed stop working)", dir.display());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let private_pem = signing.to_pkcs8_pem(LineEnding::LF).context("encoding the private key")?;
    let public_pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).context("encoding the public key")?;
    // Removed first so that the mode applies to a fresh file, not one that was there.
    let _ = std::fs::remove_file(&private);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .and_then(|mut file| file.write_all(private_pem.as_bytes()))
        .with_context(|| format!("writing {}", private.display()))?;
    std::fs::write(&public, public_pem).with_context(|| format!("writing {}", public.display()))?;
    writeln!(out, "wrote {} (private, mode 0600)", private.display())?;
    writeln!(out, "wrote {}", public.display())?;
    writeln!(out, "start the services with AUTH_PUBLIC_KEY_FILE={}", public.display())?;
    Ok(())
}

/// What a token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Its `sub`.
    pub subject: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// How long it is valid.
    pub ttl: Duration,
    /// Its `iss`.
    pub issuer: String,
    /// Its `aud`.
    pub audience: String,
}

/// A JWT for `request`, signed (EdDSA) by the private key in `dir`.
///
/// # Errors
/// There is no key pair in `dir`, or it cannot be read.
pub fn token(dir: &Path, request: &TokenRequest) -> anyhow::Result<String> {
    let private = dir.join(PRIVATE_KEY_FILE);
    let pem = std::fs::read(&private).with_context(|| {
        format!("reading {}; make a key pair first with `platform-ctl auth init`", private.display())
    })?;
    let key = EncodingKey::from_ed_pem(&pem).with_context(|| format!("{} is not an Ed25519 key", private.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
    let scope: Vec<&str> = request.scopes.iter().map(|scope| scope.as_str()).collect();
    let claims = serde_json::json!({
        "sub": request.subject,
        "iss": request.issuer,
        "aud": request.audience,
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(request.ttl.as_secs()),
        "scope": scope.join(" "),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).context("signing the token")
}

/// A scope by name, for clap.
///
/// # Errors
/// It is not one of the platform's scopes (the message lists them).
pub fn parse_scope(name: &str) -> Result<Scope, String> {
    Scope::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
        format!("unknown scope {name:?}; the scopes are {}", known.join(", "))
    })
}

/// A duration such as `8h`, `30m`, `90s`, `2d` or a bare number of seconds, for clap.
///
/// # Errors
/// It is not a positive whole number with one of those units.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let seconds_per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d, as in 8h")),
    };
    match number.parse::<u64>() {
        Ok(count) if count > 0 => Ok(Duration::from_secs(count.saturating_mul(seconds_per))),
        _ => Err(format!("{text:?} is not a positive duration such as 8h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_as_seconds_minutes_hours_and_days() {
        assert_eq!(parse_ttl("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("8 weeks").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
