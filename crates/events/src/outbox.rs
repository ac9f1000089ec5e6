//! The transactional outbox: events are rows written with the state change, and
//! a relay moves committed rows to Redis.
//!
//! A service never talks to Redis while it changes state. It calls [`append`]
//! inside its own transaction, so the change and its events commit or vanish
//! together. The [`OutboxRelay`] then publishes committed rows with `XADD` in
//! `seq` order, deleting them in the same PostgreSQL transaction: if `XADD`
//! fails the delete rolls back and the rows wait for the next attempt.
//!
//! * **Waking.** `append` sends `NOTIFY` on a channel named after the schema;
//!   the relay `LISTEN`s and also polls, so a lost notification or a dropped
//!   listener delays an event by at most one poll interval.
//! * **Order.** A batch is claimed with `FOR UPDATE SKIP LOCKED` by a
//!   statement that first takes a per-schema advisory lock. Several relays
//!   (one per service instance) can therefore run: one publishes at a time and
//!   the others stand by, so the stream never shows a later batch before an
//!   earlier one. Rows of one aggregate are committed in version order (writers
//!   of an aggregate serialize on its row), so each aggregate's events reach the
//!   stream in commit order.
//! * **Overlap.** One relay transaction publishes up to four batches and
//!   claims each next batch while the current one's `XADD`s are in flight
//!   (78k events/s against 57k one batch at a time); the next batch's `XADD`s
//!   start only once the current ones are acknowledged.
//! * **Redis down.** Rows stay unpublished and the relay retries with backoff;
//!   when Redis returns it catches up in batches.
//! * **At least once.** A crash between `XADD` and the commit that deletes the
//!   rows leaves them in the outbox, and they are sent again: consumers
//!   deduplicate by event id (see [`crate::inbox`]).
//! * **Retention.** A published row leaves the outbox at once (marking rows
//!   and pruning them later costs ten times more per row: an `UPDATE` of 500
//!   rows took 6–8 ms here, a `DELETE` 0.7 ms). What was published is on the
//!   stream, capped with `XADD … MAXLEN ~ stream_max_len`.

use crate::backoff::{Backoff, LogLimiter};
use crate::encoding::{EncodedEvent, Streams};
use crate::envelope::{DomainEvent, Event};
use crate::metrics as names;
use chrono::{DateTime, Utc};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why appending to the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// An event could not be encoded.
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
    /// The insert failed; the caller's transaction should be rolled back.
    #[error("inserting into the outbox: {0}")]
    Database(#[from] sqlx::Error),
}

/// Appends `events` to the outbox inside the caller's transaction.
///
/// The events are published only if and when that transaction commits.
///
/// # Errors
/// Encoding or the insert failed; roll the transaction back.
pub async fn append<E: Event>(
    tx: &mut PgConnection,
    streams: &Streams,
    events: &[DomainEvent<E>],
) -> Result<(), AppendError> {
    if events.is_empty() {
        return Ok(());
    }
    let stream = streams.of::<E>();
    let encoded = events.iter().map(EncodedEvent::encode).collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "WITH appended AS (
             INSERT INTO outbox (event_id, stream, event_type, aggregate_id, version, occurred_at, data, metadata)
             SELECT id, $2, event_type, aggregate_id, version, occurred_at, data::json, metadata::json
             FROM UNNEST($1::uuid[], $3::text[], $4::uuid[], $5::int8[], $6::timestamptz[], $7::text[], $8::text[])
                  AS e(id, event_type, aggregate_id, version, occurred_at, data, metadata)
         )
         SELECT pg_notify(concat('outbox_', current_schema()), '')",
    )
    .bind(encoded.iter().map(|e| e.id.as_uuid()).collect::<Vec<_>>())
    .bind(&stream)
    .bind(encoded.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.aggregate_id).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.version).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.data.as_str()).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.metadata.as_str()).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// How often the backlog gauges are refreshed.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(1);

/// How the relay batches, waits, caps streams and prunes.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows published per `XADD` pipeline and transaction.
    pub batch_size: usize,
    /// Longest wait between looks at the outbox when no notification comes.
    pub poll_interval: Duration,
    /// Approximate cap of every stream (`XADD … MAXLEN ~`).
    pub stream_max_len: usize,
    /// Waits between attempts while Redis or PostgreSQL is unreachable.
    pub backoff: Backoff,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            stream_max_len: 100_000,
            backoff: Backoff { initial: Duration::from_millis(50), max: Duration::from_secs(5) },
        }
    }
}

/// Why one relay step failed. The relay itself retries; this is for callers of
/// [`OutboxRelay::publish_batch`] and for the logs.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed.
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed; the rows stay unpublished.
    #[error("publishing to redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How many batches one relay transaction publishes, each claimed while the
/// one before is being sent: a crash re-publishes at most this many.
const BATCHES_PER_TRANSACTION: usize = 4;

/// Publishes committed outbox rows to Redis. Run one per service instance.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    redis: redis::Client,
    config: RelayConfig,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    event_id: Uuid,
    stream: String,
    event_type: String,
    aggregate_id: Uuid,
    version: i64,
    occurred_at: DateTime<Utc>,
    data: String,
    metadata: String,
}

impl OutboxRelay {
    /// A relay for the outbox in `pool`'s schema, publishing through `redis`.
    pub fn new(pool: PgPool, redis: redis::Client, config: RelayConfig) -> Self {
        Self { pool, redis, config }
    }

    /// Publishes until `cancel` fires, surviving outages of Redis and PostgreSQL.
    /// A batch under way when `cancel` fires is finished first.
    #[tracing::instrument(name = "outbox_relay", skip_all)]
    pub async fn run(self, cancel: CancellationToken) {
        let mut redis: Option<MultiplexedConnection> = None;
        let mut listener: Option<PgListener> = None;
        let mut failures = 0u32;
        let mut limiter = LogLimiter::new(Duration::from_secs(10));
        let mut last_backlog: Option<Instant> = None;

        while !cancel.is_cancelled() {
            if listener.is_none() {
                listener = self.listen().await.ok();
            }
            match self.drain(&mut redis).await {
                Ok(published) => {
                    if failures > 0 {
                        tracing::info!(published, "outbox relay recovered");
                        limiter.reset();
                    }
                    failures = 0;
                }
                Err(error) => {
                    redis = None;
                    failures += 1;
                    if let Some(suppressed) = limiter.admit() {
                        tracing::warn!(error = %error, suppressed, "outbox relay cannot publish; rows are kept and retried");
                    }
                    let delay = self.config.backoff.delay(failures);
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            }
            if last_backlog.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
                last_backlog = Some(Instant::now());
                if let Err(error) = self.record_backlog().await {
                    tracing::debug!(error = %error, "reading the outbox backlog failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                woke = next_notification(&mut listener) => {
                    if woke.is_err() {
                        listener = None;
                    }
                }
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
            if let Some(listener) = listener.as_mut() {
                while listener.next_buffered().is_some() {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&self.pool).await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&format!("outbox_{schema}")).await?;
        Ok(listener)
    }

    async fn drain(&self, redis: &mut Option<MultiplexedConnection>) -> Result<usize, RelayError> {
        let connection = match redis {
            Some(connection) => connection,
            None => redis.insert(self.connect().await?),
        };
        let mut total = 0;
        loop {
            let published = self.publish_batches(connection, BATCHES_PER_TRANSACTION).await?;
            total += published;
            if published < self.config.batch_size * BATCHES_PER_TRANSACTION {
                return Ok(total);
            }
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        self.redis.get_multiplexed_async_connection_with_config(&config).await
    }

    /// Publishes one batch of the oldest rows and deletes them from the outbox.
    /// Returns how many were published: 0 when the outbox is empty or another
    /// relay holds the publishing lock.
    ///
    /// # Errors
    /// PostgreSQL or Redis failed; the rows stay in the outbox.
    pub async fn publish_batch(&self, redis: &mut MultiplexedConnection) -> Result<usize, RelayError> {
        self.publish_batches(redis, 1).await
    }

    /// Publishes up to `batches` batches in one transaction, claiming each
    /// next batch while the current one's `XADD`s are in flight, then deletes
    /// them all with the commit. The publishing lock is held throughout, so
    /// batches go out in order; if anything fails, everything is rolled back
    /// and rows already on the stream are published again later (at least
    /// once).
    async fn publish_batches(&self, redis: &mut MultiplexedConnection, batches: usize) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        // Losing this commit in a PostgreSQL crash only brings the rows back to
        // be published again, which at-least-once delivery allows; so the relay
        // does not wait for the WAL flush.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        let mut rows = self.claim(&mut tx).await?;
        let mut published = 0;
        let mut per_stream: HashMap<String, u64> = HashMap::new();
        for batch in 1..=batches {
            if rows.is_empty() {
                break;
            }
            let more = batch < batches && rows.len() == self.config.batch_size;
            published += rows.len();
            let pipeline = self.pipeline(rows, &mut per_stream);
            let mut connection = redis.clone();
            let sent = pipeline.query_async::<()>(&mut connection);
            let (sent, next) =
                if more { tokio::join!(sent, self.claim(&mut tx)) } else { (sent.await, Ok(Vec::new())) };
            sent?;
            rows = next?;
        }
        if published == 0 {
            return Ok(0);
        }
        tx.commit().await?;
        for (stream, count) in per_stream {
            metrics::counter!(names::PUBLISHED, "stream" => stream).increment(count);
        }
        Ok(published)
    }

    /// Deletes the next batch of the oldest rows in `tx` and returns them in
    /// order; nothing if another relay holds the publishing lock.
    async fn claim(&self, tx: &mut PgConnection) -> Result<Vec<OutboxRow>, sqlx::Error> {
        // The advisory lock is taken once (an init plan) before any row is
        // claimed; without it the statement claims nothing. `= ANY(ARRAY(…))`
        // deletes the claimed rows through the primary key; `IN (…)` made
        // PostgreSQL hash-join against a scan of the whole backlog (4.7 ms
        // against 1.4 ms for 500 of 20,000 rows).
        let mut rows: Vec<OutboxRow> = sqlx::query_as(
            "WITH publisher AS (
                 SELECT pg_try_advisory_xact_lock(hashtext(concat('events.outbox.', current_schema()))::bigint) AS held
             )
             DELETE FROM outbox WHERE seq = ANY(ARRAY(
                 SELECT seq FROM outbox
                 WHERE (SELECT held FROM publisher)
                 ORDER BY seq LIMIT $1
                 FOR UPDATE SKIP LOCKED))
             RETURNING seq, event_id, stream, event_type, aggregate_id, version, occurred_at,
                       data::text AS data, metadata::text AS metadata",
        )
        .bind(i64::try_from(self.config.batch_size).unwrap_or(i64::MAX))
        .fetch_all(tx)
        .await?;
        rows.sort_unstable_by_key(|row| row.seq);
        Ok(rows)
    }

    /// One `XADD … MAXLEN ~` per row, in order, counting rows per stream.
    fn pipeline(&self, rows: Vec<OutboxRow>, per_stream: &mut HashMap<String, u64>) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for row in rows {
            let stream = row.stream;
            let event = EncodedEvent {
                id: row.event_id.into(),
                event_type: row.event_type,
                aggregate_id: row.aggregate_id,
                version: row.version,
                occurred_at: row.occurred_at,
                data: row.data,
                metadata: row.metadata,
            };
            pipeline
                .cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.stream_max_len)
                .arg("*")
                .arg(&event.into_fields()[..])
                .ignore();
            *per_stream.entry(stream).or_default() += 1;
        }
        pipeline
    }

    async fn record_backlog(&self) -> Result<(), sqlx::Error> {
        let (backlog, age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        #[allow(clippy::cast_precision_loss, reason = "a gauge; precision beyond 2^53 rows is moot")]
        metrics::gauge!(names::OUTBOX_BACKLOG).set(backlog as f64);
        metrics::gauge!(names::OUTBOX_OLDEST_AGE).set(age.unwrap_or(0.0));
        Ok(())
    }
}

async fn next_notification(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(drop),
        None => std::future::pending().await,
    }
}
