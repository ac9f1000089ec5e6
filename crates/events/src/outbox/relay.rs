//! The relay: moves committed outbox rows to their streams.

use super::claim::{Horizon, OutboxRow, claim, take_publishing_lock};
use crate::backoff::{Backoff, Outage};
use crate::metrics as names;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How often the backlog gauges are refreshed.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(1);

/// How the relay batches, waits and caps streams.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows per claim and per Redis transaction of `XADD`s; a publishing
    /// transaction publishes up to eight such batches.
    pub batch_size: usize,
    /// Longest wait between looks at the outbox when nothing wakes the relay:
    /// how late rows committed by another process can be.
    pub poll_interval: Duration,
    /// Longest one publishing transaction may take, from `BEGIN` to `COMMIT`.
    /// Past it the transaction is abandoned (rolled back, its rows kept), the
    /// publishing lock released, and the relay tries again after its backoff:
    /// a Redis or PostgreSQL that stops answering cannot hold the lock.
    pub transaction_deadline: Duration,
    /// Waits between attempts while Redis or PostgreSQL is unreachable.
    pub backoff: Backoff,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            transaction_deadline: Duration::from_secs(10),
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
    /// The publishing transaction took longer than its deadline and was
    /// abandoned; the rows stay unpublished.
    #[error("the publishing transaction took longer than {0:?}; abandoned")]
    Deadline(Duration),
}

/// How many batches one relay transaction publishes: a crash re-publishes at
/// most this many.
const BATCHES_PER_TRANSACTION: usize = 8;

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
    /// A transaction under way when `cancel` fires is abandoned: it rolls
    /// back, and its rows wait in the outbox for the next start (any of them
    /// already on the stream are published again: at least once).
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
        let backlog = AtomicI64::new(0);
        let gauges = report_backlog(self.pool.clone(), &backlog, cancel.clone());
        tokio::join!(self.publish_until_cancelled(&backlog, cancel), gauges);
        tracing::info!("outbox relay stopped");
    }

    /// Looks at the outbox when woken and every poll interval. Woken, it
    /// looks again soon while another relay holds the lock, until it has had
    /// a look of its own: the other's claim may have come before this
    /// process's commit.
    ///
    /// Any failure ends the transaction under way and closes both of its
    /// connections: closing the PostgreSQL one ends the transaction on the
    /// server, and with it the publishing lock, even when the connection can
    /// no longer carry a `ROLLBACK`.
    async fn publish_until_cancelled(mut self, backlog: &AtomicI64, cancel: CancellationToken) {
        let mut redis: Option<MultiplexedConnection> = None;
        let mut database: Option<PoolConnection<Postgres>> = None;
        let mut outage = Outage::new(self.config.backoff);
        let wakeups = Arc::clone(&self.wakeups.0);
        // Rows may have been committed before the relay started.
        let mut woken = true;

        while !cancel.is_cancelled() {
            let drained = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                drained = self.drain(&mut redis, &mut database, backlog) => Some(drained),
            };
            let Some(drained) = drained else {
                abandon(&mut database);
                break;
            };
            let next_look = match drained {
                Ok(Drained { published, lock_busy }) => {
                    if outage.ended() {
                        tracing::info!(published, "outbox relay recovered");
                    }
                    // A look with the lock answers the wake.
                    woken &= lock_busy;
                    if woken { LOCK_RETRY } else { self.config.poll_interval }
                }
                Err(error) => {
                    abandon(&mut database);
                    redis = None;
                    // What this relay knew of the outbox may be stale now.
                    self.horizon = Horizon::default();
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
    /// another relay holds the publishing lock. Each transaction has
    /// [`RelayConfig::transaction_deadline`] to finish.
    async fn drain(
        &mut self,
        redis: &mut Option<MultiplexedConnection>,
        database: &mut Option<PoolConnection<Postgres>>,
        backlog: &AtomicI64,
    ) -> Result<Drained, RelayError> {
        let redis = match redis {
            Some(connection) => connection,
            None => redis.insert(self.connect().await?),
        };
        let database = match database {
            Some(connection) => connection,
            None => {
                // A new connection: nothing learnt on the old one is trusted.
                self.horizon = Horizon::default();
                database.insert(self.pool.acquire().await?)
            }
        };
        let deadline = self.config.transaction_deadline;
        let mut published = 0;
        loop {
            let transaction = self.publish_batches(database, redis, BATCHES_PER_TRANSACTION, backlog);
            let sent = tokio::time::timeout(deadline, transaction).await.map_err(|_| RelayError::Deadline(deadline))?;
            let Some(sent) = sent? else {
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
        crate::redis_link::with_keepalive(&self.redis)?.get_multiplexed_async_connection_with_config(&config).await
    }

    /// Publishes one batch of the oldest rows and deletes them from the outbox.
    /// Returns how many were published: 0 when the outbox is empty or another
    /// relay holds the publishing lock.
    ///
    /// # Errors
    /// PostgreSQL or Redis failed; the rows stay in the outbox.
    pub async fn publish_batch(&mut self, redis: &mut MultiplexedConnection) -> Result<usize, RelayError> {
        let mut database = self.pool.acquire().await?;
        let unknown_backlog = AtomicI64::new(0);
        Ok(self.publish_batches(&mut database, redis, 1, &unknown_backlog).await?.unwrap_or(0))
    }

    /// Publishes up to `batches` batches in one transaction and deletes them
    /// all with its commit. Returns how many rows it published, or `None` if
    /// another relay holds the publishing lock.
    ///
    /// Claiming and sending run side by side: while one batch is on its way
    /// to Redis, PostgreSQL already deletes the next and the relay encodes
    /// it, so neither waits for the other except through a queue of
    /// [`BATCHES_IN_FLIGHT`]. A batch is one Redis transaction ([`Batch`]),
    /// and the next is sent only once Redis has answered that the one before
    /// is on the streams whole: what reaches a stream is always a prefix of
    /// the claimed rows, in claim order, whatever Redis's state does
    /// meanwhile. (Plain pipelined `XADD`s, two pipelines at a time, did not
    /// keep that: a key deleted or memory freed between two of them let later
    /// rows through after earlier ones were refused, and they reached the
    /// stream before them.) The first failure on either side ends both (the
    /// other side is dropped where it waits), everything is rolled back, and
    /// rows already on the stream are published again later (at least once);
    /// the caller must then close `database`, which ends the transaction on
    /// the server.
    ///
    /// A transaction that publishes nothing is rolled back here and now: left
    /// to the connection's next use, it would keep the publishing lock from
    /// other relays until this one looks again. If it found nothing although
    /// the backlog gauge last saw rows, the horizon is checked against the
    /// outbox and dropped if rows wait below it.
    async fn publish_batches(
        &mut self,
        database: &mut PgConnection,
        redis: &MultiplexedConnection,
        batches: usize,
        backlog: &AtomicI64,
    ) -> Result<Option<usize>, RelayError> {
        // The horizon relies on every claim seeing what committed before it
        // began, so the isolation level is set here rather than inherited
        // from the server's default. Losing this commit in a PostgreSQL crash
        // only brings the rows back to be published again, which
        // at-least-once delivery allows; so the relay does not wait for the
        // WAL flush.
        let mut tx =
            database.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off").await?;
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
            let mut in_flight = None;
            while let Some(rows) = claimed.recv().await {
                published += rows.len();
                let span = crate::trace::sending(
                    rows.len(),
                    || one_stream(&rows),
                    rows.iter().filter_map(|row| row.created.as_ref()),
                );
                let batch = Batch::encode(rows, &mut per_stream);
                if let Some(previous) = in_flight.take() {
                    previous.await?;
                }
                let mut connection = redis.clone();
                let mut sent = Box::pin(async move { batch.send(&mut connection).await }.instrument(span));
                // The first poll puts the call on the connection; it travels
                // while the next batch is claimed and encoded.
                match futures::poll!(&mut sent) {
                    Poll::Ready(result) => result?,
                    Poll::Pending => in_flight = Some(sent),
                }
            }
            if let Some(last) = in_flight {
                last.await?;
            }
            Ok::<_, RelayError>(published)
        };
        // Not `join!`: a failed send leaves the claiming side waiting for room
        // in the queue that nobody empties any more, and the transaction, with
        // the publishing lock, would stay open for good.
        let ((), published) = tokio::try_join!(claiming, sending)?;
        if published == 0 {
            if backlog.load(Ordering::Relaxed) > 0 && after > 0 && rows_below(&mut tx, after).await? {
                tracing::warn!(horizon = after, "outbox rows wait below the relay's horizon; scanning from the start");
                self.horizon = Horizon::default();
            }
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
}

/// Marks the relay's database connection, if any, to be closed rather than
/// returned to the pool, and lets go of it.
fn abandon(database: &mut Option<PoolConnection<Postgres>>) {
    if let Some(mut connection) = database.take() {
        connection.close_on_drop();
    }
}

/// Whether rows wait at or below `horizon`, where claims no longer look.
async fn rows_below(tx: &mut PgConnection, horizon: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE seq <= $1)").bind(horizon).fetch_one(tx).await
}

/// One batch as one `MULTI` … `EXEC` transaction of an `XADD` per row, in
/// order: per row the envelope's fields, then the creation context of a
/// traced event ([`crate::trace::TRACEPARENT`], [`crate::trace::TRACESTATE`]).
/// Streams are not capped here: [`crate::retention`] trims them below what
/// every consumer group has acknowledged.
///
/// Redis runs a transaction whole before any other command, so nothing it is
/// told meanwhile (a key deleted, memory freed, a replica promoted) reaches
/// between two of its entries. A refusal when it is queued (`OOM`,
/// `READONLY`, `LOADING`, `MISCONF`) aborts all of it; one while it runs
/// (`WRONGTYPE`) refuses every entry of that stream, as a key's type cannot
/// change under it, while other streams' entries land. Either way what
/// reaches each stream is a prefix of the batch's rows for it: all of them
/// or none.
struct Batch(redis::Pipeline);

impl Batch {
    /// Encodes `rows`, counting them per stream.
    fn encode(rows: Vec<OutboxRow>, per_stream: &mut HashMap<String, u64>) -> Self {
        let mut transaction = redis::pipe();
        transaction.atomic();
        for OutboxRow { stream, event, created, .. } in rows {
            let command = transaction.cmd("XADD").arg(&stream).arg("*").arg(&event.into_fields()[..]);
            if let Some(created) = created {
                command.arg(crate::trace::TRACEPARENT).arg(created.traceparent);
                if let Some(tracestate) = created.tracestate {
                    command.arg(crate::trace::TRACESTATE).arg(tracestate);
                }
            }
            command.ignore();
            *per_stream.entry(stream).or_default() += 1;
        }
        Self(transaction)
    }

    /// Runs the transaction; any refusal in it is an error.
    async fn send(&self, connection: &mut MultiplexedConnection) -> Result<(), RelayError> {
        Ok(self.0.query_async::<()>(connection).await?)
    }
}

/// The stream every one of `rows` goes to, if they all go to one.
fn one_stream(rows: &[OutboxRow]) -> Option<&str> {
    let first = rows.first()?;
    rows.iter().all(|row| row.stream == first.stream).then_some(first.stream.as_str())
}

/// Refreshes the backlog gauges every [`BACKLOG_INTERVAL`] until `cancel` fires.
async fn report_backlog(pool: PgPool, backlog: &AtomicI64, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(BACKLOG_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Err(error) = record_backlog(&pool, backlog).await {
            tracing::debug!(error = %error, "reading the outbox backlog failed");
        }
    }
}

/// Sets the backlog gauges (rows waiting, and the age of the oldest) and
/// keeps the count in `backlog` for the relay.
async fn record_backlog(pool: &PgPool, backlog_seen: &AtomicI64) -> Result<(), sqlx::Error> {
    let (backlog, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
         FROM outbox",
    )
    .fetch_one(pool)
    .await?;
    backlog_seen.store(backlog, Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss, reason = "a gauge; precision beyond 2^53 rows is moot")]
    metrics::gauge!(names::OUTBOX_BACKLOG).set(backlog as f64);
    metrics::gauge!(names::OUTBOX_OLDEST_AGE).set(age.unwrap_or(0.0));
    Ok(())
}
