//! The tables this crate keeps in a service's own schema: `outbox` and `processed_events`.
//!
//! They are migrated with their own history table (`_events_migrations`) so that
//! a service's migrations and these never have to agree on version numbers.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// Creates or upgrades the outbox and inbox tables in the pool's current schema.
///
/// # Errors
/// A migration failed or the database could not be reached.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    let mut migrator: Migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_events_migrations");
    migrator.run(pool).await
}
