//! `Idempotency-Key` on the requests that create something.
//!
//! A client that did not hear the answer to a create (a timeout, a dropped
//! connection) cannot tell whether it happened. Sending the same request
//! again with the same `Idempotency-Key` is safe: the first successful answer
//! is stored and sent again, and nothing is created twice, no event published
//! twice.
//!
//! * **Scope.** A key belongs to its caller ([`Caller`]: the token's subject,
//!   or `anonymous`), so two callers never see each other's keys. Anonymous
//!   guests share one scope: a replay for them needs the same key *and* the
//!   same body, which only the guest who sent it has.
//! * **Same transaction.** [`begin`] runs first in the transaction that
//!   creates, and [`record`] stores the reply in it before the commit: the
//!   reply, the business rows and the outbox row commit together or not at
//!   all. A request that fails stores nothing, so retrying its key runs it
//!   again.
//! * **Same key, same request.** The request's fingerprint (a SHA-256 of its
//!   method, path and body) is stored with the reply. The same key with
//!   another fingerprint is a 422.
//! * **At the same time.** [`begin`] takes a transaction-scoped advisory lock
//!   on the key without waiting: a duplicate that arrives while the first is
//!   still running gets 409 at once instead of holding a connection until the
//!   first commits.
//! * **For a day.** Keys older than `IDEMPOTENCY_KEY_TTL_HOURS` (24 by
//!   default) are pruned ([`run_pruning`]); after that a key can be reused.

use crate::Problem;
use crate::extract::{json_body, read_json_bytes};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Response header set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";

/// Who is calling, as far as idempotency keys are concerned. Authentication
/// puts it in the request's extensions; without it the caller is anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// A create request's `Idempotency-Key`, scoped to its caller, with the
/// fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    caller: String,
    key: String,
    fingerprint: [u8; 32],
}

impl Idempotency {
    /// The key `key` of `caller` for a request whose fingerprint is `fingerprint`.
    pub fn new(caller: impl Into<String>, key: impl Into<String>, fingerprint: [u8; 32]) -> Self {
        Self { caller: caller.into(), key: key.into(), fingerprint }
    }
}

/// A JSON body (read as [`crate::extract::Json`] reads it) and the request's
/// `Idempotency-Key`, if it sent one. A key that is empty, longer than
/// [`MAX_KEY_LEN`] or not visible ASCII is a 400 naming the header.
#[derive(Debug, Clone)]
pub struct IdempotentJson<T> {
    /// The request's key, if any.
    pub key: Option<Idempotency>,
    /// The body.
    pub body: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for IdempotentJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = key_of(request.headers())?;
        let caller = request.extensions().get::<Caller>().map_or_else(|| "anonymous".to_owned(), |c| c.0.clone());
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let bytes = read_json_bytes(request, state).await?;
        let body = json_body(&bytes)?;
        let key = key.map(|key| Idempotency::new(caller, key, fingerprint(method.as_str(), &path, &bytes)));
        Ok(Self { key, body })
    }
}

/// The `Idempotency-Key` header's value, checked.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(HEADER) else { return Ok(None) };
    let invalid = |detail: &str| Err(Problem::new(StatusCode::BAD_REQUEST, detail).with_field("Idempotency-Key"));
    let Ok(key) = value.to_str() else { return invalid("the Idempotency-Key must be visible ASCII") };
    if key.is_empty() {
        return invalid("the Idempotency-Key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("the Idempotency-Key is longer than 255 characters");
    }
    if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return invalid("the Idempotency-Key must be visible ASCII, without spaces");
    }
    Ok(Some(key.to_owned()))
}

/// SHA-256 of the method, path and body: what makes two requests "the same".
fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        hash.update(part);
    }
    hash.finalize().into()
}

/// A response as stored for its key, and as sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    replayed: bool,
}

impl Reply {
    /// `status` with `body` as JSON.
    ///
    /// # Errors
    /// `body` cannot be serialized, which the platform's response types never do.
    pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Result<Self, serde_json::Error> {
        let content_type = (axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self { status, headers: vec![content_type], body: serde_json::to_vec(body)?.into(), replayed: false })
    }

    /// 201 Created: `body` as JSON, with the `Location` of what was created
    /// and the `ETag` of its `version`.
    ///
    /// # Errors
    /// `body` cannot be serialized, which the platform's response types never do.
    pub fn created(location: &str, version: i64, body: &impl serde::Serialize) -> Result<Self, serde_json::Error> {
        let reply = Self::json(StatusCode::CREATED, body)?.with_etag(version);
        Ok(match HeaderValue::from_str(location) {
            Ok(location) => reply.with_header(axum::http::header::LOCATION, location),
            Err(_) => reply,
        })
    }

    /// Adds the `ETag` of an aggregate at `version`.
    #[must_use]
    pub fn with_etag(self, version: i64) -> Self {
        match HeaderValue::from_str(&format!("\"{version}\"")) {
            Ok(etag) => self.with_header(axum::http::header::ETAG, etag),
            Err(_) => self,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether this is a stored reply sent again.
    pub fn is_replay(&self) -> bool {
        self.replayed
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        if self.replayed {
            headers.insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
        }
        response
    }
}

/// Why a key cannot be used for this request.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// A request with the same key is being handled right now. HTTP 409 with `Retry-After`.
    #[error("a request with this Idempotency-Key is still being handled; retry shortly")]
    InFlight,
    /// The key was used for a different request. HTTP 422 naming the header.
    #[error("this Idempotency-Key was used for a different request; use a new key")]
    Reused,
    /// The stored reply cannot be read back: written by something else. HTTP 500.
    #[error("the reply stored for this Idempotency-Key is unreadable: {0}")]
    Corrupt(String),
    /// PostgreSQL failed. HTTP 503 when unreachable or busy, else 500.
    #[error("idempotency keys: {0}")]
    Database(#[from] sqlx::Error),
}

impl IdempotencyError {
    /// The problem for this error; `database` names the service's database.
    pub fn problem(&self, database: &str) -> Problem {
        match self {
            Self::InFlight => Problem::new(StatusCode::CONFLICT, self.to_string())
                .with_retry_after(crate::problem::BUSY_RETRY_AFTER_SECONDS),
            Self::Reused => Problem::unprocessable("Idempotency-Key", self.to_string()),
            Self::Corrupt(_) => Problem::internal(self),
            Self::Database(cause) => Problem::database(database, cause, self),
        }
    }
}

/// Starts the idempotent part of `tx`, before anything else in it: takes the
/// key's lock and returns its stored reply if the key was used before. With
/// no key there is nothing to do.
///
/// # Errors
/// [`IdempotencyError::InFlight`] if another transaction holds the key,
/// [`IdempotencyError::Reused`] if it was used for another request, or the
/// database failed.
pub async fn begin(tx: &mut PgConnection, key: Option<&Idempotency>) -> Result<Option<Reply>, IdempotencyError> {
    let Some(key) = key else { return Ok(None) };
    // The two-part key space of advisory locks, apart from the one-part
    // locks the outbox relay takes.
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('service_kit.idempotency'), hashtext($1 || ' ' || $2))",
    )
    .bind(&key.caller)
    .bind(&key.key)
    .fetch_one(&mut *tx)
    .await?;
    if !locked {
        return Err(IdempotencyError::InFlight);
    }
    let stored: Option<(Vec<u8>, i16, serde_json::Value, Vec<u8>)> = sqlx::query_as(
        "SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE caller = $1 AND key = $2",
    )
    .bind(&key.caller)
    .bind(&key.key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((fingerprint, status, headers, body)) = stored else { return Ok(None) };
    if fingerprint != key.fingerprint {
        return Err(IdempotencyError::Reused);
    }
    let corrupt = |what: &str| IdempotencyError::Corrupt(what.to_owned());
    let status =
        u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).ok_or_else(|| corrupt("status"))?;
    let pairs: Vec<(String, String)> = serde_json::from_value(headers).map_err(|_| corrupt("headers"))?;
    let headers = pairs
        .into_iter()
        .map(|(name, value)| Some((HeaderName::try_from(name).ok()?, HeaderValue::try_from(value).ok()?)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| corrupt("headers"))?;
    Ok(Some(Reply { status, headers, body: body.into(), replayed: true }))
}

/// Stores `reply` as the answer to `key` in `tx`, which commits it with
/// everything else the request did. With no key there is nothing to do.
///
/// # Errors
/// The database failed; roll the transaction back.
pub async fn record(tx: &mut PgConnection, key: Option<&Idempotency>, reply: &Reply) -> Result<(), IdempotencyError> {
    let Some(key) = key else { return Ok(()) };
    let headers: Vec<(&str, &str)> =
        reply.headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
    sqlx::query(
        "INSERT INTO idempotency_keys (caller, key, fingerprint, status, headers, body) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.caller)
    .bind(&key.key)
    .bind(&key.fingerprint[..])
    .bind(i16::try_from(reply.status.as_u16()).unwrap_or(i16::MAX))
    .bind(serde_json::json!(headers))
    .bind(&reply.body[..])
    .execute(tx)
    .await?;
    Ok(())
}

/// Deletes keys older than `ttl`; returns how many.
///
/// # Errors
/// PostgreSQL failed.
pub async fn prune(pool: &PgPool, ttl: Duration) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)")
        .bind(ttl.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted)
}

/// How often [`run_pruning`] looks for old keys.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Prunes keys older than `ttl` every [`PRUNE_INTERVAL`] until `cancel`
/// fires; a failure is logged and tried again at the next interval.
pub async fn run_pruning(pool: PgPool, ttl: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            pruned = prune(&pool, ttl) => match pruned {
                Ok(deleted) if deleted > 0 => tracing::debug!(deleted, "pruned old idempotency keys"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "pruning idempotency keys failed; trying again later"),
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(PRUNE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HEADER, value);
        }
        headers
    }

    #[test]
    fn a_key_must_be_one_to_255_visible_characters() {
        assert_eq!(key_of(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(key_of(&headers_with("order-7f3a")).ok(), Some(Some("order-7f3a".to_owned())));
        assert_eq!(key_of(&headers_with(&"k".repeat(255))).ok().flatten().map(|key| key.len()), Some(255));
        for bad in [String::new(), "k".repeat(256), "with space".to_owned()] {
            let problem = key_of(&headers_with(&bad)).err();
            assert_eq!(problem.as_ref().map(|p| p.status), Some(400), "{bad:?}");
            assert_eq!(problem.and_then(|p| p.field).as_deref(), Some("Idempotency-Key"));
        }
    }

    #[test]
    fn the_fingerprint_tells_bodies_and_paths_apart() {
        let base = fingerprint("POST", "/api/v1/menus", b"{\"name\":\"Lunch\"}");
        assert_eq!(base, fingerprint("POST", "/api/v1/menus", b"{\"name\":\"Lunch\"}"));
        assert_ne!(base, fingerprint("POST", "/api/v1/menus", b"{\"name\":\"Dinner\"}"));
        assert_ne!(base, fingerprint("POST", "/api/v1/reservations", b"{\"name\":\"Lunch\"}"));
    }

    #[tokio::test]
    async fn pruning_forgets_keys_older_than_their_time_to_live_only() -> anyhow::Result<()> {
        let db = testkit::TestDb::new().await?;
        crate::database::migrate_own_tables(&db.pool).await?;
        for (key, age_hours) in [("old", 30), ("recent", 1)] {
            sqlx::query(
                "INSERT INTO idempotency_keys (caller, key, fingerprint, status, headers, body, created_at)
                 VALUES ('anonymous', $1, '\\x00', 201, '[]', '', now() - make_interval(hours => $2))",
            )
            .bind(key)
            .bind(age_hours)
            .execute(&db.pool)
            .await?;
        }
        assert_eq!(prune(&db.pool, Duration::from_secs(24 * 3600)).await?, 1);
        let left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys").fetch_all(&db.pool).await?;
        assert_eq!(left, vec!["recent".to_owned()]);
        Ok(())
    }
}
