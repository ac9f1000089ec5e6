//! Routing, header handling, request ids, CORS and metrics.

use crate::helpers::{TestResult, echo, problem, spawn_gateway};
use api_gateway::GatewaySettings;
use serde_json::Value;

#[tokio::test]
async fn requests_go_to_the_service_of_their_prefix_with_method_path_query_and_body() -> TestResult {
    let (menus, reservations) = (echo("menus").await?, echo("reservations").await?);
    let gateway = spawn_gateway(GatewaySettings::for_upstreams(&menus.url, &reservations.url)).await?;

    let response = gateway
        .client
        .put(gateway.url("/api/v1/menus/42/items/7?expand=true&x=%20y"))
        .header("content-type", "application/json")
        .body(r#"{"name":"Soup"}"#)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await?;
    assert_eq!(seen["upstream"], "menus");
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/api/v1/menus/42/items/7");
    assert_eq!(seen["query"], "expand=true&x=%20y");
    assert_eq!(seen["body"], r#"{"name":"Soup"}"#);
    assert_eq!(seen["headers"]["content-type"], "application/json");

    for (path, upstream) in [("/api/v1/reservations", "reservations"), ("/api/v1/menus", "menus")] {
        let seen = gateway.get_json(path).await?;
        assert_eq!((seen["upstream"].as_str(), seen["path"].as_str()), (Some(upstream), Some(path)));
    }
    for path in ["/api/v1/menusx", "/api/v2/menus", "/"] {
        let (status, body) = problem(gateway.get(path).await?).await?;
        assert_eq!(status, 404, "{path}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways_and_forwarded_headers_are_set() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(crate::helpers::settings_for(&upstream.url)).await?;
    let response = gateway
        .client
        .get(gateway.url("/api/v1/menus"))
        .header("connection", "keep-alive, x-client-private")
        .header("x-client-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.7")
        .header("if-match", "\"3\"")
        .send()
        .await?;
    let host = gateway.base.trim_start_matches("http://").to_owned();
    assert_eq!(response.headers().get("x-upstream-public").map(|v| v.as_bytes()), Some(&b"1"[..]));
    for private in ["x-upstream-private", "keep-alive"] {
        assert!(response.headers().get(private).is_none(), "{private} reached the client");
    }
    let seen: Value = response.json().await?;
    let headers = &seen["headers"];
    for dropped in ["x-client-private", "keep-alive", "te"] {
        assert!(headers.get(dropped).is_none(), "{dropped} reached the upstream: {headers}");
    }
    assert_eq!(headers["if-match"], "\"3\"");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "the edge replaces what the client claimed");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], host.as_str());
    assert_eq!(headers["host"], upstream.url.trim_start_matches("http://"), "the upstream sees its own host");
    Ok(())
}

#[tokio::test]
async fn without_trace_export_the_callers_trace_context_reaches_the_upstream_untouched() -> TestResult {
    // This test binary installs no trace layer, as a gateway without
    // `OTEL_EXPORTER_OTLP_ENDPOINT` does: it makes no span and forwards the headers as they came.
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(crate::helpers::settings_for(&upstream.url)).await?;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = gateway
        .client
        .get(gateway.url("/api/v1/menus"))
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=1")
        .send()
        .await?;
    let seen: Value = response.json().await?;
    assert_eq!(seen["headers"]["traceparent"], traceparent);
    assert_eq!(seen["headers"]["tracestate"], "vendor=1");
    Ok(())
}

#[tokio::test]
async fn well_formed_request_ids_are_passed_on_and_others_replaced() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(crate::helpers::settings_for(&upstream.url)).await?;
    let send = |id: Option<&'static str>| {
        let mut request = gateway.client.get(gateway.url("/api/v1/menus"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        async move {
            let response = request.send().await?;
            let returned = response.headers()["x-request-id"].to_str()?.to_owned();
            let seen: Value = response.json().await?;
            anyhow::Ok((returned, seen["headers"]["x-request-id"].as_str().unwrap_or_default().to_owned()))
        }
    };
    assert_eq!(send(Some("client-id.42:a_b")).await?, ("client-id.42:a_b".to_owned(), "client-id.42:a_b".to_owned()));
    for id in [None, Some("has spaces"), Some("")] {
        let (returned, seen) = send(id).await?;
        assert_eq!(returned, seen, "the id the upstream saw is returned");
        assert!(uuid::Uuid::parse_str(&returned).is_ok(), "{id:?} became {returned}");
    }
    let long = "x".repeat(129);
    let response = gateway.client.get(gateway.url("/api/v1/menus")).header("x-request-id", &long).send().await?;
    assert_ne!(response.headers()["x-request-id"].to_str()?, long);
    Ok(())
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_responses_for_allowed_origins_only() -> TestResult {
    let upstream = echo("menus").await?;
    let settings = GatewaySettings {
        cors_allowed_origins: "https://app.example".to_owned(),
        ..crate::helpers::settings_for(&upstream.url)
    };
    let gateway = spawn_gateway(settings).await?;
    let preflight = gateway
        .client
        .request(reqwest::Method::OPTIONS, gateway.url("/api/v1/menus/1/activate"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "if-match")
        .send()
        .await?;
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example");
    assert!(preflight.headers()["access-control-allow-headers"].to_str()?.contains("if-match"));

    let simple =
        gateway.client.get(gateway.url("/api/v1/menus")).header("origin", "https://app.example").send().await?;
    assert_eq!(simple.headers()["access-control-allow-origin"], "https://app.example");
    assert!(simple.headers()["access-control-expose-headers"].to_str()?.contains("x-request-id"));

    let foreign =
        gateway.client.get(gateway.url("/api/v1/menus")).header("origin", "https://evil.example").send().await?;
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
    let plain = gateway.get("/api/v1/menus").await?;
    assert!(plain.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status_with_latency_histograms() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(crate::helpers::settings_for(&upstream.url)).await?;
    for _ in 0..3 {
        gateway.get("/api/v1/reservations/1").await?;
    }
    assert_eq!(gateway.get("/health").await?.status(), 200);
    let metrics = gateway.get("/metrics").await?.text().await?;
    let count = metrics
        .lines()
        .find(|line| {
            line.starts_with("gateway_requests_total")
                && line.contains(r#"route="/api/v1/reservations""#)
                && line.contains(r#"method="GET""#)
                && line.contains(r#"status="200""#)
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<u64>().ok());
    assert!(count.is_some_and(|count| count >= 3), "no count in:\n{metrics}");
    assert!(metrics.contains(r#"gateway_request_duration_seconds_bucket{route="/api/v1/reservations",le="0.005"}"#));
    Ok(())
}

#[tokio::test]
async fn an_invented_method_is_counted_as_other_and_adds_no_series_of_its_own() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(crate::helpers::settings_for(&upstream.url)).await?;
    let brew = reqwest::Method::from_bytes(b"BREW")?;
    for path in ["/api/v1/menus/teapot", "/health"] {
        gateway.client.request(brew.clone(), gateway.url(path)).send().await?;
    }
    let metrics = gateway.get("/metrics").await?.text().await?;
    assert!(!metrics.contains("BREW"), "an invented method became a label:\n{metrics}");
    assert!(
        metrics.lines().any(|line| line.starts_with("gateway_requests_total")
            && line.contains(r#"route="/api/v1/menus""#)
            && line.contains(r#"method="other""#)),
        "{metrics}"
    );
    Ok(())
}
