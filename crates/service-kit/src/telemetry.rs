//! Structured logs: JSON lines by default, human-readable with `LOG_FORMAT=pretty`;
//! filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, from `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("LOG_FORMAT").is_ok_and(|format| format == "pretty") {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(true).init();
    }
}
