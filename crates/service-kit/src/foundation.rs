//! What every service stands on: its migrated schema, the Redis its events
//! go through, its outbox and the relay of it, the retention that trims the
//! stream it publishes, and the listener it serves on.

use crate::Settings;
use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A service's connections, made once at start.
#[derive(Debug)]
pub struct Foundation {
    /// The pool on the service's schema, migrated: for HTTP requests and the relay.
    pub pool: PgPool,
    /// A second, smaller pool on the same schema (`DB_CONSUMER_MAX_CONNECTIONS`)
    /// for event handlers, so that a burst of events cannot take the
    /// connections HTTP requests need.
    pub consumer_pool: PgPool,
    /// The Redis the service publishes to and consumes from.
    pub redis: redis::Client,
    /// Where the service appends its events and commits them, waking the
    /// relay of `publishing`.
    pub outbox: events::Outbox,
    /// What keeps the service's events and keys moving and bounded; spawn it
    /// with [`Publishing::spawn`] and hand the tasks to [`run`].
    pub publishing: Publishing,
    /// Bound to `SERVER_PORT` or the service's default port.
    pub listener: TcpListener,
}

impl Foundation {
    /// Connects to PostgreSQL (creating and migrating the service's schema,
    /// `DB_SCHEMA` or `default_schema`, and opening both pools on it), opens
    /// the Redis client, prepares the outbox and its relay and the retention
    /// of the stream of `E`, the family the service publishes, and binds the
    /// listener (`SERVER_PORT` or `default_port`).
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
        let consumer_pool =
            crate::database::pool(settings.database(default_schema), settings.db_consumer_max_connections)
                .await
                .context("opening the event handlers' pool")?;
        let redis = redis::Client::open(settings.redis_url()).context("parsing the Redis settings")?;
        let relay = events::OutboxRelay::new(pool.clone(), redis.clone(), events::RelayConfig::default());
        let outbox = events::Outbox::new(settings.streams(), relay.waker());
        let retention =
            events::retention::Retention::new(redis.clone(), vec![settings.streams().of::<E>()], settings.retention());
        let port = settings.server_port.unwrap_or(default_port);
        let listener = TcpListener::bind(("0.0.0.0", port)).await.with_context(|| format!("binding port {port}"))?;
        let publishing = Publishing {
            relay,
            retention,
            idempotency_keys: pool.clone(),
            idempotency_key_ttl: settings.idempotency_key_ttl(),
        };
        Ok(Self { pool, consumer_pool, redis, outbox, publishing, listener })
    }
}

/// The background work of every service that publishes events: its outbox
/// relay, the retention of the stream it publishes, and the pruning of its
/// idempotency keys.
#[derive(Debug)]
pub struct Publishing {
    relay: events::OutboxRelay,
    retention: events::retention::Retention,
    idempotency_keys: PgPool,
    idempotency_key_ttl: std::time::Duration,
}

impl Publishing {
    /// Spawns the relay, the retention and the key pruning, each stopping
    /// when `cancel` fires.
    pub fn spawn(self, cancel: &CancellationToken) -> Vec<Background> {
        let pruning = crate::idempotency::run_pruning(self.idempotency_keys, self.idempotency_key_ttl, cancel.clone());
        vec![
            Background::spawn("outbox relay", self.relay.run(cancel.clone())),
            Background::spawn("stream retention", self.retention.run(cancel.clone())),
            Background::spawn("idempotency key pruning", pruning),
        ]
    }
}

/// A task a service runs beside its HTTP server (the relay, a consumer),
/// named so that a shutdown that outlasts its grace can say which did not finish.
#[derive(Debug)]
pub struct Background {
    name: String,
    handle: JoinHandle<()>,
}

impl Background {
    /// Spawns `task` on the runtime as the background task `name`; the task
    /// should return once the service's `CancellationToken` fires.
    pub fn spawn(name: impl Into<String>, task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self { name: name.into(), handle: tokio::spawn(task) }
    }
}

/// Serves `router` on `listener` as service `name` until `cancel` fires, then
/// lets requests in flight finish and stops the `background` tasks (the
/// relay, retention, consumers: each given `cancel` too).
///
/// Shutdown is bounded: from the moment `cancel` fires (or serving ends on its
/// own), requests in flight and background tasks get `grace` in total. What
/// has not finished by then is named in an error log and aborted, and `run`
/// returns: nothing is lost, since events not yet published stay in the
/// outbox and entries not yet acknowledged stay pending in their group.
///
/// # Errors
/// The listener failed, or a background task panicked.
pub async fn run(
    name: &str,
    listener: TcpListener,
    router: axum::Router,
    background: Vec<Background>,
    cancel: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "{name} listening");
    let serving = crate::http::serve(listener, router, cancel.clone());
    tokio::pin!(serving);
    let served_early = tokio::select! {
        served = &mut serving => Some(served),
        () = cancel.cancelled() => None,
    };
    cancel.cancel();
    let deadline = Instant::now() + grace;
    let mut unfinished = Vec::new();
    let served = match served_early {
        Some(served) => served,
        None => tokio::time::timeout_at(deadline, serving).await.unwrap_or_else(|_| {
            // Dropping the server stops it accepting; the connections still open end with the runtime.
            unfinished.push("HTTP requests in flight".to_owned());
            Ok(())
        }),
    };
    let mut panicked = Vec::new();
    for Background { name: task, mut handle } in background {
        match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) if error.is_panic() => panicked.push(task),
            Ok(Err(_)) => {}
            Err(_) => {
                handle.abort();
                unfinished.push(task);
            }
        }
    }
    if !unfinished.is_empty() {
        tracing::error!(
            unfinished = %unfinished.join(", "),
            grace_seconds = grace.as_secs_f64(),
            "{name} did not finish within its shutdown grace: {}; aborted (unpublished events stay in the outbox, \
             unacknowledged entries stay pending)",
            unfinished.join(", "),
        );
    }
    if !panicked.is_empty() {
        anyhow::bail!("background tasks of {name} panicked: {}", panicked.join(", "));
    }
    served.context("serving HTTP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::sync::{mpsc, oneshot};

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A router whose `/hang` never answers and reports each request it got.
    fn hanging_router() -> (axum::Router, mpsc::UnboundedReceiver<()>) {
        let (started, requests) = mpsc::unbounded_channel();
        let router = axum::Router::new().route(
            "/hang",
            get(move || {
                let _ = started.send(());
                std::future::pending::<&'static str>()
            }),
        );
        (router, requests)
    }

    #[tokio::test]
    async fn a_shutdown_past_its_grace_aborts_the_hung_request_and_task_and_returns() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (router, mut requests) = hanging_router();
        let (held, aborted) = oneshot::channel::<()>();
        let stuck = Background::spawn("stuck task", async move {
            let _held_until_aborted = held;
            std::future::pending::<()>().await;
        });
        let cancel = CancellationToken::new();
        let grace = Duration::from_millis(500);
        let running = tokio::spawn(run("test-service", listener, router, vec![stuck], cancel.clone(), grace));
        let in_flight = tokio::spawn(reqwest::get(format!("http://{addr}/hang")));
        tokio::time::timeout(PATIENCE, requests.recv()).await?.context("the request reached the handler")?;

        let cancelled_at = Instant::now();
        cancel.cancel();
        tokio::time::timeout(PATIENCE, running).await.context("run returned")???;
        let took = cancelled_at.elapsed();

        assert!(took >= grace, "run gave them their grace, returned after {took:?}");
        assert!(took < grace + Duration::from_secs(1), "run returned soon after the grace, took {took:?}");
        let task_ended = tokio::time::timeout(PATIENCE, aborted).await?;
        assert!(task_ended.is_err(), "the stuck task was aborted");
        in_flight.abort();
        Ok(())
    }

    #[tokio::test]
    async fn a_shutdown_whose_tasks_finish_returns_without_waiting_out_the_grace() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (router, _requests) = hanging_router();
        let cancel = CancellationToken::new();
        let (finished, stopped) = oneshot::channel();
        let stopping = cancel.clone();
        let polite = Background::spawn("polite task", async move {
            stopping.cancelled().await;
            let _ = finished.send(());
        });
        let running = tokio::spawn(run("test-service", listener, router, vec![polite], cancel.clone(), PATIENCE));

        let cancelled_at = Instant::now();
        cancel.cancel();
        tokio::time::timeout(PATIENCE, running).await.context("run returned")???;

        assert!(cancelled_at.elapsed() < Duration::from_secs(2), "took {:?}", cancelled_at.elapsed());
        assert_eq!(stopped.await, Ok(()), "the task finished on its own");
        Ok(())
    }
}
