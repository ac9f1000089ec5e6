//! The restaurant is never overbooked: many concurrent bookings on two
//! service instances, for one slot and for overlapping windows.

use crate::helpers::{TestResult, booking, open_all_day, spawn_with, test_settings, tomorrow_at};
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use serde_json::{Value, json};
use testkit::{Api, TestDb};

const SEATS: i64 = 40;

/// Two instances of the service on one schema, as behind a load balancer.
async fn two_instances() -> anyhow::Result<(crate::helpers::TestApp, crate::helpers::TestApp)> {
    let db = TestDb::new().await?;
    let settings = test_settings(&db);
    let first = spawn_with(settings.clone(), db.clone(), open_all_day()).await?;
    let second = spawn_with(settings, db, open_all_day()).await?;
    Ok((first, second))
}

/// Sends every booking at once, alternating between the instances, and
/// returns each booking's party size with the status it got.
async fn storm(instances: [&Api; 2], bookings: Vec<Value>) -> anyhow::Result<Vec<(Value, u16)>> {
    let requests = bookings.into_iter().enumerate().map(|(n, body)| async move {
        let response = instances[n % 2].post("/api/v1/reservations", &body).await?;
        anyhow::Ok((body, response.status().as_u16()))
    });
    join_all(requests).await.into_iter().collect()
}

#[tokio::test]
async fn a_booking_storm_for_one_slot_never_exceeds_the_seats_and_every_refusal_is_409() -> TestResult {
    let (first, second) = two_instances().await?;
    let starts_at = tomorrow_at(19);
    let bookings = (0..200).map(|n| booking(1 + n % 4, starts_at)).collect();
    let results = storm([&first.api, &second.api], bookings).await?;

    let accepted: i64 = results.iter().filter(|(_, status)| *status == 201).map(|(body, _)| party(body)).sum();
    let refused: Vec<i64> = results.iter().filter(|(_, status)| *status != 201).map(|(body, _)| party(body)).collect();
    assert!(results.iter().all(|(_, status)| *status == 201 || *status == 409), "statuses: {results:?}");
    assert!(accepted <= SEATS, "{accepted} seats booked of {SEATS}");
    let free = SEATS - accepted;
    assert!(refused.iter().all(|party| *party > free), "a party that fit the {free} free seats was refused");
    assert!(!refused.is_empty());

    let stored: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(party_size), 0)::int8 FROM reservations")
        .fetch_one(&first.db.pool)
        .await?;
    assert_eq!(stored, accepted, "the database holds exactly the accepted bookings");
    Ok(())
}

#[tokio::test]
async fn overlapping_windows_are_checked_at_every_moment_not_only_at_the_start() -> TestResult {
    let (app, _) = two_instances().await?;
    let at = |hour: i64, minute: i64| tomorrow_at(0) + TimeDelta::hours(hour) + TimeDelta::minutes(minute);
    let with_duration = |party: u16, starts_at: DateTime<Utc>, minutes: u32| {
        let mut body = booking(party, starts_at);
        body["duration_minutes"] = json!(minutes);
        body
    };
    app.book(&with_duration(30, at(18, 0), 90)).await?;
    let overlapping = app.post("/api/v1/reservations", &with_duration(15, at(17, 0), 90)).await?;
    assert_eq!(overlapping.status(), 409, "17:00-18:30 overlaps 18:00-19:30, where only 10 seats are free");
    let detail: Value = overlapping.json().await?;
    assert!(detail["detail"].as_str().unwrap_or_default().contains("only 10 seats are free"), "{detail}");
    app.book(&with_duration(10, at(17, 0), 90)).await?;
    app.book(&with_duration(40, at(16, 0), 60)).await?;
    app.book(&with_duration(30, at(19, 30), 60)).await?;
    app.book(&with_duration(10, at(19, 15), 30)).await?;
    let one_more = app.post("/api/v1/reservations", &with_duration(1, at(19, 15), 15)).await?;
    assert_eq!(one_more.status(), 409, "at 19:15 the 30 + 10 guests fill the room");
    Ok(())
}

#[tokio::test]
async fn a_storm_of_random_overlapping_windows_never_exceeds_the_seats_at_any_moment() -> TestResult {
    let (first, second) = two_instances().await?;
    let evening = tomorrow_at(17);
    let bookings = (0u32..160)
        .map(|n| {
            let starts_at = evening + TimeDelta::minutes(i64::from(15 * ((n * 37) % 16)));
            let mut body = booking(u16::try_from(1 + n % 6).unwrap_or(1), starts_at);
            body["duration_minutes"] = json!(30 + (n * 53) % 120);
            body
        })
        .collect();
    let results = storm([&first.api, &second.api], bookings).await?;
    assert!(results.iter().all(|(_, status)| *status == 201 || *status == 409), "statuses: {results:?}");
    assert!(results.iter().any(|(_, status)| *status == 409), "the storm should have filled some moments");

    let stays: Vec<(DateTime<Utc>, DateTime<Utc>, i64)> = results
        .iter()
        .filter(|(_, status)| *status == 201)
        .map(|(body, _)| {
            let starts_at: DateTime<Utc> = serde_json::from_value(body["starts_at"].clone())?;
            let minutes = body["duration_minutes"].as_i64().unwrap_or_default();
            Ok((starts_at, starts_at + TimeDelta::minutes(minutes), party(body)))
        })
        .collect::<anyhow::Result<_>>()?;
    for (moment, _, _) in &stays {
        let seated: i64 =
            stays.iter().filter(|(from, to, _)| from <= moment && moment < to).map(|(_, _, party)| party).sum();
        assert!(seated <= SEATS, "{seated} guests seated at {moment}");
    }
    Ok(())
}

fn party(body: &Value) -> i64 {
    body["party_size"].as_i64().unwrap_or_default()
}
