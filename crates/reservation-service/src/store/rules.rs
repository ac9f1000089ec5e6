//! The restaurant's rules: one versioned JSON document.

use crate::domain::{Rules, RulesDocument};
use chrono::{DateTime, Utc};
use service_kit::database::StoreError;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// The rules as stored, with their version.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The rules.
    pub rules: Rules,
    /// Bumped by every change; the `ETag`.
    pub version: i64,
    /// When they last changed.
    pub updated_at: DateTime<Utc>,
}

/// The rules stored at the moment.
///
/// # Errors
/// PostgreSQL failed, there are none yet, or the stored document is invalid.
pub async fn load<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<Versioned, StoreError> {
    let row: (Json<RulesDocument>, i64, DateTime<Utc>) =
        sqlx::query_as("SELECT rules, version, updated_at FROM restaurant").fetch_one(executor).await?;
    versioned(row)
}

/// Loads the rules under a row lock, for a change.
///
/// # Errors
/// As [`load`].
pub async fn lock(tx: &mut PgConnection) -> Result<Versioned, StoreError> {
    let row: (Json<RulesDocument>, i64, DateTime<Utc>) =
        sqlx::query_as("SELECT rules, version, updated_at FROM restaurant FOR UPDATE").fetch_one(tx).await?;
    versioned(row)
}

fn versioned(
    (Json(document), version, updated_at): (Json<RulesDocument>, i64, DateTime<Utc>),
) -> Result<Versioned, StoreError> {
    let rules = document.parse().map_err(|error| StoreError::Corrupt {
        entity: "restaurant rules",
        id: Uuid::nil(),
        detail: error.to_string(),
    })?;
    Ok(Versioned { rules, version, updated_at })
}

/// Stores `rules` as the first version unless there is one; whether it did.
///
/// # Errors
/// PostgreSQL failed.
pub async fn seed(tx: &mut PgConnection, rules: &Rules, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let seeded = sqlx::query(
        "INSERT INTO restaurant (rules, version, updated_at) VALUES ($1, 1, $2) ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(Json(rules.document()))
    .bind(now)
    .execute(tx)
    .await?;
    Ok(seeded.rows_affected() == 1)
}

/// Writes `rules` back as `version`.
///
/// # Errors
/// PostgreSQL failed.
pub async fn save(tx: &mut PgConnection, rules: &Rules, version: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("UPDATE restaurant SET rules = $1, version = $2, updated_at = $3")
        .bind(Json(rules.document()))
        .bind(version)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}
