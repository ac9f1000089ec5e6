//! The live feed of the kitchen display: server-sent events, one `ticket`
//! event for every entry of `kitchen-events`, carrying the ticket as it is
//! now, as `GET /api/v1/tickets/{ticket_id}` shows it. Each event's id is its
//! stream entry's, so that a display that reconnects with `Last-Event-ID`
//! (or `?after=`, say the `stream_position` of a listing) misses nothing and
//! gets nothing twice.
//!
//! Each feed reads the stream on a Redis connection of its own with blocking
//! `XREAD`s; comments keep the connection alive while the kitchen is quiet.

use crate::error::Error;
use crate::http::{Kitchen, TicketBody};
use crate::store;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use events::{EncodedEvent, TicketId};
use futures::Stream;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadReply};
use serde::Deserialize;
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::KitchenOperate};
use service_kit::extract::Query;
use service_kit::values::FieldError;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;

/// How long one `XREAD` blocks, in milliseconds.
const BLOCK_MS: u64 = 15_000;
/// How long a blocking read may take to answer before Redis counts as gone.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// The most entries one read takes.
const COUNT: usize = 100;
/// How often a comment is sent while nothing happens.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where the feed starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The stream entry to follow on from (the `stream_position` of a
    /// listing); the `Last-Event-ID` header wins. Default: from now.
    #[param(example = "1764626400000-0")]
    after: Option<String>,
}

/// The ticket events after an entry of `kitchen-events`.
#[utoipa::path(get, path = "/api/v1/tickets/feed", tag = "tickets", params(FeedQuery, ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: the feed resumes after it")), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "Server-sent events: `id` the stream entry, `event: ticket`, `data` the ticket as it is now", content_type = "text/event-stream", body = String),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "after or Last-Event-ID is not a stream entry id", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn feed(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let last_event_id = headers.get("last-event-id").map(|value| {
        value.to_str().map(str::to_owned).map_err(|_| FieldError::new("Last-Event-ID", "must be an entry id"))
    });
    let from = match (last_event_id.transpose()?, query.after) {
        (Some(id), _) => checked("Last-Event-ID", id)?,
        (None, Some(after)) => checked("after", after)?,
        (None, None) => kitchen.stream_position().await?,
    };
    let redis = kitchen.redis(READ_TIMEOUT).await?;
    let tail = Tail { kitchen, redis, from, pending: VecDeque::new() };
    let events = futures::stream::unfold(tail, Tail::next);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A stream entry id, `<ms>-<seq>` or `<ms>`.
fn checked(field: &str, id: String) -> Result<String, FieldError> {
    let id = id.trim().to_owned();
    let number = |part: &str| !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit());
    let valid = match id.split_once('-') {
        Some((ms, seq)) => number(ms) && number(seq),
        None => number(&id),
    };
    if valid {
        Ok(id)
    } else {
        Err(FieldError::new(field, format!("{id:?} is not a stream entry id such as 1764626400000-0")))
    }
}

/// Where a feed is: the entries it has read and not yet sent.
struct Tail {
    kitchen: Kitchen,
    redis: MultiplexedConnection,
    from: String,
    pending: VecDeque<Event>,
}

impl Tail {
    /// The next event, reading the stream until there is one; `None` ends
    /// the feed (Redis or the database failed: the display reconnects).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            let read: Option<StreamReadReply> = match redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("COUNT")
                .arg(COUNT)
                .arg("STREAMS")
                .arg(self.kitchen.stream())
                .arg(&self.from)
                .query_async(&mut self.redis)
                .await
            {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(%error, "the ticket feed cannot read kitchen-events; closing it");
                    return None;
                }
            };
            for entry in read.into_iter().flat_map(|reply| reply.keys).flat_map(|key| key.ids) {
                self.from.clone_from(&entry.id);
                match frame(&self.kitchen, &entry).await {
                    Ok(Some(event)) => self.pending.push_back(event),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, entry = %entry.id, "the ticket feed cannot load a ticket; closing it");
                        return None;
                    }
                }
            }
        }
    }
}

/// The `ticket` event of `entry`: its ticket as it is now. `None` for an
/// entry that is not an event, or about no ticket (a blind cancellation).
async fn frame(kitchen: &Kitchen, entry: &StreamId) -> Result<Option<Event>, Error> {
    let encoded = match EncodedEvent::from_fields(&entry.map) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::warn!(%error, entry = %entry.id, "skipping an entry of kitchen-events that is not an event");
            return Ok(None);
        }
    };
    let Some(ticket) = store::find(kitchen.pool(), TicketId::from(encoded.aggregate_id)).await? else {
        return Ok(None);
    };
    let data = serde_json::to_string(&TicketBody::from(&ticket))
        .map_err(|error| service_kit::write::WriteError::Store(service_kit::database::StoreError::Encode(error)))?;
    Ok(Some(Event::default().id(entry.id.clone()).event("ticket").data(data)))
}
