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
//! Then, before a request takes any upstream capacity it is rate limited per
//! client and route class, through Redis shared by every instance
//! ([`rate_limit`]), and its body, when small, is read in full within a
//! timeout ([`admission`], which also caps connections per worker and per
//! client address).
//!
//! The gateway's own endpoints ([`operations`]) are `/health`, `/ready`
//! (the gateway itself serves), `/status` (every upstream's `/ready`),
//! `/metrics`, `/api-docs/openapi.json` (all services' documents merged)
//! and Swagger UI at `/docs`; beside them the event schemas ([`event_docs`]):
//! `/api-docs/asyncapi.json` and its page, `/docs/events`, the operators'
//! view of the streams ([`operator`]: events, consumer groups, dead letters)
//! and the staff console ([`console`]).

#![deny(missing_docs)]

pub mod admission;
pub mod auth;
pub mod body;
pub mod connections;
pub mod console;
pub mod cors;
pub mod event_docs;
pub mod gateway;
pub mod operations;
pub mod operator;
pub mod proxy;
pub mod rate_limit;
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
    local_limits: Arc<rate_limit::LocalLimits>,
    /// Fires when the gateway stops, ending the operator API's live feeds.
    stopping: CancellationToken,
}

impl Application {
    /// Parses the routes and binds the listener. Upstreams need not be up.
    ///
    /// # Errors
    /// An upstream URL, CORS origin, rate limit or Redis setting is invalid,
    /// no key to verify staff tokens with is configured (or it is
    /// unreadable), or the port is taken.
    pub async fn build(settings: &GatewaySettings) -> anyhow::Result<Self> {
        service_kit::http::metrics();
        let local_limits = rate_limit::LocalLimits::new(&settings.rate_limits)?;
        let stopping = CancellationToken::new();
        let gateway = Arc::new(worker(settings, &local_limits, &stopping)?);
        let port = settings.server_port;
        let listener = server::bind(port).with_context(|| format!("binding port {port}"))?;
        Ok(Self { settings: settings.clone(), listener, gateway, local_limits, stopping })
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
        let stopping = self.stopping.clone();
        let stop = cancel.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            stopping.cancel();
        });
        let mut threads = Vec::new();
        for number in 1..self.settings.worker_count() {
            let (settings, cancel, local_limits) = (self.settings.clone(), cancel.clone(), self.local_limits.clone());
            let listener = server::bind(port).with_context(|| format!("binding port {port} for worker {number}"))?;
            let listener = listener.into_std()?;
            let thread = std::thread::Builder::new().name(format!("gateway-worker-{number}")).spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let gateway = Arc::new(worker(&settings, &local_limits, &cancel)?);
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
/// its own Redis connection for the rate limits (the local limiters are the
/// instance's), its connection caps, and the operational endpoints with the
/// operator API, whose live feeds end when `stopping` fires.
fn worker(
    settings: &GatewaySettings,
    local_limits: &Arc<rate_limit::LocalLimits>,
    stopping: &CancellationToken,
) -> anyhow::Result<gateway::Gateway> {
    let routes = routes::Routes::new(settings)?;
    let body = admission::BodyPolicy {
        buffer_bytes: settings.client_body_buffer_bytes,
        timeout: settings.client_body_timeout(),
        max_bytes: settings.max_body_bytes,
    };
    let proxy = proxy::Proxy::new(settings.upstream_timeout(), body);
    let cors = cors::Cors::parse(&settings.cors_allowed_origins)?;
    let rate_limits = if settings.rate_limits.rate_limit_enabled {
        Some(Arc::new(rate_limit::RateLimiter::new(settings, local_limits.clone())?))
    } else {
        None
    };
    let verifier = service_kit::auth::Verifier::from_settings(&settings.auth)?;
    let operator = operator::Operator::new(
        redis::Client::open(settings.redis_url()).context("the Redis URL")?,
        &settings.streams(),
        std::time::Duration::from_secs(settings.stream_min_age_seconds),
        stopping.clone(),
    );
    let operations = operations::router(&routes, rate_limits.clone(), operator::router(operator, verifier.clone()));
    let connections =
        admission::ConnectionLimits::new(settings.max_connections_per_worker, settings.max_connections_per_client);
    let screen = auth::Screen::new(verifier);
    Ok(gateway::Gateway::new(routes, proxy, operations, cors, screen)
        .with_rate_limits(rate_limits)
        .with_connection_limits(connections))
}
