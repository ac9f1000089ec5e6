//! What every service stands on: its migrated schema, the Redis its events
//! go through, its outbox and the relay of it, the retention that trims the
//! stream it publishes, and the listener it serves on.

use crate::Settings;
use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A service's connections, made once at start.
#[derive(Debug)]
pub struct Foundation {
    /// The pool on the service's schema, migrated.
    pub pool: PgPool,
    /// The Redis the service publishes to and consumes from.
    pub redis: redis::Client,
    /// Where the service appends its events and commits them, waking `relay`.
    pub outbox: events::Outbox,
    /// Publishes the service's outbox; run it with [`run`].
    pub relay: events::OutboxRelay,
    /// Trims the stream the service publishes below what its consumer groups
    /// acknowledged; run it beside the relay.
    pub retention: events::retention::Retention,
    /// Bound to `SERVER_PORT` or the service's default port.
    pub listener: TcpListener,
}

impl Foundation {
    /// Connects to PostgreSQL (creating and migrating the service's schema,
    /// `DB_SCHEMA` or `default_schema`), opens the Redis client, prepares the
    /// outbox and its relay and the retention of the stream of `E`, the family
    /// the service publishes, and binds the listener (`SERVER_PORT` or `default_port`).
    ///
    /// # Errors
    /// PostgreSQL is unreachable, a migration fails, a Redis setting is
    /// invalid, or the port is taken.
    pub async fn build<E: events::Event>(
        settings: &Settings,
        default_schema: &str,
        default_port: u16,
        migrations: &Migrator,
    ) -> anyhow::Result<Self> {
        crate::http::metrics();
        let pool = crate::database::connect(
            settings.database(default_schema),
            settings.schema(default_schema),
            settings.db_max_connections,
            migrations,
        )
        .await?;
        let redis = redis::Client::open(settings.redis_url()).context("parsing the Redis settings")?;
        let relay_config =
            events::RelayConfig { stream_max_len: settings.stream_max_len, ..events::RelayConfig::default() };
        let relay = events::OutboxRelay::new(pool.clone(), redis.clone(), relay_config);
        let outbox = events::Outbox::new(settings.streams(), relay.waker());
        let retention =
            events::retention::Retention::new(redis.clone(), vec![settings.streams().of::<E>()], settings.retention());
        let port = settings.server_port.unwrap_or(default_port);
        let listener = TcpListener::bind(("0.0.0.0", port)).await.with_context(|| format!("binding port {port}"))?;
        Ok(Self { pool, redis, outbox, relay, retention, listener })
    }
}

/// Serves `router` on `listener` as service `name` until `cancel` fires, then
/// lets requests in flight finish, stops the background tasks (the relay,
/// retention, consumers: each given `cancel` too) and waits for them.
///
/// # Errors
/// The listener failed, or a background task panicked.
pub async fn run(
    name: &str,
    listener: TcpListener,
    router: axum::Router,
    background: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "{name} listening");
    let served = crate::http::serve(listener, router, cancel.clone()).await;
    cancel.cancel();
    for task in background {
        task.await.with_context(|| format!("a background task of {name} panicked"))?;
    }
    served.context("serving HTTP")
}
