//! The commands, writing to any `Write` so that tests can read what they print.

use events::dead_letter::{self, DeadLetter};
use events::encoding::dead_letter_stream;
use events::retention::{self, HeldBack};
use events::{EncodedEvent, Streams};
use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadReply};
use std::io::Write;
use std::time::Duration;

/// The streams named on the command line under the prefix, or every event stream.
pub fn stream_names(streams: &Streams, names: &[String]) -> Vec<String> {
    if names.is_empty() { streams.all() } else { names.iter().map(|name| streams.named(name)).collect() }
}

async fn connect(client: &redis::Client, blocking: bool) -> anyhow::Result<MultiplexedConnection> {
    let mut config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(Duration::from_secs(5)));
    if blocking {
        config = config.set_response_timeout(None);
    }
    Ok(client.get_multiplexed_async_connection_with_config(&config).await?)
}

/// One entry on one line: id, stream, type, aggregate, version, correlation,
/// source; then the payload. An entry that is not an event shows its fields.
pub fn describe(stream: &str, entry: &StreamId) -> String {
    match EncodedEvent::from_fields(&entry.map) {
        Ok(event) => {
            let metadata: serde_json::Value = serde_json::from_str(&event.metadata).unwrap_or_default();
            let text = |key: &str| metadata[key].as_str().unwrap_or("-").to_owned();
            format!(
                "{id}  {stream}  {kind}  aggregate={aggregate} version={version} correlation={correlation} \
                 causation={causation} source={source} at={at}\n    {data}",
                id = entry.id,
                kind = event.event_type,
                aggregate = event.aggregate_id,
                version = event.version,
                correlation = text("correlation_id"),
                causation = text("causation_id"),
                source = text("source"),
                at = event.occurred_at.to_rfc3339(),
                data = event.data,
            )
        }
        Err(error) => {
            let mut fields: Vec<String> =
                entry.map.iter().map(|(name, value)| format!("{name}={}", show(value))).collect();
            fields.sort();
            format!("{}  {stream}  (not an event: {error})\n    {}", entry.id, fields.join(" "))
        }
    }
}

fn show(value: &Value) -> String {
    redis::from_redis_value_ref::<String>(value).unwrap_or_else(|_| format!("{value:?}"))
}

/// Prints entries of `streams` as they arrive (with `from_start`, those
/// already there first) until `count` have been printed, or forever.
///
/// # Errors
/// Redis failed or the output is closed.
pub async fn tail(
    client: &redis::Client,
    streams: &[String],
    from_start: bool,
    count: Option<usize>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut connection = connect(client, true).await?;
    let mut positions: Vec<String> = Vec::with_capacity(streams.len());
    for stream in streams {
        let last = if from_start {
            "0-0".to_owned()
        } else {
            let info: Option<Value> =
                redis::cmd("XINFO").arg("STREAM").arg(stream).query_async(&mut connection).await.ok();
            info.and_then(|info| last_generated_id(&info)).unwrap_or_else(|| "0-0".to_owned())
        };
        positions.push(last);
    }
    let mut printed = 0;
    loop {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT").arg(100).arg("BLOCK").arg(1000).arg("STREAMS").arg(streams).arg(&positions);
        let reply: Option<StreamReadReply> = read.query_async(&mut connection).await?;
        for key in reply.map(|reply| reply.keys).unwrap_or_default() {
            let Some(index) = streams.iter().position(|stream| *stream == key.key) else { continue };
            for entry in &key.ids {
                writeln!(out, "{}", describe(&key.key, entry))?;
                positions[index].clone_from(&entry.id);
                printed += 1;
                if count.is_some_and(|count| printed >= count) {
                    return Ok(out.flush()?);
                }
            }
        }
        out.flush()?;
    }
}

fn last_generated_id(info: &Value) -> Option<String> {
    let fields: Vec<Value> = match info {
        Value::Array(fields) => fields.clone(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        _ => return None,
    };
    fields.chunks(2).find(|pair| show(&pair[0]) == "last-generated-id").map(|pair| show(&pair[1]))
}

/// Prints, per stream, its length and dead letters, then each consumer group's
/// consumers, pending entries, lag, oldest pending and last delivered ids, and
/// which group holds trimming back (retention keeps every entry from there on).
///
/// # Errors
/// Redis failed or the output is closed.
pub async fn groups(client: &redis::Client, streams: &[String], out: &mut impl Write) -> anyhow::Result<()> {
    let mut connection = connect(client, false).await?;
    for stream in streams {
        let length: usize = redis::cmd("XLEN").arg(stream).query_async(&mut connection).await?;
        let dead: usize = redis::cmd("XLEN").arg(dead_letter_stream(stream)).query_async(&mut connection).await?;
        writeln!(out, "{stream}: {length} entries, {dead} dead letters")?;
        let groups = retention::groups(&mut connection, stream).await?;
        if groups.is_empty() {
            writeln!(out, "  no consumer groups: trimmed by age alone")?;
        }
        for group in &groups {
            let lag = group.lag.map_or_else(|| "unknown".to_owned(), |lag| lag.to_string());
            let oldest = group.oldest_pending.map_or_else(|| "-".to_owned(), |id| id.to_string());
            writeln!(
                out,
                "  group {}: {} consumers, {} pending, lag {lag}, oldest pending {oldest}, last delivered {}",
                group.name, group.consumers, group.pending, group.last_delivered
            )?;
        }
        if let Some(group) = retention::holding_back(&groups) {
            let held = HeldBack::Group { name: group.name.clone(), at: group.needs_from(), pending: group.pending };
            writeln!(out, "  {held}")?;
        }
    }
    Ok(())
}

/// Destroys consumer group `group` of `stream` and says so.
///
/// # Errors
/// Redis failed, `stream` does not exist, it has no such group, or the output is closed.
pub async fn delete_group(
    client: &redis::Client,
    stream: &str,
    group: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut connection = connect(client, false).await?;
    anyhow::ensure!(
        retention::delete_group(&mut connection, stream, group).await?,
        "{stream} has no consumer group {group}"
    );
    writeln!(out, "deleted consumer group {group} of {stream}: it no longer holds trimming back")?;
    Ok(())
}

/// Lists up to `count` dead letters of `stream` with the error that put each there.
///
/// # Errors
/// Redis failed or the output is closed.
pub async fn dead_letters(
    client: &redis::Client,
    stream: &str,
    count: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut connection = connect(client, false).await?;
    let letters = dead_letter::list(&mut connection, &dead_letter_stream(stream), count).await?;
    writeln!(out, "{} dead letters of {stream}", letters.len())?;
    for letter in &letters {
        writeln!(out, "{}", describe_letter(letter))?;
    }
    Ok(())
}

fn describe_letter(letter: &DeadLetter) -> String {
    let field = |name: &str| {
        letter.fields.iter().find(|(field, _)| field == name).map_or("-", |(_, value)| value.as_str()).to_owned()
    };
    format!(
        "{id}  from {source} {source_id}  group={group} deliveries={deliveries} failed_at={failed_at}\n    \
         type={kind} aggregate={aggregate} version={version}\n    error: {error}",
        id = letter.entry_id,
        source = letter.source_stream,
        source_id = letter.source_entry_id,
        group = letter.group,
        deliveries = letter.deliveries,
        failed_at = letter.failed_at,
        kind = field("type"),
        aggregate = field("aggregate_id"),
        version = field("version"),
        error = letter.error,
    )
}

/// Moves up to `count` dead letters of `stream` back onto it.
///
/// # Errors
/// Redis failed or the output is closed.
pub async fn redrive(
    client: &redis::Client,
    stream: &str,
    count: usize,
    group: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut connection = connect(client, false).await?;
    let moved = dead_letter::redrive(&mut connection, &dead_letter_stream(stream), count, group).await?;
    writeln!(out, "re-drove {moved} dead letters onto {stream}")?;
    Ok(())
}

/// Writes the platform's services, one per line: name, port, schema and
/// routes (comma-separated), tab-separated.
///
/// # Errors
/// Writing failed.
pub fn services(out: &mut impl Write) -> anyhow::Result<()> {
    for service in service_kit::catalog::SERVICES {
        writeln!(out, "{}\t{}\t{}\t{}", service.name, service.port, service.schema, service.routes.join(","))?;
    }
    Ok(())
}
