//! Measures the event backbone against its physical references, in one run:
//!
//! 1. raw `XADD` rate, by `redis-benchmark` with the same seven fields and
//!    sizes as a real entry, measured two ways: as `redis-benchmark` does by
//!    default (50 clients, each waiting for its reply: the issue's
//!    reference), and pipelined 16 deep (what Redis manages at most);
//! 2. the relay's publish rate: a running relay moves a backlog of committed
//!    outbox rows to the stream (timed until the stream has added them all).
//!    The two alternate for three rounds, each printed with the CPU time per
//!    entry of Redis, PostgreSQL and this process; the ratio reported is the
//!    median of the rounds';
//! 3. `pgbench` running a transaction of two single-row inserts (the floor of a
//!    command that writes state plus an outbox row);
//! 4. end to end: concurrent writers append events in their own transactions,
//!    the relay publishes, a consumer group applies each through the inbox in
//!    its own transaction; throughput at full load, then p50/p99 latency
//!    (append → applied) at half the target rate (0.3 × pgbench) and at half
//!    the rate reached.
//!
//! `cargo run --release -p events --example backbone_bench` (PostgreSQL and
//! Redis running; `BENCH_EVENTS` sets the event count, default 20000;
//! `BENCH_PUBLISH_ONLY=1` stops after the relay's publish rate, for profiling).

use anyhow::Context;
use events::menu::MenuItem;
use events::{
    Consumer, ConsumerConfig, DomainEvent, Handler, HandlerError, Inbox, Inboxed, MenuEvent, MenuItemId, Metadata,
    OutboxRelay, RelayConfig, Streams, TransactionalHandler, UnitOfWork,
};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::TestDb;
use tokio_util::sync::CancellationToken;

/// As in the services: the relay allocates and frees a few strings per event.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITERS: usize = 16;

/// How long a phase may go without progress before the benchmark gives up.
const STALL: Duration = Duration::from_secs(60);

/// Rounds of raw `XADD` against the relay.
const ROUNDS: usize = 3;

/// The end-to-end target, as a share of the `pgbench` rate.
const E2E_TARGET: f64 = 0.3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    println!(
        "event backbone benchmark: {ROUNDS} rounds of {} entries for XADD and the relay, {events} events end to end, {WRITERS} writers, {} cores",
        events * 5,
        num_cpus()
    );

    // Raw XADD and the relay alternate, and the ratio is the median of the
    // rounds': the machine's speed drifts within a run.
    let entries = events * 5;
    let per_entry = |seconds: f64| seconds / entries as f64 * 1e6;
    let (mut raws, mut pipelined_raws, mut publishes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ratios, mut pipelined_ratios) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let raw = raw_xadd_rate(entries, RawXadd::OnePerRoundTrip)?;
        let before = CpuSnapshot::now()?;
        let pipelined = raw_xadd_rate(entries, RawXadd::Pipelined)?;
        let pipelined_cpu = CpuSnapshot::now()?.since(&before);
        // Publishing is timed over as many entries as the raw rates, so that
        // the relay's start-up (connections, first claim) weighs as little.
        let (publish, cpu) = publish_rate(entries).await?;
        println!(
            "  round {round}: XADD {raw:>7.0}/s, pipelined {pipelined:>7.0}/s (Redis {:.2} µs each); \
             relay {publish:>7.0}/s = {:.2} × | {:.2} × (relay {:.2} µs, PostgreSQL {:.2} µs, Redis {:.2} µs per event)",
            per_entry(pipelined_cpu.redis),
            publish / raw,
            publish / pipelined,
            per_entry(cpu.this_process),
            per_entry(cpu.postgres),
            per_entry(cpu.redis),
        );
        raws.push(raw);
        pipelined_raws.push(pipelined);
        publishes.push(publish);
        ratios.push(publish / raw);
        pipelined_ratios.push(publish / pipelined);
    }
    let raw = median(&mut raws);
    println!("raw XADD (redis-benchmark's defaults: 50 clients, no pipelining) {raw:>8.0} entries/s");
    println!(
        "raw XADD pipelined (16 clients, 16 commands in flight each)      {:>8.0} entries/s",
        median(&mut pipelined_raws)
    );
    println!(
        "relay publish (outbox → stream)                                  {:>8.0} events/s   {:.2} × raw XADD, \
         {:.2} × pipelined (medians of the rounds' ratios)",
        median(&mut publishes),
        median(&mut ratios),
        median(&mut pipelined_ratios)
    );
    if std::env::var_os("BENCH_PUBLISH_ONLY").is_some() {
        return Ok(());
    }

    let pgbench = pgbench_rate()?;
    println!("pgbench, 2 single-row inserts per tx        {pgbench:>10.0} tx/s");

    let (e2e, _) = end_to_end(events, None).await?;
    println!(
        "end to end (append → relay → consume → inbox) {e2e:>8.0} events/s   {:.2} × raw XADD, {:.2} × pgbench",
        e2e / raw,
        e2e / pgbench
    );
    // The issue asks for p99 at half the target rate (0.3 × pgbench); half
    // of the rate reached is the harder load once the target is passed.
    for (load, rate) in [("half the target", E2E_TARGET * pgbench / 2.0), ("half the rate reached", e2e / 2.0)] {
        let (paced, latency) = end_to_end(events / 2, Some(rate)).await?;
        println!(
            "  at {rate:.0} events/s offered ({load}; {paced:.0} achieved): latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
        );
    }
    Ok(())
}

/// The median of `values` (the upper one of an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn sample_event() -> DomainEvent<MenuEvent> {
    let item = MenuItem {
        id: MenuItemId::new(),
        name: "Tomato soup".to_owned(),
        description: Some("With basil and cream".to_owned()),
        category: "starter".to_owned(),
        price_cents: 650,
        currency: "EUR".to_owned(),
        available: true,
        switched_on: true,
        in_stock: true,
    };
    DomainEvent::new(
        uuid::Uuid::now_v7(),
        1,
        MenuEvent::MenuItemAdded { item },
        Metadata::new("bench", uuid::Uuid::now_v7().to_string()),
    )
}

/// How `redis-benchmark` sends its `XADD`s.
#[derive(Debug, Clone, Copy)]
enum RawXadd {
    /// Its defaults: 50 clients, each sending its next command once the last
    /// one's reply is in. The reference the backbone issue names.
    OnePerRoundTrip,
    /// 16 clients with 16 commands in flight each: Redis's ceiling.
    Pipelined,
}

impl RawXadd {
    fn clients_and_depth(self) -> [&'static str; 4] {
        match self {
            Self::OnePerRoundTrip => ["-c", "50", "-P", "1"],
            Self::Pipelined => ["-c", "16", "-P", "16"],
        }
    }
}

fn raw_xadd_rate(entries: usize, way: RawXadd) -> anyhow::Result<f64> {
    let stream = testkit::unique("bench-raw-");
    let encoded = events::EncodedEvent::encode(&sample_event())?;
    let mut command = Command::new("redis-benchmark");
    command.args(["-h", "127.0.0.1", "-p", "6379", "-q"]).args(way.clients_and_depth()).arg("-n");
    command.arg(entries.to_string());
    command.args(["XADD", &stream, "MAXLEN", "~", "100000", "*"]);
    for (name, value) in encoded.to_fields() {
        command.arg(name).arg(value);
    }
    let output = command.output().context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .rsplit_once(" requests per second")
        .and_then(|(before, _)| before.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("reading redis-benchmark's output: {text}"))?;
    delete_key(&stream)?;
    Ok(rate)
}

/// Time from each event's `occurred_at` to its XADD, read from the entry ids.
fn publish_latency(stream: &str) -> anyhow::Result<Histogram<u64>> {
    let mut connection = testkit::redis_client()?.get_connection()?;
    let range: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query(&mut connection)?;
    let mut histogram = Histogram::<u64>::new(3)?;
    for entry in &range.ids {
        let added_ms: i64 = entry.id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or_default();
        let occurred = entry
            .get::<String>("occurred_at")
            .and_then(|time| chrono::DateTime::parse_from_rfc3339(&time).ok())
            .map_or(0, |time| time.timestamp_micros());
        histogram.record((added_ms * 1000 - occurred).max(1).unsigned_abs())?;
    }
    Ok(histogram)
}

fn delete_key(key: &str) -> anyhow::Result<()> {
    let mut connection = testkit::redis_client()?.get_connection()?;
    redis::cmd("DEL").arg(key).query::<()>(&mut connection)?;
    Ok(())
}

/// Times a running relay draining a backlog of `events` rows, and the CPU it,
/// PostgreSQL and Redis used meanwhile.
async fn publish_rate(events: usize) -> anyhow::Result<(f64, CpuUse)> {
    let db = TestDb::new().await?;
    events::schema::migrate(&db.pool).await?;
    let streams = Streams::with_prefix(testkit::unique("bench-"));
    // Written before any relay runs: nothing to wake.
    let outbox = events::Outbox::new(streams.clone(), events::RelayWaker::default());
    for chunk in (0..events).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<_> = chunk.iter().map(|_| sample_event()).collect();
        let mut work = outbox.begin(&db.pool).await?;
        work.append(&batch).await?;
        work.commit().await?;
    }
    let redis = testkit::redis_client()?;
    let stream = streams.of::<MenuEvent>();
    let mut connection = redis.get_multiplexed_async_connection().await?;
    let cancel = CancellationToken::new();
    let relay = OutboxRelay::new(db.pool.clone(), redis, RelayConfig::default());
    let cpu_before = CpuSnapshot::now()?;
    let started = Instant::now();
    let relay = tokio::spawn(relay.run(cancel.clone()));
    let mut published = 0;
    while published < events {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the relay published {published} of {events} entries in two minutes"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
        published = entries_added(&mut connection, &stream).await?;
    }
    let rate = published as f64 / started.elapsed().as_secs_f64();
    let cpu = CpuSnapshot::now()?.since(&cpu_before);
    cancel.cancel();
    relay.await?;
    delete_key(&stream)?;
    Ok((rate, cpu))
}

/// CPU seconds (user and system) of this process, PostgreSQL and Redis over some time.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    this_process: f64,
    postgres: f64,
    redis: f64,
}

/// The CPU seconds each process of interest has used so far, by pid, read from
/// `/proc` (Linux only).
struct CpuSnapshot(HashMap<u32, (Component, f64)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    ThisProcess,
    Postgres,
    Redis,
}

impl CpuSnapshot {
    fn now() -> anyhow::Result<Self> {
        let this_process = std::process::id();
        let mut processes = HashMap::new();
        for entry in std::fs::read_dir("/proc")? {
            let Some(pid) = entry?.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            // Processes may end while the directory is read.
            let Ok((command, seconds)) = cpu_seconds(pid) else { continue };
            let component = match command.as_str() {
                _ if pid == this_process => Component::ThisProcess,
                "postgres" => Component::Postgres,
                "redis-server" => Component::Redis,
                _ => continue,
            };
            processes.insert(pid, (component, seconds));
        }
        Ok(Self(processes))
    }

    /// What was used since `earlier`: processes started meanwhile count from
    /// their start; those that ended meanwhile are missed.
    fn since(&self, earlier: &Self) -> CpuUse {
        let mut used = CpuUse::default();
        for (pid, &(component, seconds)) in &self.0 {
            let before = earlier.0.get(pid).map_or(0.0, |&(_, seconds)| seconds);
            let total = match component {
                Component::ThisProcess => &mut used.this_process,
                Component::Postgres => &mut used.postgres,
                Component::Redis => &mut used.redis,
            };
            *total += seconds - before;
        }
        used
    }
}

/// A process's command name and its user plus system CPU seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<(String, f64)> {
    /// `sysconf(_SC_CLK_TCK)` on every Linux this runs on.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (head, tail) = stat.rsplit_once(')').context("no command name in /proc/<pid>/stat")?;
    let command = head.split_once('(').map_or("", |(_, name)| name).to_owned();
    let mut fields = tail.split_whitespace().skip(11);
    let mut ticks = || -> anyhow::Result<f64> { Ok(fields.next().context("short /proc/<pid>/stat")?.parse()?) };
    Ok((command, (ticks()? + ticks()?) / TICKS_PER_SECOND))
}

/// How many entries were ever added to `stream` (`XLEN` stops growing at the
/// stream's cap).
async fn entries_added(connection: &mut redis::aio::MultiplexedConnection, stream: &str) -> anyhow::Result<usize> {
    let mut info: HashMap<String, redis::Value> =
        redis::cmd("XINFO").arg("STREAM").arg(stream).query_async(connection).await.unwrap_or_default();
    Ok(info.remove("entries-added").map(redis::from_redis_value).transpose()?.unwrap_or(0))
}

fn pgbench_rate() -> anyhow::Result<f64> {
    testkit::bench::pgbench_two_inserts("platform_test", WRITERS, 8)
}

/// Applies each event by inserting a row.
#[derive(Clone, Copy)]
struct Apply;

impl TransactionalHandler<MenuEvent> for Apply {
    async fn apply(&self, work: &mut UnitOfWork, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO applied (event_id) VALUES ($1)").bind(event.id).execute(&mut **work).await?;
        Ok(())
    }
}

/// Counts events once their handler (inbox commit included) has returned, and
/// records the time since each occurred.
struct Measured<H> {
    inner: H,
    applied: Arc<AtomicUsize>,
    latency: Arc<Mutex<Histogram<u64>>>,
}

impl<H: Handler<MenuEvent>> Handler<MenuEvent> for Measured<H> {
    async fn handle(&self, event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        self.inner.handle(event).await?;
        let micros = (chrono::Utc::now() - event.occurred_at).num_microseconds().unwrap_or(0).max(1);
        self.latency
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .record(micros.unsigned_abs())
            .map_err(HandlerError::rejected)?;
        self.applied.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Opens every connection `pool` may hold.
async fn warm(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let size = usize::try_from(pool.options().get_max_connections())?;
    futures::future::try_join_all((0..size).map(|_| pool.acquire())).await?;
    Ok(())
}

/// Appends `events` from `WRITERS` tasks (at `rate` events/s overall if given,
/// else as fast as they can) and waits until all are applied. Returns the
/// achieved rate and the latency histogram.
async fn end_to_end(events: usize, rate: Option<f64>) -> anyhow::Result<(f64, Histogram<u64>)> {
    let db = TestDb::new().await?;
    events::schema::migrate(&db.pool).await?;
    sqlx::query("CREATE TABLE applied (event_id uuid PRIMARY KEY)").execute(&db.pool).await?;
    let streams = Streams::with_prefix(testkit::unique("bench-"));
    let redis = testkit::redis_client()?;
    let cancel = CancellationToken::new();
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    // As in a running service, the pools (with the services' options) are
    // open, and the relay and the consumer have started, before the first
    // event: the first events do not wait for new PostgreSQL backends.
    let producer_pool = events::pool::options().max_connections(10).connect_with(db.options.clone()).await?;
    warm(&producer_pool).await?;

    let relay = OutboxRelay::new(producer_pool.clone(), redis.clone(), RelayConfig::default());
    let outbox = events::Outbox::new(streams.clone(), relay.waker());
    let relay = tokio::spawn(relay.run(cancel.clone()));
    let mut config = ConsumerConfig::new(streams.of::<MenuEvent>(), "bench", "c1");
    config.concurrency = 32;
    config.batch_size = 200;
    let applied = Arc::new(AtomicUsize::new(0));
    // The consumer is another service, with a pool of its own, as in the platform.
    let consumer_pool = events::pool::options().max_connections(10).connect_with(db.options.clone()).await?;
    warm(&consumer_pool).await?;
    // Its handler appends nothing, so its outbox wakes no relay.
    let consumer_outbox = events::Outbox::new(streams.clone(), events::RelayWaker::default());
    let handler = Measured {
        inner: Inboxed::new(Inbox::new(consumer_pool, "bench"), consumer_outbox, Apply),
        applied: Arc::clone(&applied),
        latency: Arc::clone(&latency),
    };
    // Trimming runs beside the consumer every second, as in a service (whose
    // default is every ten). It keeps the last minute, so that the entries
    // the publish latency is read from afterwards are still there.
    let trimming = events::retention::RetentionConfig {
        min_age: Duration::from_secs(60),
        interval: Duration::from_secs(1),
        ..events::retention::RetentionConfig::default()
    };
    let retention = events::retention::Retention::new(redis.clone(), vec![streams.of::<MenuEvent>()], trimming);
    let retention = tokio::spawn(retention.run(cancel.clone()));
    let consumer = tokio::spawn(Consumer::new(redis, config, handler).run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rate_limited = rate.is_some();
    let started = Instant::now();
    let per_writer = events / WRITERS;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let pool = producer_pool.clone();
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut ticker = rate.map(|rate| {
                    let period = Duration::from_secs_f64(WRITERS as f64 / rate);
                    let mut ticker = tokio::time::interval_at(
                        tokio::time::Instant::now() + period.mul_f64(writer as f64 / WRITERS as f64),
                        period,
                    );
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    ticker
                });
                for _ in 0..per_writer {
                    if let Some(ticker) = ticker.as_mut() {
                        ticker.tick().await;
                    }
                    let mut work = outbox.begin(&pool).await?;
                    work.append(&[sample_event()]).await?;
                    work.commit().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let total = per_writer * WRITERS;
    let (mut last_count, mut last_progress) = (0, Instant::now());
    while applied.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let count = applied.load(Ordering::Relaxed);
        if count > last_count {
            (last_count, last_progress) = (count, Instant::now());
        }
        anyhow::ensure!(
            last_progress.elapsed() < STALL,
            "{count} of {total} events applied and none for {STALL:?}: events were lost or are stuck"
        );
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    cancel.cancel();
    relay.await?;
    consumer.await?;
    retention.await?;
    if rate_limited {
        let publish = publish_latency(&streams.of::<MenuEvent>())?;
        println!(
            "  of which append → on the stream: p50 {:.2} ms, p99 {:.2} ms (entry id time, 1 ms resolution)",
            publish.value_at_quantile(0.5) as f64 / 1000.0,
            publish.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    delete_key(&streams.of::<MenuEvent>())?;
    let histogram = latency.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    Ok((rate, histogram))
}
