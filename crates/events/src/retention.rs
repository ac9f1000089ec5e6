//! Trimming streams without losing an event a consumer group has not finished with.
//!
//! # Protocol
//!
//! A stream only grows: the relay appends and nothing else removes. Capping
//! it by length (`XADD … MAXLEN ~`) removes whatever is oldest, even entries
//! a consuming service has not read yet because it is down for a deploy.
//! Retention trims instead below what every consumer group is done with.
//!
//! A group still needs every entry from its **oldest pending** entry on
//! (delivered to one of its consumers and not acknowledged: it may be retried
//! or claimed), and, with nothing pending, every entry after its
//! **last-delivered id** (not read yet). `XINFO GROUPS` gives each group's
//! last-delivered id and `XPENDING stream group` the smallest pending id; the
//! lowest of these over all groups is the **safe trim point**: every entry
//! below it has been acknowledged by every group. A group that never read
//! anything has last-delivered id `0-0` and so holds the whole stream.
//!
//! Entries younger than `min_age` stay whatever the groups say, so that a
//! new group, or an operator, can replay the recent past. Stream ids are
//! `<milliseconds>-<sequence>` of the Redis clock, so the age bound is the id
//! `<now - min_age>-0`, with `now` asked of Redis (`TIME`) rather than of this
//! machine, whose clock may differ. A pass trims with `XTRIM stream MINID
//! <point>`, exact, which removes the entries strictly below the lower of the
//! two bounds. A stream without groups is trimmed by age alone.
//!
//! # The hard cap
//!
//! Holding entries for a group that never comes back would fill Redis's
//! memory. An operator may set a hard cap: after the safe trim, a stream
//! still longer than the cap is trimmed with `XTRIM MAXLEN ~ cap` like the
//! old relay did. Entries that removes which a group had not acknowledged
//! (its pending entries and those it was never handed) are lost to that
//! group: each pass counts them per group ([`metrics::TRIMMED_UNACKNOWLEDGED`])
//! and logs them at error level. Retire a group that is never coming back with
//! [`delete_group`] instead, and its entries are free to go.
//!
//! # Lag
//!
//! A group's lag is how many entries it has not been handed yet. Redis 7 tells
//! it in `XINFO GROUPS`, but not always (after `XDEL` inside the range it cannot
//! count); then it is counted here with `XRANGE`, up to a limit past which it is
//! reported as unknown. A group further behind than `lag_warning` is logged as a
//! warning, at most once a minute per group, and every group's lag is a gauge.
//!
//! # Several trimmers
//!
//! Every instance of a service runs its own [`Retention`] on the same streams,
//! with nothing to coordinate them, and that is safe: a group's last-delivered
//! id and oldest pending id only move forward (reads advance the one, acks the
//! other; claiming moves entries between consumers, never adds older ones), so
//! a trim point computed a moment ago is at or below the point the groups are
//! at now. Two trimmers computing different points each remove only entries
//! every group was done with; the later one finds less to do. (An operator who
//! moves a group back with `XGROUP SETID` to replay, or creates a group at
//! `0` on a stream with a long history, gets what is still there: at least
//! `min_age` of it.)

use crate::backoff::{Backoff, LogLimiter, Outage};
use crate::metrics as names;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingReply, StreamRangeReply};
use redis::{AsyncConnectionConfig, RedisError};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How many entries after a group's last-delivered id are counted with
/// `XRANGE` when Redis cannot tell the group's lag; beyond this it is unknown.
const LAG_COUNT_LIMIT: u64 = 100_000;

/// Entries asked for per `XRANGE` while counting a lag.
const LAG_COUNT_PAGE: u64 = 1_000;

/// How often a lagging group is warned about.
const LAG_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Waits between attempts while Redis is unreachable.
const RECONNECT: Backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(10) };

/// How much of each stream is kept, how often streams are trimmed, and when to warn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Entries younger than this are never trimmed, acknowledged or not: the
    /// recent past kept for replay.
    pub min_age: Duration,
    /// How often each stream is trimmed.
    pub interval: Duration,
    /// A group more than this many entries behind is logged as a warning.
    pub lag_warning: u64,
    /// Emergency cap on a stream's length, applied after the safe trim even
    /// if a group has not acknowledged what it removes. Off unless set.
    pub hard_cap: Option<u64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(24 * 60 * 60),
            interval: Duration::from_secs(10),
            lag_warning: 10_000,
            hard_cap: None,
        }
    }
}

/// A stream entry id, `<milliseconds>-<sequence>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    /// Milliseconds since the Unix epoch, by the Redis clock, when it was added.
    pub ms: u64,
    /// Its place among the entries of the same millisecond.
    pub seq: u64,
}

impl EntryId {
    /// `0-0`: below every entry; the last-delivered id of a group that read nothing.
    pub const ZERO: Self = Self { ms: 0, seq: 0 };
    /// Above every entry.
    pub const MAX: Self = Self { ms: u64::MAX, seq: u64::MAX };

    /// The smallest id above this one.
    #[must_use]
    pub const fn next(self) -> Self {
        if self.seq < u64::MAX {
            Self { ms: self.ms, seq: self.seq + 1 }
        } else if self.ms < u64::MAX {
            Self { ms: self.ms + 1, seq: 0 }
        } else {
            Self::MAX
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A text that is not a stream entry id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a stream entry id (<ms>-<seq>)")]
pub struct InvalidEntryId(String);

impl FromStr for EntryId {
    type Err = InvalidEntryId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEntryId(text.to_owned());
        let (ms, seq) = text.split_once('-').ok_or_else(invalid)?;
        Ok(Self { ms: ms.parse().map_err(|_| invalid())?, seq: seq.parse().map_err(|_| invalid())? })
    }
}

/// Where one consumer group of a stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The group's name: the consuming service.
    pub name: String,
    /// How many consumers (instances) the group has.
    pub consumers: u64,
    /// Entries delivered to a consumer and not acknowledged yet.
    pub pending: u64,
    /// The oldest of those, if any.
    pub oldest_pending: Option<EntryId>,
    /// The last entry handed to one of its consumers; `0-0` if none yet.
    pub last_delivered: EntryId,
    /// Entries of the stream not handed to the group yet; `None` if it could
    /// not be told (see the module docs).
    pub lag: Option<u64>,
}

impl GroupState {
    /// The first entry the group still needs: its oldest pending entry, or,
    /// with nothing pending, the one after its last delivered. Every entry
    /// below it the group has acknowledged.
    pub fn needs_from(&self) -> EntryId {
        self.oldest_pending.unwrap_or_else(|| self.last_delivered.next())
    }
}

/// The group that holds trimming back furthest: the one whose
/// [`GroupState::needs_from`] is lowest (the first of them on a tie).
pub fn holding_back(groups: &[GroupState]) -> Option<&GroupState> {
    groups.iter().min_by_key(|group| group.needs_from())
}

/// What stops a trim from going further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldBack {
    /// A group has not acknowledged the entries from `at` on.
    Group {
        /// The group's name.
        name: String,
        /// The first entry it still needs.
        at: EntryId,
        /// How many entries it has pending.
        pending: u64,
    },
    /// Every group is past `at`, but younger entries are kept for `min_age`.
    MinAge {
        /// The age bound: entries from here on are younger than `min_age`.
        at: EntryId,
    },
}

impl fmt::Display for HeldBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group { name, at, pending } => {
                write!(f, "trimming held back by group {name} at {at} ({pending} pending)")
            }
            Self::MinAge { at } => write!(f, "trimming held back by the minimum age at {at}"),
        }
    }
}

/// Unacknowledged entries of one group that the hard cap removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// The group that had not acknowledged them.
    pub group: String,
    /// How many: its pending entries and those it was never handed.
    pub entries: u64,
    /// `false` when the group's lag was unknown: then only its pending
    /// entries are counted, and more were likely lost.
    pub exact: bool,
}

/// What one pass of [`trim`] found and did on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimReport {
    /// The stream.
    pub stream: String,
    /// Its length after the pass.
    pub length: u64,
    /// Entries removed below the safe trim point.
    pub trimmed: u64,
    /// The safe trim point: entries below it are gone, the rest kept.
    pub trimmed_to: EntryId,
    /// What kept the safe trim from going further.
    pub held_back: HeldBack,
    /// Entries the hard cap removed besides, acknowledged or not.
    pub capped: u64,
    /// Per group, the unacknowledged entries among those; empty when the cap
    /// did not trim or took only what every group was done with.
    pub lost: Vec<Loss>,
    /// Every group as the pass found it, before trimming.
    pub groups: Vec<GroupState>,
}

/// Every consumer group of `stream` with its pending entries and lag, as
/// `platform-ctl groups` shows them. A stream that does not exist has none.
///
/// # Errors
/// Redis failed, or `stream` is not a stream.
pub async fn groups(connection: &mut MultiplexedConnection, stream: &str) -> Result<Vec<GroupState>, RedisError> {
    let reply: Result<StreamInfoGroupsReply, RedisError> =
        redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(connection).await;
    let infos = match reply {
        Err(error) if error.detail().is_some_and(|detail| detail.contains("no such key")) => return Ok(Vec::new()),
        other => other?.groups,
    };
    if infos.is_empty() {
        return Ok(Vec::new());
    }
    let extent = Extent::of(connection, stream).await?;
    let mut groups = Vec::with_capacity(infos.len());
    for info in infos {
        let last_delivered = parse_id(&info.last_delivered_id)?;
        let oldest_pending = if info.pending == 0 {
            None
        } else {
            let pending: StreamPendingReply =
                redis::cmd("XPENDING").arg(stream).arg(&info.name).query_async(connection).await?;
            match pending {
                StreamPendingReply::Data(data) => Some(parse_id(&data.start_id)?),
                _ => None,
            }
        };
        let lag = match info.lag {
            // Counted by Redis from entries added, which include any the
            // hard cap removed before the group got them.
            Some(lag) => Some((lag as u64).min(extent.length)),
            None => extent.count_after(connection, stream, last_delivered).await?,
        };
        groups.push(GroupState {
            pending: if oldest_pending.is_some() { info.pending as u64 } else { 0 },
            name: info.name,
            consumers: info.consumers as u64,
            oldest_pending,
            last_delivered,
            lag,
        });
    }
    Ok(groups)
}

/// Where a trim of a stream would stop now, and why: what [`trim`] trims
/// below, as an operator sees it without trimming anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimPoint {
    /// The safe trim point: every entry below it may go, none from it on.
    pub at: EntryId,
    /// What keeps it from going further: the group furthest behind, or the
    /// minimum age.
    pub held_back: HeldBack,
    /// Every group of the stream as it was found.
    pub groups: Vec<GroupState>,
}

/// The safe trim point of `stream` now: the lower of what every group is
/// done with ([`holding_back`]) and the age bound of `min_age`, by the
/// Redis clock. See the module docs.
///
/// # Errors
/// Redis failed, or `stream` is not a stream.
pub async fn trim_point(
    connection: &mut MultiplexedConnection,
    stream: &str,
    min_age: Duration,
) -> Result<TrimPoint, RedisError> {
    // The age bound is taken before the groups are read: older is safer.
    let age_bound = age_bound(connection, min_age).await?;
    let groups = groups(connection, stream).await?;
    let (at, held_back) = match holding_back(&groups) {
        Some(group) if group.needs_from() < age_bound => (
            group.needs_from(),
            HeldBack::Group { name: group.name.clone(), at: group.needs_from(), pending: group.pending },
        ),
        _ => (age_bound, HeldBack::MinAge { at: age_bound }),
    };
    Ok(TrimPoint { at, held_back, groups })
}

/// Trims `stream` once: below what every group has acknowledged and what is
/// older than `min_age`, then to the hard cap if one is set; records the
/// metrics and logs what the hard cap took from a group. See the module docs.
///
/// # Errors
/// Redis failed, or `stream` is not a stream. Whatever was trimmed before the
/// failure stays trimmed, which is safe.
#[tracing::instrument(skip_all, fields(stream = %stream))]
pub async fn trim(
    connection: &mut MultiplexedConnection,
    stream: &str,
    config: &RetentionConfig,
) -> Result<TrimReport, RedisError> {
    let TrimPoint { at: trimmed_to, held_back, groups } = trim_point(connection, stream, config.min_age).await?;
    let trimmed: u64 =
        redis::cmd("XTRIM").arg(stream).arg("MINID").arg(trimmed_to.to_string()).query_async(connection).await?;
    let mut length: u64 = redis::cmd("XLEN").arg(stream).query_async(connection).await?;

    let mut capped = 0;
    let mut lost = Vec::new();
    if let Some(cap) = config.hard_cap
        && length > cap
    {
        let before = Extent::of(connection, stream).await?;
        capped = redis::cmd("XTRIM").arg(stream).arg("MAXLEN").arg("~").arg(cap).query_async(connection).await?;
        let after = Extent::of(connection, stream).await?;
        length = after.length;
        if capped > 0 {
            lost = losses(connection, stream, &groups, &before, &after, capped).await?;
        }
    }

    record(stream, &groups, trimmed + capped, &lost);
    for loss in &lost {
        tracing::error!(
            group = %loss.group,
            entries = loss.entries,
            exact = loss.exact,
            cap = config.hard_cap,
            "the stream's hard cap trimmed entries this group had not acknowledged: they are lost to it"
        );
    }
    Ok(TrimReport { stream: stream.to_owned(), length, trimmed, trimmed_to, held_back, capped, lost, groups })
}

/// Destroys consumer group `group` of `stream`, retiring it: its pending
/// entries are forgotten and it no longer holds trimming back. Returns
/// whether there was such a group.
///
/// # Errors
/// Redis failed, or `stream` does not exist or is not a stream.
pub async fn delete_group(
    connection: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Result<bool, RedisError> {
    let destroyed: u64 = redis::cmd("XGROUP").arg("DESTROY").arg(stream).arg(group).query_async(connection).await?;
    if destroyed > 0 {
        tracing::info!(%stream, %group, "consumer group deleted");
    }
    Ok(destroyed > 0)
}

/// Trims a service's streams every [`RetentionConfig::interval`]. Run one per
/// service instance: see the module docs for why several are safe.
#[derive(Debug)]
pub struct Retention {
    redis: redis::Client,
    streams: Vec<String>,
    config: RetentionConfig,
}

impl Retention {
    /// Retention of `streams` through `redis`, as `config` says.
    pub fn new(redis: redis::Client, streams: Vec<String>, config: RetentionConfig) -> Self {
        Self { redis, streams, config }
    }

    /// The streams it trims.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// How it trims.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// Trims every stream at once and then every interval until `cancel` fires.
    /// While Redis is unreachable it retries with backoff, warning at most
    /// every ten seconds; a stream that cannot be trimmed (not a stream) is
    /// warned about and the others are trimmed anyway.
    #[tracing::instrument(name = "retention", skip_all)]
    pub async fn run(self, cancel: CancellationToken) {
        let mut connection: Option<MultiplexedConnection> = None;
        let mut outage = Outage::new(RECONNECT);
        let mut lag_warnings: HashMap<(String, String), LogLimiter> = HashMap::new();
        let mut stream_warnings: HashMap<String, LogLimiter> = HashMap::new();
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(next) => {}
            }
            let pass = self.pass(&mut connection, &mut lag_warnings, &mut stream_warnings);
            let passed = tokio::select! {
                () = cancel.cancelled() => break,
                passed = pass => passed,
            };
            match passed {
                Ok(()) => {
                    if outage.ended() {
                        tracing::info!("retention reached redis again");
                    }
                    next = Instant::now() + self.config.interval;
                }
                Err(error) => {
                    connection = None;
                    if !outage
                        .wait_after(&error, "retention cannot reach redis; streams are not trimmed", &cancel)
                        .await
                    {
                        break;
                    }
                    next = Instant::now();
                }
            }
        }
        tracing::info!("retention stopped");
    }

    /// Trims each stream once. Fails only when Redis itself does.
    async fn pass(
        &self,
        connection: &mut Option<MultiplexedConnection>,
        lag_warnings: &mut HashMap<(String, String), LogLimiter>,
        stream_warnings: &mut HashMap<String, LogLimiter>,
    ) -> Result<(), RedisError> {
        let connection = match connection {
            Some(connection) => connection,
            None => connection.insert(self.connect().await?),
        };
        for stream in &self.streams {
            let report = match trim(connection, stream, &self.config).await {
                Ok(report) => report,
                Err(error) if error.code().is_some() => {
                    let limiter = stream_warnings
                        .entry(stream.clone())
                        .or_insert_with(|| LogLimiter::new(Duration::from_secs(60)));
                    if let Some(suppressed) = limiter.admit() {
                        tracing::warn!(%stream, error = %error, suppressed, "cannot trim the stream");
                    }
                    continue;
                }
                Err(error) => return Err(error),
            };
            tracing::debug!(
                %stream,
                length = report.length,
                trimmed = report.trimmed,
                capped = report.capped,
                held_back = %report.held_back,
                "stream trimmed"
            );
            self.warn_of_lag(&report, lag_warnings);
        }
        Ok(())
    }

    /// Warns, at most once a minute per group, of groups further behind than `lag_warning`.
    fn warn_of_lag(&self, report: &TrimReport, warnings: &mut HashMap<(String, String), LogLimiter>) {
        for group in &report.groups {
            let Some(lag) = group.lag.filter(|lag| *lag > self.config.lag_warning) else { continue };
            let limiter = warnings
                .entry((report.stream.clone(), group.name.clone()))
                .or_insert_with(|| LogLimiter::new(LAG_WARNING_INTERVAL));
            if let Some(suppressed) = limiter.admit() {
                tracing::warn!(
                    stream = %report.stream,
                    group = %group.name,
                    lag,
                    pending = group.pending,
                    limit = self.config.lag_warning,
                    suppressed,
                    "consumer group is falling behind; its entries are kept until it catches up"
                );
            }
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        self.redis.get_multiplexed_async_connection_with_config(&config).await
    }
}

/// The stream's length and its first and last entries.
pub(crate) struct Extent {
    pub(crate) length: u64,
    pub(crate) first: Option<EntryId>,
    pub(crate) last: Option<EntryId>,
}

impl Extent {
    pub(crate) async fn of(connection: &mut MultiplexedConnection, stream: &str) -> Result<Self, RedisError> {
        let (length, first, last): (u64, StreamRangeReply, StreamRangeReply) = redis::pipe()
            .cmd("XLEN")
            .arg(stream)
            .cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(connection)
            .await?;
        let id = |reply: &StreamRangeReply| reply.ids.first().map(|entry| parse_id(&entry.id)).transpose();
        Ok(Self { length, first: id(&first)?, last: id(&last)? })
    }

    /// How many entries come after `id`, counted with `XRANGE` up to
    /// [`LAG_COUNT_LIMIT`]; `None` beyond it.
    async fn count_after(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &str,
        id: EntryId,
    ) -> Result<Option<u64>, RedisError> {
        match (self.first, self.last) {
            (_, None) => return Ok(Some(0)),
            (_, Some(last)) if id >= last => return Ok(Some(0)),
            (Some(first), _) if id < first => return Ok(Some(self.length)),
            _ => {}
        }
        let mut counted = 0;
        let mut after = id;
        while counted <= LAG_COUNT_LIMIT {
            let page: StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(LAG_COUNT_PAGE)
                .query_async(connection)
                .await?;
            counted += page.ids.len() as u64;
            match page.ids.last() {
                Some(entry) if page.ids.len() as u64 == LAG_COUNT_PAGE => after = parse_id(&entry.id)?,
                _ => return Ok(Some(counted)),
            }
        }
        Ok(None)
    }
}

/// Per group, the entries it had not acknowledged among the `capped` oldest
/// that the hard cap removed: its pending entries below the new first entry,
/// and, of the entries it was never handed, those among the removed.
async fn losses(
    connection: &mut MultiplexedConnection,
    stream: &str,
    groups: &[GroupState],
    before: &Extent,
    after: &Extent,
    capped: u64,
) -> Result<Vec<Loss>, RedisError> {
    let kept_from = after.first.unwrap_or(EntryId::MAX);
    let mut lost = Vec::new();
    for group in groups {
        let mut pending_lost = 0;
        if let (Some(oldest), Some(first)) = (group.oldest_pending, before.first)
            && oldest < kept_from
        {
            // Only those that were still in the stream: an earlier cap's
            // victims stay pending until the group's consumers acknowledge them.
            let lost_ids: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(stream)
                .arg(&group.name)
                .arg(first.to_string())
                .arg(format!("({kept_from}"))
                .arg(group.pending)
                .query_async(connection)
                .await?;
            pending_lost = lost_ids.ids.len() as u64;
        }
        // The removed entries are the oldest; the group had been handed all
        // but its `lag` newest, so the removed beyond those it was never handed.
        let undelivered_lost = group.lag.map(|lag| capped.saturating_sub(before.length.saturating_sub(lag)));
        let entries = pending_lost + undelivered_lost.unwrap_or(0);
        let exact = undelivered_lost.is_some();
        if entries > 0 || (!exact && group.last_delivered < kept_from) {
            lost.push(Loss { group: group.name.clone(), entries, exact });
        }
    }
    Ok(lost)
}

/// Sets the lag gauges and counts what was trimmed.
fn record(stream: &str, groups: &[GroupState], trimmed: u64, lost: &[Loss]) {
    for group in groups {
        if let Some(lag) = group.lag {
            #[allow(clippy::cast_precision_loss, reason = "a gauge")]
            metrics::gauge!(names::GROUP_LAG, "stream" => stream.to_owned(), "group" => group.name.clone())
                .set(lag as f64);
        }
    }
    metrics::counter!(names::TRIMMED, "stream" => stream.to_owned()).increment(trimmed);
    for loss in lost {
        metrics::counter!(names::TRIMMED_UNACKNOWLEDGED, "stream" => stream.to_owned(), "group" => loss.group.clone())
            .increment(loss.entries);
    }
}

/// The id below which entries are older than `min_age`, by the Redis clock.
async fn age_bound(connection: &mut MultiplexedConnection, min_age: Duration) -> Result<EntryId, RedisError> {
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(connection).await?;
    let now_ms = seconds.saturating_mul(1000).saturating_add(micros / 1000);
    let min_age_ms = u64::try_from(min_age.as_millis()).unwrap_or(u64::MAX);
    Ok(EntryId { ms: now_ms.saturating_sub(min_age_ms), seq: 0 })
}

pub(crate) fn parse_id(text: &str) -> Result<EntryId, RedisError> {
    text.parse().map_err(|error: InvalidEntryId| {
        RedisError::from((redis::ErrorKind::Parse, "unexpected stream entry id", error.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> EntryId {
        text.parse().unwrap_or_else(|error| panic!("{error}"))
    }

    fn group(name: &str, last_delivered: &str, oldest_pending: Option<&str>) -> GroupState {
        GroupState {
            name: name.to_owned(),
            consumers: 1,
            pending: u64::from(oldest_pending.is_some()),
            oldest_pending: oldest_pending.map(id),
            last_delivered: id(last_delivered),
            lag: Some(0),
        }
    }

    #[test]
    fn entry_ids_order_by_milliseconds_then_sequence_and_read_back_as_written() {
        assert!(id("1733-9") < id("1734-0"));
        assert!(id("1734-0") < id("1734-10"), "numeric, not textual");
        assert_eq!(id("1734-10").to_string(), "1734-10");
        assert!("1734".parse::<EntryId>().is_err());
        assert!("a-1".parse::<EntryId>().is_err());
        assert_eq!(id("5-1").next(), id("5-2"));
        assert_eq!(EntryId { ms: 5, seq: u64::MAX }.next(), id("6-0"));
    }

    #[test]
    fn a_group_needs_its_oldest_pending_entry_or_else_the_one_after_its_last_delivered() {
        assert_eq!(group("g", "10-3", Some("7-0")).needs_from(), id("7-0"));
        assert_eq!(group("g", "10-3", None).needs_from(), id("10-4"));
        assert_eq!(group("g", "0-0", None).needs_from(), id("0-1"), "a group that read nothing holds everything");
    }

    #[test]
    fn the_group_furthest_behind_holds_trimming_back() {
        let groups = [group("ahead", "50-0", None), group("behind", "50-0", Some("20-0")), group("idle", "30-0", None)];
        assert_eq!(holding_back(&groups).map(|group| group.name.as_str()), Some("behind"));
        assert_eq!(holding_back(&[]), None);
    }
}
