//! Reading a stream's entries back for assertions.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;

/// A stream entry with its envelope fields decoded.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry id.
    pub entry_id: String,
    /// The event's `id`.
    pub event_id: String,
    /// The event's `type`.
    pub event_type: String,
    /// The event's `aggregate_id`.
    pub aggregate_id: String,
    /// The aggregate version after the event.
    pub version: i64,
    /// The payload.
    pub data: Value,
    /// `correlation_id`, `causation_id`, `source`.
    pub metadata: Value,
}

impl Entry {
    fn from_stream(entry: &redis::streams::StreamId) -> anyhow::Result<Self> {
        let text = |name: &str| entry.get::<String>(name).with_context(|| format!("entry lacks {name}"));
        Ok(Self {
            entry_id: entry.id.clone(),
            event_id: text("id")?,
            event_type: text("type")?,
            aggregate_id: text("aggregate_id")?,
            version: text("version")?.parse()?,
            data: serde_json::from_str(&text("data")?)?,
            metadata: serde_json::from_str(&text("metadata")?)?,
        })
    }
}

/// The entries of `stream` on the shared Redis, waiting up to `wait` for at
/// least `count` of them.
///
/// # Errors
/// Redis failed or an entry is not an event.
pub async fn entries(stream: &str, count: usize, wait: Duration) -> anyhow::Result<Vec<Entry>> {
    let client = crate::redis_client()?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let range: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(&mut connection).await?;
        if range.ids.len() >= count || tokio::time::Instant::now() > deadline {
            return range.ids.iter().map(Entry::from_stream).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Appends an entry of `fields` (an encoded event's, say) to `stream` on the
/// shared Redis, as a relay would; returns its id.
///
/// # Errors
/// Redis failed.
pub async fn append<V: redis::ToRedisArgs + Send + Sync>(stream: &str, fields: &[(&str, V)]) -> anyhow::Result<String> {
    append_as(stream, "*", fields).await
}

/// [`append`] with the entry id `id` (`*` lets Redis choose); returns the id.
///
/// # Errors
/// Redis refused the entry (an id not above the stream's last one) or failed.
pub async fn append_as<V: redis::ToRedisArgs + Send + Sync>(
    stream: &str,
    id: &str,
    fields: &[(&str, V)],
) -> anyhow::Result<String> {
    let mut connection = crate::redis_client()?.get_multiplexed_async_connection().await?;
    Ok(redis::cmd("XADD").arg(stream).arg(id).arg(fields).query_async(&mut connection).await?)
}
