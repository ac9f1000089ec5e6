//! The documents the gateway serves, checked by the validators a reader
//! would use: the AsyncAPI CLI on the event schemas and Spectral's OpenAPI
//! rules on the merged OpenAPI document (`tests/validators`, from npm; run
//! without telemetry and without downloading anything).

use crate::helpers::{TestResult, spawn_gateway};
use api_gateway::GatewaySettings;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The command `name` of the validators installed by `scripts/test`.
pub fn validator(name: &str) -> anyhow::Result<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validators");
    let command = directory.join("node_modules/.bin").join(name);
    anyhow::ensure!(command.exists(), "{name} is not installed: scripts/test runs `npm ci` in {}", directory.display());
    Ok(command)
}

/// Runs `command` with `args` and telemetry off; its output if it succeeds.
pub async fn run_validator(command: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<String> {
    let scratch = tempfile::tempdir()?;
    // The AsyncAPI CLI reads whether to send metrics from this file (and
    // writes one that says yes into the home directory if there is none).
    let analytics = scratch.path().join("asyncapi-analytics.json");
    std::fs::write(&analytics, r#"{"analyticsEnabled":"false","infoMessageShown":"true","userID":"test"}"#)?;
    let output = tokio::process::Command::new(command)
        .args(args)
        .env("ASYNCAPI_METRICS", "false")
        .env("ASYNCAPI_METRICS_CONFIG_PATH", &analytics)
        .current_dir(scratch.path())
        .kill_on_drop(true)
        .output()
        .await?;
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(output.status.success(), "{} failed ({}):\n{report}", command.display(), output.status);
    Ok(report)
}

/// A gateway with no services behind it: the event schemas are its own.
async fn gateway() -> anyhow::Result<testkit::Running> {
    let nowhere = "http://127.0.0.1:9";
    let settings = GatewaySettings::for_upstreams(nowhere, nowhere)
        .with_upstream(service_kit::catalog::INVENTORY.name, nowhere)
        .with_upstream(service_kit::catalog::KITCHEN.name, nowhere)
        .with_upstream(service_kit::catalog::ORDER.name, nowhere);
    spawn_gateway(settings).await
}

#[tokio::test]
async fn the_gateway_serves_the_event_schemas_beside_the_openapi_document() -> TestResult {
    let gateway = gateway().await?;
    let response = gateway.anonymous().get("/api-docs/asyncapi.json").await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await?;
    let committed: Value = serde_json::from_str(events::asyncapi::COMMITTED)?;
    assert_eq!(served, committed, "the committed document is served as it is");
    assert_eq!(served["asyncapi"], "3.0.0");
    for stream in events::Streams::default().all() {
        assert_eq!(served["channels"][&stream]["address"], stream.as_str());
    }
    Ok(())
}

#[tokio::test]
async fn the_event_schemas_page_shows_every_stream_and_loads_nothing_from_elsewhere() -> TestResult {
    let running = gateway().await?;
    let gateway = running.anonymous();
    let page = gateway.get("/docs/events").await?;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str()?.to_owned();
    assert!(policy.starts_with("default-src 'none'; style-src 'self'"), "{policy}");
    let html = page.text().await?;
    for shown in [
        "<code>menu-events</code>",
        "<code>kitchen-commands.dlq</code>",
        "id=\"message-ReserveStock\"",
        "<code>correlation_id</code>",
        "<code>order-service</code>",
    ] {
        assert!(html.contains(shown), "the page shows {shown}");
    }
    assert!(!html.contains("<script"), "the page runs no script");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page names no other origin");
    let stylesheet = gateway.get("/docs/events.css").await?;
    assert_eq!(stylesheet.status(), 200);
    assert_eq!(stylesheet.headers()["content-type"], "text/css; charset=utf-8");
    assert!(gateway.get("/docs/").await?.text().await?.contains("swagger"), "Swagger UI is still at /docs/");
    Ok(())
}

#[tokio::test]
async fn the_asyncapi_cli_finds_the_served_event_schemas_valid_without_warnings() -> TestResult {
    let asyncapi = validator("asyncapi")?;
    let gateway = gateway().await?;
    let document = gateway.anonymous().get("/api-docs/asyncapi.json").await?.bytes().await?;
    let file = tempfile::Builder::new().suffix(".json").tempfile()?;
    std::fs::write(file.path(), &document)?;
    let report = run_validator(
        &asyncapi,
        &["validate".as_ref(), file.path().as_os_str(), "--fail-severity".as_ref(), "warn".as_ref()],
    )
    .await?;
    assert!(report.contains("is valid"), "{report}");
    assert!(!report.contains("metrics"), "no metrics are sent: {report}");
    Ok(())
}
