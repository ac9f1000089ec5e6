//! The real binary, behind fault proxies, stops within its shutdown grace
//! even when its dependencies are gone or hang.

use anyhow::Context;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::TestDb;
use testkit::proxy::FaultProxy;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const GRACE_SECONDS: u64 = 3;

/// The binary's process, killed if the test ends before it does.
struct Service {
    child: Child,
    base: String,
    /// Everything it logs, once it has exited; read as it comes so that a full pipe never blocks it.
    logs: tokio::task::JoinHandle<std::io::Result<String>>,
}

/// Starts the binary with PostgreSQL and Redis behind the given proxies and waits until it answers.
async fn start(db: &TestDb, postgres: &FaultProxy, redis: &FaultProxy) -> anyhow::Result<Service> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reservation-service"))
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", postgres.port().to_string())
        .env("DB_NAME", "platform_test")
        .env("DB_SCHEMA", &db.schema)
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", redis.port().to_string())
        .env("SERVER_PORT", port.to_string())
        .env("STREAM_PREFIX", testkit::unique("test-"))
        .env("SHUTDOWN_GRACE_SECONDS", GRACE_SECONDS.to_string())
        .env("RUST_LOG", "info")
        .env("AUTH_PUBLIC_KEY_FILE", testkit::auth::TestKeys::shared()?.public_key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting reservation-service")?;
    let mut stdout = child.stdout.take().context("the service's stdout is piped")?;
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        stdout.read_to_string(&mut logs).await.map(|_| logs)
    });
    let service = Service { child, base: format!("http://127.0.0.1:{port}"), logs };
    let client = reqwest::Client::new();
    testkit::eventually(Duration::from_secs(20), "the service to be ready", || async {
        let ready = client.get(format!("{}/ready", service.base)).send().await;
        Ok(ready.is_ok_and(|response| response.status().is_success()))
    })
    .await?;
    Ok(service)
}

#[tokio::test]
async fn sigterm_stops_the_service_within_its_grace_while_redis_is_cut_and_postgres_hangs() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let postgres = FaultProxy::start(testkit::postgres_addr().await?).await?;
    let redis = FaultProxy::start(testkit::redis_addr().await?).await?;
    let mut service = start(&db, &postgres, &redis).await?;

    redis.cut();
    postgres.pause();
    // A request that waits on the paused database: shutdown must not wait for it forever.
    let list = reqwest::Client::new()
        .get(format!("{}/api/v1/reservations", service.base))
        .bearer_auth(testkit::auth::staff_token()?);
    let hanging = tokio::spawn(list.send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hanging.is_finished(), "the request hangs on the paused database");

    let pid = service.child.id().context("the service is running")?;
    let signalled = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    assert!(signalled.success(), "kill -TERM {pid} worked");
    let signalled_at = Instant::now();
    let bound = Duration::from_secs(GRACE_SECONDS + 2);
    let exited = tokio::time::timeout(bound, service.child.wait()).await;
    let took = signalled_at.elapsed();

    let status = exited.with_context(|| format!("the service was still running {bound:?} after SIGTERM"))??;
    let logs = tokio::time::timeout(Duration::from_secs(5), service.logs).await???;
    assert!(status.success(), "the service exited cleanly, got {status}; logs:\n{logs}");
    assert!(took >= Duration::from_secs(GRACE_SECONDS), "it gave the request its grace, exited after {took:?}");
    assert!(
        logs.contains("did not finish within its shutdown grace") && logs.contains("HTTP requests in flight"),
        "the log names what did not finish:\n{logs}"
    );
    hanging.abort();
    postgres.resume();
    Ok(())
}
