//! The API gateway: the platform's single entry point.
//!
//! Requests under a service's path prefix ([`routes`]) are forwarded to it
//! over pooled keep-alive connections with both bodies streamed
//! ([`proxy`]); hop-by-hop headers are dropped, `X-Forwarded-*` set, and the
//! caller's well-formed `X-Request-Id` (or a new one) passed on and returned,
//! so that the services log it and put it in their events as
//! `correlation_id`. Upstream failures are problems naming the service: 503
//! when it cannot be reached, 504 when it is too slow, 502 when it breaks the
//! exchange; bodies over the limit get 413 and unknown paths 404.
//!
//! Before forwarding, [`auth`] drops the identity and forwarding headers a
//! client sent and turns away a bearer JWT that does not verify (401).
//!
//! The gateway's own endpoints ([`operations`]) are `/health`, `/ready`
//! (every upstream's), `/metrics`, `/api-docs/openapi.json` (all services'
//! documents merged) and Swagger UI at `/docs`.

#![deny(missing_docs)]

pub mod auth;
pub mod body;
pub mod connections;
pub mod cors;
pub mod gateway;
pub mod operations;
pub mod proxy;
pub mod route_metrics;
pub mod routes;
pub mod server;
pub mod settings;

pub use settings::GatewaySettings;

use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The built gateway: settings checked, the first worker's listener bound.
pub struct Application {
    settings: GatewaySettings,
    listener: TcpListener,
    gateway: Arc<gateway::Gateway>,
}

impl Application {
    /// Parses the routes and binds the listener. Upstreams need not be up.
    ///
    /// # Errors
    /// An upstream URL or CORS origin is invalid, no key to verify staff
    /// tokens with is configured (or it is unreadable), or the port is taken.
    pub async fn build(settings: &GatewaySettings) -> anyhow::Result<Self> {
        service_kit::http::metrics();
        let gateway = Arc::new(worker(settings)?);
        let port = settings.server_port;
        let listener = server::bind(port).with_context(|| format!("binding port {port}"))?;
        Ok(Self { settings: settings.clone(), listener, gateway })
    }

    /// The port it listens on (useful when built with port 0).
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn port(&self) -> std::io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// Serves until `cancel` fires, then lets requests in flight finish.
    ///
    /// The first worker runs on the caller's runtime; each further one
    /// (`GATEWAY_WORKERS`) on a thread with a single-threaded runtime of its
    /// own, so that a request, its upstream connection and its response stay
    /// on one thread, as in nginx's worker processes.
    ///
    /// # Errors
    /// A further worker could not start.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let port = self.port()?;
        let mut threads = Vec::new();
        for number in 1..self.settings.worker_count() {
            let (settings, cancel) = (self.settings.clone(), cancel.clone());
            let listener = server::bind(port).with_context(|| format!("binding port {port} for worker {number}"))?;
            let listener = listener.into_std()?;
            let thread = std::thread::Builder::new().name(format!("gateway-worker-{number}")).spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let gateway = Arc::new(worker(&settings)?);
                    server::serve(TcpListener::from_std(listener)?, gateway, cancel).await;
                    anyhow::Ok(())
                })
            })?;
            threads.push(thread);
        }
        tracing::info!(port, workers = threads.len() + 1, "api-gateway listening");
        server::serve(self.listener, self.gateway, cancel).await;
        for thread in threads {
            let stopped = tokio::task::spawn_blocking(move || thread.join()).await?;
            stopped.map_err(|_| anyhow::anyhow!("a gateway worker panicked"))??;
        }
        Ok(())
    }
}

/// One worker's gateway: the routes, a proxy with its own connection pool,
/// and the operational endpoints.
fn worker(settings: &GatewaySettings) -> anyhow::Result<gateway::Gateway> {
    let routes = routes::Routes::new(settings)?;
    let proxy = proxy::Proxy::new(settings.upstream_timeout(), settings.max_body_bytes);
    let cors = cors::Cors::parse(&settings.cors_allowed_origins)?;
    let operations = operations::router(&routes);
    let screen = auth::Screen::new(service_kit::auth::Verifier::from_settings(&settings.auth)?);
    Ok(gateway::Gateway::new(routes, proxy, operations, cors, screen))
}
