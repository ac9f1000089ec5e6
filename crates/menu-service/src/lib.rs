//! The menu service: menus and their items, published as `menu-events`.
//!
//! Every change commits with its event through the transactional outbox,
//! and the service runs its own outbox relay.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use anyhow::Context;
use service_kit::Settings;
use service_kit::http::Dependencies;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The port the service listens on unless `SERVER_PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8081;
/// The schema the service owns unless `DB_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "menu";

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The built service: listener bound, database migrated, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    relay: events::OutboxRelay,
}

impl Application {
    /// Connects to PostgreSQL (migrating the schema) and Redis, and binds the listener.
    ///
    /// # Errors
    /// PostgreSQL is unreachable, a migration fails, or the port is taken.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        service_kit::http::metrics();
        let schema = settings.schema(DEFAULT_SCHEMA);
        let pool = service_kit::database::connect(
            settings.database(DEFAULT_SCHEMA),
            schema,
            settings.db_max_connections,
            &MIGRATIONS,
        )
        .await?;
        let redis = redis::Client::open(settings.redis_url()).context("parsing the Redis settings")?;
        let relay_config =
            events::RelayConfig { stream_max_len: settings.stream_max_len, ..events::RelayConfig::default() };
        let relay = events::OutboxRelay::new(pool.clone(), redis.clone(), relay_config);
        let menus = service::Menus::new(pool.clone(), settings.streams());
        let router = service_kit::http::finish(
            http::router(menus),
            Dependencies { pool, redis },
            settings.max_body_bytes,
            <http::ApiDoc as utoipa::OpenApi>::openapi(),
        );
        let port = settings.server_port.unwrap_or(DEFAULT_PORT);
        let listener = TcpListener::bind(("0.0.0.0", port)).await.with_context(|| format!("binding port {port}"))?;
        Ok(Self { listener, router, relay })
    }

    /// The port it listens on (useful when built with port 0).
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn port(&self) -> std::io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// Serves requests and relays events until `cancel` fires, then finishes
    /// requests and the relay batch in flight.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(cancel.clone()));
        tracing::info!(address = %self.listener.local_addr()?, "menu-service listening");
        let served = service_kit::http::serve(self.listener, self.router, cancel.clone()).await;
        cancel.cancel();
        relay.await.context("the outbox relay panicked")?;
        served.context("serving HTTP")
    }
}
