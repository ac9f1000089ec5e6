//! The dead-letter stream: entries a consumer group gave up on, with why.
//!
//! A dead letter keeps every field of the original entry and adds the fields
//! below, so `XRANGE menu-events.dlq - +` shows the event and its last error
//! side by side. [`redrive`] puts dead letters back on their stream (as new
//! entries, so every group sees them again; inboxes absorb the repeats).

use crate::encoding::FIELDS;
use chrono::{SecondsFormat, Utc};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};
use redis::{RedisError, Value};
use std::collections::HashMap;

/// Field: the handler's last error, or why the entry could not be decoded.
pub const ERROR: &str = "dlq_error";
/// Field: the stream the entry came from.
pub const SOURCE_STREAM: &str = "dlq_source_stream";
/// Field: the entry's id on that stream.
pub const SOURCE_ENTRY_ID: &str = "dlq_source_entry_id";
/// Field: the consumer group that gave up.
pub const GROUP: &str = "dlq_group";
/// Field: how many attempts were made.
pub const DELIVERIES: &str = "dlq_deliveries";
/// Field: when the entry was dead-lettered (RFC 3339).
pub const FAILED_AT: &str = "dlq_failed_at";

/// Where and why an entry failed: what a dead letter adds to the entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure<'a> {
    pub(crate) source_stream: &'a str,
    pub(crate) source_entry_id: &'a str,
    pub(crate) group: &'a str,
    pub(crate) deliveries: u32,
    pub(crate) error: &'a str,
}

/// The `XADD` that writes `fields` (an entry as read) and `failure` to the
/// dead-letter stream.
pub(crate) fn xadd(
    dead_letter_stream: &str,
    max_len: usize,
    fields: &HashMap<String, Value>,
    failure: &Failure<'_>,
) -> redis::Cmd {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(dead_letter_stream).arg("MAXLEN").arg("~").arg(max_len).arg("*");
    for (name, value) in original_fields(fields) {
        xadd.arg(name).arg(value);
    }
    xadd.arg(ERROR)
        .arg(failure.error)
        .arg(SOURCE_STREAM)
        .arg(failure.source_stream)
        .arg(SOURCE_ENTRY_ID)
        .arg(failure.source_entry_id)
        .arg(GROUP)
        .arg(failure.group)
        .arg(DELIVERIES)
        .arg(failure.deliveries)
        .arg(FAILED_AT)
        .arg(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    xadd
}

/// The producer's fields of an entry (none of the `dlq_` ones), in wire
/// order ([`FIELDS`]) and then by name, so that dead letters and re-driven
/// entries read like the original.
fn original_fields(fields: &HashMap<String, Value>) -> Vec<(&str, &[u8])> {
    let mut original: Vec<(&str, &[u8])> = fields
        .iter()
        .filter(|(name, _)| !name.starts_with("dlq_"))
        .filter_map(|(name, value)| match value {
            Value::BulkString(bytes) => Some((name.as_str(), bytes.as_slice())),
            _ => None,
        })
        .collect();
    original.sort_by_key(|(name, _)| (FIELDS.iter().position(|field| field == name).unwrap_or(FIELDS.len()), *name));
    original
}

/// One dead letter as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's own entry id on the dead-letter stream.
    pub entry_id: String,
    /// The stream the entry came from.
    pub source_stream: String,
    /// The entry's id on that stream.
    pub source_entry_id: String,
    /// The group that gave up on it.
    pub group: String,
    /// How many attempts were made.
    pub deliveries: u32,
    /// The last error.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: String,
    /// The original entry's fields, in the order they were written.
    pub fields: Vec<(String, String)>,
}

impl DeadLetter {
    fn from_entry(entry: &StreamId) -> Self {
        let text = |name: &str| entry.get::<String>(name).unwrap_or_default();
        let fields = original_fields(&entry.map)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        Self {
            entry_id: entry.id.clone(),
            source_stream: text(SOURCE_STREAM),
            source_entry_id: text(SOURCE_ENTRY_ID),
            group: text(GROUP),
            deliveries: entry.get(DELIVERIES).unwrap_or_default(),
            error: text(ERROR),
            failed_at: text(FAILED_AT),
            fields,
        }
    }
}

/// Lists up to `count` dead letters of `dead_letter_stream`, oldest first.
///
/// # Errors
/// Redis failed.
pub async fn list(
    redis: &mut MultiplexedConnection,
    dead_letter_stream: &str,
    count: usize,
) -> Result<Vec<DeadLetter>, RedisError> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(dead_letter_stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(redis)
        .await?;
    Ok(reply.ids.iter().map(DeadLetter::from_entry).collect())
}

/// Moves up to `count` dead letters back onto their source streams, oldest
/// first, each in one `MULTI` (`XADD` to the source, `XDEL` from the dead-letter
/// stream). Returns how many were moved.
///
/// # Errors
/// Redis failed; letters not yet moved stay where they are.
pub async fn redrive(
    redis: &mut MultiplexedConnection,
    dead_letter_stream: &str,
    count: usize,
) -> Result<usize, RedisError> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(dead_letter_stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(redis)
        .await?;
    for entry in &reply.ids {
        let Some(source) = entry.get::<String>(SOURCE_STREAM) else {
            continue;
        };
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&source).arg("*");
        for (name, value) in original_fields(&entry.map) {
            xadd.arg(name).arg(value);
        }
        redis::pipe()
            .atomic()
            .add_command(xadd)
            .ignore()
            .cmd("XDEL")
            .arg(dead_letter_stream)
            .arg(&entry.id)
            .ignore()
            .query_async::<()>(redis)
            .await?;
    }
    Ok(reply.ids.len())
}
