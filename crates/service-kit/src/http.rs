//! What every service's HTTP side shares: request ids, request logs and
//! metrics, the body limit, problem+json for unknown routes, the operational
//! endpoints, and serving until cancelled.
//!
//! Metric labels are bounded on purpose: a client choosing the method name
//! (`BREW /menus`) would otherwise mint a new time series per invented
//! method, so [`method_label`] names only the standard methods and calls
//! the rest `other`. `/ready` says whether the service can serve, which is
//! whether its database answers: with Redis down the outbox holds the
//! events, so Redis is reported (in the body, a metric and a log line) but
//! does not make the service unready, and an outage of Redis does not take
//! every service out of its load balancer at once. The probes reuse
//! connections (a pool query, one kept Redis connection) so that frequent
//! probing costs no connection set-up.

use crate::extract::{REQUEST_ID, header_value, request_id};
use crate::problem::Problem;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sqlx::PgPool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

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
/// new one), runs it in a span carrying that id (traced, the server span of
/// the caller's trace: [`crate::telemetry::serving`]), returns the id, logs
/// the outcome, and records `http_requests_total` and
/// `http_request_duration_seconds` by method, route and status.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    request.headers_mut().insert(REQUEST_ID, header_value(&id));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        %route,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
    );
    crate::telemetry::serving(&span, &method, &route, request.uri().path(), request.headers());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    crate::telemetry::answered(&span, status);
    response.headers_mut().insert(REQUEST_ID, header_value(&id));
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "request handled");
        }
    });
    let labels =
        [("method", method_label(&method).to_owned()), ("route", route), ("status", status.as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2]).record(elapsed.as_secs_f64());
    response
}

/// The values the `method` label of request metrics takes: the methods of
/// RFC 9110 and RFC 5789, then `other` for any a client invents.
pub const METHOD_LABELS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"];

/// Where `method` is in [`METHOD_LABELS`]: a standard method's own place, the last one otherwise.
pub fn method_index(method: &Method) -> usize {
    match method.as_str() {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "CONNECT" => 5,
        "OPTIONS" => 6,
        "TRACE" => 7,
        "PATCH" => 8,
        _ => 9,
    }
}

/// The `method` label of a request metric: the standard method's name, or `other`.
pub fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// What `/ready` checks.
#[derive(Debug, Clone)]
pub struct Dependencies {
    /// The service's database.
    pub pool: PgPool,
    /// The Redis its events go through.
    pub redis: redis::Client,
}

/// How long one check of a dependency may take.
const CHECK_WITHIN: Duration = Duration::from_secs(2);

/// The probes of `/ready`: the service's pool, and one Redis connection
/// kept between probes (made again only after it failed).
#[derive(Debug, Clone)]
pub struct Readiness {
    dependencies: Dependencies,
    redis: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
    redis_was_up: Arc<std::sync::atomic::AtomicBool>,
}

impl Readiness {
    /// Probes of `dependencies`; no connection is made until the first probe.
    pub fn new(dependencies: Dependencies) -> Self {
        Self { dependencies, redis: Arc::default(), redis_was_up: Arc::new(std::sync::atomic::AtomicBool::new(true)) }
    }

    /// `SELECT 1` on a pooled connection.
    async fn postgres_up(&self) -> bool {
        let query = sqlx::query("SELECT 1").execute(&self.dependencies.pool);
        matches!(tokio::time::timeout(CHECK_WITHIN, query).await, Ok(Ok(_)))
    }

    /// `PING` on the kept connection, connecting first if there is none;
    /// a connection that failed is dropped so the next probe makes a new one.
    async fn redis_up(&self) -> bool {
        let mut kept = self.redis.lock().await;
        let probe = async {
            let connection = match kept.as_mut() {
                Some(connection) => connection,
                None => kept.insert(self.dependencies.redis.get_multiplexed_async_connection().await?),
            };
            redis::cmd("PING").query_async::<String>(connection).await
        };
        let up = matches!(tokio::time::timeout(CHECK_WITHIN, probe).await, Ok(Ok(_)));
        if !up {
            *kept = None;
        }
        up
    }
}

fn operations(dependencies: Dependencies) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(Readiness::new(dependencies))
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

/// The service can serve: PostgreSQL answers within two seconds. Redis is
/// reported too, but its being down leaves the service ready (the outbox
/// holds the events meanwhile); it sets the gauge `dependency_up{dependency="redis"}`
/// to 0 and logs a warning when it goes down.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready; `checks` says which dependencies answer", body = Object,
        example = json!({"status": "ready", "checks": {"postgres": "up", "redis": "down"}})),
    (status = 503, description = "The database is unreachable", body = Problem,
        content_type = "application/problem+json"),
))]
pub async fn ready(State(readiness): State<Readiness>) -> Response {
    let (postgres, redis) = tokio::join!(readiness.postgres_up(), readiness.redis_up());
    metrics::gauge!("dependency_up", "dependency" => "postgres").set(f64::from(u8::from(postgres)));
    metrics::gauge!("dependency_up", "dependency" => "redis").set(f64::from(u8::from(redis)));
    let was_up = readiness.redis_was_up.swap(redis, std::sync::atomic::Ordering::Relaxed);
    if was_up && !redis {
        tracing::warn!("Redis does not answer; events wait in the outbox until it does");
    } else if !was_up && redis {
        tracing::info!("Redis answers again");
    }
    let state = |up: bool| if up { "up" } else { "down" };
    let checks = json!({ "postgres": state(postgres), "redis": state(redis) });
    if postgres {
        axum::Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        let body = json!({
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "the database is unreachable",
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

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A router finished like a service's, on a pool and a Redis that are never reached.
    fn service() -> anyhow::Result<Router> {
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none")?;
        let redis = redis::Client::open("redis://127.0.0.1:1")?;
        let routes = Router::new().route("/things", axum::routing::any(|| async { "thing" }));
        let verifier = crate::auth::Verifier::from_settings(&crate::auth::AuthSettings::for_tests())?;
        Ok(finish(routes, Dependencies { pool, redis }, 1024, utoipa::openapi::OpenApi::default(), verifier))
    }

    async fn send(router: &Router, method: &str, uri: &str) -> anyhow::Result<Response> {
        let request = Request::builder().method(method).uri(uri).body(axum::body::Body::empty())?;
        Ok(router.clone().oneshot(request).await?)
    }

    #[tokio::test]
    async fn an_invented_method_is_counted_as_other_and_adds_no_series_of_its_own() -> anyhow::Result<()> {
        metrics();
        let router = service()?;
        assert_eq!(send(&router, "BREW", "/things").await?.status(), StatusCode::OK);
        assert_eq!(send(&router, "GET", "/things").await?.status(), StatusCode::OK);
        let response = send(&router, "GET", "/metrics").await?;
        let text = String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await?.to_vec())?;
        let things: Vec<&str> =
            text.lines().filter(|line| line.starts_with("http_requests_total") && line.contains("/things")).collect();
        assert!(things.iter().any(|line| line.contains(r#"method="other""#)), "{things:?}");
        assert!(things.iter().any(|line| line.contains(r#"method="GET""#)), "{things:?}");
        assert!(!text.contains("BREW"), "an invented method became a label:\n{text}");
        Ok(())
    }
}
