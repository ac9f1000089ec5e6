//! The service's PostgreSQL pools, on its own schema, migrated at start, with
//! the connection checks of [`events::pool`]. Every connection carries the
//! statement, lock and idle-in-transaction timeouts of
//! [`Settings::database`](crate::Settings::database), so a request waits on a
//! busy database for a bounded time and then gets a 503 it may retry.

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use std::time::Duration;

/// Connects to the schema named by `options`' `search_path`, creating it if
/// needed, applies the events crate's tables and then `migrations` (without
/// the statement and lock timeouts of `options`), and opens the pool.
///
/// # Errors
/// PostgreSQL is unreachable or a migration fails.
pub async fn connect(
    options: PgConnectOptions,
    schema: &str,
    max_connections: u32,
    migrations: &Migrator,
) -> anyhow::Result<PgPool> {
    if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("schema name {schema:?} must be letters, digits and underscores");
    }
    let unbounded = unbounded(&options);
    let mut admin = PgConnection::connect_with(&unbounded)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}:{}", options.get_host(), options.get_port()))?;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    admin.close().await?;

    let migrating = pool(unbounded, 1).await?;
    events::schema::migrate(&migrating).await.context("migrating the outbox and inbox tables")?;
    migrate_own_tables(&migrating).await.context("migrating the idempotency keys table")?;
    migrations.run(&migrating).await.context("migrating the service's tables")?;
    migrating.close().await;
    pool(options, max_connections).await
}

/// Applies `migrator` (tables a library keeps in the service's schema, such
/// as the sagas') to the schema named by `options`, without its statement
/// and lock timeouts, as [`connect`] applies the service's own.
///
/// # Errors
/// PostgreSQL is unreachable or a migration fails.
pub async fn migrate(options: &PgConnectOptions, migrator: &Migrator) -> anyhow::Result<()> {
    let migrating = pool(unbounded(options), 1).await?;
    let migrated = migrator.run(&migrating).await;
    migrating.close().await;
    Ok(migrated?)
}

/// `options` without the statement and lock timeouts. Creating and migrating
/// the schema waits for any other instance migrating the same database (sqlx
/// holds a database-wide advisory lock, which `lock_timeout` would cut short)
/// and may take long: it is not a request, so not under the request
/// timeouts. A later `-c` of the same setting wins.
fn unbounded(options: &PgConnectOptions) -> PgConnectOptions {
    options.clone().options([("statement_timeout", "0"), ("lock_timeout", "0")])
}

/// Creates or upgrades the tables of this crate (`idempotency_keys`) in the
/// pool's schema, with a history table of their own (`_service_kit_migrations`).
pub(crate) async fn migrate_own_tables(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator: Migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_service_kit_migrations");
    migrator.run(pool).await
}

/// A pool of up to `max_connections` on `options`, with the checks of
/// [`events::pool::options`]; nothing is created or migrated.
///
/// # Errors
/// PostgreSQL is unreachable.
pub async fn pool(options: PgConnectOptions, max_connections: u32) -> anyhow::Result<PgPool> {
    events::pool::options()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("opening the connection pool")
}

/// Why a service's own tables could not be read or written, or its events
/// not appended. Each service's error type wraps it, and
/// [`StoreError::problem`] is its one mapping to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row breaks a domain rule: written by something other than the
    /// service.
    #[error("{entity} {id} has an invalid stored value: {detail}")]
    Corrupt {
        /// What kind of aggregate, such as `menu`.
        entity: &'static str,
        /// Which one.
        id: uuid::Uuid,
        /// What is wrong.
        detail: String,
    },
    /// An event could not be encoded for the outbox.
    #[error("encoding an event: {0}")]
    Encode(#[source] serde_json::Error),
}

impl From<events::outbox::AppendError> for StoreError {
    fn from(error: events::outbox::AppendError) -> Self {
        match error {
            events::outbox::AppendError::Database(cause) => Self::Database(cause),
            events::outbox::AppendError::Encode(cause) => Self::Encode(cause),
        }
    }
}

impl StoreError {
    /// 503 naming `database` when it is unreachable, 503 with `Retry-After`
    /// when it was too busy (a lock or statement timeout, a serialization
    /// failure or deadlock), else 500; either way the error is logged.
    pub fn problem(&self, database: &str) -> crate::Problem {
        match self {
            Self::Database(cause) => crate::Problem::database(database, cause, self),
            Self::Corrupt { .. } | Self::Encode(_) => crate::Problem::internal(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use axum::http::header;
    use axum::response::IntoResponse;

    static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

    /// A pool made the way services make theirs, on `db`'s schema, with `settings`.
    async fn service_pool(db: &testkit::TestDb, settings: impl FnOnce(&mut Settings)) -> anyhow::Result<PgPool> {
        let mut service = Settings::ephemeral("platform_test", &db.schema, "");
        settings(&mut service);
        connect(service.database("unused"), &db.schema, 2, &NO_MIGRATIONS).await
    }

    #[test]
    fn an_unreachable_database_is_a_503_naming_it_and_every_other_store_failure_a_500() {
        let unreachable = StoreError::from(sqlx::Error::PoolTimedOut).problem("the menu database");
        assert_eq!(unreachable.status, 503);
        assert!(unreachable.detail.contains("the menu database"), "{}", unreachable.detail);

        assert_eq!(StoreError::from(sqlx::Error::RowNotFound).problem("the menu database").status, 500);
        let corrupt = StoreError::Corrupt { entity: "menu", id: uuid::Uuid::nil(), detail: "bad currency".into() };
        assert_eq!(corrupt.problem("the menu database").status, 500);
        let outbox = events::outbox::AppendError::Database(sqlx::Error::PoolClosed);
        assert_eq!(StoreError::from(outbox).problem("the menu database").status, 503);
    }

    #[tokio::test]
    async fn a_connection_whose_server_went_away_is_a_503() -> anyhow::Result<()> {
        let db = testkit::TestDb::new().await?;
        let mut connection = PgConnection::connect_with(&db.options).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut connection).await?;
        sqlx::query("SELECT pg_terminate_backend($1, 5000)").bind(pid).execute(&db.pool).await?;

        let lost = sqlx::query("SELECT 1").execute(&mut connection).await.err().context("the query failed")?;
        let problem = StoreError::from(lost).problem("the menu database");
        assert_eq!(problem.status, 503);
        assert!(problem.detail.contains("the menu database"), "{}", problem.detail);
        Ok(())
    }

    #[tokio::test]
    async fn a_library_migration_waits_for_another_instances_migration_past_the_lock_timeout() -> anyhow::Result<()> {
        use sqlx::migrate::Migrate;
        let db = testkit::TestDb::new().await?;
        let mut settings = Settings::ephemeral("platform_test", &db.schema, "");
        settings.db_lock_timeout_ms = 50;
        let options = settings.database("unused").application_name(&db.schema);
        // Another instance migrating the same database holds sqlx's database-wide lock.
        let mut other_instance = PgConnection::connect_with(&db.options).await?;
        other_instance.lock().await?;

        let migrating = tokio::spawn(async move { migrate(&options, &NO_MIGRATIONS).await });
        let waited_for_the_lock = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event_type = 'Lock' AND now() - state_change > interval '250 ms')";
        testkit::eventually(Duration::from_secs(10), "the migration waits past its lock timeout, or ends", || async {
            let waited: bool = sqlx::query_scalar(waited_for_the_lock).bind(&db.schema).fetch_one(&db.pool).await?;
            Ok(waited || migrating.is_finished())
        })
        .await?;
        assert!(!migrating.is_finished(), "the migration ended while the lock was held: {:?}", migrating.await?);
        other_instance.unlock().await?;
        migrating.await??;
        Ok(())
    }

    #[tokio::test]
    async fn every_pooled_connection_has_the_configured_timeouts() -> anyhow::Result<()> {
        let db = testkit::TestDb::new().await?;
        let pool = service_pool(&db, |settings| {
            settings.db_statement_timeout_ms = 4321;
            settings.db_lock_timeout_ms = 1234;
            settings.db_idle_in_transaction_timeout_ms = 5678;
        })
        .await?;

        let mut connection = pool.acquire().await?;
        for (setting, expected) in [
            ("statement_timeout", "4321ms"),
            ("lock_timeout", "1234ms"),
            ("idle_in_transaction_session_timeout", "5678ms"),
        ] {
            let shown: String =
                sqlx::query_scalar(AssertSqlSafe(format!("SHOW {setting}"))).fetch_one(&mut *connection).await?;
            assert_eq!(shown, expected, "{setting}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn waiting_too_long_for_a_row_lock_is_a_503_to_retry() -> anyhow::Result<()> {
        let db = testkit::TestDb::new().await?;
        sqlx::query("CREATE TABLE tables (id int PRIMARY KEY, seats int NOT NULL)").execute(&db.pool).await?;
        sqlx::query("INSERT INTO tables VALUES (1, 4)").execute(&db.pool).await?;
        let mut holder = db.pool.begin().await?;
        sqlx::query("SELECT seats FROM tables WHERE id = 1 FOR UPDATE").execute(&mut *holder).await?;
        let pool = service_pool(&db, |settings| settings.db_lock_timeout_ms = 100).await?;

        let waited = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query("UPDATE tables SET seats = 6 WHERE id = 1").execute(&pool),
        )
        .await
        .context("the update waited past the lock timeout")?;
        let timed_out = waited.err().context("the update gave up")?;
        assert_eq!(timed_out.as_database_error().and_then(|error| error.code()).as_deref(), Some("55P03"));

        let problem = StoreError::from(timed_out).problem("the test database");
        assert_eq!(problem.status, 503);
        assert_eq!(problem.detail, "the test database was busy; retry in 1 s");
        let response = problem.into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).map(|value| value.as_bytes()), Some(&b"1"[..]));
        holder.rollback().await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_statement_timeout_a_serialization_failure_and_a_deadlock_are_503s_to_retry() -> anyhow::Result<()> {
        let db = testkit::TestDb::new().await?;
        let pool = service_pool(&db, |settings| settings.db_statement_timeout_ms = 100).await?;
        let slow = sqlx::query("SELECT pg_sleep(5)").execute(&pool).await.err().context("the sleep was cancelled")?;
        let raised = |code: &str| {
            sqlx::query(AssertSqlSafe(format!(
                "DO $$ BEGIN RAISE EXCEPTION 'contention' USING ERRCODE = '{code}'; END $$"
            )))
        };
        // Raised where no 100 ms statement timeout can overtake them on a busy machine.
        let serialization = raised("40001").execute(&db.pool).await.err().context("the raise failed")?;
        let deadlock = raised("40P01").execute(&db.pool).await.err().context("the raise failed")?;
        let other = raised("P0001").execute(&db.pool).await.err().context("the raise failed")?;

        for (error, code) in [(slow, "57014"), (serialization, "40001"), (deadlock, "40P01")] {
            assert_eq!(error.as_database_error().and_then(|error| error.code()).as_deref(), Some(code));
            let problem = StoreError::from(error).problem("the test database");
            assert_eq!(problem.status, 503, "{code}");
            assert!(problem.headers.iter().any(|(name, _)| name == header::RETRY_AFTER), "{code} says when to retry");
        }
        assert_eq!(StoreError::from(other).problem("the test database").status, 500, "any other error is a 500");
        Ok(())
    }
}
