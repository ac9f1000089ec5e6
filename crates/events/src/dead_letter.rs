//! The dead-letter stream: entries a consumer group gave up on, with why.
//!
//! A dead letter keeps every field of the original entry and adds the fields
//! below, so `XRANGE menu-events.dlq - +` shows the event and its last error
//! side by side. [`redrive`] puts dead letters back on their stream (as new
//! entries, so every group sees them again; inboxes absorb the repeats).

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};
use redis::{RedisError, Value};

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

/// One dead letter as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's own entry id on the dead-letter stream.
    pub entry_id: String,
    /// The stream the entry came from.
    pub source_stream: String,
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
        let mut fields: Vec<(String, String)> = entry
            .map
            .iter()
            .filter(|(name, _)| !name.starts_with("dlq_"))
            .map(|(name, value)| (name.clone(), redis::from_redis_value_ref::<String>(value).unwrap_or_default()))
            .collect();
        fields.sort_by_key(|(name, _)| crate::encoding::FIELDS.iter().position(|f| f == name).unwrap_or(usize::MAX));
        Self {
            entry_id: entry.id.clone(),
            source_stream: text(SOURCE_STREAM),
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
        for (name, value) in &entry.map {
            if let (false, Value::BulkString(bytes)) = (name.starts_with("dlq_"), value) {
                xadd.arg(name).arg(bytes.as_slice());
            }
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
