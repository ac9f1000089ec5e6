//! The gateway's request path: proxied routes are rate limited
//! ([`crate::rate_limit`]) and go to [`Proxy`]; everything else to the
//! operational router.

use crate::admission::ConnectionLimits;
use crate::auth::Screen;
use crate::body::GatewayBody;
use crate::cors::Cors;
use crate::proxy::{Peer, Proxy, REQUEST_ID};
use crate::rate_limit::{RateLimiter, RouteClass};
use crate::routes::{Route, Routes};
use axum::response::IntoResponse;
use http::{Request, Response, header};
use hyper::body::Incoming;
use service_kit::problem::ErrorChain;
use service_kit::telemetry;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;
use tracing::Instrument;
use tracing::field::Empty;

/// Routes requests: to an upstream, or to the gateway's own endpoints.
#[derive(Debug, Clone)]
pub struct Gateway {
    routes: Routes,
    proxy: Proxy,
    operations: axum::Router,
    cors: Cors,
    rate_limits: Option<Arc<RateLimiter>>,
    connections: Arc<ConnectionLimits>,
    screen: Screen,
}

impl Gateway {
    /// A gateway forwarding `routes` through `proxy` once `screen` let them
    /// through ([`crate::auth`]), answering the rest with `operations`, and
    /// applying `cors` to everything.
    pub fn new(routes: Routes, proxy: Proxy, operations: axum::Router, cors: Cors, screen: Screen) -> Self {
        let connections = ConnectionLimits::new(usize::MAX, usize::MAX);
        Self { routes, proxy, operations, cors, rate_limits: None, connections, screen }
    }

    /// The same gateway, rate limiting proxied requests with `limiter`.
    #[must_use]
    pub fn with_rate_limits(self, limiter: Option<Arc<RateLimiter>>) -> Self {
        Self { rate_limits: limiter, ..self }
    }

    /// The same gateway, with its worker's connections capped by `limits`.
    #[must_use]
    pub fn with_connection_limits(self, limits: Arc<ConnectionLimits>) -> Self {
        Self { connections: limits, ..self }
    }

    /// The caps on this worker's client connections.
    pub fn connection_limits(&self) -> &Arc<ConnectionLimits> {
        &self.connections
    }

    /// Answers one request. Never fails: upstream failures become problems.
    ///
    /// Records `gateway_requests_total` by route and status,
    /// `gateway_request_duration_seconds` (until the response head) by route,
    /// and `gateway_upstream_errors_total` by service and kind.
    pub async fn handle(&self, request: Request<Incoming>, peer: &Peer) -> Response<GatewayBody> {
        let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
            return self.route(request, peer).await;
        };
        if let Some(answer) = self.cors.preflight(&request) {
            return answer;
        }
        let mut response = self.route(request, peer).await;
        self.cors.decorate(Some(&origin), response.headers_mut());
        response
    }

    async fn route(&self, request: Request<Incoming>, peer: &Peer) -> Response<GatewayBody> {
        let Some(route) = self.routes.find(request.uri().path()) else {
            let response: Result<_, Infallible> = self.operations.clone().oneshot(request).await;
            return match response {
                Ok(response) => response.map(GatewayBody::Local),
                Err(never) => match never {},
            };
        };
        if !telemetry::traces_on() {
            return self.proxied(route, request, peer).await;
        }
        // The server span of the caller's trace (or of a new one), around
        // everything the gateway does with the request.
        let span = tracing::info_span!("gateway", otel.name = Empty, otel.kind = Empty, otel.status_code = Empty);
        telemetry::serving(&span, request.method(), route.prefix, request.uri().path(), request.headers());
        let response = self.proxied(route, request, peer).instrument(span.clone()).await;
        telemetry::answered(&span, response.status());
        response
    }

    async fn proxied(&self, route: &Route, mut request: Request<Incoming>, peer: &Peer) -> Response<GatewayBody> {
        let started = Instant::now();
        let request_id = service_kit::extract::request_id_header(request.headers());
        let method = request.method().clone();
        // The caller (a verified subject, a guest, or anonymous) is what per-client limits key on.
        let caller = match self.screen.screen(request.headers_mut()).await {
            Ok(caller) => caller,
            Err(problem) => {
                let mut response = problem.into_response().map(GatewayBody::Local);
                response.headers_mut().insert(REQUEST_ID.clone(), request_id);
                route.metrics.record(&method, response.status(), started.elapsed().as_secs_f64());
                return response;
            }
        };
        let mut decision = None;
        if let Some(limiter) = &self.rate_limits {
            let class = RouteClass::of(&method, request.uri().path());
            let client = crate::rate_limit::client_key(caller.subject(), peer.ip());
            let decided = limiter.check(class, &client).await;
            if !decided.allowed {
                metrics::counter!("gateway_rate_limited_total", "class" => class.name()).increment(1);
                let mut response = decided.refusal().map(GatewayBody::Local);
                response.headers_mut().insert(REQUEST_ID.clone(), request_id);
                route.metrics.record(&method, response.status(), started.elapsed().as_secs_f64());
                return response;
            }
            decision = Some(decided);
        }
        let mut response = match self.proxy.forward(route, request, peer, &request_id).await {
            Ok(response) => response,
            Err(error) => {
                let upstream = route.upstream.name;
                let chain = ErrorChain(&error);
                if error.is_clients() {
                    tracing::info!(request_id = ?request_id, upstream, error = %chain, "request refused");
                } else {
                    tracing::warn!(request_id = ?request_id, upstream, error = %chain, "upstream request failed");
                }
                metrics::counter!("gateway_upstream_errors_total", "service" => upstream, "kind" => error.kind())
                    .increment(1);
                let mut response = error.problem().into_response().map(GatewayBody::Local);
                response.headers_mut().insert(REQUEST_ID.clone(), request_id);
                response
            }
        };
        if let Some(decision) = decision {
            decision.decorate(response.headers_mut());
        }
        let status = response.status();
        route.metrics.record(&method, status, started.elapsed().as_secs_f64());
        tracing::debug!(route = route.prefix, status = status.as_u16(), "proxied");
        response
    }
}
