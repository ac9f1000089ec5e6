//! What an operator sees of the streams: their entries decoded as far as
//! they decode, the newest first or as they arrive, filtered by type,
//! aggregate or correlation id; and each stream's extent, consumer groups,
//! consumers, dead letters and the point below which retention may trim.
//!
//! Nothing here changes a stream. `platform-ctl` and the gateway's operator
//! API (which the console's pages call) read the streams through these
//! functions, so both show the same thing.
//!
//! Reading the past goes backwards from a position (`XREVRANGE`), page by
//! page, up to a limit of entries looked at, because a filter such as a
//! correlation id may match nothing in a long stream. Reading what comes
//! next is `XREAD` after a position per stream; with a block time it waits
//! for the next entry, so its connection needs a response timeout longer
//! than the block.

use crate::dead_letter;
use crate::encoding::{DecodeError, EncodedEvent, FIELDS, dead_letter_stream};
use crate::retention::{self, EntryId, Extent, GroupState, TrimPoint, parse_id};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamInfoConsumersReply, StreamRangeReply, StreamReadReply};
use redis::{RedisError, Value};
use std::time::Duration;
use uuid::Uuid;

/// One entry of a stream, decoded as far as it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The stream it is on (its full name, any prefix included).
    pub stream: String,
    /// Its entry id.
    pub id: EntryId,
    /// The event it carries, or why it is not one.
    pub event: Result<EncodedEvent, DecodeError>,
    /// The event's metadata as JSON (`correlation_id`, `causation_id`,
    /// `source`, …); `Null` when there is none or it is not JSON.
    pub metadata: serde_json::Value,
    /// For an entry re-driven from the dead letters, the only group that
    /// handles it ([`dead_letter::REDRIVEN_FOR`]).
    pub redriven_for: Option<String>,
    /// Every field as text, in wire order and then by name: what an entry
    /// that is not an event shows.
    pub fields: Vec<(String, String)>,
}

impl Entry {
    /// The entry `entry` of `stream`, as Redis returned it.
    ///
    /// # Errors
    /// Its id is not a stream entry id (Redis never returns such a one).
    pub fn read(stream: &str, entry: &StreamId) -> Result<Self, RedisError> {
        let event = EncodedEvent::from_fields(&entry.map);
        let metadata = event
            .as_ref()
            .ok()
            .and_then(|event| serde_json::from_str(&event.metadata).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut fields: Vec<(String, String)> = entry
            .map
            .iter()
            .map(|(name, value)| {
                let text = redis::from_redis_value_ref::<String>(value).unwrap_or_else(|_| format!("{value:?}"));
                (name.clone(), text)
            })
            .collect();
        fields.sort_by(|(a, _), (b, _)| {
            let place = |name: &str| FIELDS.iter().position(|field| *field == name).unwrap_or(FIELDS.len());
            (place(a), a).cmp(&(place(b), b))
        });
        Ok(Self {
            stream: stream.to_owned(),
            id: parse_id(&entry.id)?,
            redriven_for: entry.get(dead_letter::REDRIVEN_FOR),
            event,
            metadata,
            fields,
        })
    }

    /// The request id the chain of events started with, if it is an event.
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata.get("correlation_id").and_then(serde_json::Value::as_str)
    }
}

/// Which entries to show: all that match every criterion given. An entry
/// that is not an event matches only the empty filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events of this `type`.
    pub event_type: Option<String>,
    /// Only events of this aggregate.
    pub aggregate_id: Option<Uuid>,
    /// Only events with this `correlation_id`: one request's consequences
    /// across every stream.
    pub correlation_id: Option<String>,
}

impl Filter {
    /// Whether no criterion is given.
    pub fn is_empty(&self) -> bool {
        self.event_type.is_none() && self.aggregate_id.is_none() && self.correlation_id.is_none()
    }

    /// Whether `entry` matches.
    pub fn matches(&self, entry: &Entry) -> bool {
        let Ok(event) = &entry.event else { return self.is_empty() };
        self.event_type.as_ref().is_none_or(|wanted| *wanted == event.event_type)
            && self.aggregate_id.is_none_or(|wanted| wanted == event.aggregate_id)
            && self.correlation_id.as_deref().is_none_or(|wanted| entry.correlation_id() == Some(wanted))
    }
}

/// The last id Redis generated for each of `streams` (`0-0` for a stream
/// that does not exist yet): the position from which [`read_after`] reads
/// only what is new.
///
/// # Errors
/// Redis failed, or a key is not a stream.
pub async fn last_ids(connection: &mut MultiplexedConnection, streams: &[String]) -> Result<Vec<EntryId>, RedisError> {
    let mut ids = Vec::with_capacity(streams.len());
    for stream in streams {
        let info: Result<Value, RedisError> =
            redis::cmd("XINFO").arg("STREAM").arg(stream).query_async(connection).await;
        let id = match info {
            Err(error) if error.detail().is_some_and(|detail| detail.contains("no such key")) => EntryId::ZERO,
            other => last_generated_id(&other?).map_or(Ok(EntryId::ZERO), |id| parse_id(&id))?,
        };
        ids.push(id);
    }
    Ok(ids)
}

fn last_generated_id(info: &Value) -> Option<String> {
    let text = |value: &Value| redis::from_redis_value_ref::<String>(value).ok();
    match info {
        Value::Array(fields) => fields
            .chunks(2)
            .find(|pair| text(&pair[0]).as_deref() == Some("last-generated-id"))
            .and_then(|pair| pair.get(1).and_then(text)),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(name, _)| text(name).as_deref() == Some("last-generated-id"))
            .and_then(|(_, value)| text(value)),
        _ => None,
    }
}

/// What a backward [`scan`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// The matching entries, newest first.
    pub entries: Vec<Entry>,
    /// How many entries were looked at.
    pub scanned: usize,
    /// Whether the scan reached the start of the stream: there is nothing
    /// older to find.
    pub reached_start: bool,
}

/// Entries asked for per `XREVRANGE` of a [`scan`].
const SCAN_PAGE: usize = 500;

/// The newest entries of `stream` at or below `from` that match `filter`:
/// up to `wanted` of them, looking at `scan_limit` entries at most.
///
/// # Errors
/// Redis failed, or `stream` is not a stream.
pub async fn scan(
    connection: &mut MultiplexedConnection,
    stream: &str,
    from: EntryId,
    filter: &Filter,
    wanted: usize,
    scan_limit: usize,
) -> Result<Scan, RedisError> {
    let mut found = Scan { entries: Vec::new(), scanned: 0, reached_start: false };
    let mut end = from.to_string();
    while found.entries.len() < wanted && found.scanned < scan_limit {
        let page_size = SCAN_PAGE.min(scan_limit - found.scanned);
        let page: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(page_size)
            .query_async(connection)
            .await?;
        found.scanned += page.ids.len();
        for entry in &page.ids {
            let entry = Entry::read(stream, entry)?;
            if filter.matches(&entry) && found.entries.len() < wanted {
                found.entries.push(entry);
            }
        }
        match page.ids.last() {
            Some(last) if page.ids.len() == page_size => end = format!("({}", last.id),
            _ => {
                found.reached_start = true;
                break;
            }
        }
    }
    Ok(found)
}

/// The entries of `streams` after `positions` (one per stream, in the same
/// order), at most `count` per stream, oldest first; each position moves to
/// the last entry read of its stream. With `block`, waits that long for a
/// first entry (the connection's response timeout must be longer), and
/// returns none if nothing came.
///
/// # Errors
/// Redis failed, or a key is not a stream.
pub async fn read_after(
    connection: &mut MultiplexedConnection,
    streams: &[String],
    positions: &mut [EntryId],
    count: usize,
    block: Option<Duration>,
) -> Result<Vec<Entry>, RedisError> {
    let mut read = redis::cmd("XREAD");
    read.arg("COUNT").arg(count);
    if let Some(block) = block {
        read.arg("BLOCK").arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX));
    }
    read.arg("STREAMS").arg(streams);
    for position in positions.iter() {
        read.arg(position.to_string());
    }
    let reply: Option<StreamReadReply> = read.query_async(connection).await?;
    let mut entries = Vec::new();
    for key in reply.map(|reply| reply.keys).unwrap_or_default() {
        let Some(index) = streams.iter().position(|stream| *stream == key.key) else { continue };
        for entry in &key.ids {
            let entry = Entry::read(&key.key, entry)?;
            positions[index] = positions[index].max(entry.id);
            entries.push(entry);
        }
    }
    entries.sort_by_key(|entry| entry.id);
    Ok(entries)
}

/// One consumer of a group: an instance of the consuming service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// The group it belongs to.
    pub group: String,
    /// Its name (`<host>:<port>` unless configured).
    pub name: String,
    /// Entries delivered to it and not acknowledged yet.
    pub pending: u64,
    /// How long since it last read or claimed.
    pub idle: Duration,
}

/// A stream as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOverview {
    /// The stream.
    pub stream: String,
    /// How many entries it holds.
    pub length: u64,
    /// Its oldest entry, if any: where trimming has got to.
    pub first: Option<EntryId>,
    /// Its newest entry, if any.
    pub last: Option<EntryId>,
    /// How many dead letters its dead-letter stream holds.
    pub dead_letters: u64,
    /// Every consumer of every group, group by group.
    pub consumers: Vec<ConsumerState>,
    /// Its groups and what holds trimming back.
    pub trim: TrimPoint,
}

/// The overview of `stream`, with the trim point that retention keeping
/// `min_age` would find now.
///
/// # Errors
/// Redis failed, or `stream` (or its dead-letter stream) is not a stream.
pub async fn overview(
    connection: &mut MultiplexedConnection,
    stream: &str,
    min_age: Duration,
) -> Result<StreamOverview, RedisError> {
    let trim = retention::trim_point(connection, stream, min_age).await?;
    let extent = Extent::of(connection, stream).await?;
    let dead_letters = dead_letter::count(connection, &dead_letter_stream(stream)).await?;
    let mut consumers = Vec::new();
    for GroupState { name: group, .. } in &trim.groups {
        let reply: StreamInfoConsumersReply =
            redis::cmd("XINFO").arg("CONSUMERS").arg(stream).arg(group).query_async(connection).await?;
        consumers.extend(reply.consumers.into_iter().map(|consumer| ConsumerState {
            group: group.clone(),
            name: consumer.name,
            pending: consumer.pending as u64,
            idle: Duration::from_millis(consumer.idle as u64),
        }));
    }
    Ok(StreamOverview {
        stream: stream.to_owned(),
        length: extent.length,
        first: extent.first,
        last: extent.last,
        dead_letters,
        consumers,
        trim,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainEvent, MenuEvent, Metadata};
    use std::collections::HashMap;

    fn entry_of(fields: &[(String, String)]) -> Entry {
        let map: HashMap<String, Value> =
            fields.iter().map(|(name, value)| (name.clone(), Value::BulkString(value.clone().into_bytes()))).collect();
        Entry::read("s", &StreamId { id: "5-1".to_owned(), map, ..StreamId::default() })
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn event(correlation: &str) -> (Uuid, Entry) {
        let menu = Uuid::now_v7();
        let event =
            DomainEvent::new(menu, 1, MenuEvent::MenuDeactivated {}, Metadata::new("menu-service", correlation));
        let fields = EncodedEvent::encode(&event).unwrap_or_else(|error| panic!("{error}")).into_fields();
        (menu, entry_of(&fields.map(|(name, value)| (name.to_owned(), value))))
    }

    #[test]
    fn an_entry_reads_its_event_correlation_and_fields_in_wire_order() {
        let (menu, entry) = event("req-1");
        assert_eq!(entry.id, EntryId { ms: 5, seq: 1 });
        assert_eq!(entry.event.as_ref().map(|event| event.aggregate_id), Ok(menu));
        assert_eq!(entry.correlation_id(), Some("req-1"));
        let names: Vec<&str> = entry.fields.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, FIELDS);
        assert_eq!(entry.redriven_for, None);
    }

    #[test]
    fn a_filter_matches_on_every_criterion_given_and_what_is_no_event_only_when_empty() {
        let (menu, entry) = event("req-1");
        let garbage = entry_of(&[("type".to_owned(), "Garbage".to_owned())]);
        assert!(garbage.event.is_err());
        assert!(Filter::default().matches(&entry) && Filter::default().matches(&garbage));
        let by_type = Filter { event_type: Some("MenuDeactivated".to_owned()), ..Filter::default() };
        assert!(by_type.matches(&entry) && !by_type.matches(&garbage));
        assert!(!Filter { event_type: Some("MenuActivated".to_owned()), ..Filter::default() }.matches(&entry));
        let both = Filter { aggregate_id: Some(menu), correlation_id: Some("req-1".to_owned()), ..Filter::default() };
        assert!(both.matches(&entry));
        assert!(!Filter { correlation_id: Some("req-2".to_owned()), ..both }.matches(&entry));
        assert!(!Filter { aggregate_id: Some(Uuid::now_v7()), ..Filter::default() }.matches(&entry));
    }
}
