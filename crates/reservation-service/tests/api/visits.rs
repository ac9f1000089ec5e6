//! The visit's life at a clock the tests move: seating from shortly before
//! the start (publishing the pre-order), completing once seated, no-shows
//! after the grace period, pending bookings that expire and free their
//! seats, and the history of who did what.

use crate::helpers::{
    TestApp, TestResult, booking, eventually, open_all_day, spawn_with_clock, test_settings, tomorrow_at,
};
use crate::menu_events::active_menu;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use service_kit::clock::Clock;
use std::time::Duration;
use testkit::TestDb;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

async fn at_clock(clock: &Clock) -> anyhow::Result<TestApp> {
    let db = TestDb::new().await?;
    spawn_with_clock(test_settings(&db), db, open_all_day(), clock.clone()).await
}

/// Moves `clock` to `to`.
fn move_to(clock: &Clock, to: DateTime<Utc>) {
    clock.advance(to - clock.now());
}

fn id(body: &Value) -> &str {
    body["id"].as_str().unwrap_or_default()
}

async fn status_of(app: &TestApp, reservation: &str) -> anyhow::Result<String> {
    let body = app.get_json(&format!("/api/v1/reservations/{reservation}")).await?;
    Ok(body["status"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn seating_opens_shortly_before_the_start_and_publishes_the_pre_order() -> TestResult {
    let clock = Clock::manual(Utc::now());
    let app = at_clock(&clock).await?;
    let (menu, dish) = (Uuid::new_v4(), Uuid::new_v4());
    active_menu(&app, menu, dish).await?;
    let starts_at = tomorrow_at(19);
    let mut body = booking(3, starts_at);
    body["pre_order"] = json!([{"menu_item_id": dish, "quantity": 2}]);
    let created = app.book(&body).await?;
    let path = format!("/api/v1/reservations/{}", id(&created));

    let pending = app.patch_empty(&format!("{path}/seat")).await?;
    assert_eq!(pending.status(), 409, "a pending booking is confirmed first");
    app.patch_empty(&format!("{path}/confirm")).await?;
    move_to(&clock, starts_at - TimeDelta::minutes(31));
    let early = app.patch_empty(&format!("{path}/seat")).await?;
    assert_eq!(early.status(), 409);
    let detail: Value = early.json().await?;
    assert!(detail["detail"].as_str().unwrap_or_default().contains("30 minutes before the start"), "{detail}");
    let complete_first = app.patch_empty(&format!("{path}/complete")).await?;
    assert_eq!(complete_first.status(), 409, "a party that was never seated cannot complete");

    move_to(&clock, starts_at - TimeDelta::minutes(30));
    let seated = app.patch_empty(&format!("{path}/seat")).await?;
    assert_eq!(seated.status(), 200);
    let seated: Value = seated.json().await?;
    assert_eq!(seated["status"], "seated");
    let cancel = app.patch(&format!("{path}/cancel"), &json!({"reason": "changed mind"})).await?;
    assert_eq!(cancel.status(), 409, "a seated party is not cancelled");

    let entries = testkit::stream::entries(&app.stream("reservation-events"), 3, WAIT).await?;
    let seated_event = entries.iter().find(|entry| entry.event_type == "ReservationSeated");
    let data = seated_event.map(|entry| entry.data.clone()).unwrap_or_default();
    assert_eq!(data["party_size"], 3);
    assert_eq!(data["guest_name"], "Ada Lovelace");
    assert_eq!(data["pre_order"], json!([{"menu_item_id": dish, "quantity": 2}]));
    Ok(())
}

#[tokio::test]
async fn a_confirmed_party_is_a_no_show_only_after_the_grace_period_and_frees_its_seats() -> TestResult {
    let clock = Clock::manual(Utc::now());
    let app = at_clock(&clock).await?;
    let starts_at = tomorrow_at(12);
    let everyone = app.book(&booking(40, starts_at)).await?;
    let path = format!("/api/v1/reservations/{}", id(&everyone));
    let early = app.patch_empty(&format!("{path}/no-show")).await?;
    assert_eq!(early.status(), 409, "only a confirmed booking can be a no-show");
    app.patch_empty(&format!("{path}/confirm")).await?;

    move_to(&clock, starts_at + TimeDelta::minutes(14));
    let within_grace = app.patch_empty(&format!("{path}/no-show")).await?;
    assert_eq!(within_grace.status(), 409, "the party may still come");
    move_to(&clock, starts_at + TimeDelta::minutes(15));
    let no_show: Value = app.patch_empty(&format!("{path}/no-show")).await?.json().await?;
    assert_eq!(no_show["status"], "no_show");

    // Its seats are free again: a walk-in booking made in time for the rest of the stay fits.
    let late = starts_at + TimeDelta::hours(1);
    app.book(&booking(40, late)).await?;
    let types: Vec<String> = testkit::stream::entries(&app.stream("reservation-events"), 4, WAIT)
        .await?
        .into_iter()
        .map(|entry| entry.event_type)
        .collect();
    assert_eq!(types[..3], ["ReservationCreated", "ReservationConfirmed", "ReservationNoShow"]);
    Ok(())
}

#[tokio::test]
async fn pending_bookings_nobody_confirms_expire_and_free_their_seats() -> TestResult {
    let clock = Clock::manual(Utc::now());
    let app = at_clock(&clock).await?;
    let starts_at = tomorrow_at(20);
    let pending = app.book(&booking(30, starts_at)).await?;
    let confirmed = app.book(&booking(10, starts_at)).await?;
    app.patch_empty(&format!("/api/v1/reservations/{}/confirm", id(&confirmed))).await?;
    let full = app.post("/api/v1/reservations", &booking(1, starts_at)).await?;
    assert_eq!(full.status(), 409);
    let expires_at: DateTime<Utc> = serde_json::from_value(pending["expires_at"].clone())?;
    assert_eq!(expires_at, clock.now() + TimeDelta::minutes(30));

    move_to(&clock, expires_at - TimeDelta::minutes(1));
    assert_eq!(status_of(&app, id(&pending)).await?, "pending");
    move_to(&clock, expires_at);
    eventually(WAIT, "the pending booking expires", || async { Ok(status_of(&app, id(&pending)).await? == "expired") })
        .await?;
    assert_eq!(status_of(&app, id(&confirmed)).await?, "confirmed", "a confirmed booking never expires");

    app.book(&booking(30, starts_at)).await?;
    let expired = app.get_json(&format!("/api/v1/reservations/{}", id(&pending))).await?;
    assert_eq!(expired["expires_at"], Value::Null);
    let history: Vec<(&str, &str)> = expired["history"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|change| {
                    (change["status"].as_str().unwrap_or_default(), change["actor"].as_str().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(history, [("pending", "guest"), ("expired", "reservation-service")]);
    let confirm = app.patch_empty(&format!("/api/v1/reservations/{}/confirm", id(&pending))).await?;
    assert_eq!(confirm.status(), 409, "an expired booking cannot be confirmed");
    let types: Vec<String> = testkit::stream::entries(&app.stream("reservation-events"), 5, WAIT)
        .await?
        .into_iter()
        .map(|entry| entry.event_type)
        .collect();
    assert!(types.contains(&"ReservationExpired".to_owned()), "{types:?}");
    Ok(())
}

#[tokio::test]
async fn the_history_names_who_made_each_change_and_when() -> TestResult {
    let clock = Clock::manual(Utc::now());
    let app = at_clock(&clock).await?;
    let created = app.book(&booking(2, tomorrow_at(13))).await?;
    let token = created["manage_token"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/v1/reservations/{}", id(&created));
    app.patch_empty(&format!("{path}/confirm")).await?;
    clock.advance(TimeDelta::minutes(5));
    let guest = app.with_token(&token)?;
    let cancelled: Value = guest.patch(&format!("{path}/cancel"), &json!({"reason": "ill"})).await?.json().await?;
    let history = cancelled["history"].as_array().cloned().unwrap_or_default();
    let staff = "test-staff";
    let who: Vec<(&str, &str)> = history
        .iter()
        .map(|change| (change["status"].as_str().unwrap_or_default(), change["actor"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(who, [("pending", "guest"), ("confirmed", staff), ("cancelled", "guest")]);
    let at = |n: usize| serde_json::from_value::<DateTime<Utc>>(history[n]["at"].clone());
    assert_eq!(at(2)? - at(1)?, TimeDelta::minutes(5));
    Ok(())
}
