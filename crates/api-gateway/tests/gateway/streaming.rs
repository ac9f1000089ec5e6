//! Bodies stream through the gateway: each chunk is produced only after the
//! other side has the one before, so a gateway that buffered whole bodies
//! would never answer.

use crate::helpers::{TestResult, serve, settings_for, spawn_gateway};
use api_gateway::GatewaySettings;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::{get, post};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const CHUNK: usize = 256 * 1024;
const CHUNKS: usize = 16;

#[tokio::test]
async fn a_large_request_body_reaches_the_service_chunk_by_chunk() -> TestResult {
    let (received_tx, received_rx) = watch::channel(0usize);
    let upstream = serve(Router::new().route(
        "/api/v1/menus",
        post(move |request: Request| async move {
            let mut body = request.into_body().into_data_stream();
            let mut total = 0;
            while let Some(Ok(chunk)) = body.next().await {
                total += chunk.len();
                received_tx.send_replace(total);
            }
            total.to_string()
        }),
    ))
    .await?;
    let settings = GatewaySettings { max_body_bytes: (CHUNK * CHUNKS) as u64, ..settings_for(&upstream.url) };
    let gateway = spawn_gateway(settings).await?;

    let body = futures::stream::unfold((0usize, received_rx), |(sent, mut received)| async move {
        if sent == CHUNKS {
            return None;
        }
        received.wait_for(|total| *total >= sent * CHUNK).await.ok()?;
        Some((Ok::<_, std::io::Error>(vec![b'x'; CHUNK]), (sent + 1, received)))
    });
    let send = gateway.client.post(gateway.url("/api/v1/menus")).body(reqwest::Body::wrap_stream(body)).send();
    let response = tokio::time::timeout(Duration::from_secs(20), send).await??;
    assert_eq!(response.text().await?, (CHUNK * CHUNKS).to_string());
    Ok(())
}

#[tokio::test]
async fn a_large_response_body_reaches_the_client_before_the_service_has_finished_it() -> TestResult {
    let (release_tx, release_rx) = mpsc::unbounded_channel::<()>();
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(release_rx));
    let upstream = serve(Router::new().route(
        "/api/v1/menus",
        get(move || {
            let release_rx = release_rx.clone();
            async move {
                let chunks = futures::stream::unfold(0usize, move |sent| {
                    let release_rx = release_rx.clone();
                    async move {
                        if sent == CHUNKS {
                            return None;
                        }
                        if sent > 0 {
                            release_rx.lock().await.recv().await?;
                        }
                        Some((Ok::<_, std::io::Error>(vec![b'y'; CHUNK]), sent + 1))
                    }
                });
                Body::from_stream(chunks)
            }
        }),
    ))
    .await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;
    let read = async {
        let mut response = gateway.get("/api/v1/menus").await?;
        let mut total = 0;
        while let Some(chunk) = response.chunk().await? {
            total += chunk.len();
            let _ = release_tx.send(());
        }
        anyhow::Ok(total)
    };
    let total = tokio::time::timeout(Duration::from_secs(20), read).await??;
    assert_eq!(total, CHUNK * CHUNKS, "every chunk arrived, each only after the client had the one before");
    Ok(())
}
