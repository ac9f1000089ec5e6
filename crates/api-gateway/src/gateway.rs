//! The gateway's request path: proxied routes go straight to [`Proxy`];
//! everything else to the operational router.

use crate::auth::Screen;
use crate::body::GatewayBody;
use crate::cors::Cors;
use crate::proxy::{Peer, Proxy, REQUEST_ID};
use crate::routes::Routes;
use axum::response::IntoResponse;
use http::{Request, Response, header};
use hyper::body::Incoming;
use service_kit::problem::ErrorChain;
use std::convert::Infallible;
use std::time::Instant;
use tower::ServiceExt;

/// Routes requests: to an upstream, or to the gateway's own endpoints.
#[derive(Debug, Clone)]
pub struct Gateway {
    routes: Routes,
    proxy: Proxy,
    operations: axum::Router,
    cors: Cors,
    screen: Screen,
}

impl Gateway {
    /// A gateway forwarding `routes` through `proxy` once `screen` let them
    /// through ([`crate::auth`]), answering the rest with `operations`, and
    /// applying `cors` to everything.
    pub fn new(routes: Routes, proxy: Proxy, operations: axum::Router, cors: Cors, screen: Screen) -> Self {
        Self { routes, proxy, operations, cors, screen }
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

    async fn route(&self, mut request: Request<Incoming>, peer: &Peer) -> Response<GatewayBody> {
        let Some(route) = self.routes.find(request.uri().path()) else {
            let response: Result<_, Infallible> = self.operations.clone().oneshot(request).await;
            return match response {
                Ok(response) => response.map(GatewayBody::Local),
                Err(never) => match never {},
            };
        };
        let started = Instant::now();
        let request_id = service_kit::extract::request_id_header(request.headers());
        // The caller (a verified subject, a guest, or anonymous) is what per-client limits key on.
        let _caller = match self.screen.screen(request.headers_mut()).await {
            Ok(caller) => caller,
            Err(problem) => {
                let mut response = problem.into_response().map(GatewayBody::Local);
                response.headers_mut().insert(REQUEST_ID.clone(), request_id);
                route.metrics.record(response.status(), started.elapsed().as_secs_f64());
                return response;
            }
        };
        let response = match self.proxy.forward(route, request, peer, &request_id).await {
            Ok(response) => response,
            Err(error) => {
                let upstream = route.upstream.name;
                let chain = ErrorChain(&error);
                tracing::warn!(request_id = ?request_id, upstream, error = %chain, "upstream request failed");
                metrics::counter!("gateway_upstream_errors_total", "service" => upstream, "kind" => error.kind())
                    .increment(1);
                let mut response = error.problem().into_response().map(GatewayBody::Local);
                response.headers_mut().insert(REQUEST_ID.clone(), request_id);
                response
            }
        };
        let status = response.status();
        route.metrics.record(status, started.elapsed().as_secs_f64());
        tracing::debug!(route = route.prefix, status = status.as_u16(), "proxied");
        response
    }
}
