//! The dead-letter stream: entries a consumer group gave up on, with why.
//!
//! A dead letter keeps every field of the original entry and adds the fields
//! below, so `XRANGE menu-events.dlq - +` shows the event and its last error
//! side by side. [`redrive`] puts dead letters back on their stream as new
//! entries marked for the group that gave up on them ([`REDRIVEN_FOR`]):
//! that group handles them again, every other group acknowledges them
//! unhandled.
//!
//! Both moves are one Lua script each (sent by its SHA1: [`Script`]), so
//! that they are atomic in the way that matters: the entry leaves its old place (`XACK`, `XDEL`) only if the
//! `XADD` to its new place succeeded. (A `MULTI` is not enough: a command that
//! fails inside it, such as an `XADD` answered `WRONGTYPE`, does not stop the
//! ones after it.)

use crate::encoding::FIELDS;
use crate::lua::Script;
use chrono::{SecondsFormat, Utc};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};
use redis::{RedisError, Value};
use std::collections::HashMap;
use std::sync::LazyLock;

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
/// Field of a re-driven entry: the only group that handles it.
pub const REDRIVEN_FOR: &str = "redriven_for";

/// Adds the dead letter (`ARGV[4..]`, capped at `ARGV[3]`) to `KEYS[1]`, then
/// acknowledges entry `ARGV[2]` of `KEYS[2]` for group `ARGV[1]`. A failed
/// `XADD` raises, and the entry stays pending.
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
return redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
",
    )
});

/// Adds the entry (`ARGV[2..]`) to `KEYS[2]`, then deletes dead letter
/// `ARGV[1]` from `KEYS[1]`. A failed `XADD` raises, and the letter stays.
static REDRIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], ARGV[1])
",
    )
});

/// Where and why an entry failed: what a dead letter adds to the entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure<'a> {
    pub(crate) source_stream: &'a str,
    pub(crate) source_entry_id: &'a str,
    pub(crate) group: &'a str,
    pub(crate) deliveries: u32,
    pub(crate) error: &'a str,
}

/// Copies `fields` (an entry as read) with `failure` to `dead_letter_stream`
/// and acknowledges the entry, or neither.
///
/// # Errors
/// Redis failed; the entry is still pending.
pub(crate) async fn dead_letter(
    redis: &mut MultiplexedConnection,
    dead_letter_stream: &str,
    max_len: usize,
    fields: &HashMap<String, Value>,
    failure: &Failure<'_>,
) -> Result<(), RedisError> {
    let original = original_fields(fields);
    let failed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    DEAD_LETTER
        .run(redis, |script| {
            script
                .arg(2)
                .arg(dead_letter_stream)
                .arg(failure.source_stream)
                .arg(failure.group)
                .arg(failure.source_entry_id)
                .arg(max_len);
            for (name, value) in &original {
                script.arg(*name).arg(*value);
            }
            script
                .arg(ERROR)
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
                .arg(&failed_at);
        })
        .await
}

/// The producer's fields of an entry (none of the `dlq_` ones, nor
/// [`REDRIVEN_FOR`]), in wire order ([`FIELDS`]) and then by name, so that
/// dead letters and re-driven entries read like the original.
fn original_fields(fields: &HashMap<String, Value>) -> Vec<(&str, &[u8])> {
    let mut original: Vec<(&str, &[u8])> = fields
        .iter()
        .filter(|(name, _)| !name.starts_with("dlq_") && name.as_str() != REDRIVEN_FOR)
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

/// How many dead letters [`redrive`] reads per look.
const REDRIVE_PAGE: usize = 100;

/// Moves up to `count` dead letters back onto their source streams, oldest
/// first: only those of `group` if one is named, else every group's. Each
/// goes back marked [`REDRIVEN_FOR`] the group that gave up on it, which
/// alone handles it again. Returns how many were moved.
///
/// # Errors
/// Redis failed; letters not yet moved stay where they are.
pub async fn redrive(
    redis: &mut MultiplexedConnection,
    dead_letter_stream: &str,
    count: usize,
    group: Option<&str>,
) -> Result<usize, RedisError> {
    let mut moved = 0;
    let mut start = "-".to_owned();
    while moved < count {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(dead_letter_stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(REDRIVE_PAGE)
            .query_async(redis)
            .await?;
        let Some(last) = page.ids.last() else { break };
        start = format!("({}", last.id);
        for entry in &page.ids {
            if group.is_some_and(|group| entry.get::<String>(GROUP).is_none_or(|failed| failed != group)) {
                continue;
            }
            if move_back(redis, dead_letter_stream, entry).await? {
                moved += 1;
            }
            if moved == count {
                break;
            }
        }
        if page.ids.len() < REDRIVE_PAGE {
            break;
        }
    }
    Ok(moved)
}

/// Moves dead letter `entry_id` back onto its source stream, as [`redrive`]
/// does, for the group that gave up on it. Returns `false` if there is no
/// such letter (or it does not say where it came from).
///
/// # Errors
/// Redis failed, or `entry_id` is not an entry id; the letter stays.
pub async fn redrive_entry(
    redis: &mut MultiplexedConnection,
    dead_letter_stream: &str,
    entry_id: &str,
) -> Result<bool, RedisError> {
    let found: StreamRangeReply =
        redis::cmd("XRANGE").arg(dead_letter_stream).arg(entry_id).arg(entry_id).query_async(redis).await?;
    match found.ids.first() {
        Some(entry) => move_back(redis, dead_letter_stream, entry).await,
        None => Ok(false),
    }
}

/// Puts one dead letter back on its source stream marked for its group and
/// deletes it, atomically ([`REDRIVE`]); `false` if it names no source
/// stream or group.
async fn move_back(
    redis: &mut MultiplexedConnection,
    dead_letter_stream: &str,
    entry: &StreamId,
) -> Result<bool, RedisError> {
    let (Some(source), Some(failed_group)) = (entry.get::<String>(SOURCE_STREAM), entry.get::<String>(GROUP)) else {
        return Ok(false);
    };
    let original = original_fields(&entry.map);
    REDRIVE
        .run::<()>(redis, |script| {
            script.arg(2).arg(dead_letter_stream).arg(&source).arg(&entry.id);
            for (name, value) in &original {
                script.arg(*name).arg(*value);
            }
            script.arg(REDRIVEN_FOR).arg(&failed_group);
        })
        .await?;
    Ok(true)
}

/// How many dead letters `dead_letter_stream` holds.
///
/// # Errors
/// Redis failed, or the key is not a stream.
pub async fn count(redis: &mut MultiplexedConnection, dead_letter_stream: &str) -> Result<u64, RedisError> {
    redis::cmd("XLEN").arg(dead_letter_stream).query_async(redis).await
}
