//! The service's PostgreSQL pool, on its own schema, migrated at start.

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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

    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("opening the connection pool")?;
    events::schema::migrate(&pool).await.context("migrating the outbox and inbox tables")?;
    migrations.run(&pool).await.context("migrating the service's tables")?;
    Ok(pool)
}
