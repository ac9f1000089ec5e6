//! The tail of every stream: `GET /api/v1/events` lists the newest entries,
//! decoded and filtered, with the `stream_position` they were read at;
//! `GET /api/v1/events/feed` carries on from such a position as server-sent
//! events, one `entry` event per matching entry.
//!
//! A position is one entry id per stream, written
//! `menu-events=1764626400000-0,order-events=1764626401234-0,…`; each event
//! of the feed has the position just after its entry as its id, so a client
//! that reconnects with `Last-Event-ID` misses nothing and gets nothing
//! twice. A stream the position does not name is read from its end.
//!
//! Following a correlation id across streams is the same listing with
//! `correlation_id`: every event one request caused, in every stream.

use super::{Error, Known, Operator};
use ::events::inspect::{self, Entry, Filter};
use ::events::retention::EntryId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::PlatformOperate};
use service_kit::extract::Query;
use service_kit::values::FieldError;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;
use uuid::Uuid;

/// The most entries of each stream looked at by one listing: a filter that
/// matches little does not read a long stream to its start.
const SCAN_LIMIT: usize = 10_000;
/// How long one read of the feed blocks.
const BLOCK: Duration = Duration::from_secs(15);
/// The most entries of a stream one read of the feed takes.
const READ_COUNT: usize = 100;
/// How often a comment is sent while nothing happens.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Which entries: the filters of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this stream (`order-events`); every stream if absent.
    stream: Option<String>,
    /// Only events of this type (`OrderPlaced`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only events of this aggregate.
    aggregate_id: Option<Uuid>,
    /// Only events with this correlation id: everything one request caused.
    correlation_id: Option<String>,
    /// At most this many entries, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u16>,
}

/// Which entries, and from where: the filters of the feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The position to carry on from (a listing's `stream_position`); the
    /// `Last-Event-ID` header wins. Default: from now.
    #[param(example = "menu-events=1764626400000-0,order-events=1764626401234-0")]
    after: Option<String>,
    /// Only this stream (`order-events`); every stream if absent.
    stream: Option<String>,
    /// Only events of this type (`OrderPlaced`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only events of this aggregate.
    aggregate_id: Option<Uuid>,
    /// Only events with this correlation id.
    correlation_id: Option<String>,
}

/// The streams a request reads (their places in [`Operator::streams`]) and
/// the filter its entries must pass.
struct Selection {
    streams: Vec<usize>,
    filter: Filter,
}

impl Selection {
    fn new(
        operator: &Operator,
        stream: Option<String>,
        event_type: Option<String>,
        aggregate_id: Option<Uuid>,
        correlation_id: Option<String>,
    ) -> Result<Self, Error> {
        let given =
            |value: Option<String>| value.map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let streams = match given(stream) {
            Some(name) => {
                let known = operator.stream(&name)?;
                vec![operator.streams().iter().position(|stream| stream == known).unwrap_or_default()]
            }
            None => (0..operator.streams().len()).collect(),
        };
        let filter = Filter { event_type: given(event_type), aggregate_id, correlation_id: given(correlation_id) };
        Ok(Self { streams, filter })
    }
}

/// The newest entries of the streams, decoded, that match the filters.
#[utoipa::path(get, path = "/api/v1/events", tag = "platform", params(ListQuery), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "`{entries, stream_position, scanned, truncated}`: the entries newest first, each with `stream`, `entry_id` and, for an event, `id`, `type`, `aggregate_id`, `version`, `occurred_at`, `correlation_id`, `data`, `metadata` (else `error` and `fields`); the position to follow on from with the feed; how many entries were looked at; whether older matches may exist beyond the 10,000 entries looked at per stream", body = Object),
    (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A parameter out of range", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    _staff: Staff<PlatformOperate>,
    State(operator): State<Operator>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Error> {
    let limit = usize::from(query.limit.unwrap_or(100));
    if !(1..=500).contains(&limit) {
        return Err(FieldError::new("limit", "must be from 1 to 500").into());
    }
    let selection =
        Selection::new(&operator, query.stream, query.event_type, query.aggregate_id, query.correlation_id)?;
    let keys: Vec<String> = operator.streams().iter().map(|known| known.key.clone()).collect();
    let (position, scans) = operator
        .redis(|mut connection| async move {
            // The position is taken first: what arrives while the rest is
            // read comes again in the feed, rather than not at all.
            let position = inspect::last_ids(&mut connection, &keys).await?;
            let mut scans = Vec::with_capacity(selection.streams.len());
            for &index in &selection.streams {
                let scan =
                    inspect::scan(&mut connection, &keys[index], position[index], &selection.filter, limit, SCAN_LIMIT)
                        .await?;
                scans.push(scan);
            }
            Ok((position, scans))
        })
        .await?;
    let scanned: usize = scans.iter().map(|scan| scan.scanned).sum();
    let truncated = scans.iter().any(|scan| !scan.reached_start && scan.entries.len() < limit);
    let mut entries: Vec<Entry> = scans.into_iter().flat_map(|scan| scan.entries).collect();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.id));
    entries.truncate(limit);
    let body = json!({
        "entries": entries.iter().map(|entry| entry_json(operator.streams(), entry)).collect::<Vec<_>>(),
        "stream_position": render(operator.streams(), &position),
        "scanned": scanned,
        "truncated": truncated,
    });
    Ok(axum::Json(body).into_response())
}

/// The entries after a position, as they arrive.
#[utoipa::path(get, path = "/api/v1/events/feed", tag = "platform", params(FeedQuery, ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: the feed resumes after it")), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "Server-sent events: `event: entry`, `data` the entry as the listing shows it, `id` the position after it", content_type = "text/event-stream", body = String),
    (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "after or Last-Event-ID is not a position", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn feed(
    _staff: Staff<PlatformOperate>,
    State(operator): State<Operator>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let selection =
        Selection::new(&operator, query.stream, query.event_type, query.aggregate_id, query.correlation_id)?;
    let last_event_id = headers.get("last-event-id").map(|value| {
        value.to_str().map(str::to_owned).map_err(|_| FieldError::new("Last-Event-ID", "must be a position"))
    });
    let given = match (last_event_id.transpose()?, query.after) {
        (Some(position), _) => parse("Last-Event-ID", &position, operator.streams())?,
        (None, Some(after)) => parse("after", &after, operator.streams())?,
        (None, None) => vec![None; operator.streams().len()],
    };
    let keys: Vec<String> = operator.streams().iter().map(|known| known.key.clone()).collect();
    let now = operator.redis(|mut connection| async move { inspect::last_ids(&mut connection, &keys).await }).await?;
    let position = given.into_iter().zip(now).map(|(given, now)| given.unwrap_or(now)).collect();
    let tail = Tail {
        connection: operator.blocking_connection(BLOCK).await?,
        known: operator.streams.clone(),
        selection,
        position,
        pending: VecDeque::new(),
        stop: operator.stop.clone(),
    };
    Ok(Sse::new(futures::stream::unfold(tail, Tail::next)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Where a feed is: its position, and the events read and not yet sent.
struct Tail {
    connection: MultiplexedConnection,
    known: Arc<[Known]>,
    selection: Selection,
    position: Vec<EntryId>,
    pending: VecDeque<Event>,
    stop: CancellationToken,
}

impl Tail {
    /// The next event, reading the streams until there is one; `None` ends
    /// the feed (the gateway stops, or Redis failed: the client reconnects).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            let keys: Vec<String> = self.selection.streams.iter().map(|&index| self.known[index].key.clone()).collect();
            let mut from: Vec<EntryId> = self.selection.streams.iter().map(|&index| self.position[index]).collect();
            let read = inspect::read_after(&mut self.connection, &keys, &mut from, READ_COUNT, Some(BLOCK));
            let entries = tokio::select! {
                () = self.stop.cancelled() => return None,
                read = read => match read {
                    Ok(entries) => entries,
                    Err(error) => {
                        tracing::warn!(%error, "the events feed cannot read the streams; closing it");
                        return None;
                    }
                },
            };
            for entry in entries {
                let Some(index) = self.known.iter().position(|known| known.key == entry.stream) else { continue };
                self.position[index] = entry.id;
                if self.selection.filter.matches(&entry) {
                    let data = entry_json(&self.known, &entry).to_string();
                    self.pending
                        .push_back(Event::default().id(render(&self.known, &self.position)).event("entry").data(data));
                }
            }
        }
    }
}

/// `position` written as `name=id,…`.
fn render(known: &[Known], position: &[EntryId]) -> String {
    known.iter().zip(position).map(|(known, id)| format!("{}={id}", known.name)).collect::<Vec<_>>().join(",")
}

/// The position `text` of request field `field`: an id for each stream it
/// names, `None` for the others.
fn parse(field: &str, text: &str, known: &[Known]) -> Result<Vec<Option<EntryId>>, FieldError> {
    let mut position = vec![None; known.len()];
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let invalid = || {
            FieldError::new(field, format!("{part:?} is not <stream>=<entry id>, such as menu-events=1764626400000-0"))
        };
        let (name, id) = part.split_once('=').ok_or_else(invalid)?;
        let index = known
            .iter()
            .position(|known| known.name == name)
            .ok_or_else(|| FieldError::new(field, format!("there is no stream {name:?}")))?;
        position[index] = Some(id.parse().map_err(|_| invalid())?);
    }
    Ok(position)
}

/// An entry as the API shows it.
fn entry_json(known: &[Known], entry: &Entry) -> Value {
    let stream =
        known.iter().find(|known| known.key == entry.stream).map_or(entry.stream.as_str(), |known| &known.name);
    let mut body = json!({
        "stream": stream,
        "entry_id": entry.id.to_string(),
        "redriven_for": entry.redriven_for,
    });
    match &entry.event {
        Ok(event) => {
            body["id"] = json!(event.id.to_string());
            body["type"] = json!(event.event_type);
            body["aggregate_id"] = json!(event.aggregate_id);
            body["version"] = json!(event.version);
            body["occurred_at"] = json!(event.occurred_at);
            body["correlation_id"] = json!(entry.correlation_id());
            body["data"] = serde_json::from_str(&event.data).unwrap_or_else(|_| json!(event.data));
            body["metadata"] = entry.metadata.clone();
        }
        Err(error) => {
            body["error"] = json!(error.to_string());
            body["fields"] = entry.fields.iter().map(|(name, value)| (name.clone(), json!(value))).collect();
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<Known> {
        ["menu-events", "order-events"]
            .map(|name| Known { name: name.to_owned(), key: format!("p-{name}") })
            .into_iter()
            .collect()
    }

    #[test]
    fn a_position_reads_back_as_written_and_names_only_known_streams() -> anyhow::Result<()> {
        let known = known();
        let position = [EntryId { ms: 17, seq: 2 }, EntryId::ZERO];
        let text = render(&known, &position);
        assert_eq!(text, "menu-events=17-2,order-events=0-0");
        assert_eq!(parse("after", &text, &known)?, position.map(Some));
        assert_eq!(parse("after", "order-events=5-0", &known)?, [None, Some(EntryId { ms: 5, seq: 0 })]);
        assert_eq!(parse("after", "", &known)?, [None, None]);
        for bad in ["kitchen-events=1-0", "menu-events", "menu-events=yesterday"] {
            let error = parse("after", bad, &known).err().map(|error| error.field);
            assert_eq!(error.as_deref(), Some("after"), "{bad} accepted");
        }
        Ok(())
    }
}
