//! Slow clients hold no upstream slot, and connections are capped.

use crate::helpers::{TestResult, echo, port_of, settings_for, spawn_gateway};
use api_gateway::GatewaySettings;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_client_trickling_its_body_holds_no_upstream_slot_and_gets_a_408() -> TestResult {
    let upstream = echo("menus").await?;
    let settings =
        GatewaySettings { upstream_max_in_flight: 1, client_body_timeout_ms: 2_500, ..settings_for(&upstream.url) };
    let gateway = spawn_gateway(settings).await?;
    let mut trickler = TcpStream::connect(("127.0.0.1", port_of(&gateway))).await?;
    trickler
        .write_all(
            b"POST /api/v1/menus HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{",
        )
        .await?;
    let trickling = tokio::spawn(async move {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if trickler.write_all(b" ").await.is_err() {
                break;
            }
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), trickler.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let response = gateway.get("/api/v1/menus").await?;
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_millis(500), "waited {:?} for the only slot", started.elapsed());
    }
    let answer = trickling.await?;
    assert!(answer.starts_with("HTTP/1.1 408"), "the trickler got: {answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    Ok(())
}

/// Whether the gateway answers a request on `stream`, or closes it unanswered.
async fn answered(stream: &mut TcpStream) -> anyhow::Result<bool> {
    if stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.is_err() {
        return Ok(false);
    }
    let mut buffer = [0_u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await?;
    Ok(matches!(read, Ok(n) if n > 0 && buffer.starts_with(b"HTTP/1.1 200")))
}

#[tokio::test]
async fn connections_past_the_per_client_cap_are_closed_unanswered_until_one_closes() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway =
        spawn_gateway(GatewaySettings { max_connections_per_client: 2, ..settings_for(&upstream.url) }).await?;
    let connect = || TcpStream::connect(("127.0.0.1", port_of(&gateway)));
    let (mut first, mut second) = (connect().await?, connect().await?);
    assert!(answered(&mut first).await?);
    assert!(answered(&mut second).await?);
    let mut third = connect().await?;
    assert!(!answered(&mut third).await?, "a third connection from one address is closed");
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect().await?;
    assert!(answered(&mut fourth).await?, "once one closed, another may open");
    Ok(())
}
