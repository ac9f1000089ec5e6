//! The service's PostgreSQL pool, on its own schema, migrated at start, with
//! the connection checks of [`events::pool`].

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use std::time::Duration;

/// Connects to the schema named by `options`' `search_path`, creating it if
/// needed, and applies the events crate's tables and then `migrations`.
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
    let mut admin = PgConnection::connect_with(&options)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}:{}", options.get_host(), options.get_port()))?;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    admin.close().await?;

    let pool = events::pool::options()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("opening the connection pool")?;
    events::schema::migrate(&pool).await.context("migrating the outbox and inbox tables")?;
    migrations.run(&pool).await.context("migrating the service's tables")?;
    Ok(pool)
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
    /// 503 naming `database` when it is unreachable, else 500; either way
    /// the error is logged.
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
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&db.pool).await?;

        let lost = sqlx::query("SELECT 1").execute(&mut connection).await.err().context("the query failed")?;
        let problem = StoreError::from(lost).problem("the menu database");
        assert_eq!(problem.status, 503);
        assert!(problem.detail.contains("the menu database"), "{}", problem.detail);
        Ok(())
    }
}
