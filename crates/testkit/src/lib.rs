//! Test support shared by every crate's integration tests.
//!
//! Tests run in parallel against the one PostgreSQL and Redis of the machine,
//! so each test takes isolated state: [`TestDb`] is a fresh schema in the
//! `platform_test` database (schemas older than an hour are dropped), [`unique`] makes stream, group and prefix names no
//! other test uses, and [`RedisServer`] starts a private, persistent
//! `redis-server` for tests that need to kill and restart Redis. [`Api`]
//! talks JSON to a service under test, and [`stream::entries`] reads a
//! stream's events back.

pub mod api;
pub mod bench;
pub mod stream;

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

/// A client of the shared Redis.
///
/// # Errors
/// The URL is malformed.
pub fn redis_client() -> anyhow::Result<redis::Client> {
    redis::Client::open(redis_url()).context("opening redis client")
}

/// `prefix` followed by a short random suffix: a name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// Sends logs to the test output when `TEST_LOG` is set (e.g. `TEST_LOG=debug`).
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .init();
        }
    });
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
        SWEPT.get_or_try_init(|| drop_old_schemas(&server)).await?;
        let schema = format!("t_{}_{}", unix_seconds(), &Uuid::new_v4().simple().to_string()[..12]);
        let options = server.database(TEST_DATABASE).options([("search_path", schema.as_str())]);
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
