//! A service assembled from its parts: what it is ([`Blueprint`]), what it
//! consumes and runs beside its routes ([`Builder`]), and the one way it
//! runs ([`Application`]). A service's own crate adds its domain, its SQL
//! and its routes, and nothing else.
//!
//! ```ignore
//! let mut service = Builder::new::<MenuEvent>(settings, &BLUEPRINT).await?;
//! service.consume::<InventoryEvent, _>(StockView);
//! let menus = Menus::new(service.writer());
//! Ok(service.serve(http::router(menus), http::ApiDoc::openapi()))
//! ```

use crate::Settings;
use crate::auth::Verifier;
use crate::catalog::Entry;
use crate::foundation::{self, Background, Foundation, Publishing};
use crate::http::Dependencies;
use crate::write::Writer;
use events::{Consumer, ConsumerConfig, Event, Inbox, Inboxed, Outbox, TransactionalHandler};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a service is: its entry in the [`catalog`](crate::catalog) (its name, the `source`
/// of its events and its consumer group on the streams it reads; its default
/// port and schema), and its migrations.
#[derive(Debug)]
pub struct Blueprint {
    /// Its entry.
    pub entry: Entry,
    /// Its tables.
    pub migrations: &'static Migrator,
}

impl Blueprint {
    /// Its name.
    pub const fn name(&self) -> &'static str {
        self.entry.name
    }
}

/// How often each inbox forgets records older than `INBOX_RETENTION_HOURS`.
const INBOX_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// A task to start when the service runs.
type Task = Box<dyn FnOnce(CancellationToken) -> Background + Send>;

/// A service being assembled: connected, migrated and bound, its relay and
/// retention ready; add what it consumes and runs, then [`Builder::serve`].
pub struct Builder {
    blueprint: &'static Blueprint,
    settings: Settings,
    verifier: Verifier,
    foundation: Foundation,
    consumer_name: String,
    inbox: Option<Inbox>,
    tasks: Vec<Task>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("service", &self.blueprint.name()).field("tasks", &self.tasks.len()).finish()
    }
}

impl Builder {
    /// Sets up the verification of staff tokens first (a service that cannot
    /// verify tokens does not start), then connects to PostgreSQL (migrating
    /// the service's schema) and Redis, and binds the listener; `E` is the
    /// family the service publishes.
    ///
    /// # Errors
    /// No usable key to verify tokens with, PostgreSQL is unreachable, a
    /// migration fails, a Redis setting is invalid, or the port is taken.
    pub async fn new<E: Event>(settings: &Settings, blueprint: &'static Blueprint) -> anyhow::Result<Self> {
        let verifier = Verifier::from_settings(&settings.auth)?;
        let foundation =
            Foundation::build::<E>(settings, blueprint.entry.schema, blueprint.entry.port, blueprint.migrations)
                .await?;
        let consumer_name = match &settings.consumer_name {
            Some(name) => name.clone(),
            None => format!("{}:{}", host_name(), foundation.listener.local_addr()?.port()),
        };
        Ok(Self {
            blueprint,
            settings: settings.clone(),
            verifier,
            foundation,
            consumer_name,
            inbox: None,
            tasks: Vec::new(),
        })
    }

    /// The service's writes, through its outbox, as its name.
    pub fn writer(&self) -> Writer {
        Writer::new(self.foundation.pool.clone(), self.foundation.outbox.clone(), self.blueprint.name())
    }

    /// Applies `migrator`, the tables a library keeps in the service's schema
    /// (the sagas', say), as the service's own were: without the request
    /// timeouts, so that waiting for another instance's migration is no failure.
    ///
    /// # Errors
    /// PostgreSQL is unreachable or a migration fails.
    pub async fn migrate(&self, migrator: &Migrator) -> anyhow::Result<()> {
        crate::database::migrate(&self.settings.database(self.blueprint.entry.schema), migrator).await
    }

    /// The pool requests use.
    pub fn pool(&self) -> &PgPool {
        &self.foundation.pool
    }

    /// The pool event handlers and background tasks use.
    pub fn consumer_pool(&self) -> &PgPool {
        &self.foundation.consumer_pool
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.foundation.outbox
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Consumes the stream of `E` as the service's consumer group, applying
    /// each entry once through the service's inbox with `handler`, which may
    /// append events of its own.
    pub fn consume<E: Event, H: TransactionalHandler<E>>(&mut self, handler: H) -> &mut Self {
        self.consume_with::<E, H>(|_| {}, handler)
    }

    /// [`Self::consume`], with the consumer's settings adjusted by `configure`.
    pub fn consume_with<E: Event, H: TransactionalHandler<E>>(
        &mut self,
        configure: impl FnOnce(&mut ConsumerConfig),
        handler: H,
    ) -> &mut Self {
        let stream = self.settings.streams().of::<E>();
        let mut config = ConsumerConfig::new(stream.clone(), self.blueprint.name(), self.consumer_name.clone());
        configure(&mut config);
        let inbox = self
            .inbox
            .get_or_insert_with(|| Inbox::new(self.foundation.consumer_pool.clone(), self.blueprint.name()))
            .clone();
        let handler = Inboxed::new(inbox, self.foundation.outbox.clone(), handler);
        let consumer = Consumer::new(self.foundation.redis.clone(), config, handler);
        self.tasks.push(Box::new(move |cancel| Background::spawn(format!("{stream} consumer"), consumer.run(cancel))));
        self
    }

    /// Runs `task` beside the service (a sweep, a timer), named `name` in
    /// shutdown logs; it should return once its token fires.
    pub fn spawn<F>(
        &mut self,
        name: &'static str,
        task: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) -> &mut Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(Box::new(move |cancel| Background::spawn(name, task(cancel))));
        self
    }

    /// The service, serving `routes` (under the operational endpoints, the
    /// OpenAPI document `api` and Swagger UI, with request ids, limits and
    /// metrics) beside what it publishes and consumes.
    pub fn serve(self, routes: axum::Router, api: utoipa::openapi::OpenApi) -> Application {
        let Self { blueprint, settings, verifier, foundation, inbox, mut tasks, .. } = self;
        let Foundation { pool, redis, publishing, listener, .. } = foundation;
        if let Some(inbox) = inbox {
            let retention = settings.inbox_retention();
            tasks.push(Box::new(move |cancel| {
                Background::spawn("inbox pruning", inbox.run_pruning(retention, INBOX_PRUNE_INTERVAL, cancel))
            }));
        }
        let router = crate::http::finish(routes, Dependencies { pool, redis }, settings.max_body_bytes, api, verifier);
        Application {
            name: blueprint.name(),
            listener,
            router,
            publishing,
            tasks,
            shutdown_grace: settings.shutdown_grace(),
        }
    }
}

/// A built service: listener bound, database migrated, ready to run.
pub struct Application {
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    publishing: Publishing,
    tasks: Vec<Task>,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("name", &self.name).field("listener", &self.listener).finish()
    }
}

impl Application {
    /// The port it listens on (useful when built with port 0).
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn port(&self) -> std::io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// Serves requests, relays events, trims its stream and runs its
    /// consumers and tasks until `cancel` fires, then finishes what is in
    /// flight, for at most `SHUTDOWN_GRACE_SECONDS` (see [`foundation::run`]).
    ///
    /// # Errors
    /// The listener failed, or a background task panicked.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut background = self.publishing.spawn(&cancel);
        background.extend(self.tasks.into_iter().map(|task| task(cancel.clone())));
        foundation::run(self.name, self.listener, self.router, background, cancel, self.shutdown_grace).await
    }
}

/// The machine's name, for consumer names.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// What a service's `main` does once it has parsed its settings: sets up
/// logs and traces for `service` ([`crate::telemetry`]), builds the service
/// (`built` runs after they are set up), runs it until SIGTERM or Ctrl-C,
/// and exports the last spans.
///
/// # Errors
/// Telemetry could not be set up, building failed, or running did.
pub async fn run(
    service: &'static str,
    built: impl Future<Output = anyhow::Result<Application>>,
) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init(service)?;
    let application = built.await?;
    application.run_until_stopped(crate::shutdown::on_signal()).await
}

/// A service binary's command line: every service's [`Settings`] and the
/// service's own `X`.
#[derive(Debug, clap::Parser)]
pub struct Cli<X: clap::Args> {
    /// What every service reads.
    #[command(flatten)]
    pub settings: Settings,
    /// What this service alone reads.
    #[command(flatten)]
    pub own: X,
}

/// The own settings of a service that has none.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct NoSettings {}

/// A service's whole `main`: installs the platform's allocator, parses the
/// command line ([`Cli`] of the service's own settings `$own`, named and
/// described as the binary's package), and [`run`]s what `$build` builds of
/// the settings and the service's own ones.
///
/// ```ignore
/// service_kit::service_main!(service_kit::service::NoSettings, |settings, _| menu_service::build(settings));
/// ```
#[macro_export]
macro_rules! service_main {
    ($own:ty, $build:expr) => {
        #[global_allocator]
        static ALLOCATOR: $crate::Allocator = $crate::Allocator;

        #[tokio::main]
        async fn main() -> anyhow::Result<()> {
            use clap::{CommandFactory, FromArgMatches};
            let command = $crate::service::Cli::<$own>::command()
                .name(env!("CARGO_PKG_NAME"))
                .about(env!("CARGO_PKG_DESCRIPTION"))
                .version(env!("CARGO_PKG_VERSION"));
            let cli = $crate::service::Cli::<$own>::from_arg_matches(&command.get_matches())?;
            $crate::service::run(env!("CARGO_PKG_NAME"), ($build)(&cli.settings, &cli.own)).await
        }
    };
}
