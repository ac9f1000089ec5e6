//! The happy paths: booking, reading, listing and every status change, with
//! the events each publishes.

use crate::helpers::{TestResult, booking, open_all_day, spawn_app, spawn_with_clock, test_settings, tomorrow_at};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use service_kit::clock::Clock;
use std::time::Duration;
use testkit::TestDb;

#[tokio::test]
async fn a_booking_is_pending_readable_and_published_with_the_request_id() -> TestResult {
    let app = spawn_app().await?;
    let starts_at = tomorrow_at(19);
    let body = json!({
        "guest_name": "  Ada Lovelace ",
        "guest_email": "ada@Example.com",
        "guest_phone": "+44 20 7946 0958",
        "party_size": 4,
        "starts_at": starts_at,
        "notes": "Window table,\nplease",
    });
    let response = app
        .client
        .post(app.url("/api/v1/reservations"))
        .header("x-request-id", "req-booking-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"].to_str()?.to_owned();
    let mut created: Value = response.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(location, format!("/api/v1/reservations/{id}"));
    let manage_token = created.as_object_mut().and_then(|fields| fields.remove("manage_token"));
    assert!(manage_token.is_some_and(|token| token.as_str().is_some_and(|token| token.starts_with("rsv_"))));
    assert_eq!(created["guest_name"], "Ada Lovelace");
    assert_eq!(created["guest_email"], "ada@example.com");
    assert_eq!(created["guest_phone"], "+44 20 7946 0958");
    assert_eq!(created["party_size"], 4);
    assert_eq!(created["starts_at"], json!(starts_at));
    assert_eq!(created["duration_minutes"], 90, "the default duration");
    assert_eq!(created["notes"], "Window table,\nplease");
    assert_eq!((created["status"].as_str(), created["version"].as_i64()), (Some("pending"), Some(1)));
    assert_eq!(created["pre_order"], json!([]));
    assert_eq!(created["problems"], json!([]));
    assert_eq!(created["created_at"], created["updated_at"]);

    assert_eq!(app.get_json(&location).await?, created, "GET shows what POST answered");

    let entries = testkit::stream::entries(&app.stream("reservation-events"), 1, Duration::from_secs(2)).await?;
    let [entry] = entries.as_slice() else { anyhow::bail!("expected one event, got {entries:?}") };
    assert_eq!(entry.event_type, "ReservationCreated");
    assert_eq!(entry.aggregate_id, id);
    assert_eq!(entry.version, 1);
    assert_eq!(entry.metadata["correlation_id"], "req-booking-1");
    assert_eq!(entry.metadata["source"], "reservation-service");
    assert_eq!(entry.data["party_size"], 4);
    assert_eq!(entry.data["duration_minutes"], 90);
    assert_eq!(entry.data["starts_at"], json!(starts_at));
    Ok(())
}

#[tokio::test]
async fn confirm_seat_and_complete_publish_once_each_and_repeating_them_changes_nothing() -> TestResult {
    let clock = Clock::manual(Utc::now());
    let db = TestDb::new().await?;
    let app = spawn_with_clock(test_settings(&db), db, open_all_day(), clock.clone()).await?;
    let starts_at = tomorrow_at(12);
    let created = app.book(&booking(2, starts_at)).await?;
    let path = format!("/api/v1/reservations/{}", created["id"].as_str().unwrap_or_default());

    let confirmed = app.patch_empty(&format!("{path}/confirm")).await?;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(confirmed.headers()["etag"], "\"2\"");
    let confirmed: Value = confirmed.json().await?;
    assert_eq!((confirmed["status"].as_str(), confirmed["version"].as_i64()), (Some("confirmed"), Some(2)));

    let again: Value = app.patch_empty(&format!("{path}/confirm")).await?.json().await?;
    assert_eq!(again["version"], 2, "confirming twice is not a change");

    clock.advance(starts_at - TimeDelta::minutes(30) - clock.now());
    let seated: Value = app.patch_empty(&format!("{path}/seat")).await?.json().await?;
    assert_eq!((seated["status"].as_str(), seated["version"].as_i64()), (Some("seated"), Some(3)));
    let completed: Value = app.patch_empty(&format!("{path}/complete")).await?.json().await?;
    assert_eq!((completed["status"].as_str(), completed["version"].as_i64()), (Some("completed"), Some(4)));
    let again: Value = app.patch_empty(&format!("{path}/complete")).await?.json().await?;
    assert_eq!(again["version"], 4, "completing twice is not a change");

    let entries = testkit::stream::entries(&app.stream("reservation-events"), 4, Duration::from_secs(2)).await?;
    let types: Vec<&str> = entries.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(types, ["ReservationCreated", "ReservationConfirmed", "ReservationSeated", "ReservationCompleted"]);
    assert_eq!(entries.iter().map(|entry| entry.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    Ok(())
}

#[tokio::test]
async fn cancelling_keeps_the_reason_publishes_it_and_frees_the_seats() -> TestResult {
    let app = spawn_app().await?;
    let starts_at = tomorrow_at(20);
    let everyone = app.book(&booking(40, starts_at)).await?;
    let refused = app.post("/api/v1/reservations", &booking(1, starts_at)).await?;
    assert_eq!(refused.status(), 409, "the restaurant is full");

    let path = format!("/api/v1/reservations/{}/cancel", everyone["id"].as_str().unwrap_or_default());
    let cancelled = app.patch(&path, &json!({"reason": "The guest is ill"})).await?;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await?;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "The guest is ill");

    let again: Value = app.patch(&path, &json!({"reason": "Another reason"})).await?.json().await?;
    assert_eq!((again["version"].as_i64(), again["cancel_reason"].as_str()), (Some(2), Some("The guest is ill")));

    app.book(&booking(40, starts_at)).await?;
    let entries = testkit::stream::entries(&app.stream("reservation-events"), 3, Duration::from_secs(2)).await?;
    let cancellation = entries.iter().find(|entry| entry.event_type == "ReservationCancelled");
    assert_eq!(cancellation.map(|entry| entry.data["reason"].clone()), Some(json!("The guest is ill")));
    Ok(())
}

#[tokio::test]
async fn lists_filter_by_status_and_start_and_page_in_start_order() -> TestResult {
    let app = spawn_app().await?;
    let mut ids = Vec::new();
    for hour in [13, 11, 12, 18] {
        let created = app.book(&booking(2, tomorrow_at(hour))).await?;
        ids.push((hour, created["id"].as_str().unwrap_or_default().to_owned()));
    }
    ids.sort();
    let confirmed = &ids[1].1;
    app.patch_empty(&format!("/api/v1/reservations/{confirmed}/confirm")).await?;

    let listed = |query: String| {
        let app = &app;
        async move {
            let page = app.get_json(&format!("/api/v1/reservations{query}")).await?;
            let ids: Vec<String> = page["reservations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|reservation| reservation["id"].as_str().map(str::to_owned))
                .collect();
            anyhow::Ok(ids)
        }
    };
    let all: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(listed(String::new()).await?, all, "earliest start first");
    assert_eq!(listed("?status=confirmed".to_owned()).await?, vec![confirmed.clone()]);
    assert_eq!(listed("?status=pending&limit=2".to_owned()).await?, [all[0].clone(), all[2].clone()]);
    assert_eq!(listed("?limit=2&offset=2".to_owned()).await?, all[2..].to_vec());
    let window =
        format!("?from={}&to={}", urlencode(&tomorrow_at(12).to_rfc3339()), urlencode(&tomorrow_at(18).to_rfc3339()));
    assert_eq!(listed(window).await?, all[1..3].to_vec(), "from is inclusive, to exclusive");
    Ok(())
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn status_changes_honour_if_match() -> TestResult {
    let app = spawn_app().await?;
    let created = app.book(&booking(2, tomorrow_at(12))).await?;
    let path = format!("/api/v1/reservations/{}/confirm", created["id"].as_str().unwrap_or_default());
    let stale = app.client.patch(app.url(&path)).header("if-match", "\"7\"").send().await?;
    assert_eq!(stale.status(), 409);
    let problem: Value = stale.json().await?;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("version 1, not 7"), "{problem}");
    let current = app.client.patch(app.url(&path)).header("if-match", "\"1\"").send().await?;
    assert_eq!(current.status(), 200);
    Ok(())
}

#[tokio::test]
async fn the_operational_endpoints_and_the_openapi_document_are_served() -> TestResult {
    let app = spawn_app().await?;
    assert_eq!(app.get_json("/health").await?["status"], "ok");
    assert_eq!(app.get_json("/ready").await?["checks"], json!({"postgres": "up", "redis": "up"}));
    let document = app.get_json("/api-docs/openapi.json").await?;
    for (path, method) in [
        ("/api/v1/reservations", "post"),
        ("/api/v1/reservations", "get"),
        ("/api/v1/reservations/{reservation_id}", "get"),
        ("/api/v1/reservations/{reservation_id}/confirm", "patch"),
        ("/api/v1/reservations/{reservation_id}/cancel", "patch"),
        ("/api/v1/reservations/{reservation_id}/complete", "patch"),
    ] {
        let responses = &document["paths"][path][method]["responses"];
        assert!(responses.get("500").is_some() && responses.get("503").is_some(), "{method} {path}: {responses}");
    }
    assert!(document["paths"]["/api/v1/reservations"]["post"]["responses"].get("409").is_some());
    assert_eq!(app.get("/docs/").await?.status(), 200);
    app.book(&booking(2, tomorrow_at(12))).await?;
    let metrics = app.get("/metrics").await?.text().await?;
    assert!(metrics.contains(r#"route="/api/v1/reservations""#), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn a_booking_sent_again_with_its_idempotency_key_books_once_and_holds_the_seats_once() -> TestResult {
    let app = spawn_app().await?;
    let body = booking(30, tomorrow_at(12));
    let send = || {
        app.client.post(app.url("/api/v1/reservations")).header("Idempotency-Key", "table-for-30").json(&body).send()
    };
    let first = send().await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    let again = send().await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await?, first);

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations").fetch_one(&app.db.pool).await?;
    assert_eq!(stored, 1);
    // Thirty seats are held once: ten are still free at that time.
    app.book(&booking(10, tomorrow_at(12))).await?;
    Ok(())
}
