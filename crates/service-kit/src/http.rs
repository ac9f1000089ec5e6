//! What every service's HTTP side shares: request ids, request logs and
//! metrics, the body limit, problem+json for unknown routes, the operational
//! endpoints, and serving until cancelled.

use crate::extract::{REQUEST_ID, header_value, request_id};
use crate::problem::Problem;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sqlx::PgPool;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Wraps a service's routes with the operational endpoints, the OpenAPI
/// document (`/api-docs/openapi.json`, completed by
/// [`crate::openapi::complete`]) with Swagger UI at `/docs`, and the layers
/// every service has, among them the `verifier` the auth extractors
/// ([`crate::auth::Staff`], [`crate::auth::Credential`]) check tokens with.
pub fn finish(
    routes: Router,
    dependencies: Dependencies,
    max_body_bytes: usize,
    api: utoipa::openapi::OpenApi,
    verifier: crate::auth::Verifier,
) -> Router {
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/api-docs/openapi.json", crate::openapi::complete(api));
    routes
        .merge(operations(dependencies))
        .merge(docs)
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not accept that method")
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(verifier))
        .layer(axum::middleware::from_fn(observe))
}

/// Gives each request an id (the caller's well-formed `X-Request-Id`, or a
/// new one), runs it in a span carrying that id, returns the id, logs the
/// outcome, and records `http_requests_total` and
/// `http_request_duration_seconds` by method, route and status.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    request.headers_mut().insert(REQUEST_ID, header_value(&id));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    response.headers_mut().insert(REQUEST_ID, header_value(&id));
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "request handled");
        }
    });
    let labels = [("method", method.to_string()), ("route", route), ("status", status.as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2]).record(elapsed.as_secs_f64());
    response
}

/// What `/ready` checks.
#[derive(Debug, Clone)]
pub struct Dependencies {
    /// The service's database.
    pub pool: PgPool,
    /// The Redis its events go through.
    pub redis: redis::Client,
}

fn operations(dependencies: Dependencies) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(dependencies)
}

/// The process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
pub async fn render_metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics().render()).into_response()
}

/// PostgreSQL and Redis both answer within two seconds.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready", body = Object,
        example = json!({"status": "ready", "checks": {"postgres": "up", "redis": "up"}})),
    (status = 503, description = "A dependency is down; `checks` says which", body = Problem,
        content_type = "application/problem+json"),
))]
pub async fn ready(State(dependencies): State<Dependencies>) -> Response {
    const WITHIN: Duration = Duration::from_secs(2);
    let postgres = tokio::time::timeout(WITHIN, sqlx::query("SELECT 1").execute(&dependencies.pool)).await;
    let postgres = matches!(postgres, Ok(Ok(_)));
    let redis = tokio::time::timeout(WITHIN, async {
        let mut connection = dependencies.redis.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    })
    .await;
    let redis = matches!(redis, Ok(Ok(_)));
    let state = |up: bool| if up { "up" } else { "down" };
    let checks = json!({ "postgres": state(postgres), "redis": state(redis) });
    if postgres && redis {
        axum::Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        let body = json!({
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "a dependency is unreachable",
            "checks": checks,
        });
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/problem+json")], axum::Json(body))
            .into_response()
    }
}

/// Histogram buckets in seconds, from half a millisecond to ten seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder, installed on first use. Histograms
/// are exported as Prometheus histograms with [`LATENCY_BUCKETS`].
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .map_or_else(|_| PrometheusBuilder::new().build_recorder(), PrometheusBuilder::build_recorder);
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            events::metrics::describe();
        }
        handle
    })
}

/// Serves `router` on `listener` until `cancel` fires, then lets requests in
/// flight finish.
///
/// # Errors
/// The listener failed.
pub async fn serve(listener: TcpListener, router: Router, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(cancel.cancelled_owned()).await
}
