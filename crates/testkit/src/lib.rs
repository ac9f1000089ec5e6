//! Test support shared by every crate's integration tests.
//!
//! Tests run in parallel against the one PostgreSQL and Redis of the machine,
//! so each test takes isolated state: [`TestDb`] is a fresh schema in the
//! `platform_test` database (schemas older than an hour are dropped, and so
//! are test streams idle for an hour), [`unique`] makes stream, group and
//! prefix names no other test uses, and [`RedisServer`] starts a private, persistent
//! `redis-server` for tests that need to kill and restart Redis. [`Api`]
//! talks JSON to a service under test, and [`stream::entries`] reads a
//! stream's events back. [`auth::TestKeys`] makes key pairs and mints
//! tokens; [`Api::as_staff`] sends one with every scope. [`proxy::FaultProxy`] sits between a service and
//! PostgreSQL or Redis and pauses, cuts or resets the connections on cue, for
//! tests of how the service lives through network faults. [`traces::Recorder`]
//! keeps the spans a test exports, to assert on whole traces.

pub mod api;
pub mod auth;
pub mod bench;
pub mod proxy;
pub mod stream;
pub mod traces;

pub use api::{Api, Running};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgPool};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Once;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use uuid::Uuid;

/// The PostgreSQL server tests use (`TEST_DATABASE_URL`, default the local one).
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".to_owned())
}

/// The shared Redis tests use (`TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The socket address of the PostgreSQL server tests use: what a
/// [`proxy::FaultProxy`] in front of it forwards to.
///
/// # Errors
/// The URL is malformed or its host does not resolve.
pub async fn postgres_addr() -> anyhow::Result<std::net::SocketAddr> {
    let options = PgConnectOptions::from_str(&postgres_url()).context("parsing TEST_DATABASE_URL")?;
    resolve(options.get_host(), options.get_port()).await
}

/// The socket address of the shared Redis: what a [`proxy::FaultProxy`] in
/// front of it forwards to.
///
/// # Errors
/// The URL is not a TCP one or its host does not resolve.
pub async fn redis_addr() -> anyhow::Result<std::net::SocketAddr> {
    match redis_client()?.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => resolve(host, *port).await,
        other => anyhow::bail!("the test Redis is not reached over plain TCP: {other:?}"),
    }
}

async fn resolve(host: &str, port: u16) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}

/// A client of the shared Redis.
///
/// # Errors
/// The URL is malformed.
pub fn redis_client() -> anyhow::Result<redis::Client> {
    redis::Client::open(redis_url()).context("opening redis client")
}

/// How many hex digits [`unique`] appends.
const UNIQUE_SUFFIX_LEN: usize = 12;

/// `prefix` followed by a short random suffix: a name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..UNIQUE_SUFFIX_LEN])
}

/// Sends logs to the test output when `TEST_LOG` is set (e.g.
/// `TEST_LOG=debug`), unless the test binary installed a subscriber of its
/// own (a [`traces::Recorder`], which logs the same way).
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// The default value of argument `name` (its field name) of the settings
/// `A`, as clap would take it: how tests check documented defaults.
pub fn default_of<A: clap::Args>(name: &str) -> Option<String> {
    A::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .find(|argument| argument.get_id() == name)
        .and_then(|argument| argument.get_default_values().first().cloned())
        .map(|value| value.to_string_lossy().into_owned())
}

/// Polls `check` until it yields `true`, failing after `within`.
///
/// # Errors
/// `check` failed, or did not yield `true` in time.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The database that holds every test's schema.
const TEST_DATABASE: &str = "platform_test";

/// A fresh schema of its own for one test, and a pool whose connections use it.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Connections whose `search_path` is the test's schema.
    pub pool: PgPool,
    /// The schema's name.
    pub schema: String,
    /// Options of the pool's connections, for making more pools on the schema.
    pub options: PgConnectOptions,
}

impl TestDb {
    /// Creates the schema (and the test database, on first use).
    ///
    /// # Errors
    /// PostgreSQL is unreachable.
    pub async fn new() -> anyhow::Result<Self> {
        init_tracing();
        let server = PgConnectOptions::from_str(&postgres_url())?;
        ensure_database(&server).await?;
        static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        SWEPT
            .get_or_try_init(|| async {
                drop_old_schemas(&server).await?;
                // Tidying Redis is a courtesy; a Redis that refuses it must not fail the tests.
                if let Err(error) = delete_old_streams(IDLE_STREAM_LIFETIME).await {
                    tracing::warn!(%error, "deleting old test streams failed");
                }
                anyhow::Ok(())
            })
            .await?;
        let schema = unique(&format!("t_{}_", unix_seconds()));
        // Named after the schema, so that a test can tell its own sessions
        // in `pg_stat_activity` from those of the tests running beside it.
        let options =
            server.database(TEST_DATABASE).options([("search_path", schema.as_str())]).application_name(&schema);
        let mut admin = sqlx::PgConnection::connect_with(&options).await?;
        // The name is ours: `t_` and hex digits.
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await?;
        admin.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .context("connecting to the test schema")?;
        Ok(Self { pool, schema, options })
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// Drops the schemas of test runs that started more than an hour ago, so that
/// a developer's `platform_test` does not grow without end. Schema names carry
/// their creation time: `t_<unix seconds>_<random>`.
async fn drop_old_schemas(server: &PgConnectOptions) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect_with(&server.clone().database(TEST_DATABASE)).await?;
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9a-f]+$'")
            .fetch_all(&mut admin)
            .await?;
    let cutoff = unix_seconds().saturating_sub(3600);
    for schema in schemas {
        let created: u64 = schema.split('_').nth(1).and_then(|secs| secs.parse().ok()).unwrap_or(u64::MAX);
        if created < cutoff {
            // The name matched `t_<digits>_<hex>` above.
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&mut admin).await?;
        }
    }
    admin.close().await?;
    Ok(())
}

/// The prefixes of the streams tests name with [`unique`].
const TEST_STREAM_PREFIXES: [&str; 2] = ["test-", "ctl-"];

/// How long a test stream may sit untouched before a later run deletes it.
const IDLE_STREAM_LIFETIME: Duration = Duration::from_secs(3600);

/// Whether `key` is a stream name made by [`unique`] with `prefix`.
fn is_test_stream(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.get(..UNIQUE_SUFFIX_LEN))
        .is_some_and(|suffix| suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Deletes the test streams nobody has touched for `lifetime`, as
/// [`drop_old_schemas`] does for schemas, so that the shared Redis does not
/// fill up with every run's streams.
async fn delete_old_streams(lifetime: Duration) -> anyhow::Result<()> {
    let mut redis = redis_client()?.get_multiplexed_async_connection().await.context("connecting to redis")?;
    for prefix in TEST_STREAM_PREFIXES {
        let mut cursor = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("stream")
                .query_async(&mut redis)
                .await?;
            for key in keys.into_iter().filter(|key| is_test_stream(key, prefix)) {
                let idle_seconds: Option<u64> =
                    redis::cmd("OBJECT").arg("IDLETIME").arg(&key).query_async(&mut redis).await?;
                if idle_seconds.is_some_and(|idle| idle > lifetime.as_secs()) {
                    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut redis).await?;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

async fn ensure_database(server: &PgConnectOptions) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect_with(&server.clone().database("postgres"))
        .await
        .context("connecting to PostgreSQL; is it running? (see README)")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(TEST_DATABASE)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        // Parallel tests may race to create it; losing the race is fine.
        if let Err(error) = sqlx::query("CREATE DATABASE platform_test").execute(&mut admin).await {
            let raced =
                error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "42P04" || code == "23505");
            if !raced {
                return Err(error.into());
            }
        }
    }
    admin.close().await?;
    Ok(())
}

/// A private `redis-server` with AOF (`appendfsync always`) in a temporary
/// directory on a free port, for tests that kill and restart Redis.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts the server and waits until it answers.
    ///
    /// # Errors
    /// `redis-server` is not installed or does not come up.
    pub fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = Self { port, dir: tempfile::tempdir()?, child: None };
        server.restart()?;
        Ok(server)
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL: no chance to save anything beyond what AOF already has.
    ///
    /// # Errors
    /// The process could not be killed.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and data, and waits until it answers.
    ///
    /// # Errors
    /// It does not come up within ten seconds.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url())?;
        loop {
            let answered =
                client.get_connection().and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
            match answered {
                Ok(_) => return Ok(()),
                Err(error) if Instant::now() > deadline => {
                    return Err(error).context("redis-server did not come up");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::aio::MultiplexedConnection;

    async fn exists(redis: &mut MultiplexedConnection, key: &str) -> anyhow::Result<bool> {
        Ok(redis::cmd("EXISTS").arg(key).query_async(redis).await?)
    }

    /// Replaces `key` with a copy that Redis takes for two hours untouched.
    async fn leave_untouched_for_two_hours(redis: &mut MultiplexedConnection, key: &str) -> anyhow::Result<()> {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(key).query_async(redis).await?;
        let restore = redis::cmd("RESTORE").arg(key).arg(0).arg(dump).arg("REPLACE").arg("IDLETIME").arg(7200).clone();
        let _: () = restore.query_async(redis).await?;
        Ok(())
    }

    #[tokio::test]
    async fn test_streams_idle_past_their_lifetime_are_deleted_and_others_kept() -> anyhow::Result<()> {
        let mut redis = redis_client()?.get_multiplexed_async_connection().await?;
        let (fresh, stale) = (format!("{}menu-events", unique("test-")), format!("{}menu-events", unique("test-")));
        let not_made_by_unique = format!("test-stream-of-someone-else-{}", unique(""));
        for key in [&fresh, &stale, &not_made_by_unique] {
            let _: String =
                redis::cmd("XADD").arg(key).arg("*").arg("field").arg("value").query_async(&mut redis).await?;
        }
        leave_untouched_for_two_hours(&mut redis, &stale).await?;
        leave_untouched_for_two_hours(&mut redis, &not_made_by_unique).await?;

        delete_old_streams(IDLE_STREAM_LIFETIME).await?;

        assert!(!exists(&mut redis, &stale).await?, "the stale test stream was deleted");
        assert!(exists(&mut redis, &fresh).await?, "the fresh one was kept");
        assert!(exists(&mut redis, &not_made_by_unique).await?, "a stream not named by `unique` was kept");
        let _: () = redis::cmd("DEL").arg(&fresh).arg(&not_made_by_unique).query_async(&mut redis).await?;
        Ok(())
    }
}
