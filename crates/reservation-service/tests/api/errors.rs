//! Refusals: each is a problem+json with the right status and field, and
//! nothing is stored or published for it.

use crate::helpers::{TestResult, booking, spawn_app, tomorrow_at};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use std::time::Duration;

async fn problem(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    anyhow::ensure!(content_type.as_deref() == Some("application/problem+json"), "content type {content_type:?}");
    Ok((status, response.json().await?))
}

#[tokio::test]
async fn invalid_bookings_are_422_naming_the_field_and_store_nothing() -> TestResult {
    let app = spawn_app().await?;
    let valid = booking(2, tomorrow_at(19));
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let mut no_contact = valid.clone();
    no_contact.as_object_mut().map(|body| body.remove("guest_email"));
    let cases = [
        (with("guest_name", json!("   ")), "guest_name"),
        (with("guest_name", json!("x".repeat(101))), "guest_name"),
        (with("guest_email", json!("not-an-email")), "guest_email"),
        (with("guest_phone", json!("call me")), "guest_phone"),
        (no_contact, "guest_email"),
        (with("party_size", json!(0)), "party_size"),
        (with("party_size", json!(101)), "party_size"),
        (with("party_size", json!(2.5)), "party_size"),
        (with("starts_at", json!(Utc::now() - TimeDelta::minutes(1))), "starts_at"),
        (with("starts_at", json!(Utc::now() + TimeDelta::days(91))), "starts_at"),
        (with("starts_at", json!("tomorrow evening")), "starts_at"),
        (with("duration_minutes", json!(10)), "duration_minutes"),
        (with("duration_minutes", json!(481)), "duration_minutes"),
        (with("notes", json!("x".repeat(1001))), "notes"),
        (with("pre_order", json!([{"menu_item_id": uuid::Uuid::new_v4(), "quantity": 0}])), "pre_order[0].quantity"),
        (with("pre_order", json!([{"menu_item_id": "nope", "quantity": 1}])), "pre_order[0].menu_item_id"),
    ];
    for (body, field) in cases {
        let (status, problem) = problem(app.post("/api/v1/reservations", &body).await?).await?;
        assert_eq!((status, problem["field"].as_str()), (422, Some(field)), "{body}: {problem}");
        assert!(!problem["detail"].as_str().unwrap_or_default().is_empty());
    }
    let item = uuid::Uuid::new_v4();
    let twice =
        with("pre_order", json!([{"menu_item_id": item, "quantity": 1}, {"menu_item_id": item, "quantity": 2}]));
    let (status, problem) = problem(app.post("/api/v1/reservations", &twice).await?).await?;
    assert_eq!((status, problem["field"].as_str()), (422, Some("pre_order")), "{problem}");

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations").fetch_one(&app.db.pool).await?;
    assert_eq!(count, 0);
    let entries = testkit::stream::entries(&app.stream("reservation-events"), 1, Duration::from_millis(300)).await?;
    assert!(entries.is_empty(), "refused bookings published {entries:?}");
    Ok(())
}

#[tokio::test]
async fn a_pre_order_of_an_item_no_menu_offers_is_422_naming_the_item() -> TestResult {
    let app = spawn_app().await?;
    let item = uuid::Uuid::new_v4();
    let mut body = booking(2, tomorrow_at(19));
    body["pre_order"] = json!([{"menu_item_id": item, "quantity": 1}]);
    let (status, problem) = problem(app.post("/api/v1/reservations", &body).await?).await?;
    assert_eq!((status, problem["field"].as_str()), (422, Some("pre_order[0].menu_item_id")));
    assert!(problem["detail"].as_str().unwrap_or_default().contains(&item.to_string()), "{problem}");
    Ok(())
}

#[tokio::test]
async fn malformed_requests_are_4xx_problems() -> TestResult {
    let app = spawn_app().await?;
    let syntax = app
        .client
        .post(app.url("/api/v1/reservations"))
        .header("content-type", "application/json")
        .body("{\"guest_name\":")
        .send()
        .await?;
    assert_eq!(problem(syntax).await?.0, 400);
    let form = app.client.post(app.url("/api/v1/reservations")).body("guest_name=Ada").send().await?;
    assert_eq!(problem(form).await?.0, 415);
    assert_eq!(problem(app.get("/api/v1/reservations/not-a-uuid").await?).await?.0, 400);
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(problem(app.get(&format!("/api/v1/reservations/{unknown}")).await?).await?.0, 404);
    assert_eq!(problem(app.patch_empty(&format!("/api/v1/reservations/{unknown}/confirm")).await?).await?.0, 404);
    assert_eq!(problem(app.get("/api/v1/reservations?limit=0").await?).await?.0, 422);
    assert_eq!(problem(app.get("/api/v1/reservations?status=lost").await?).await?.0, 400);
    let backwards = format!(
        "/api/v1/reservations?from={}&to={}",
        tomorrow_at(12).format("%Y-%m-%dT%H:%M:%SZ"),
        tomorrow_at(11).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let (status, body) = problem(app.get(&backwards).await?).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("from")));
    Ok(())
}

#[tokio::test]
async fn status_changes_the_state_does_not_allow_are_409_and_change_nothing() -> TestResult {
    let app = spawn_app().await?;
    let created = app.book(&booking(2, tomorrow_at(12))).await?;
    let path = format!("/api/v1/reservations/{}", created["id"].as_str().unwrap_or_default());

    let (status, body) = problem(app.patch_empty(&format!("{path}/complete")).await?).await?;
    assert_eq!(status, 409, "a pending reservation cannot complete: {body}");
    let (status, body) = problem(app.patch(&format!("{path}/cancel"), &json!({"reason": " "})).await?).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("reason")));
    let (status, _) = problem(app.patch_empty(&format!("{path}/cancel")).await?).await?;
    assert_eq!(status, 415, "cancel needs a reason");

    app.patch(&format!("{path}/cancel"), &json!({"reason": "Plans changed"})).await?;
    for action in ["confirm", "complete"] {
        let (status, body) = problem(app.patch_empty(&format!("{path}/{action}")).await?).await?;
        assert_eq!(status, 409, "{action} after cancel: {body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains("cancelled"), "{body}");
    }
    let stored = app.get_json(&path).await?;
    assert_eq!((stored["status"].as_str(), stored["version"].as_i64()), (Some("cancelled"), Some(2)));
    Ok(())
}
