//! Logs and traces, set up once per process by [`init`].
//!
//! **Logs** are JSON lines by default, human-readable with
//! `LOG_FORMAT=pretty`, filtered by `RUST_LOG` (default `info`).
//!
//! **Traces** are exported over OTLP (HTTP/protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, with the standard `OTEL_*` variables for the rest (`OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, …). The gateway starts
//! or continues the caller's W3C `traceparent` and passes its own on
//! upstream; a service continues it in its request span ([`serving`]); the
//! backbone carries it through the outbox and the streams to every handler
//! ([`events::trace`]). Spans at `info` and above are exported (more if
//! `RUST_LOG` asks for more), whatever `RUST_LOG` keeps out of the logs.
//!
//! Unset, nothing of it runs: the subscriber is the logs alone, no exporter
//! or thread exists, and the request and event paths skip every step of
//! propagation after one atomic load ([`events::trace::enabled`]).
//!
//! The exporter speaks HTTP/1.1 through hyper, on a one-thread runtime of
//! its own: the SDK's batch processor exports from a thread of its own, where
//! no runtime of the service's is, and the service's runtimes may be
//! single-threaded and busy or gone when the last spans are flushed at exit.

use anyhow::Context as _;
use bytes::Bytes;
use events::trace::TraceContext;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing::Span;
use tracing::field::Empty;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The variables that switch the export of traces on.
const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The least a trace keeps, whatever `RUST_LOG` says.
const TRACE_LEVEL: LevelFilter = LevelFilter::INFO;

/// Longest wait for one export, and for the last spans at exit.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest collector response read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The `traceparent` header.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The `tracestate` header.
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// What [`init`] set up; keep it until the process ends. Dropping it
/// exports the spans not exported yet (waiting at most ten seconds) and
/// stops the exporter.
#[derive(Debug, Default)]
#[must_use = "dropping it stops the export of traces"]
pub struct Telemetry {
    traces: Option<Exporter>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn exports_traces(&self) -> bool {
        self.traces.is_some()
    }
}

/// Installs the global subscriber for service `service` (its
/// `service.name`, unless `OTEL_SERVICE_NAME` says otherwise): the logs, and
/// the export of traces if an OTLP endpoint is set. Call once, from `main`.
///
/// # Errors
/// The endpoint is set but the exporter cannot be built (a malformed URL),
/// or a subscriber is installed already.
pub fn init(service: &'static str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "pretty");
    if !ENDPOINT_VARIABLES.iter().any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty())) {
        // The logs alone, as they were before traces: a global filter, no per-layer state.
        let logs = tracing_subscriber::fmt().with_env_filter(filter);
        if pretty { logs.try_init() } else { logs.json().flatten_event(true).with_current_span(true).try_init() }
            .map_err(|error| anyhow::anyhow!("installing the log subscriber: {error}"))?;
        return Ok(Telemetry::default());
    }
    let exporter = Exporter::start(service, None)?;
    let level = filter.max_level_hint().map_or(TRACE_LEVEL, |logged| logged.max(TRACE_LEVEL));
    let logs = if pretty {
        tracing_subscriber::fmt::layer().boxed()
    } else {
        tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).boxed()
    };
    tracing_subscriber::registry()
        .with(traces_layer(&exporter.provider, level))
        .with(logs.with_filter(filter))
        .try_init()
        .context("installing the subscriber")?;
    tracing::info!(service, "exporting traces over OTLP");
    Ok(Telemetry { traces: Some(exporter) })
}

/// The layer that records the spans of traces into `provider` (see
/// [`events::trace::layer`]): what [`init`] installs, and what tests install
/// with a provider of their own.
pub fn traces_layer(provider: &SdkTracerProvider, level: LevelFilter) -> impl Layer<Registry> + Send + Sync + use<> {
    events::trace::layer(provider.tracer("restaurant-platform"), level)
}

/// The OTLP exporter and the runtime its requests run on.
#[derive(Debug)]
struct Exporter {
    provider: SdkTracerProvider,
    runtime: ExportRuntime,
}

impl Exporter {
    /// Exports the spans of service `service` to `endpoint` (the full URL of
    /// the collector's traces resource), or where the `OTEL_EXPORTER_OTLP_*`
    /// variables say when `None`.
    fn start(service: &'static str, endpoint: Option<&str>) -> anyhow::Result<Self> {
        let runtime = ExportRuntime::start().context("starting the trace exporter's thread")?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(HyperClient::new(runtime.handle.clone()))
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(EXPORT_TIMEOUT);
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter.build().context("building the OTLP trace exporter")?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service);
        }
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
        Ok(Self { provider, runtime })
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown_with_timeout(EXPORT_TIMEOUT) {
            eprintln!("exporting the last spans failed: {error}");
        }
        self.runtime.stop();
    }
}

/// A one-thread runtime for the exporter's requests.
#[derive(Debug)]
struct ExportRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExportRuntime {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("otlp-export".to_owned()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(Self { handle, stop: Some(stop), thread: Some(thread) })
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The exporter's HTTP client: hyper's, each request run on the export runtime.
#[derive(Debug, Clone)]
struct HyperClient {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
}

impl HyperClient {
    fn new(runtime: tokio::runtime::Handle) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(EXPORT_TIMEOUT));
        connector.set_nodelay(true);
        Self { client: Client::builder(TokioExecutor::new()).build(connector), runtime }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HyperClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        // Made on the export runtime: its timer exists only there.
        let exchange = async move {
            let exchange = async {
                let response = client.request(request.map(Full::new)).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
            };
            match tokio::time::timeout(EXPORT_TIMEOUT, exchange).await {
                Ok(answer) => answer,
                Err(elapsed) => Err(Box::new(elapsed).into()),
            }
        };
        self.runtime.spawn(exchange).await?
    }
}

/// Whether traces are exported: what code that makes spans only for traces asks first.
#[inline]
pub fn traces_on() -> bool {
    events::trace::enabled()
}

/// The trace context a request carries in its `traceparent` and
/// `tracestate` headers, if any.
pub fn carried(headers: &HeaderMap) -> Option<TraceContext> {
    let text = |name: &http::HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
    TraceContext::from_parts(text(&TRACEPARENT), text(&TRACESTATE))
}

/// Sets the `traceparent` (and `tracestate`) of `headers` to the context of
/// `span`, replacing any the caller sent; does nothing while traces are off.
pub fn propagate(span: &Span, headers: &mut HeaderMap) {
    let Some(context) = TraceContext::of(span) else { return };
    if let Ok(value) = HeaderValue::try_from(context.traceparent) {
        headers.insert(TRACEPARENT, value);
    }
    match context.tracestate.map(HeaderValue::try_from) {
        Some(Ok(value)) => {
            headers.insert(TRACESTATE, value);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// Makes `span`, not yet entered and declaring `otel.name`, `otel.kind` and
/// `otel.status_code`, the server span of a request for `route` (its
/// `http.route`, or the gateway's prefix) with `method`, `path` and
/// `headers`: a child of the caller's `traceparent` if it sent one, else
/// the start of a trace. Does nothing while traces are off.
pub fn serving(span: &Span, method: &Method, route: &str, path: &str, headers: &HeaderMap) {
    if !events::trace::enabled() {
        return;
    }
    span.record("otel.name", format!("{method} {route}"));
    span.record("otel.kind", "server");
    span.set_attribute("http.request.method", method.as_str().to_owned());
    span.set_attribute("http.route", route.to_owned());
    span.set_attribute("url.path", path.to_owned());
    if let Some(context) = carried(headers) {
        let _ = span.set_parent(context.parent());
    }
}

/// Traced, a client span (a child of the current span) for a `method`
/// request to `server` at the URL `url` makes, whose context replaces the
/// `traceparent` in `headers`; [`Span::none`] while traces are off, and the
/// headers untouched.
pub fn calling(method: &Method, server: &'static str, url: impl FnOnce() -> String, headers: &mut HeaderMap) -> Span {
    if !events::trace::enabled() {
        return Span::none();
    }
    let span = tracing::info_span!("call", otel.name = method.as_str(), otel.kind = "client", otel.status_code = Empty);
    span.set_attribute("http.request.method", method.as_str().to_owned());
    span.set_attribute("server.address", server);
    span.set_attribute("url.full", url());
    propagate(&span, headers);
    span
}

/// Marks `span` failed: the exchange it stands for got no response.
pub fn failed(span: &Span) {
    if events::trace::enabled() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Records on `span` (made by [`serving`] or [`calling`]) that the
/// response had `status`: 5xx marks it failed. Does nothing while traces are off.
pub fn answered(span: &Span, status: StatusCode) {
    if !events::trace::enabled() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::Tracer as _;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message as _;

    /// An OTLP/HTTP collector on a free port: what it received, as
    /// `Content-Type` and decoded request.
    async fn collector()
    -> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<(String, ExportTraceServiceRequest)>)> {
        let (received, requests) = tokio::sync::mpsc::unbounded_channel();
        let route = axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
            let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            match ExportTraceServiceRequest::decode(body) {
                Ok(request) => {
                    let _ = received.send((content_type.to_owned(), request));
                    StatusCode::OK
                }
                Err(_) => StatusCode::BAD_REQUEST,
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1/traces", listener.local_addr()?);
        tokio::spawn(axum::serve(listener, axum::Router::new().route("/v1/traces", route)).into_future());
        Ok((url, requests))
    }

    #[tokio::test]
    async fn spans_reach_an_otlp_collector_as_protobuf_over_http_with_the_service_name() -> anyhow::Result<()> {
        let (url, mut requests) = collector().await?;
        let exporter = Exporter::start("menu-service", Some(&url))?;
        exporter.provider.tracer("test").in_span("GET /api/v1/menus", |_| {});
        // Dropping it exports what is left and waits for the answer: not on this runtime's thread.
        tokio::task::spawn_blocking(move || drop(exporter)).await?;

        let (content_type, request) = tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await?
            .context("the collector received nothing")?;
        assert_eq!(content_type, "application/x-protobuf");
        let [resource_spans] = request.resource_spans.as_slice() else {
            anyhow::bail!("one resource expected: {request:?}");
        };
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref()?.value.clone());
        assert_eq!(service_name, Some(Value::StringValue("menu-service".to_owned())));
        let names: Vec<&str> =
            resource_spans.scope_spans.iter().flat_map(|scope| &scope.spans).map(|span| span.name.as_str()).collect();
        assert_eq!(names, ["GET /api/v1/menus"]);
        Ok(())
    }

    #[test]
    fn a_request_carries_its_trace_context_in_its_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(carried(&headers), None);
        headers
            .insert(TRACEPARENT, HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        let context = carried(&headers);
        assert_eq!(context.as_ref().map(|context| context.traceparent.as_str()), headers[&TRACEPARENT].to_str().ok());
        assert_eq!(context.and_then(|context| context.tracestate).as_deref(), Some("vendor=1"));
    }
}
