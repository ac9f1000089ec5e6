//! The menu service: menus and their items, published as `menu-events`.
//!
//! Every change commits with its event through the transactional outbox,
//! and the service runs its own outbox relay, and the retention that trims
//! `menu-events` below what its consumer groups have acknowledged.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use service_kit::Settings;
use service_kit::foundation::{self, Foundation};
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
    publishing: foundation::Publishing,
    shutdown_grace: std::time::Duration,
}

impl Application {
    /// Connects to PostgreSQL (migrating the schema) and Redis, binds the
    /// listener, and sets up the verification of staff tokens.
    ///
    /// # Errors
    /// PostgreSQL is unreachable, a migration fails, the port is taken, or
    /// no key to verify staff tokens with is configured (or it is unreadable).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        // Checked first: a service that cannot verify tokens does not start.
        let verifier = service_kit::auth::Verifier::from_settings(&settings.auth)?;
        let Foundation { pool, redis, outbox, publishing, listener, .. } =
            Foundation::build::<events::MenuEvent>(settings, DEFAULT_SCHEMA, DEFAULT_PORT, &MIGRATIONS).await?;
        let menus = service::Menus::new(pool.clone(), outbox);
        let router = service_kit::http::finish(
            http::router(menus),
            Dependencies { pool, redis },
            settings.max_body_bytes,
            <http::ApiDoc as utoipa::OpenApi>::openapi(),
            verifier,
        );
        Ok(Self { listener, router, publishing, shutdown_grace: settings.shutdown_grace() })
    }

    /// The port it listens on (useful when built with port 0).
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn port(&self) -> std::io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// Serves requests, relays events and trims the stream until `cancel`
    /// fires, then finishes requests and the relay batch in flight, for at
    /// most `SHUTDOWN_GRACE_SECONDS`.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let background = self.publishing.spawn(&cancel);
        foundation::run("menu-service", self.listener, self.router, background, cancel, self.shutdown_grace).await
    }
}
