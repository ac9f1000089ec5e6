//! Every failure is a problem naming the service, never a hang.

use crate::helpers::{TestResult, closed_port_url, echo, problem, serve, settings_for, spawn_gateway};
use api_gateway::GatewaySettings;
use axum::Router;
use axum::routing::any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn an_unreachable_service_is_a_503_naming_it() -> TestResult {
    let (down, up) = (closed_port_url().await?, echo("reservations").await?);
    let gateway = spawn_gateway(GatewaySettings::for_upstreams(&down, &up.url)).await?;
    let started = Instant::now();
    let (status, body) = problem(gateway.get("/api/v1/menus").await?).await?;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("menu-service"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(gateway.get("/api/v1/reservations").await?.status(), 200, "the other service still works");
    Ok(())
}

#[tokio::test]
async fn a_slow_service_is_a_504_after_the_timeout() -> TestResult {
    let slow = serve(Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "too late"
    })))
    .await?;
    let gateway = spawn_gateway(GatewaySettings { upstream_timeout_ms: 200, ..settings_for(&slow.url) }).await?;
    let started = Instant::now();
    let (status, body) = problem(gateway.get("/api/v1/reservations").await?).await?;
    let waited = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("reservation-service"), "{body}");
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2), "answered after {waited:?}");
    Ok(())
}

#[tokio::test]
async fn a_service_that_breaks_the_exchange_is_a_502() -> TestResult {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            drop(socket);
        }
    });
    let gateway = spawn_gateway(settings_for(&url)).await?;
    let (status, body) = problem(gateway.get("/api/v1/menus").await?).await?;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("menu-service"), "{body}");
    Ok(())
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_never_reach_the_service() -> TestResult {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let upstream = serve(Router::new().fallback(any(move |body: axum::body::Bytes| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            format!("{} bytes", body.len())
        }
    })))
    .await?;
    let gateway = spawn_gateway(GatewaySettings { max_body_bytes: 1000, ..settings_for(&upstream.url) }).await?;

    let declared = gateway.client.post(gateway.url("/api/v1/menus")).body(vec![b'x'; 1001]).send().await?;
    let (status, body) = problem(declared).await?;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("1000 bytes"), "{body}");
    assert_eq!(reached.load(Ordering::SeqCst), 0);

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..4).map(|_| Ok(vec![b'x'; 400])).collect();
    let streamed = gateway
        .client
        .post(gateway.url("/api/v1/menus"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await?;
    assert_eq!(problem(streamed).await?.0, 413, "a chunked body is counted as it streams");

    let fits = gateway.client.post(gateway.url("/api/v1/menus")).body(vec![b'x'; 1000]).send().await?;
    assert_eq!(fits.text().await?, "1000 bytes");
    Ok(())
}

#[tokio::test]
async fn ready_is_the_gateways_own_while_status_reports_each_service() -> TestResult {
    let (up, down) = (echo("menus").await?, closed_port_url().await?);
    let gateway = spawn_gateway(GatewaySettings::for_upstreams(&up.url, &down)).await?;
    let ready = gateway.get("/ready").await?;
    assert_eq!(ready.status(), 200, "a service down does not make the gateway unready");
    assert_eq!(ready.json::<serde_json::Value>().await?["status"], "ready");
    let status = gateway.get("/status").await?;
    assert_eq!(status.status(), 200);
    let body: serde_json::Value = status.json().await?;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["services"]["menu-service"]["status"], "up");
    assert_eq!(body["services"]["reservation-service"]["status"], "down");
    assert_eq!(body["services"]["reservation-service"]["detail"], "unreachable");

    let other = echo("reservations").await?;
    let settings = GatewaySettings::for_upstreams(&up.url, &other.url)
        .with_upstream(service_kit::catalog::INVENTORY.name, &other.url)
        .with_upstream(service_kit::catalog::KITCHEN.name, &other.url)
        .with_upstream(service_kit::catalog::ORDER.name, &other.url);
    let gateway = spawn_gateway(settings).await?;
    assert_eq!(gateway.get_json("/status").await?["status"], "ok");
    assert_eq!(gateway.get_json("/health").await?["status"], "ok");
    Ok(())
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_wait_their_turn() -> TestResult {
    let (current, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (now, peak) = (current.clone(), most.clone());
    let busy = serve(Router::new().fallback(any(move || {
        let (now, peak) = (now.clone(), peak.clone());
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            "done"
        }
    })))
    .await?;
    let gateway = spawn_gateway(GatewaySettings { upstream_max_in_flight: 2, ..settings_for(&busy.url) }).await?;
    let started = Instant::now();
    let answers = futures::future::join_all((0..6).map(|_| gateway.get("/api/v1/menus"))).await;
    for answer in answers {
        assert_eq!(answer?.status(), 200);
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "never more than two at the service");
    assert!(started.elapsed() >= Duration::from_millis(300), "six requests, two at a time, 100 ms each");
    Ok(())
}

#[tokio::test]
async fn stopping_lets_requests_in_flight_finish_and_then_refuses_new_ones() -> TestResult {
    let slow = serve(Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        "finished"
    })))
    .await?;
    let application = api_gateway::Application::build(&settings_for(&slow.url)).await?;
    let api = testkit::Api::on_port(application.port()?);
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(application.run_until_stopped(cancel.clone()));
    let in_flight = tokio::spawn({
        let api = api.clone();
        async move { api.get("/api/v1/menus").await?.text().await.map_err(anyhow::Error::from) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    assert_eq!(in_flight.await??, "finished", "the request in flight was answered");
    tokio::time::timeout(Duration::from_secs(5), running).await???;
    assert!(api.get("/health").await.is_err(), "still accepting after it stopped");
    Ok(())
}
