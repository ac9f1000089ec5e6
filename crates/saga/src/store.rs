//! The SQL of the `sagas` and `saga_history` tables.

use crate::error::{Context, Error};
use crate::state::{Phase, Position, SagaId, Status};
use chrono::{DateTime, Utc};
use events::trace::TraceContext;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row as _};
use std::sync::LazyLock;
use uuid::Uuid;

/// A saga's row, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Saga {
    pub id: SagaId,
    pub saga_type: String,
    pub subject: Uuid,
    pub data: serde_json::Value,
    pub position: Position,
    pub status: Status,
    pub step_deadline: Option<DateTime<Utc>>,
    pub step_started_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub command_id: Option<Uuid>,
    pub reason: Option<String>,
    pub stuck_reason: Option<String>,
    pub correlation_id: String,
    pub source: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The context of the span that sent the latest command, while traces are exported.
    pub trace: Option<TraceContext>,
}

/// The columns of [`Row`], in a `SELECT`.
pub(crate) const COLUMNS: &str = "id, saga_type, subject, data, current_step, phase, status, step_deadline, \
    step_started_at, attempts, command_id, reason, stuck_reason, correlation_id, source, version, created_at, updated_at, \
    traceparent, tracestate";

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: Uuid,
    saga_type: String,
    subject: Uuid,
    data: serde_json::Value,
    current_step: i32,
    phase: String,
    status: String,
    step_deadline: Option<DateTime<Utc>>,
    step_started_at: Option<DateTime<Utc>>,
    attempts: i32,
    command_id: Option<Uuid>,
    reason: Option<String>,
    stuck_reason: Option<String>,
    correlation_id: String,
    source: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl TryFrom<Row> for Saga {
    type Error = Error;

    fn try_from(row: Row) -> Result<Self, Error> {
        let id = SagaId::from(row.id);
        let corrupt = |detail: String| Error::Corrupt { saga: id, detail };
        Ok(Self {
            id,
            position: Position {
                phase: row.phase.parse().map_err(|error| corrupt(format!("{error}")))?,
                step: usize::try_from(row.current_step).map_err(|_| corrupt("negative step".to_owned()))?,
            },
            status: row.status.parse().map_err(|error| corrupt(format!("{error}")))?,
            attempts: u32::try_from(row.attempts).map_err(|_| corrupt("negative attempts".to_owned()))?,
            saga_type: row.saga_type,
            subject: row.subject,
            data: row.data,
            step_deadline: row.step_deadline,
            step_started_at: row.step_started_at,
            command_id: row.command_id,
            reason: row.reason,
            stuck_reason: row.stuck_reason,
            correlation_id: row.correlation_id,
            source: row.source,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            trace: TraceContext::from_parts(row.traceparent.as_deref(), row.tracestate.as_deref()),
        })
    }
}

/// Converts an index or count for an `int` column (the engine's are tiny).
pub(crate) fn int(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

/// Inserts a new saga, awaiting nothing yet (the caller sends step 0 next).
pub(crate) async fn insert(connection: &mut PgConnection, saga: &Saga) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sagas (id, saga_type, subject, data, current_step, phase, status, step_deadline, attempts,
                            correlation_id, source, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 0, 'forward', 'running', $5, 0, $6, $7, 1, $5, $5)",
    )
    .bind(saga.id)
    .bind(&saga.saga_type)
    .bind(saga.subject)
    .bind(&saga.data)
    .bind(saga.created_at)
    .bind(&saga.correlation_id)
    .bind(&saga.source)
    .execute(connection)
    .await
    .context("inserting a saga")?;
    Ok(())
}

/// Writes `saga`'s changeable fields, bumps its version and appends
/// `history` (what led to the change and what it did, stamped with the
/// saga's `updated_at`), in one statement. The caller holds the row locked.
pub(crate) async fn update(
    connection: &mut PgConnection,
    saga: &mut Saga,
    history: Vec<Entry<'_>>,
) -> Result<(), Error> {
    static STATEMENT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH updated AS (
                 UPDATE sagas SET current_step = $2, phase = $3, status = $4, step_deadline = $5, step_started_at = $6,
                                  attempts = $7, command_id = $8, reason = $9, stuck_reason = $10,
                                  version = version + 1, updated_at = $11, traceparent = $12, tracestate = $13
                 WHERE id = $1 RETURNING version
             ), history AS ({})
             SELECT version FROM updated",
            append_history("$1", "$11", 14)
        )
    });
    let query = sqlx::query(sqlx::AssertSqlSafe(STATEMENT.as_str()))
        .bind(saga.id)
        .bind(int(saga.position.step))
        .bind(saga.position.phase.as_str())
        .bind(saga.status.as_str())
        .bind(saga.step_deadline)
        .bind(saga.step_started_at)
        .bind(int(saga.attempts))
        .bind(saga.command_id)
        .bind(&saga.reason)
        .bind(&saga.stuck_reason)
        .bind(saga.updated_at)
        .bind(saga.trace.as_ref().map(|trace| trace.traceparent.as_str()))
        .bind(saga.trace.as_ref().and_then(|trace| trace.tracestate.as_deref()));
    let updated = bind_history(query, history).fetch_one(connection).await.context("updating a saga")?;
    saga.version = updated.try_get("version").context("reading a saga's version")?;
    Ok(())
}

/// Locks and reads saga `id`.
pub(crate) async fn lock(connection: &mut PgConnection, id: SagaId) -> Result<Option<Saga>, Error> {
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM sagas WHERE id = $1 FOR UPDATE")))
            .bind(id)
            .fetch_optional(connection)
            .await
            .context("locking a saga")?;
    row.map(Saga::try_from).transpose()
}

/// Locks and reads the sagas of `subject` of the given types that still await
/// a reply or an operator (running, compensating, stuck), oldest first.
pub(crate) async fn lock_open_for_subject(
    connection: &mut PgConnection,
    subject: Uuid,
    types: &[String],
) -> Result<Vec<Saga>, Error> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sagas
         WHERE subject = $1 AND saga_type = ANY($2) AND status IN ('running', 'compensating', 'stuck')
         ORDER BY created_at, id FOR UPDATE"
    )))
    .bind(subject)
    .bind(types)
    .fetch_all(connection)
    .await
    .context("locking the sagas of a subject")?;
    rows.into_iter().map(Saga::try_from).collect()
}

/// Locks up to `limit` sagas of the given types whose deadline is at or
/// before `now`, skipping those another transaction holds.
pub(crate) async fn lock_due(
    connection: &mut PgConnection,
    now: DateTime<Utc>,
    types: &[String],
    limit: i64,
) -> Result<Vec<Saga>, Error> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sagas
         WHERE status IN ('running', 'compensating') AND step_deadline <= $1 AND saga_type = ANY($2)
         ORDER BY step_deadline LIMIT $3 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(types)
    .bind(limit)
    .fetch_all(connection)
    .await
    .context("locking the sagas past their deadline")?;
    rows.into_iter().map(Saga::try_from).collect()
}

/// One entry of a saga's history, to be appended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry<'a> {
    pub kind: &'a str,
    pub step: Option<usize>,
    pub event_type: Option<&'a str>,
    pub event_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Appends `entries` to the history of `saga`, whose row the caller holds
/// locked, in one statement.
pub(crate) async fn record(
    connection: &mut PgConnection,
    saga: SagaId,
    at: DateTime<Utc>,
    entries: Vec<Entry<'_>>,
) -> Result<(), Error> {
    static STATEMENT: LazyLock<String> = LazyLock::new(|| append_history("$1", "$2", 3));
    bind_history(sqlx::query(sqlx::AssertSqlSafe(STATEMENT.as_str())).bind(saga).bind(at), entries)
        .execute(connection)
        .await
        .context("recording saga history")?;
    Ok(())
}

/// The `INSERT` that appends entries to a saga's history, numbered on from
/// its last: the saga and the time are the parameters `saga` and `at`, the
/// entries' columns five arrays from parameter number `first` on (see
/// [`bind_history`]).
fn append_history(saga: &str, at: &str, first: usize) -> String {
    let [kinds, steps, event_types, event_ids, details] = std::array::from_fn(|n| format!("${}", first + n));
    format!(
        "INSERT INTO saga_history (saga_id, seq, at, kind, step, event_type, event_id, detail)
         SELECT {saga}, COALESCE((SELECT MAX(seq) FROM saga_history WHERE saga_id = {saga}), 0) + e.n,
                {at}, e.kind, e.step, e.event_type, e.event_id, e.detail
         FROM UNNEST({kinds}::text[], {steps}::int4[], {event_types}::text[], {event_ids}::uuid[],
                     {details}::jsonb[]) WITH ORDINALITY AS e(kind, step, event_type, event_id, detail, n)"
    )
}

/// Binds `entries` as the five arrays [`append_history`] reads.
fn bind_history<'q>(
    query: Query<'q, Postgres, PgArguments>,
    entries: Vec<Entry<'q>>,
) -> Query<'q, Postgres, PgArguments> {
    let kinds: Vec<&str> = entries.iter().map(|entry| entry.kind).collect();
    let steps: Vec<Option<i32>> = entries.iter().map(|entry| entry.step.map(int)).collect();
    let event_types: Vec<Option<&str>> = entries.iter().map(|entry| entry.event_type).collect();
    let event_ids: Vec<Option<Uuid>> = entries.iter().map(|entry| entry.event_id).collect();
    let details: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|entry| if entry.detail.is_null() { serde_json::json!({}) } else { entry.detail })
        .collect();
    query.bind(kinds).bind(steps).bind(event_types).bind(event_ids).bind(details)
}

/// What `saga`'s history says of a reply: whether it has already received
/// or ignored reply `event_id`, and where the saga stood when it sent the
/// command `command_id` that the reply answers (if the saga sent it).
pub(crate) async fn look_up_reply(
    connection: &mut PgConnection,
    saga: SagaId,
    event_id: Uuid,
    command_id: Option<Uuid>,
) -> Result<(bool, Option<Position>), Error> {
    let (seen, kind, step): (bool, Option<String>, Option<i32>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM saga_history
                        WHERE saga_id = $1 AND event_id = $2 AND kind IN ('reply_received', 'reply_ignored')),
                sent.kind, sent.step
         FROM (SELECT 1) AS one
         LEFT JOIN LATERAL (SELECT kind, step FROM saga_history
                            WHERE saga_id = $1 AND event_id = $3 AND kind IN ('command_sent', 'compensation_sent')
                            LIMIT 1) AS sent ON true",
    )
    .bind(saga)
    .bind(event_id)
    .bind(command_id)
    .fetch_one(connection)
    .await
    .context("looking for a reply and its command in the saga history")?;
    let sent = kind.zip(step).and_then(|(kind, step)| {
        let phase = if kind == "command_sent" { Phase::Forward } else { Phase::Compensation };
        Some(Position { phase, step: usize::try_from(step).ok()? })
    });
    Ok((seen, sent))
}
