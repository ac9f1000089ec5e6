//! Consuming a stream through a Redis consumer group.
//!
//! # Protocol
//!
//! Each consuming service is one **consumer group** on the stream (group name =
//! service name) and each running instance is one **consumer** in it, so
//! instances share the work and every group sees every event. The group is
//! created on start with `XGROUP CREATE … 0 MKSTREAM`, reading from the
//! beginning of the stream (a new group replays history); `BUSYGROUP` means it
//! exists already. If Redis loses the group (a restart without persistence),
//! the next read answers `NOGROUP` and the group is created again.
//!
//! The consumer reads new entries with `XREADGROUP … BLOCK` on a connection of
//! its own whose response deadline is longer than the block (a multiplexed
//! connection's default 500 ms timeout would cut every blocking read short,
//! and a blocked read holds up any other command on its connection). Acknowledgements, dead letters and
//! claims go through a second connection.
//!
//! Reading and handling run side by side. Each entry goes to a lane chosen by
//! its aggregate id, so one aggregate's events are handled one after another
//! in stream order, also across reads, while other lanes go on; a slow
//! handler holds up only its own lane, and never the next read. There are
//! eight lanes for each of the `concurrency` handlers that may run at once,
//! so that an entry seldom waits behind another aggregate's. At most
//! `batch_size` entries wait in the lanes at a time.
//!
//! An entry is acknowledged (`XACK`) only after its handler succeeded. How a
//! failure is retried depends on what the handler says ([`HandlerError`]):
//!
//! * **Unavailable** (PostgreSQL or Redis unreachable, a pool or statement
//!   timeout, a lost serialization race): retried without limit with capped
//!   backoff (`outage_retry`), never counted towards `max_deliveries`. While
//!   any entry waits out such an outage the consumer reads nothing new and
//!   claims nothing, instead of churning through the stream.
//! * **Rejected**: retried with backoff (`retry`); after `max_deliveries`
//!   deliveries the entry is copied, with its last error, to the dead-letter
//!   stream and acknowledged, atomically (see [`crate::dead_letter`]).
//!
//! An entry whose `type` the consumer does not know (a newer producer) is
//! acknowledged and counted; an entry that cannot be decoded is
//! dead-lettered at once; an entry re-driven for another group is
//! acknowledged unhandled.
//!
//! When a consumer (re)opens its session, it first reads its **own** pending
//! entries (`XREADGROUP … 0`): what it had in hand when it stopped, crashed or
//! lost Redis. They are queued before anything new, so each aggregate's
//! events are handled in stream order across restarts. Only then does it read
//! new entries (`>`).
//!
//! An entry delivered to an instance that died for good stays **pending** in
//! the group. Every `claim_interval` each consumer runs `XAUTOCLAIM` for
//! entries idle longer than `claim_idle` and handles them as its own; delivery
//! counts carry over, so an entry that kills every instance that touches it
//! still reaches the dead-letter stream. A pending entry that was deleted
//! from the stream (only an operator's hard cap or a manual trim does that:
//! [`crate::retention`] never trims past a group) is reported loudly as lost
//! and counted, never looped on.
//!
//! The blocking read has a response deadline of its `BLOCK` time plus a
//! margin, and both connections use TCP keepalive, so a Redis that stops
//! answering is noticed. Delivery is at least once: a crash after the handler
//! and before `XACK` redelivers. Handlers with PostgreSQL effects use
//! [`crate::inbox`] to make that harmless. When Redis goes away the consumer
//! reconnects with backoff, logging at most one warning per ten seconds.
//! Cancelling the token stops reading; the entries already read are finished
//! (retries stop), then `run` returns.

use crate::backoff::{Backoff, LogLimiter, Outage};
use crate::dead_letter;
use crate::encoding::{DecodeError, EncodedEvent, dead_letter_stream};
use crate::envelope::{DomainEvent, Event};
use crate::metrics as names;
use chrono::Utc;
use futures::stream::{FuturesUnordered, TryStreamExt};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamPendingReply, StreamReadReply};
use redis::{AsyncConnectionConfig, RedisError, Value};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// Handles one event family. Called once per delivery; an error says whether
/// retrying can help ([`HandlerError`]).
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Handles `event`.
    fn handle(&self, event: &DomainEvent<E>) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a handler did not finish with an event: the difference between an
/// outage, which waiting fixes, and a refusal, which it does not.
///
/// Errors of PostgreSQL and Redis convert with `?` and are classified by
/// [`crate::fault`]: unreachable, timed out, busy or a lost race is
/// [`Self::Unavailable`], anything else [`Self::Rejected`]. An
/// [`anyhow::Error`] converts the same way by the first such error in its
/// chain of causes.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Something the handler needs is unreachable or busy. The event is
    /// retried without limit (capped backoff), never dead-lettered, and the
    /// consumer reads no new entries until a handler succeeds again.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The handler refuses the event. It is retried with backoff and, after
    /// [`ConsumerConfig::max_deliveries`], dead-lettered with this error.
    #[error("rejected: {0:#}")]
    Rejected(anyhow::Error),
}

impl HandlerError {
    /// The handler refuses the event, whatever `error` is.
    pub fn rejected(error: impl Into<anyhow::Error>) -> Self {
        Self::Rejected(error.into())
    }

    /// Something the handler needs is unavailable, whatever `error` is.
    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(error.into())
    }
}

impl From<anyhow::Error> for HandlerError {
    fn from(error: anyhow::Error) -> Self {
        if crate::fault::is_transient(error.as_ref()) { Self::Unavailable(error) } else { Self::Rejected(error) }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        anyhow::Error::new(error).into()
    }
}

impl From<RedisError> for HandlerError {
    fn from(error: RedisError) -> Self {
        anyhow::Error::new(error).into()
    }
}

/// Where and how a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The stream, such as `menu-events`.
    pub stream: String,
    /// The consumer group: the consuming service's name.
    pub group: String,
    /// This instance's name within the group, unique per running instance.
    pub consumer: String,
    /// Entries asked for per `XREADGROUP`, and the most that wait in the
    /// lanes at once.
    pub batch_size: usize,
    /// How long one `XREADGROUP` blocks; also the longest wait for shutdown.
    pub block: Duration,
    /// How many entries are handled at once. With 1, entries are handled one
    /// at a time in stream order; with more, each aggregate's in its order.
    pub concurrency: usize,
    /// Deliveries after which an entry the handler rejects is dead-lettered.
    /// Attempts that failed because something was unavailable
    /// ([`HandlerError::Unavailable`]) do not count.
    pub max_deliveries: u32,
    /// Waits between attempts of a handler that rejected an entry.
    pub retry: Backoff,
    /// Waits between attempts while the handler's dependencies are
    /// unavailable: without limit, never longer than its `max`.
    pub outage_retry: Backoff,
    /// How long an entry must sit unacknowledged before another consumer claims it.
    /// Keep it above the longest retry sequence.
    pub claim_idle: Duration,
    /// How often to look for entries to claim.
    pub claim_interval: Duration,
    /// Where failed entries go.
    pub dead_letter_stream: String,
    /// Approximate cap of the dead-letter stream.
    pub dead_letter_max_len: usize,
    /// Waits between reconnection attempts.
    pub reconnect: Backoff,
}

impl ConsumerConfig {
    /// Defaults for consumer `consumer` of `group` on `stream`; dead letters go to `<stream>.dlq`.
    pub fn new(stream: impl Into<String>, group: impl Into<String>, consumer: impl Into<String>) -> Self {
        let stream = stream.into();
        Self {
            dead_letter_stream: dead_letter_stream(&stream),
            stream,
            group: group.into(),
            consumer: consumer.into(),
            batch_size: 100,
            block: Duration::from_secs(1),
            concurrency: 16,
            max_deliveries: 5,
            retry: Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(2) },
            outage_retry: Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(5) },
            claim_idle: Duration::from_secs(30),
            claim_interval: Duration::from_secs(5),
            dead_letter_max_len: 100_000,
            reconnect: Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(5) },
        }
    }
}

/// A consumer of one stream for event family `E`, calling handler `H`.
pub struct Consumer<E, H> {
    redis: redis::Client,
    config: Arc<ConsumerConfig>,
    handler: Arc<H>,
    /// How many entries are waiting out an outage of the handler's
    /// dependencies; reading pauses while any is.
    stalled: watch::Sender<usize>,
    /// Handler outages logged at most once per ten seconds.
    outage_log: Mutex<LogLimiter>,
    family: PhantomData<fn() -> E>,
}

/// How much longer than its `BLOCK` time a blocking read may take to answer
/// before the connection is taken for dead.
const BLOCK_MARGIN: Duration = Duration::from_secs(5);

/// An entry waiting out an outage: while one exists, the consumer reads
/// nothing new.
struct Stall<'a>(&'a watch::Sender<usize>);

impl<'a> Stall<'a> {
    fn new(stalled: &'a watch::Sender<usize>) -> Self {
        stalled.send_modify(|count| *count += 1);
        Self(stalled)
    }
}

impl Drop for Stall<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count -= 1);
    }
}

/// The two connections of a consumer: blocking reads must not share a
/// connection with other commands, and must not time out.
struct Session {
    reader: MultiplexedConnection,
    commands: MultiplexedConnection,
}

/// An entry handed to the handler, with how often Redis has delivered it.
struct Delivery {
    entry: StreamId,
    deliveries: u32,
}

/// A decoded entry waiting for its handler.
struct Pending<E> {
    entry_id: String,
    fields: HashMap<String, Value>,
    deliveries: u32,
    event: DomainEvent<E>,
}

/// How many lanes there are for each handler that may run at once. With as
/// many lanes as handlers, an entry often waited behind an unrelated
/// aggregate's entry in its lane while other handlers were free: in the
/// benchmark at 1,150 events/s, the p99 from an event's append to its
/// handler's start was 10.3 ms with 32 lanes, 4.5–5.3 ms with 128.
const LANES_PER_HANDLER: usize = 8;

/// Queues of decoded entries, one per lane. An aggregate always maps to the
/// same lane, so its events are handled one after another in stream order,
/// across reads; different lanes run side by side. At most `batch_size`
/// entries wait in all lanes together: reading pauses until there is room,
/// so little is in hand when shutdown comes (a lane stuck behind one slow
/// aggregate can fill that room and pause reading for all, as a whole batch
/// waiting for its slowest entry did before).
struct Lanes<E> {
    queues: Vec<mpsc::Sender<Queued<E>>>,
    room: Arc<Semaphore>,
}

/// An entry in a lane, holding its place until it has been handled. The
/// entry is boxed: a bounded channel allocates its first block of slots when
/// it is opened, and with a consumer's 128 lanes, slots the size of a whole
/// entry cost 1.5 MB per consumer before anything arrives.
struct Queued<E> {
    pending: Box<Pending<E>>,
    _place: OwnedSemaphorePermit,
}

impl<E> Lanes<E> {
    /// `count` lanes holding at most `room` entries, and the receiving ends to
    /// handle them from.
    fn open(count: usize, room: usize) -> (Self, Vec<mpsc::Receiver<Queued<E>>>) {
        let (queues, receivers) = (0..count).map(|_| mpsc::channel(room)).unzip();
        (Self { queues, room: Arc::new(Semaphore::new(room)) }, receivers)
    }

    /// Queues `pending` on its aggregate's lane once there is room; `false` if
    /// the lane has stopped.
    async fn queue(&self, pending: Pending<E>) -> bool {
        let Ok(place) = Arc::clone(&self.room).acquire_owned().await else {
            return false;
        };
        let lanes = self.queues.len() as u128;
        #[allow(clippy::cast_possible_truncation, reason = "the remainder is below the lane count")]
        let lane = (pending.event.aggregate_id.as_u128() % lanes) as usize;
        self.queues[lane].send(Queued { pending: Box::new(pending), _place: place }).await.is_ok()
    }
}

/// How handling one entry ended, for the entries of the same aggregate behind it.
enum Handled {
    Done,
    /// Shutdown came while it was being retried: it stays pending, and so must
    /// the later events of its aggregate.
    LeftPending,
}

impl<E: Event, H: Handler<E>> Consumer<E, H> {
    /// A consumer configured by `config` that hands events to `handler`.
    pub fn new(redis: redis::Client, config: ConsumerConfig, handler: H) -> Self {
        Self {
            redis,
            config: Arc::new(config),
            handler: Arc::new(handler),
            stalled: watch::Sender::new(0),
            outage_log: Mutex::new(LogLimiter::new(Duration::from_secs(10))),
            family: PhantomData,
        }
    }

    /// Consumes until `cancel` fires, surviving Redis restarts; then finishes the
    /// entries already read and returns.
    #[tracing::instrument(name = "consumer", skip_all, fields(stream = %self.config.stream, group = %self.config.group, consumer = %self.config.consumer))]
    pub async fn run(self, cancel: CancellationToken) {
        let mut session: Option<Session> = None;
        let mut outage = Outage::new(self.config.reconnect);
        let mut next_claim = Instant::now();

        while !cancel.is_cancelled() {
            let step = async {
                let session = match &mut session {
                    Some(session) => session,
                    None => session.insert(self.open().await?),
                };
                self.consume(session, &cancel, &mut next_claim).await
            };
            match step.await {
                Ok(()) => {
                    if outage.ended() {
                        tracing::info!("consumer reconnected");
                    }
                }
                Err(error) => {
                    session = None;
                    if !outage.wait_after(&error, "consumer lost redis; reconnecting", &cancel).await {
                        break;
                    }
                }
            }
        }
        tracing::info!("consumer stopped");
    }

    /// Opens both connections, with TCP keepalive, and creates the group.
    /// The reader's response deadline is its `BLOCK` time plus
    /// [`BLOCK_MARGIN`]: long enough for every blocking read, short enough
    /// that a Redis that stopped answering is noticed.
    async fn open(&self) -> Result<Session, RedisError> {
        let connect = Some(Duration::from_secs(2));
        let reader = AsyncConnectionConfig::new()
            .set_connection_timeout(connect)
            .set_response_timeout(Some(self.config.block + BLOCK_MARGIN));
        let commands = AsyncConnectionConfig::new()
            .set_connection_timeout(connect)
            .set_response_timeout(Some(Duration::from_secs(5)));
        let redis = crate::redis_link::with_keepalive(&self.redis)?;
        let mut session = Session {
            reader: redis.get_multiplexed_async_connection_with_config(&reader).await?,
            commands: redis.get_multiplexed_async_connection_with_config(&commands).await?,
        };
        self.create_group(&mut session.commands).await?;
        Ok(session)
    }

    /// Creates the group at the start of the stream, unless it exists.
    async fn create_group(&self, connection: &mut MultiplexedConnection) -> Result<(), RedisError> {
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(connection)
            .await;
        match created {
            Err(error) if error.code() != Some("BUSYGROUP") => Err(error),
            _ => Ok(()),
        }
    }

    /// Reads and handles until `cancel` fires or Redis fails. One task reads
    /// (and now and then reclaims) while [`Lanes`] handle what it read, so a
    /// slow handler never keeps the next entries from being read.
    async fn consume(
        &self,
        session: &mut Session,
        cancel: &CancellationToken,
        next_claim: &mut Instant,
    ) -> Result<(), RedisError> {
        let concurrency = self.config.concurrency.max(1);
        // One handler at a time must take entries in stream order: one lane.
        let lane_count = if concurrency == 1 { 1 } else { concurrency * LANES_PER_HANDLER };
        let (lanes, queues) = Lanes::open(lane_count, self.config.batch_size.max(1));
        let handlers = Semaphore::new(concurrency);
        let mut commands = session.commands.clone();
        // Unordered, so that the first lane to fail ends the session
        // (`try_join_all` of this many futures reports results in order).
        let handling = queues
            .into_iter()
            .map(|queue| self.handle_lane(queue, session.commands.clone(), &handlers, cancel))
            .collect::<FuturesUnordered<_>>()
            .try_collect::<()>();
        let reading = async {
            let read = async {
                if !self.resume_own_pending(session, &lanes, cancel).await? {
                    return Ok(());
                }
                let mut stalled = self.stalled.subscribe();
                while !cancel.is_cancelled() {
                    // While handlers wait out an outage, new entries would
                    // only pile up behind them.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        _ = stalled.wait_for(|count| *count == 0) => {}
                    }
                    if Instant::now() >= *next_claim {
                        self.reclaim(&mut commands, &lanes, cancel).await?;
                        *next_claim = Instant::now() + self.config.claim_interval;
                    }
                    let entries = self.read(session, ">").await?;
                    if !self.dispatch(&mut commands, entries, &lanes).await? {
                        break;
                    }
                }
                Ok(())
            };
            let read: Result<(), RedisError> = read.await;
            // Closing the lanes lets them finish what they hold, then stop.
            drop(lanes);
            read
        };
        // The first failure on either side ends the session: entries in hand
        // stay pending and are resumed first when it is opened again.
        tokio::try_join!(reading, handling)?;
        Ok(())
    }

    /// Hands this consumer's own pending entries to the lanes, oldest first,
    /// before anything new is read: the entries a previous run of this
    /// instance read and did not finish. Handled before newer entries of the
    /// same aggregates, they keep each aggregate in stream order across a
    /// restart. Returns `false` if the lanes stopped or `cancel` fired.
    async fn resume_own_pending(
        &self,
        session: &mut Session,
        lanes: &Lanes<E>,
        cancel: &CancellationToken,
    ) -> Result<bool, RedisError> {
        let mut commands = session.commands.clone();
        let mut after = "0-0".to_owned();
        while !cancel.is_cancelled() {
            let mut entries = self.read(session, &after).await?;
            let Some(last) = entries.last() else { return Ok(true) };
            after.clone_from(&last.entry.id);
            if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                let counts = self.delivery_counts(&mut commands, &first.entry.id, &last.entry.id).await?;
                for delivery in &mut entries {
                    delivery.deliveries = counts.get(&delivery.entry.id).copied().unwrap_or(1);
                }
            }
            tracing::info!(count = entries.len(), "handling entries this consumer left pending before new ones");
            if !self.dispatch(&mut commands, entries, lanes).await? {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// Entries for this consumer after `after`: with `>`, new entries (none
    /// when the read timed out or the group had to be created again); with an
    /// id, the consumer's own pending entries after it, without blocking.
    async fn read(&self, session: &mut Session, after: &str) -> Result<Vec<Delivery>, RedisError> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(self.config.batch_size);
        if after == ">" {
            command.arg("BLOCK").arg(u64::try_from(self.config.block.as_millis()).unwrap_or(u64::MAX));
        }
        let read: Result<Option<StreamReadReply>, RedisError> =
            command.arg("STREAMS").arg(&self.config.stream).arg(after).query_async(&mut session.reader).await;
        let reply = match read {
            Err(error) if error.code() == Some("NOGROUP") => {
                tracing::warn!("consumer group vanished (redis restarted?); creating it again");
                self.create_group(&mut session.commands).await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| Delivery { entry, deliveries: 1 })
            .collect())
    }

    /// Claims entries that other (dead) consumers left pending past `claim_idle`,
    /// handles them, and refreshes the pending gauge.
    async fn reclaim(
        &self,
        commands: &mut MultiplexedConnection,
        lanes: &Lanes<E>,
        cancel: &CancellationToken,
    ) -> Result<(), RedisError> {
        let config = &self.config;
        let mut start = "0-0".to_owned();
        loop {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&config.stream)
                .arg(&config.group)
                .arg(&config.consumer)
                .arg(u64::try_from(config.claim_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&start)
                .arg("COUNT")
                .arg(config.batch_size)
                .query_async(commands)
                .await?;
            if !reply.deleted_ids.is_empty() {
                // `XAUTOCLAIM` has already dropped them from the group's
                // pending list: all that is left is to say so, loudly.
                self.report_lost(reply.deleted_ids.len());
            }
            if let (Some(first), Some(last)) = (reply.claimed.first(), reply.claimed.last()) {
                let counts = self.delivery_counts(commands, &first.id, &last.id).await?;
                metrics::counter!(names::RECLAIMED, "stream" => config.stream.clone(), "group" => config.group.clone())
                    .increment(reply.claimed.len() as u64);
                tracing::info!(count = reply.claimed.len(), "claimed entries left pending by another consumer");
                let entries = reply
                    .claimed
                    .into_iter()
                    .map(|entry| {
                        let deliveries = counts.get(&entry.id).copied().unwrap_or(1);
                        Delivery { entry, deliveries }
                    })
                    .collect();
                if !self.dispatch(commands, entries, lanes).await? {
                    break;
                }
            }
            if reply.next_stream_id == "0-0" || cancel.is_cancelled() {
                break;
            }
            start = reply.next_stream_id;
        }
        let pending: StreamPendingReply =
            redis::cmd("XPENDING").arg(&config.stream).arg(&config.group).query_async(commands).await?;
        #[allow(clippy::cast_precision_loss, reason = "a gauge")]
        metrics::gauge!(names::PENDING, "stream" => config.stream.clone(), "group" => config.group.clone())
            .set(pending.count() as f64);
        Ok(())
    }

    /// How often each of this consumer's pending entries between `first` and `last` was delivered.
    async fn delivery_counts(
        &self,
        connection: &mut MultiplexedConnection,
        first: &str,
        last: &str,
    ) -> Result<HashMap<String, u32>, RedisError> {
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(first)
            .arg(last)
            .arg(self.config.batch_size)
            .arg(&self.config.consumer)
            .query_async(connection)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|pending| (pending.id, u32::try_from(pending.times_delivered).unwrap_or(u32::MAX)))
            .collect())
    }

    /// Decodes entries, settles what cannot be handled (unknown types are
    /// acknowledged, undecodable entries dead-lettered), and queues the rest on
    /// their aggregates' lanes. Returns `false` if the lanes have stopped.
    async fn dispatch(
        &self,
        commands: &mut MultiplexedConnection,
        entries: Vec<Delivery>,
        lanes: &Lanes<E>,
    ) -> Result<bool, RedisError> {
        for Delivery { entry, deliveries } in entries {
            if entry.map.is_empty() {
                // A pending entry read back after it was deleted from the stream.
                self.report_lost(1);
                self.ack(commands, &entry.id).await?;
                continue;
            }
            if let Some(target) = entry.get::<String>(dead_letter::REDRIVEN_FOR)
                && target != self.config.group
            {
                // Re-driven for another group only.
                self.ack(commands, &entry.id).await?;
                self.count_consumed("other_group");
                continue;
            }
            let decoded = EncodedEvent::from_fields(&entry.map).and_then(|encoded| encoded.decode::<E>());
            match decoded {
                Ok(event) => {
                    let pending = Pending { entry_id: entry.id, fields: entry.map, deliveries, event };
                    if !lanes.queue(pending).await {
                        return Ok(false);
                    }
                }
                Err(DecodeError::UnknownType(event_type)) => {
                    tracing::debug!(%event_type, entry_id = %entry.id, "skipping an event type this consumer does not know");
                    self.ack(commands, &entry.id).await?;
                    self.count_consumed("unknown_type");
                }
                Err(error) => {
                    tracing::error!(error = %error, entry_id = %entry.id, "undecodable entry; dead-lettering it");
                    self.dead_letter(commands, &entry.id, &entry.map, deliveries, &error.to_string()).await?;
                }
            }
        }
        Ok(true)
    }

    /// Handles one lane's entries in order until the lane is closed and empty.
    /// After shutdown left an entry pending, the later entries of its aggregate
    /// stay pending too.
    async fn handle_lane(
        &self,
        mut queue: mpsc::Receiver<Queued<E>>,
        mut commands: MultiplexedConnection,
        handlers: &Semaphore,
        cancel: &CancellationToken,
    ) -> Result<(), RedisError> {
        let mut left_pending: Vec<Uuid> = Vec::new();
        while let Some(Queued { pending, _place }) = queue.recv().await {
            let aggregate_id = pending.event.aggregate_id;
            if left_pending.contains(&aggregate_id) {
                continue;
            }
            // Never closed, so this waits only for a handler's turn.
            let Ok(_turn) = handlers.acquire().await else { break };
            // Boxed: a lane waits far more than it handles, and the lanes'
            // futures (128 by default) would otherwise each be the size of a handler's.
            if let Handled::LeftPending = Box::pin(self.deliver(&mut commands, *pending, cancel)).await? {
                left_pending.push(aggregate_id);
            }
        }
        Ok(())
    }

    /// Runs the handler until it succeeds, the attempts run out, or shutdown
    /// comes, in the delivery's span: traced, the `process` span of the
    /// entry's trace ([`crate::trace`]).
    async fn deliver(
        &self,
        commands: &mut MultiplexedConnection,
        pending: Pending<E>,
        cancel: &CancellationToken,
    ) -> Result<Handled, RedisError> {
        let span = crate::trace::processing(&self.config.stream, &self.config.group, &pending.event, &pending.fields);
        self.attempt(commands, pending, cancel, &span).instrument(span.clone()).await
    }

    /// The attempts of [`Self::deliver`], in `span`.
    async fn attempt(
        &self,
        commands: &mut MultiplexedConnection,
        pending: Pending<E>,
        cancel: &CancellationToken,
        span: &tracing::Span,
    ) -> Result<Handled, RedisError> {
        let mut attempt = pending.deliveries.max(1);
        let mut outage: Option<(Stall<'_>, u32)> = None;
        loop {
            match self.handler.handle(&pending.event).await {
                Err(HandlerError::Unavailable(error)) => {
                    let (_, failures) = outage.get_or_insert_with(|| (Stall::new(&self.stalled), 0));
                    *failures += 1;
                    let wait = self.config.outage_retry.delay(*failures);
                    self.log_outage(&error, *failures);
                    metrics::counter!(names::RETRIED, "stream" => self.config.stream.clone(), "group" => self.config.group.clone(), "reason" => "unavailable")
                        .increment(1);
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(Handled::LeftPending),
                        () = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                Ok(()) => {
                    self.ack(commands, &pending.entry_id).await?;
                    self.count_consumed("ok");
                    let lag = (Utc::now() - pending.event.occurred_at).to_std().unwrap_or_default();
                    metrics::histogram!(names::HANDLE_LAG, "stream" => self.config.stream.clone(), "group" => self.config.group.clone())
                        .record(lag.as_secs_f64());
                    return Ok(Handled::Done);
                }
                Err(HandlerError::Rejected(error)) if attempt >= self.config.max_deliveries => {
                    tracing::error!(
                        attempt,
                        error = format!("{error:#}"),
                        "handler failed for the last time; dead-lettering the event"
                    );
                    let reason = format!("{error:#}");
                    crate::trace::failed(span);
                    self.dead_letter(commands, &pending.entry_id, &pending.fields, attempt, &reason).await?;
                    return Ok(Handled::Done);
                }
                Err(HandlerError::Rejected(error)) => {
                    outage = None;
                    tracing::warn!(attempt, error = format!("{error:#}"), "handler rejected the event; retrying");
                    metrics::counter!(names::RETRIED, "stream" => self.config.stream.clone(), "group" => self.config.group.clone(), "reason" => "rejected")
                        .increment(1);
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(Handled::LeftPending),
                        () = tokio::time::sleep(self.config.retry.delay(attempt)) => {}
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn ack(&self, commands: &mut MultiplexedConnection, entry_id: &str) -> Result<(), RedisError> {
        redis::cmd("XACK").arg(&self.config.stream).arg(&self.config.group).arg(entry_id).query_async(commands).await
    }

    /// Copies the entry with its error to the dead-letter stream and acknowledges
    /// it, atomically.
    async fn dead_letter(
        &self,
        commands: &mut MultiplexedConnection,
        entry_id: &str,
        fields: &HashMap<String, Value>,
        deliveries: u32,
        error: &str,
    ) -> Result<(), RedisError> {
        let config = &self.config;
        let failure = dead_letter::Failure {
            source_stream: &config.stream,
            source_entry_id: entry_id,
            group: &config.group,
            deliveries,
            error,
        };
        dead_letter::dead_letter(commands, &config.dead_letter_stream, config.dead_letter_max_len, fields, &failure)
            .await?;
        metrics::counter!(names::DEAD_LETTERED, "stream" => config.stream.clone(), "group" => config.group.clone())
            .increment(1);
        Ok(())
    }

    /// Logs an outage of the handler's dependencies, at most once per ten
    /// seconds for the whole consumer.
    fn log_outage(&self, error: &anyhow::Error, failures: u32) {
        let admitted = self.outage_log.lock().map(|mut limiter| limiter.admit()).unwrap_or(Some(0));
        if let Some(suppressed) = admitted {
            tracing::warn!(
                failures,
                suppressed,
                error = format!("{error:#}"),
                "handler cannot reach what it needs; the event waits and reading pauses"
            );
        }
    }

    /// Says, loudly, that `count` pending entries were deleted from the
    /// stream before this group handled them. Retention never trims them
    /// ([`crate::retention`]): only an operator's hard cap or a manual
    /// `XTRIM`/`XDEL` does.
    fn report_lost(&self, count: usize) {
        tracing::error!(count, "pending entries were deleted from the stream before this group handled them");
        metrics::counter!(names::LOST, "stream" => self.config.stream.clone(), "group" => self.config.group.clone())
            .increment(count as u64);
    }

    fn count_consumed(&self, outcome: &'static str) {
        metrics::counter!(names::CONSUMED, "stream" => self.config.stream.clone(), "group" => self.config.group.clone(), "outcome" => outcome)
            .increment(1);
    }
}
