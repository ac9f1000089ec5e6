//! Traces a test can assert on: the spans its code exports, kept in memory
//! ([`Recorder`]), and one trace's spans as a tree ([`Trace`]).
//!
//! A test binary installs one recorder for all its tests with
//! [`Recorder::global`], handing it the layer the platform uses; tests that
//! run side by side tell their spans apart by trace id.

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Spans kept in memory as each ends.
#[derive(Debug)]
pub struct Recorder {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl Recorder {
    /// The recorder of this test binary: on first use, installs the global
    /// subscriber with the layer `layer` makes of its provider (and, when
    /// `TEST_LOG` is set, logs to the test output, as [`crate::init_tracing`]).
    ///
    /// # Panics
    /// Another global subscriber was installed first.
    pub fn global<L>(layer: impl FnOnce(&SdkTracerProvider) -> L) -> &'static Self
    where
        L: Layer<Registry> + Send + Sync + 'static,
    {
        static RECORDER: OnceLock<Recorder> = OnceLock::new();
        RECORDER.get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
            let logs = std::env::var("TEST_LOG").ok().map(|filter| {
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(tracing_subscriber::EnvFilter::new(filter))
            });
            #[allow(clippy::expect_used, reason = "a test binary that cannot record traces cannot test them")]
            tracing_subscriber::registry()
                .with(layer(&provider))
                .with(logs)
                .try_init()
                .expect("the trace recorder is the first global subscriber of its test binary");
            Self { exporter, provider }
        })
    }

    /// Every span ended so far, of every test of the binary.
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// The spans of trace `trace_id` once `complete` says they are all there,
    /// checked every 20 ms for up to `within`.
    ///
    /// # Errors
    /// They were not complete in time: the error shows the trace as it was.
    pub async fn trace(
        &self,
        trace_id: TraceId,
        within: Duration,
        complete: impl Fn(&Trace) -> bool,
    ) -> anyhow::Result<Trace> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let _ = self.provider.force_flush();
            let trace = Trace {
                spans: self.spans().into_iter().filter(|span| span.span_context.trace_id() == trace_id).collect(),
            };
            if complete(&trace) {
                return Ok(trace);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("trace {trace_id} incomplete after {within:?}:\n{}", trace.render());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The spans of one trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// In the order they ended.
    pub spans: Vec<SpanData>,
}

impl Trace {
    /// The spans named `name`.
    pub fn named(&self, name: &str) -> Vec<&SpanData> {
        self.spans.iter().filter(|span| span.name == name).collect()
    }

    /// The one span named `name`.
    ///
    /// # Errors
    /// There is none, or several.
    pub fn one(&self, name: &str) -> anyhow::Result<&SpanData> {
        match self.named(name).as_slice() {
            [span] => Ok(span),
            spans => anyhow::bail!("{} spans named {name:?} in:\n{}", spans.len(), self.render()),
        }
    }

    /// The span with id `id`, if the trace has it.
    pub fn span(&self, id: SpanId) -> Option<&SpanData> {
        self.spans.iter().find(|span| span.span_context.span_id() == id)
    }

    /// The span `span` is a child of, if the trace has it.
    pub fn parent_of(&self, span: &SpanData) -> Option<&SpanData> {
        self.span(span.parent_span_id)
    }

    /// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
    pub fn descends_from(&self, span: &SpanData, ancestor: &SpanData) -> bool {
        let mut next = self.parent_of(span);
        while let Some(parent) = next {
            if parent.span_context.span_id() == ancestor.span_context.span_id() {
                return true;
            }
            next = self.parent_of(parent);
        }
        false
    }

    /// The spans whose parent is `span`.
    pub fn children_of(&self, span: &SpanData) -> Vec<&SpanData> {
        self.spans.iter().filter(|child| child.parent_span_id == span.span_context.span_id()).collect()
    }

    /// The spans no span of the trace is the parent of.
    pub fn roots(&self) -> Vec<&SpanData> {
        self.spans.iter().filter(|span| self.parent_of(span).is_none()).collect()
    }

    /// The trace as an indented tree, children in the order they started:
    /// each span's name, kind, and the attributes named in [`SHOWN`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut roots = self.roots();
        roots.sort_by_key(|span| span.start_time);
        for root in roots {
            self.render_into(&mut out, root, 0);
        }
        out
    }

    fn render_into(&self, out: &mut String, span: &SpanData, depth: usize) {
        let shown: Vec<String> = span
            .attributes
            .iter()
            .filter(|attribute| SHOWN.contains(&attribute.key.as_str()))
            .map(|KeyValue { key, value, .. }| format!("{key}={value}"))
            .collect();
        let links = if span.links.is_empty() { String::new() } else { format!(" links={}", span.links.len()) };
        let _ = writeln!(
            out,
            "{}{} [{}]{}{}",
            "  ".repeat(depth),
            span.name,
            kind(&span.span_kind),
            if shown.is_empty() { String::new() } else { format!(" {}", shown.join(" ")) },
            links
        );
        let mut children = self.children_of(span);
        children.sort_by_key(|child| child.start_time);
        for child in children {
            self.render_into(out, child, depth + 1);
        }
    }
}

/// The attributes [`Trace::render`] shows.
pub const SHOWN: [&str; 3] = ["messaging.consumer.group.name", "http.response.status_code", "saga.step"];

/// The value of attribute `key` of `span`, if it has one.
pub fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|attribute| attribute.key.as_str() == key).map(|attribute| &attribute.value)
}

fn kind(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}
