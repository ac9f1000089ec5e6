//! The relay: moves committed outbox rows to their streams.

use super::claim::{Horizon, OutboxRow, claim, take_publishing_lock};
use crate::backoff::{Backoff, Outage};
use crate::metrics as names;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How often the backlog gauges are refreshed.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(1);

/// How the relay batches, waits and caps streams.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows per claim and per `XADD` pipeline; a transaction publishes up to
    /// eight such batches.
    pub batch_size: usize,
    /// Longest wait between looks at the outbox when nothing wakes the relay:
    /// how late rows committed by another process can be.
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

/// How many batches one relay transaction publishes: a crash re-publishes at
/// most this many.
const BATCHES_PER_TRANSACTION: usize = 8;

/// How many batches' `XADD` pipelines may be on the Redis connection at once.
const PIPELINES_IN_FLIGHT: usize = 2;

/// How many claimed batches may wait for their turn to be sent.
const BATCHES_IN_FLIGHT: usize = 2;

/// How soon a woken relay that found another one publishing looks again:
/// rows committed in its own process may have come too late for the other's
/// claim. (Not woken, it leaves them to the other relay and its poll.)
const LOCK_RETRY: Duration = Duration::from_millis(5);

/// Wakes a relay once rows it should publish are committed: how a service
/// tells its relay, instead of `NOTIFY` (see the module docs of
/// [`crate::outbox`] for why).
#[derive(Debug, Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Tells the relay that rows were committed. Call it after the commit. A
    /// wake while the relay is publishing is kept: it looks again right after.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Publishes committed outbox rows to Redis. Run one per service instance.
#[derive(Debug)]
pub struct OutboxRelay {
    pool: PgPool,
    redis: redis::Client,
    config: RelayConfig,
    horizon: Horizon,
    wakeups: RelayWaker,
}

/// What one look at the outbox did.
struct Drained {
    published: usize,
    /// Another relay held the publishing lock.
    lock_busy: bool,
}

impl OutboxRelay {
    /// A relay for the outbox in `pool`'s schema, publishing through `redis`.
    pub fn new(pool: PgPool, redis: redis::Client, config: RelayConfig) -> Self {
        Self { pool, redis, config, horizon: Horizon::default(), wakeups: RelayWaker::default() }
    }

    /// What wakes this relay: give it to the code that appends to the outbox
    /// (see [`super::Outbox`]).
    pub fn waker(&self) -> RelayWaker {
        self.wakeups.clone()
    }

    /// Publishes until `cancel` fires, surviving outages of Redis and PostgreSQL.
    /// A batch under way when `cancel` fires is finished first.
    ///
    /// It keeps one connection of the pool while it runs: taking one for
    /// every look, it queued behind the service's requests whenever they
    /// filled the pool, and every event of that moment waited with it.
    ///
    /// The backlog gauges are refreshed beside it, every second, on a
    /// connection of their own: counting a large backlog takes milliseconds,
    /// and publishing does not wait for it.
    #[tracing::instrument(name = "outbox_relay", skip_all)]
    pub async fn run(self, cancel: CancellationToken) {
        let gauges = report_backlog(self.pool.clone(), cancel.clone());
        tokio::join!(self.publish_until_cancelled(cancel), gauges);
        tracing::info!("outbox relay stopped");
    }

    /// Looks at the outbox when woken and every poll interval. Woken, it
    /// looks again soon while another relay holds the lock, until it has had
    /// a look of its own: the other's claim may have come before this
    /// process's commit.
    async fn publish_until_cancelled(mut self, cancel: CancellationToken) {
        let mut redis: Option<MultiplexedConnection> = None;
        let mut database: Option<PoolConnection<Postgres>> = None;
        let mut outage = Outage::new(self.config.backoff);
        let wakeups = Arc::clone(&self.wakeups.0);
        // Rows may have been committed before the relay started.
        let mut woken = true;

        while !cancel.is_cancelled() {
            let next_look = match self.drain(&mut redis, &mut database).await {
                Ok(Drained { published, lock_busy }) => {
                    if outage.ended() {
                        tracing::info!(published, "outbox relay recovered");
                    }
                    // A look with the lock answers the wake.
                    woken &= lock_busy;
                    if woken { LOCK_RETRY } else { self.config.poll_interval }
                }
                Err(error) => {
                    // Back in the pool, the connection's failed transaction
                    // is rolled back at once, and with it the publishing lock.
                    (redis, database) = (None, None);
                    let what = "outbox relay cannot publish; rows are kept and retried";
                    if !outage.wait_after(&error, what, &cancel).await {
                        break;
                    }
                    continue;
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wakeups.notified() => woken = true,
                () = tokio::time::sleep(next_look) => {}
            }
        }
    }

    /// Publishes transaction after transaction until the outbox is empty or
    /// another relay holds the publishing lock.
    async fn drain(
        &mut self,
        redis: &mut Option<MultiplexedConnection>,
        database: &mut Option<PoolConnection<Postgres>>,
    ) -> Result<Drained, RelayError> {
        let redis = match redis {
            Some(connection) => connection,
            None => redis.insert(self.connect().await?),
        };
        let database = match database {
            Some(connection) => connection,
            None => database.insert(self.pool.acquire().await?),
        };
        let mut published = 0;
        loop {
            let Some(sent) = self.publish_batches(database, redis, BATCHES_PER_TRANSACTION).await? else {
                return Ok(Drained { published, lock_busy: true });
            };
            published += sent;
            if sent < self.config.batch_size * BATCHES_PER_TRANSACTION {
                return Ok(Drained { published, lock_busy: false });
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
    pub async fn publish_batch(&mut self, redis: &mut MultiplexedConnection) -> Result<usize, RelayError> {
        let mut database = self.pool.acquire().await?;
        Ok(self.publish_batches(&mut database, redis, 1).await?.unwrap_or(0))
    }

    /// Publishes up to `batches` batches in one transaction and deletes them
    /// all with its commit. Returns how many rows it published, or `None` if
    /// another relay holds the publishing lock.
    ///
    /// Claiming and sending run side by side: while one batch is encoded and
    /// its `XADD`s are in flight, PostgreSQL already deletes the next, so
    /// neither waits for the other except through a queue of
    /// [`BATCHES_IN_FLIGHT`]. Up to [`PIPELINES_IN_FLIGHT`] batches' pipelines
    /// are on the Redis connection at once, each queued behind the one before
    /// it, so Redis never waits for the relay to read replies. One connection
    /// runs its commands in the order they were queued, and the publishing
    /// lock is held throughout, so batches reach the stream in claim order.
    /// If anything fails, everything is rolled back and rows already on the
    /// stream are published again later (at least once); the caller must then
    /// give `database` back to the pool, which finishes the rollback.
    ///
    /// A transaction that publishes nothing is rolled back here and now: left
    /// to the connection's next use, it would keep the publishing lock from
    /// other relays until this one looks again.
    async fn publish_batches(
        &mut self,
        database: &mut PgConnection,
        redis: &MultiplexedConnection,
        batches: usize,
    ) -> Result<Option<usize>, RelayError> {
        // Losing this commit in a PostgreSQL crash only brings the rows back to
        // be published again, which at-least-once delivery allows; so the relay
        // does not wait for the WAL flush.
        let mut tx = database.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?;
        if !take_publishing_lock(&mut tx).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let after = self.horizon.settled();
        let limit = self.config.batch_size;
        let (queue, mut claimed) = mpsc::channel::<Vec<OutboxRow>>(BATCHES_IN_FLIGHT);
        let mut horizon = self.horizon;
        let claiming = async {
            for batch in 0..batches {
                let next = claim(&mut tx, after, limit).await?;
                if batch == 0 {
                    horizon = self.horizon.after(&next);
                }
                let full = next.rows.len() == limit;
                if next.rows.is_empty() || queue.send(next.rows).await.is_err() {
                    break;
                }
                if !full {
                    break;
                }
            }
            drop(queue);
            Ok::<_, RelayError>(())
        };
        let mut per_stream: HashMap<String, u64> = HashMap::new();
        let sending = async {
            let mut published = 0;
            let mut in_flight = VecDeque::with_capacity(PIPELINES_IN_FLIGHT);
            while let Some(rows) = claimed.recv().await {
                published += rows.len();
                let pipeline = self.pipeline(rows, &mut per_stream);
                let mut connection = redis.clone();
                let mut sent = Box::pin(async move { pipeline.query_async::<()>(&mut connection).await });
                // The first poll queues the pipeline on the connection behind the
                // batches before it (when the queue is full, it takes places in
                // the order they were asked for); Redis runs them in that order.
                match futures::poll!(&mut sent) {
                    Poll::Ready(result) => result?,
                    Poll::Pending => in_flight.push_back(sent),
                }
                while in_flight.len() >= PIPELINES_IN_FLIGHT
                    && let Some(oldest) = in_flight.pop_front()
                {
                    oldest.await?;
                }
            }
            for sent in in_flight {
                sent.await?;
            }
            Ok::<_, RelayError>(published)
        };
        let (claimed, sent) = tokio::join!(claiming, sending);
        let published = sent?;
        claimed?;
        if published == 0 {
            tx.rollback().await?;
            return Ok(Some(0));
        }
        tx.commit().await?;
        self.horizon = horizon;
        for (stream, count) in per_stream {
            metrics::counter!(names::PUBLISHED, "stream" => stream).increment(count);
        }
        Ok(Some(published))
    }

    /// One `XADD … MAXLEN ~` per row, in order, counting rows per stream.
    fn pipeline(&self, rows: Vec<OutboxRow>, per_stream: &mut HashMap<String, u64>) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for OutboxRow { stream, event, .. } in rows {
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
}

/// Refreshes the backlog gauges every [`BACKLOG_INTERVAL`] until `cancel` fires.
async fn report_backlog(pool: PgPool, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(BACKLOG_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Err(error) = record_backlog(&pool).await {
            tracing::debug!(error = %error, "reading the outbox backlog failed");
        }
    }
}

/// Sets the backlog gauges: rows waiting, and the age of the oldest.
async fn record_backlog(pool: &PgPool) -> Result<(), sqlx::Error> {
    let (backlog, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
         FROM outbox",
    )
    .fetch_one(pool)
    .await?;
    #[allow(clippy::cast_precision_loss, reason = "a gauge; precision beyond 2^53 rows is moot")]
    metrics::gauge!(names::OUTBOX_BACKLOG).set(backlog as f64);
    metrics::gauge!(names::OUTBOX_OLDEST_AGE).set(age.unwrap_or(0.0));
    Ok(())
}
