//! The commands, writing to any `Write` so that tests can read what they print.

use events::dead_letter::{self, DeadLetter};
use events::encoding::dead_letter_stream;
use events::retention::{self, EntryId, HeldBack};
use events::{Streams, inspect};
use redis::aio::MultiplexedConnection;
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
pub fn describe(entry: &inspect::Entry) -> String {
    let stream = &entry.stream;
    match &entry.event {
        Ok(event) => {
            let text = |key: &str| entry.metadata[key].as_str().unwrap_or("-").to_owned();
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
            let fields: Vec<String> = entry.fields.iter().map(|(name, value)| format!("{name}={value}")).collect();
            format!("{}  {stream}  (not an event: {error})\n    {}", entry.id, fields.join(" "))
        }
    }
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
    let mut positions = if from_start {
        vec![EntryId::ZERO; streams.len()]
    } else {
        inspect::last_ids(&mut connection, streams).await?
    };
    let mut printed = 0;
    loop {
        let entries =
            inspect::read_after(&mut connection, streams, &mut positions, 100, Some(Duration::from_secs(1))).await?;
        for entry in &entries {
            writeln!(out, "{}", describe(entry))?;
            printed += 1;
            if count.is_some_and(|count| printed >= count) {
                return Ok(out.flush()?);
            }
        }
        out.flush()?;
    }
}

/// Prints, per stream, its length and dead letters, then each consumer group's
/// consumers, pending entries, lag, oldest pending and last delivered ids, and
/// which group holds trimming back (retention keeps every entry from there on).
///
/// # Errors
/// Redis failed or the output is closed.
pub async fn groups(
    client: &redis::Client,
    streams: &[String],
    min_age: Duration,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut connection = connect(client, false).await?;
    for stream in streams {
        let overview = inspect::overview(&mut connection, stream, min_age).await?;
        writeln!(out, "{stream}: {} entries, {} dead letters", overview.length, overview.dead_letters)?;
        let groups = &overview.trim.groups;
        if groups.is_empty() {
            writeln!(out, "  no consumer groups: trimmed by age alone")?;
        }
        for group in groups {
            let lag = group.lag.map_or_else(|| "unknown".to_owned(), |lag| lag.to_string());
            let oldest = group.oldest_pending.map_or_else(|| "-".to_owned(), |id| id.to_string());
            writeln!(
                out,
                "  group {}: {} consumers, {} pending, lag {lag}, oldest pending {oldest}, last delivered {}",
                group.name, group.consumers, group.pending, group.last_delivered
            )?;
            for consumer in overview.consumers.iter().filter(|consumer| consumer.group == group.name) {
                writeln!(
                    out,
                    "    consumer {}: {} pending, idle {}s",
                    consumer.name,
                    consumer.pending,
                    consumer.idle.as_secs()
                )?;
            }
        }
        if let Some(group) = retention::holding_back(groups) {
            let held = HeldBack::Group { name: group.name.clone(), at: group.needs_from(), pending: group.pending };
            writeln!(out, "  {held}")?;
            if let HeldBack::MinAge { at } = overview.trim.held_back {
                writeln!(out, "  (the minimum age of {}s keeps everything from {at} for now)", min_age.as_secs())?;
            }
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

/// Moves the one dead letter `entry_id` of `stream` back onto it.
///
/// # Errors
/// Redis failed, there is no such letter, or the output is closed.
pub async fn redrive_entry(
    client: &redis::Client,
    stream: &str,
    entry_id: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut connection = connect(client, false).await?;
    anyhow::ensure!(
        dead_letter::redrive_entry(&mut connection, &dead_letter_stream(stream), entry_id).await?,
        "{stream} has no dead letter {entry_id}"
    );
    writeln!(out, "re-drove dead letter {entry_id} onto {stream}")?;
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
