//! Rate limits per client and route class, shared through Redis, local while it is down.

use crate::helpers::{TestResult, echo, problem, settings_for, spawn_gateway};
use api_gateway::GatewaySettings;
use api_gateway::settings::RateLimitSettings;
use serde_json::json;
use service_kit::settings::RedisSettings;
use std::time::Duration;
use testkit::Running;

/// Gateway settings in front of `url` with rate limits on, `bookings` at
/// once, on the Redis at `port`, under a key prefix of the test's own.
fn limited(url: &str, redis_port: u16, prefix: &str, bookings: u32) -> GatewaySettings {
    GatewaySettings {
        redis: RedisSettings { redis_port, ..RedisSettings::local() },
        rate_limits: RateLimitSettings {
            rate_limit_enabled: true,
            booking_per_minute: bookings,
            booking_burst: bookings,
            key_prefix: prefix.to_owned(),
            redis_timeout_ms: 1_000,
            ..RateLimitSettings::default()
        },
        ..settings_for(url)
    }
}

/// Waits until the gateway's worker has its Redis connection.
async fn connected(gateway: &Running) -> TestResult {
    testkit::eventually(Duration::from_secs(5), "the gateway connects to Redis", || async {
        Ok(gateway.get_json("/status").await?["rate_limits"]["redis"] == "up")
    })
    .await
}

async fn book(gateway: &Running) -> anyhow::Result<reqwest::Response> {
    gateway.post("/api/v1/reservations", &json!({"guest": "Ada"})).await
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_a_clients_budget() -> TestResult {
    let upstream = echo("reservations").await?;
    let prefix = testkit::unique("test-ratelimit-");
    let first = spawn_gateway(limited(&upstream.url, 6379, &prefix, 3)).await?;
    let second = spawn_gateway(limited(&upstream.url, 6379, &prefix, 3)).await?;
    connected(&first).await?;
    connected(&second).await?;
    for _ in 0..3 {
        assert_eq!(book(&first).await?.status(), 200, "the first gateway lets the budget through");
    }
    let (status, body) = problem(book(&second).await?).await?;
    assert_eq!(status, 429, "the second gateway knows the budget is spent: {body}");
    assert_eq!(gateway_reads_pass(&second).await?, 200, "reads have a budget of their own");
    Ok(())
}

async fn gateway_reads_pass(gateway: &Running) -> anyhow::Result<u16> {
    Ok(gateway.get("/api/v1/reservations").await?.status().as_u16())
}

#[tokio::test]
async fn a_refused_booking_is_a_429_with_retry_after_and_both_rate_limit_headers() -> TestResult {
    let upstream = echo("reservations").await?;
    let prefix = testkit::unique("test-ratelimit-");
    let gateway = spawn_gateway(limited(&upstream.url, 6379, &prefix, 2)).await?;
    connected(&gateway).await?;
    let passed = book(&gateway).await?;
    assert_eq!(passed.status(), 200);
    assert_eq!(passed.headers()["ratelimit-policy"], r#""booking";q=2;w=60"#);
    assert_eq!(passed.headers()["ratelimit"], r#""booking";r=1;t=30"#);
    book(&gateway).await?;
    let refused = book(&gateway).await?;
    let headers = refused.headers().clone();
    let (status, body) = problem(refused).await?;
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = headers["retry-after"].to_str()?.parse()?;
    assert!((1..=30).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(headers["ratelimit-policy"], r#""booking";q=2;w=60"#);
    let state = headers["ratelimit"].to_str()?;
    assert!(state.starts_with(r#""booking";r=0;t="#), "RateLimit: {state}");
    assert!(body["detail"].as_str().is_some_and(|detail| detail.contains("too many bookings")), "{body}");
    Ok(())
}

#[tokio::test]
async fn a_clients_key_in_redis_expires_when_its_budget_is_whole_again() -> TestResult {
    let upstream = echo("reservations").await?;
    let prefix = testkit::unique("test-ratelimit-");
    let gateway = spawn_gateway(limited(&upstream.url, 6379, &prefix, 2)).await?;
    connected(&gateway).await?;
    book(&gateway).await?;
    let mut redis = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await?;
    // The test client sends a staff token: its budget is keyed by the verified subject.
    assert_eq!(keys, [format!("{prefix}booking:sub:test-staff")]);
    let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut redis).await?;
    assert!((1..=30_000).contains(&ttl), "PTTL {ttl}: one booking of two a minute is whole again in 30 s");
    Ok(())
}

#[tokio::test]
async fn with_redis_down_the_local_limiter_refuses_past_the_budget() -> TestResult {
    let upstream = echo("reservations").await?;
    let mut redis = testkit::RedisServer::start()?;
    let port: u16 = redis.url().rsplit(':').next().unwrap_or_default().parse()?;
    let gateway = spawn_gateway(limited(&upstream.url, port, &testkit::unique("test-ratelimit-"), 2)).await?;
    connected(&gateway).await?;
    redis.kill()?;
    for _ in 0..2 {
        assert_eq!(book(&gateway).await?.status(), 200);
    }
    let (status, body) = problem(book(&gateway).await?).await?;
    assert_eq!(status, 429, "{body}");
    let metrics = gateway.get("/metrics").await?.text().await?;
    assert!(metrics.contains(r#"gateway_rate_limit_fallback_total{class="booking"}"#), "{metrics}");
    assert_eq!(gateway.get_json("/status").await?["rate_limits"]["redis"], "down");
    Ok(())
}
