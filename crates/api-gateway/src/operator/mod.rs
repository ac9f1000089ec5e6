//! The operator API: what the console's operator pages show and do, for
//! staff with `platform:operate`.
//!
//! * `GET /api/v1/events` and `GET /api/v1/events/feed`: the tail of every
//!   stream, decoded, filtered by stream, type, aggregate or correlation id;
//!   the feed carries on live (server-sent events) from the `stream_position`
//!   of a listing, one position per stream ([`events`]).
//! * `GET /api/v1/streams`: each stream's length, consumer groups (lag,
//!   pending, consumers), dead letters and what holds trimming back;
//!   `GET /api/v1/streams/{stream}/dead-letters` lists a stream's dead
//!   letters, and `POST …/dead-letters/redrive` and
//!   `POST …/dead-letters/{entry_id}/redrive` put them back ([`streams`]).
//!
//! The gateway serves it because it already talks to the platform's Redis
//! (for the rate limits) and is where operators arrive; the reading and
//! re-driving is the events crate's ([`::events::inspect`],
//! [`::events::dead_letter`]), which `platform-ctl` uses too. The sagas'
//! operator API is the order service's own (`/api/v1/sagas`), proxied.
//! Stream names in paths and bodies are without the deployment's prefix
//! (`menu-events`). Every route checks the token itself, as the services do.

pub mod events;
pub mod streams;

use ::events::fault::is_transient_redis;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use service_kit::Problem;
use service_kit::values::FieldError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The operator API's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(events::list, events::feed, streams::overview, streams::dead_letters, streams::redrive, streams::redrive_one),
    tags((name = "platform", description = "Operators' view of the event streams: events, consumer groups, dead letters (platform:operate)"))
)]
pub struct ApiDoc;

/// One stream the platform has: its name and its key in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its name, as the API shows it (`menu-events`).
    pub name: String,
    /// Its key: the name under the deployment's prefix.
    pub key: String,
}

/// What the routes need: the Redis of the streams, which streams there are,
/// the retention's minimum age, and when to end live feeds.
#[derive(Debug, Clone)]
pub struct Operator {
    redis: redis::Client,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
    streams: Arc<[Known]>,
    min_age: Duration,
    stop: CancellationToken,
}

/// How long a command of the operator API may wait for Redis.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Operator {
    /// The API over the streams of `streams` in `redis`, reporting trim
    /// points for `min_age`; its live feeds end when `stop` fires. Nothing
    /// connects until the first request.
    pub fn new(redis: redis::Client, streams: &::events::Streams, min_age: Duration, stop: CancellationToken) -> Self {
        let known = ::events::Streams::default()
            .all()
            .into_iter()
            .zip(streams.all())
            .map(|(name, key)| Known { name, key })
            .collect();
        Self { redis, connection: Arc::default(), streams: known, min_age, stop }
    }

    /// Every stream, in the order [`::events::Streams::all`] lists them.
    pub fn streams(&self) -> &[Known] {
        &self.streams
    }

    /// The stream called `name`.
    ///
    /// # Errors
    /// [`Error::UnknownStream`].
    pub fn stream(&self, name: &str) -> Result<&Known, Error> {
        self.streams.iter().find(|known| known.name == name).ok_or_else(|| Error::UnknownStream(name.to_owned()))
    }

    /// Runs `work` on the shared connection (made on first use), which is
    /// dropped and made anew after a failure of the link.
    async fn redis<T, F, Fut>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let kept = self.connection.lock().map(|kept| kept.clone()).unwrap_or_default();
        let connection = match kept {
            Some(connection) => connection,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                let connection = self.redis.get_multiplexed_async_connection_with_config(&config).await?;
                if let Ok(mut kept) = self.connection.lock() {
                    *kept = Some(connection.clone());
                }
                connection
            }
        };
        let outcome = work(connection).await;
        if let Err(error) = &outcome
            && is_transient_redis(error)
            && let Ok(mut kept) = self.connection.lock()
        {
            *kept = None;
        }
        Ok(outcome?)
    }

    /// A connection of its own for a live feed, whose reads block for up to
    /// `block`.
    async fn blocking_connection(&self, block: Duration) -> Result<MultiplexedConnection, Error> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(block + RESPONSE_TIMEOUT));
        Ok(self.redis.get_multiplexed_async_connection_with_config(&config).await?)
    }
}

/// The operator routes; the auth extractors check tokens with `verifier`.
pub fn router(operator: Operator, verifier: service_kit::auth::Verifier) -> Router {
    Router::new()
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/events/feed", get(events::feed))
        .route("/api/v1/streams", get(streams::overview))
        .route("/api/v1/streams/{stream}/dead-letters", get(streams::dead_letters))
        .route("/api/v1/streams/{stream}/dead-letters/redrive", post(streams::redrive))
        .route("/api/v1/streams/{stream}/dead-letters/{entry_id}/redrive", post(streams::redrive_one))
        .with_state(operator)
        .layer(axum::Extension(verifier))
}

/// Why an operator request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter or body field breaks a rule. HTTP 422 naming it.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The path names a stream the platform does not have. HTTP 404.
    #[error("there is no stream {0:?}")]
    UnknownStream(String),
    /// The stream has no dead letter with that id. HTTP 404.
    #[error("{stream} has no dead letter {entry_id}")]
    NoSuchLetter {
        /// The stream.
        stream: String,
        /// The letter asked for.
        entry_id: String,
    },
    /// Redis failed: HTTP 503 when it is unreachable or busy, else 500.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::UnknownStream(_) | Self::NoSuchLetter { .. } => Problem::not_found(self.to_string()),
            Self::Redis(error) if is_transient_redis(error) => Problem::unavailable("Redis", &self),
            Self::Redis(_) => Problem::internal(&self),
        };
        problem.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_without_the_prefix_and_found_by_name() -> anyhow::Result<()> {
        let operator = Operator::new(
            redis::Client::open("redis://127.0.0.1:1")?,
            &::events::Streams::with_prefix("test-x-"),
            Duration::from_secs(60),
            CancellationToken::new(),
        );
        let menu = operator.stream("menu-events").map_err(|error| anyhow::anyhow!("{error}"))?;
        assert_eq!(menu.key, "test-x-menu-events");
        assert_eq!(operator.streams().len(), ::events::Streams::default().all().len());
        assert!(matches!(operator.stream("test-x-menu-events"), Err(Error::UnknownStream(_))));
        Ok(())
    }
}
