//! The gateway keeps its connections to a service open and reuses them, but
//! only once a response has been read to its end, and it never answers with
//! an error because a service closed an idle connection.

use crate::helpers::{TestResult, serve_counting_connections, settings_for, spawn_gateway};
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A service answering `/api/v1/menus` with a body of known length,
/// `/api/v1/menus/chunked` with a chunked one, `/api/v1/menus/none` with
/// none (204), and `/api/v1/menus/endless` with a body that never ends.
fn menus() -> Router {
    let chunks = |count: Option<usize>| {
        let chunk = || Ok::<_, std::io::Error>(vec![b'x'; 16 * 1024]);
        match count {
            Some(count) => Body::from_stream(futures::stream::iter((0..count).map(move |_| chunk()))),
            None => Body::from_stream(futures::stream::repeat_with(chunk)),
        }
    };
    Router::new()
        .route("/api/v1/menus", get(|| async { "menus" }))
        .route("/api/v1/menus/chunked", get(move || async move { chunks(Some(4)) }))
        .route("/api/v1/menus/none", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/v1/menus/endless", get(move || async move { chunks(None) }))
}

#[tokio::test]
async fn one_connection_serves_request_after_request_whatever_the_body_framing() -> TestResult {
    let (upstream, accepted) = serve_counting_connections(menus()).await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;
    for _ in 0..5 {
        assert_eq!(gateway.get("/api/v1/menus").await?.text().await?, "menus");
        assert_eq!(gateway.get("/api/v1/menus/chunked").await?.bytes().await?.len(), 4 * 16 * 1024);
        assert_eq!(gateway.get("/api/v1/menus/none").await?.status(), 204);
        let head = gateway.client.head(gateway.url("/api/v1/menus")).send().await?;
        assert_eq!((head.status().as_u16(), head.bytes().await?.len()), (200, 0));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "every request went over the first connection");
    Ok(())
}

#[tokio::test]
async fn a_response_the_client_abandons_closes_its_connection_and_the_next_request_gets_a_fresh_one() -> TestResult {
    let (upstream, accepted) = serve_counting_connections(menus()).await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;
    let mut endless = gateway.get("/api/v1/menus/endless").await?;
    assert!(endless.chunk().await?.is_some(), "the endless body starts");
    drop(endless);
    for _ in 0..3 {
        let response = gateway.get("/api/v1/menus").await?;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await?, "menus", "no byte of the abandoned body reaches a later response");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "the abandoned connection was not reused, the next one was");
    Ok(())
}

/// The connection is idle and looks reusable when the service closes it;
/// the gateway must notice (or, if the close crosses the request, send the
/// request again on a new connection) rather than answer 502.
#[tokio::test]
async fn a_service_closing_idle_connections_costs_no_request_an_error() -> TestResult {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                // Keep-alive by every sign, and then closed while idle, as a
                // service restarting or timing out idle connections does.
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nmenus").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    let gateway = spawn_gateway(settings_for(&url)).await?;
    for attempt in 0..10 {
        let response = gateway.get("/api/v1/menus").await?;
        assert_eq!(response.status(), 200, "request {attempt}");
        assert_eq!(response.text().await?, "menus");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10, "each request had a connection of its own");
    Ok(())
}
