//! The platform benchmark, against a running platform (`scripts/run`):
//!
//! 1. `POST /api/v1/reservations` through the gateway from concurrent
//!    clients: requests/s and p99, beside `pgbench` on the same PostgreSQL
//!    running a transaction of two single-row inserts (the physical floor of
//!    a command that writes its state plus an outbox row), and their ratio;
//! 2. the time from `PATCH /api/v1/menus/:menuId/items/:itemId/availability`
//!    returning to the reservation service having applied the event (its
//!    view of the item carries the new version), p50/p99 over many changes.
//!
//! Bookings land on the restaurant's slots, spread over the next 80 days as
//! `GET /api/v1/availability` lists them, each by its own guest (the limit of
//! upcoming bookings per guest holds). For the run the restaurant gets
//! 100,000 seats, so that capacity refuses nothing and the measure is the
//! write path; its rules are put back afterwards. It first deletes the
//! bookings of its earlier runs (guests `bench-…@example.com`) and counts the
//! seat ledger again, so that runs do not fill the seats for the next.
//! `scripts/bench-platform` starts the platform if needed and runs this.
//! Settings: `GATEWAY_URL` (http://127.0.0.1:8080), `DATABASE_URL` (the
//! platform's database), `RESERVATION_SCHEMA` (reservation), `BENCH_SECONDS`
//! (10), `BENCH_CLIENTS` (32), `BENCH_CHANGES` (300).

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let gateway = setting("GATEWAY_URL", "http://127.0.0.1:8080".to_owned());
    let database =
        setting("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/restaurant_platform".to_owned());
    let seconds: u32 = setting("BENCH_SECONDS", 10);
    let clients: usize = setting("BENCH_CLIENTS", 32);
    let changes: usize = setting("BENCH_CHANGES", 300);
    // Staff calls (menus) need a token: STAFF_TOKEN, else the one scripts/run leaves in .run/staff-token.
    let token = std::env::var("STAFF_TOKEN")
        .or_else(|_| std::fs::read_to_string(".run/staff-token"))
        .map(|token| token.trim().to_owned())
        .map_err(|_| anyhow::anyhow!("no staff token: set STAFF_TOKEN or start the platform with scripts/run"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").try_into()?);
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).default_headers(headers).build()?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("platform benchmark via {gateway}: {clients} clients, {seconds} s, {cores} CPUs");
    let schema = setting("RESERVATION_SCHEMA", "reservation".to_owned());
    let reservations = connect_to_schema(&database, &schema).await?;
    let removed = remove_earlier_bookings(&reservations).await?;
    println!("  removed {removed} bookings of earlier runs");
    let rules = Rules::widen(&client, &gateway).await?;
    let slots = slots_ahead(&client, &gateway, 80).await?;
    println!("  booking {} slots over the next 80 days", slots.len());

    let measured = booking_rate(&client, &gateway, &slots, clients, seconds).await;
    let removed = remove_earlier_bookings(&reservations).await?;
    rules.restore(&client, &gateway).await?;
    println!("  removed its {removed} bookings and put the restaurant's rules back");
    let (rate, latency, refused) = measured?;
    let database_name = database.rsplit('/').next().unwrap_or("restaurant_platform").to_owned();
    let pgbench = testkit::bench::pgbench_two_inserts(&database_name, clients, seconds)?;
    println!(
        "POST /api/v1/reservations via gateway   {rate:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  ({refused} not 201)",
        millis(&latency, 0.5),
        millis(&latency, 0.99)
    );
    println!("pgbench, 2 single-row inserts per tx    {pgbench:>8.0} tx/s");
    println!("  reservations / pgbench: {:.2}", rate / pgbench);

    let applied = event_applied_latency(&client, &gateway, &reservations, changes).await?;
    println!(
        "PATCH availability → reservation view applied, {changes} changes: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        millis(&applied, 0.5),
        millis(&applied, 0.99),
        applied.max() as f64 / 1000.0
    );
    Ok(())
}

fn millis(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// The emails of the benchmark's guests: `bench-<n>@example.com`.
const BENCH_GUESTS: &str = "bench-%@example.com";

/// Deletes the benchmark's bookings and counts the seat ledger again from
/// what is left, so that every run starts from the same state; returns how
/// many were deleted.
async fn remove_earlier_bookings(reservations: &sqlx::PgPool) -> anyhow::Result<u64> {
    let mut tx = reservations.begin().await?;
    let removed =
        sqlx::query("DELETE FROM reservations WHERE guest_email LIKE $1 OR guest_email = 'bench@example.com'")
            .bind(BENCH_GUESTS)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    reservation_service::store::ledger::recount(&mut tx).await?;
    tx.commit().await?;
    // What the delete left behind would slow the index scans until vacuumed.
    sqlx::query("VACUUM (ANALYZE) reservations").execute(reservations).await?;
    sqlx::query("VACUUM (ANALYZE) seat_ledger").execute(reservations).await?;
    Ok(removed)
}

/// The restaurant's rules as they were before the run.
struct Rules(Value);

impl Rules {
    /// Gives the restaurant 100,000 seats for the run; the rules before.
    async fn widen(client: &reqwest::Client, gateway: &str) -> anyhow::Result<Self> {
        let url = format!("{gateway}/api/v1/restaurant");
        let before: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
        let mut wide = before.clone();
        wide["seats"] = json!(100_000);
        client.put(&url).json(&wide).send().await?.error_for_status()?;
        Ok(Self(before))
    }

    async fn restore(&self, client: &reqwest::Client, gateway: &str) -> anyhow::Result<()> {
        client.put(format!("{gateway}/api/v1/restaurant")).json(&self.0).send().await?.error_for_status()?;
        Ok(())
    }
}

/// Every bookable start of the next `days` days for a party of two.
async fn slots_ahead(client: &reqwest::Client, gateway: &str, days: i64) -> anyhow::Result<Vec<String>> {
    let mut slots = Vec::new();
    for day in 1..=days {
        let date = (Utc::now() + TimeDelta::days(day)).date_naive();
        let url = format!("{gateway}/api/v1/availability?date={date}&party_size=2");
        let day: Value = client.get(url).send().await?.error_for_status()?.json().await?;
        let starts = day["slots"].as_array().into_iter().flatten().filter_map(|slot| slot["starts_at"].as_str());
        slots.extend(starts.map(str::to_owned));
    }
    anyhow::ensure!(!slots.is_empty(), "the restaurant has no bookable slot in the next {days} days");
    Ok(slots)
}

/// A pool on the reservation service's schema, for reading its view and
/// removing the benchmark's bookings.
async fn connect_to_schema(database: &str, schema: &str) -> anyhow::Result<sqlx::PgPool> {
    let options = PgConnectOptions::from_str(database)?.options([("search_path", schema)]);
    Ok(PgPoolOptions::new().max_connections(1).connect_with(options).await?)
}

/// A booking for two by a guest of its own at a random one of `slots`.
fn random_booking(slots: &[String]) -> Value {
    let mut random = rand::rng();
    let starts_at = &slots[random.random_range(0..slots.len())];
    let guest: u64 = random.random();
    json!({
        "guest_name": "Bench Guest",
        "guest_email": format!("bench-{guest}@example.com"),
        "party_size": 2,
        "starts_at": starts_at,
    })
}

/// Books from `clients` concurrent clients for `seconds`; returns the rate of
/// 201s, the latency of every request, and how many were not 201.
async fn booking_rate(
    client: &reqwest::Client,
    gateway: &str,
    slots: &[String],
    clients: usize,
    seconds: u32,
) -> anyhow::Result<(f64, Histogram<u64>, usize)> {
    let url = format!("{gateway}/api/v1/reservations");
    for _ in 0..200 {
        client.post(&url).json(&random_booking(slots)).send().await?.error_for_status()?;
    }
    let slots: Arc<[String]> = slots.into();
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let until = started + Duration::from_secs(u64::from(seconds));
    let workers = (0..clients).map(|_| {
        let (client, url, latency, slots) = (client.clone(), url.clone(), latency.clone(), slots.clone());
        tokio::spawn(async move {
            let (mut created, mut refused) = (0usize, 0usize);
            let mut own = Histogram::<u64>::new(3)?;
            while Instant::now() < until {
                let sent = Instant::now();
                let response = client.post(&url).json(&random_booking(&slots)).send().await?;
                own.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX))?;
                if response.status() == 201 { created += 1 } else { refused += 1 }
            }
            latency.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.add(own)?;
            anyhow::Ok((created, refused))
        })
    });
    let mut totals = (0, 0);
    for worker in futures::future::join_all(workers).await {
        let (created, refused) = worker??;
        totals = (totals.0 + created, totals.1 + refused);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latency = Arc::try_unwrap(latency)
        .map_err(|_| anyhow::anyhow!("shared"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok((totals.0 as f64 / elapsed, latency, totals.1))
}

/// Toggles an item's availability `changes` times through the gateway and
/// measures, for each, the time from the PATCH's response to the reservation
/// service's view carrying that version.
async fn event_applied_latency(
    client: &reqwest::Client,
    gateway: &str,
    pool: &sqlx::PgPool,
    changes: usize,
) -> anyhow::Result<Histogram<u64>> {
    let menu: Value = client
        .post(format!("{gateway}/api/v1/menus"))
        .json(&json!({"name": "Latency", "items": [{"name": "Soup", "category": "starter", "price_cents": 650, "currency": "EUR"}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let menu_id = menu["id"].as_str().context("menu id")?.to_owned();
    let item_id: uuid::Uuid = serde_json::from_value(menu["items"][0]["id"].clone())?;
    client.post(format!("{gateway}/api/v1/menus/{menu_id}/activate")).send().await?.error_for_status()?;

    let applied_version = |pool: sqlx::PgPool| async move {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT available_version FROM menu_items_seen WHERE item_id = $1")
                .bind(item_id)
                .fetch_optional(&pool)
                .await?;
        anyhow::Ok(version.unwrap_or(0))
    };
    let mut latency = Histogram::<u64>::new(3)?;
    let url = format!("{gateway}/api/v1/menus/{menu_id}/items/{item_id}/availability");
    for change in 0..changes {
        let changed: Value = client
            .patch(&url)
            .json(&json!({"available": change % 2 == 1}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let returned = Instant::now();
        let version = changed["version"].as_i64().context("menu version")?;
        while applied_version(pool.clone()).await? < version {
            anyhow::ensure!(returned.elapsed() < Duration::from_secs(10), "version {version} was never applied");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latency.record(u64::try_from(returned.elapsed().as_micros()).unwrap_or(u64::MAX))?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(latency)
}
