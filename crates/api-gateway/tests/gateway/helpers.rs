//! The gateway under test and the upstreams it is put in front of.

use api_gateway::{Application, GatewaySettings};
use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use testkit::Running;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub type TestResult = anyhow::Result<()>;

/// Starts a gateway with `settings`; it stops when the result is dropped.
/// Its client sends a staff token with every scope.
pub async fn spawn_gateway(settings: GatewaySettings) -> anyhow::Result<Running> {
    testkit::init_tracing();
    let application = Application::build(&settings).await?;
    Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)).as_staff()
}

/// A test server; stops when dropped.
pub struct Upstream {
    pub url: String,
    cancel: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Serves `router` on a free port.
pub async fn serve(router: Router) -> anyhow::Result<Upstream> {
    Ok(serve_counting_connections(router).await?.0)
}

/// Serves `router` on a free port, counting the connections it accepts.
pub async fn serve_counting_connections(router: Router) -> anyhow::Result<(Upstream, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await });
    Ok((Upstream { url, cancel }, accepted))
}

/// An upstream named `name` that answers every request with what it received,
/// and `/ready` with 200.
pub async fn echo(name: &'static str) -> anyhow::Result<Upstream> {
    let router =
        Router::new().route("/ready", get(|| async { "ready" })).fallback(any(move |request: Request| async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let mut response = axum::Json(json!({
                "upstream": name,
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query(),
                "headers": headers(&parts.headers),
                "body": String::from_utf8_lossy(&body),
            }))
            .into_response();
            for (header, value) in [
                ("keep-alive", "timeout=5"),
                ("connection", "x-upstream-private"),
                ("x-upstream-private", "1"),
                ("x-upstream-public", "1"),
            ] {
                response.headers_mut().insert(header, axum::http::HeaderValue::from_static(value));
            }
            response
        }));
    serve(router).await
}

use axum::response::IntoResponse;

fn headers(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), json!(value.to_str().unwrap_or_default())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A URL on which nothing listens.
pub async fn closed_port_url() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    Ok(url)
}

/// Gateway settings with both routes going to `url`.
pub fn settings_for(url: &str) -> GatewaySettings {
    GatewaySettings::for_upstreams(url, url)
}

/// The response body as bytes, for problem assertions.
pub async fn problem(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    anyhow::ensure!(content_type.as_deref() == Some("application/problem+json"), "content type {content_type:?}");
    let body: Bytes = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body)?))
}

/// The port `running` listens on.
pub fn port_of(running: &Running) -> u16 {
    running.base.rsplit(':').next().and_then(|port| port.parse().ok()).unwrap_or_default()
}
