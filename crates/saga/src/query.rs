//! What operators see: pages of sagas by status, and one saga with its history.

use crate::error::{Context, Error};
use crate::state::{Phase, SagaId, Status};
use crate::store::{COLUMNS, Row, Saga};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A saga as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaSummary {
    /// Its id.
    pub id: SagaId,
    /// Its type.
    pub saga_type: String,
    /// What it is about (the order id).
    pub subject: Uuid,
    /// Its status.
    pub status: Status,
    /// Going forward or compensating.
    pub phase: Phase,
    /// The index of the step awaited (or last handled).
    pub current_step: usize,
    /// Sends of the current step's command (or compensation's) so far.
    pub attempts: u32,
    /// When the sweep acts if no reply comes; none unless running or compensating.
    pub step_deadline: Option<DateTime<Utc>>,
    /// Why it compensates or failed.
    pub reason: Option<String>,
    /// Why it is stuck, while it is.
    pub stuck_reason: Option<String>,
    /// Its data.
    pub data: serde_json::Value,
    /// The request id it started with.
    pub correlation_id: String,
    /// Bumped on every change.
    pub version: i64,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Saga> for SagaSummary {
    fn from(saga: Saga) -> Self {
        Self {
            id: saga.id,
            saga_type: saga.saga_type,
            subject: saga.subject,
            status: saga.status,
            phase: saga.position.phase,
            current_step: saga.position.step,
            attempts: saga.attempts,
            step_deadline: saga.step_deadline,
            reason: saga.reason,
            stuck_reason: saga.stuck_reason,
            data: saga.data,
            correlation_id: saga.correlation_id,
            version: saga.version,
            created_at: saga.created_at,
            updated_at: saga.updated_at,
        }
    }
}

/// One thing that happened to a saga.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    /// Its place in the history, from 1.
    pub seq: i32,
    /// When.
    pub at: DateTime<Utc>,
    /// What: `started`, `command_sent`, `compensation_sent`, `reply_received`,
    /// `reply_ignored`, `timed_out`, `compensating`, `completed`, `failed`,
    /// `stuck`, `retried` or `aborted`.
    pub kind: String,
    /// The step concerned.
    pub step: Option<i32>,
    /// The command sent or reply received.
    pub event_type: Option<String>,
    /// Its id.
    pub event_id: Option<Uuid>,
    /// The rest: attempt, verdict, reason, payload…
    pub detail: serde_json::Value,
}

/// A saga with its whole history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaView {
    /// The saga.
    #[serde(flatten)]
    pub saga: SagaSummary,
    /// Its history, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// A page of sagas, newest first, and how many match in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaPage {
    /// The page.
    pub items: Vec<SagaSummary>,
    /// How many sagas match.
    pub total: i64,
}

/// The sagas with `status` (all if `None`), newest first: `limit` after
/// skipping `offset` (the caller checks their ranges).
///
/// # Errors
/// The database failed or a row is corrupt.
pub async fn list(pool: &PgPool, status: Option<Status>, limit: i64, offset: i64) -> Result<SagaPage, Error> {
    let status = status.map(Status::as_str);
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sagas WHERE $1::text IS NULL OR status = $1
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    )))
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .context("listing sagas")?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sagas WHERE $1::text IS NULL OR status = $1")
        .bind(status)
        .fetch_one(pool)
        .await
        .context("counting sagas")?;
    let items = rows.into_iter().map(|row| Saga::try_from(row).map(SagaSummary::from)).collect::<Result<_, _>>()?;
    Ok(SagaPage { items, total })
}

/// Saga `id` with its history, or `None`.
///
/// # Errors
/// The database failed or the row is corrupt.
pub async fn find(pool: &PgPool, id: SagaId) -> Result<Option<SagaView>, Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM sagas WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("reading a saga")?;
    let Some(row) = row else { return Ok(None) };
    let saga = SagaSummary::from(Saga::try_from(row)?);
    let history = history(pool, id).await?;
    Ok(Some(SagaView { saga, history }))
}

/// Every saga about `subject` with its history, oldest first: what an
/// order's page shows.
///
/// # Errors
/// The database failed or a row is corrupt.
pub async fn for_subject(pool: &PgPool, subject: Uuid) -> Result<Vec<SagaView>, Error> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sagas WHERE subject = $1 ORDER BY created_at, id"
    )))
    .bind(subject)
    .fetch_all(pool)
    .await
    .context("reading the sagas of a subject")?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let saga = SagaSummary::from(Saga::try_from(row)?);
        let history = history(pool, saga.id).await?;
        views.push(SagaView { saga, history });
    }
    Ok(views)
}

async fn history(pool: &PgPool, id: SagaId) -> Result<Vec<HistoryEntry>, Error> {
    sqlx::query_as(
        "SELECT seq, at, kind, step, event_type, event_id, detail FROM saga_history WHERE saga_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("reading a saga's history")
}
