//! Reference measurements the benchmarks compare against.

use anyhow::Context;
use std::io::Write;
use std::process::Command;

/// Runs `pgbench` for `seconds` with `clients` clients on `database`, each
/// transaction two single-row inserts (the physical floor of a command that
/// writes its state and an outbox row), and returns its transactions per second.
///
/// # Errors
/// `psql` or `pgbench` is missing or failed.
pub fn pgbench_two_inserts(database: &str, clients: usize, seconds: u32) -> anyhow::Result<f64> {
    let psql = |sql: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", sql])
            .output()
            .context("running psql")
    };
    psql(
        "DROP TABLE IF EXISTS bench_state, bench_outbox;
         CREATE TABLE bench_state (id bigserial PRIMARY KEY, payload text NOT NULL);
         CREATE TABLE bench_outbox (id bigserial PRIMARY KEY, payload jsonb NOT NULL);",
    )?;
    let mut script = tempfile::NamedTempFile::new()?;
    script.write_all(
        b"BEGIN;\nINSERT INTO bench_state (payload) VALUES ('state');\n\
          INSERT INTO bench_outbox (payload) VALUES ('{\"event\": \"x\"}');\nCOMMIT;\n",
    )?;
    let output = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-c", &clients.to_string(), "-j", "2"])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(script.path())
        .arg(database)
        .output()
        .context("running pgbench")?;
    psql("DROP TABLE bench_state, bench_outbox;")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("reading pgbench's output: {text}"))
}

/// Times, per aggregate, from when a benchmark sent something about it to
/// when an entry of one type about it appears on a stream (an order's
/// `OrderApproved`, a `StockCommitted`). Either may come first: an entry seen
/// before its send was recorded waits for it.
#[derive(Clone)]
pub struct Latencies {
    state: std::sync::Arc<std::sync::Mutex<Timings>>,
}

struct Timings {
    sent: std::collections::HashMap<String, std::time::Instant>,
    early: std::collections::HashMap<String, std::time::Instant>,
    seen: usize,
    latency: hdrhistogram::Histogram<u64>,
}

impl Latencies {
    /// Follows `stream` from now on, for entries of type `event_type`.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn follow(stream: &str, event_type: &'static str) -> anyhow::Result<Self> {
        let timings = Timings {
            sent: std::collections::HashMap::new(),
            early: std::collections::HashMap::new(),
            seen: 0,
            latency: hdrhistogram::Histogram::new(3)?,
        };
        let latencies = Self { state: std::sync::Arc::new(std::sync::Mutex::new(timings)) };
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let mut connection = crate::redis_client()?.get_multiplexed_async_connection_with_config(&config).await?;
        let (stream, follower) = (stream.to_owned(), latencies.clone());
        tokio::spawn(async move {
            let mut last = "$".to_owned();
            loop {
                let reply: redis::RedisResult<redis::streams::StreamReadReply> = redis::cmd("XREAD")
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("COUNT")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(&last)
                    .query_async(&mut connection)
                    .await;
                let Ok(reply) = reply else { continue };
                let now = std::time::Instant::now();
                for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
                    last.clone_from(&entry.id);
                    if entry.get::<String>("type").as_deref() == Some(event_type) {
                        follower.seen(entry.get::<String>("aggregate_id").unwrap_or_default(), now);
                    }
                }
            }
        });
        Ok(latencies)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timings> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(timings: &mut Timings, sent: std::time::Instant, seen: std::time::Instant) {
        timings.seen += 1;
        let micros = u64::try_from(seen.saturating_duration_since(sent).as_micros()).unwrap_or(u64::MAX);
        let _ = timings.latency.record(micros.max(1));
    }

    /// Something about `aggregate` was sent at `at`.
    pub fn sent(&self, aggregate: String, at: std::time::Instant) {
        let mut timings = self.lock();
        match timings.early.remove(&aggregate) {
            Some(seen) => Self::record(&mut timings, at, seen),
            None => {
                timings.sent.insert(aggregate, at);
            }
        }
    }

    fn seen(&self, aggregate: String, at: std::time::Instant) {
        let mut timings = self.lock();
        match timings.sent.remove(&aggregate) {
            Some(sent) => Self::record(&mut timings, sent, at),
            None => {
                timings.early.insert(aggregate, at);
            }
        }
    }

    /// Forgets the times measured so far (not what is under way).
    pub fn reset(&self) {
        let mut timings = self.lock();
        timings.seen = 0;
        timings.latency.reset();
    }

    /// The times measured since the last reset, in microseconds.
    pub fn latency(&self) -> hdrhistogram::Histogram<u64> {
        self.lock().latency.clone()
    }

    /// Waits until `count` were timed since the last reset.
    ///
    /// # Errors
    /// Fewer came within `within`.
    pub async fn wait_for(&self, count: usize, within: std::time::Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + within;
        while self.lock().seen < count {
            anyhow::ensure!(std::time::Instant::now() < deadline, "only {} of {count} seen", self.lock().seen);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(())
    }
}
