//! The gateway at the edge: client-sent identity is dropped, bad JWTs are
//! turned away before any upstream sees them, everything else is forwarded.

use crate::helpers::{TestResult, echo, problem, serve, settings_for, spawn_gateway};
use axum::Router;
use axum::routing::any;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use testkit::auth::TestKeys;

#[tokio::test]
async fn identity_and_forwarding_headers_a_client_sends_never_reach_the_upstream() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;
    let token = TestKeys::shared()?.token(&["menus:write"])?;

    let response = gateway
        .anonymous()
        .client
        .get(gateway.url("/api/v1/menus"))
        .bearer_auth(&token)
        .header("x-user-id", "admin")
        .header("x-user-scopes", "platform:operate")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=203.0.113.7")
        .header("x-real-ip", "203.0.113.7")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await?;
    let headers = seen["headers"].as_object().cloned().unwrap_or_default();
    for name in ["x-user-id", "x-user-scopes", "forwarded", "x-real-ip"] {
        assert!(!headers.contains_key(name), "{name} reached the upstream: {headers:?}");
    }
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "only the address the gateway saw");
    assert_eq!(headers["x-forwarded-host"], gateway.base.trim_start_matches("http://"));
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["authorization"], format!("Bearer {token}"), "the token is forwarded for the service to check");
    Ok(())
}

#[tokio::test]
async fn a_jwt_that_fails_verification_is_a_401_from_the_gateway_and_reaches_no_upstream() -> TestResult {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let upstream = serve(Router::new().fallback(any(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "reached" }
    })))
    .await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;
    for testkit::auth::BadToken { case, token, reason } in testkit::auth::bad_tokens()? {
        let response = gateway.with_token(&token)?.post("/api/v1/menus", &json!({"name": "Lunch"})).await?;
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert!(response.headers().contains_key("x-request-id"), "{case}");
        let (status, body) = problem(response).await?;
        assert_eq!(status, 401, "{case}");
        assert_eq!(
            challenge.as_deref(),
            Some(format!(r#"Bearer error="invalid_token", error_description="{reason}""#).as_str()),
            "{case}"
        );
        assert_eq!(body["detail"], reason, "{case}");
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "no bad token was forwarded");
    Ok(())
}

#[tokio::test]
async fn guest_capabilities_and_anonymous_requests_are_forwarded_for_the_service_to_judge() -> TestResult {
    let upstream = echo("reservations").await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;

    let guest = gateway.with_token("rsv_some-booking-secret")?.get("/api/v1/reservations/x").await?;
    assert_eq!(guest.status(), 200);
    let seen: Value = guest.json().await?;
    assert_eq!(seen["headers"]["authorization"], "Bearer rsv_some-booking-secret");

    let anonymous = gateway.anonymous().get("/api/v1/menus").await?;
    assert_eq!(anonymous.status(), 200);
    let seen: Value = anonymous.json().await?;
    assert!(seen["headers"].get("authorization").is_none());
    Ok(())
}

#[tokio::test]
async fn a_browser_on_an_allowed_origin_may_send_a_bearer_token() -> TestResult {
    let upstream = echo("menus").await?;
    let gateway = spawn_gateway(settings_for(&upstream.url)).await?;
    let preflight = gateway
        .client
        .request(reqwest::Method::OPTIONS, gateway.url("/api/v1/menus"))
        .header("origin", "https://console.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await?;
    assert_eq!(preflight.status(), 204);
    assert!(preflight.headers()["access-control-allow-headers"].to_str()?.contains("authorization"));
    Ok(())
}
