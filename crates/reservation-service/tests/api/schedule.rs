//! The restaurant's rules through the API: opening hours and the slot grid
//! in its time zone (daylight-saving days included), the availability
//! endpoint agreeing with what booking accepts, staff changing the rules,
//! and the limit of upcoming bookings per guest.

use crate::helpers::{TestApp, TestResult, booking, open_all_day, spawn_with, test_settings, tomorrow_at};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures::future::join_all;
use reservation_service::BookingSettings;
use serde_json::{Value, json};
use testkit::TestDb;

async fn restaurant(booking: BookingSettings) -> anyhow::Result<TestApp> {
    let db = TestDb::new().await?;
    spawn_with(test_settings(&db), db, booking).await
}

/// Lunch 12:00–15:00 and dinner 19:00–23:00 every day in UTC, as a fresh platform has.
async fn lunch_and_dinner(seats: u32) -> anyhow::Result<TestApp> {
    restaurant(BookingSettings { restaurant_seats: seats, max_upcoming_per_guest: 1000, ..BookingSettings::default() })
        .await
}

async fn refusal(app: &TestApp, body: &Value) -> anyhow::Result<(u16, String, String)> {
    let response = app.post("/api/v1/reservations", body).await?;
    let status = response.status().as_u16();
    let problem: Value = response.json().await?;
    let text = |name: &str| problem[name].as_str().unwrap_or_default().to_owned();
    Ok((status, text("field"), text("detail")))
}

#[tokio::test]
async fn bookings_off_the_hours_off_the_grid_or_too_large_are_refused_naming_the_rule() -> TestResult {
    let app = lunch_and_dinner(40).await?;
    let (status, field, detail) = refusal(&app, &booking(2, tomorrow_at(3) + TimeDelta::seconds(17))).await?;
    assert_eq!((status, field.as_str()), (422, "starts_at"));
    assert!(detail.contains("outside the opening hours (12:00–15:00, 19:00–23:00, UTC)"), "{detail}");
    let (status, _, detail) = refusal(&app, &booking(2, tomorrow_at(19) + TimeDelta::minutes(10))).await?;
    assert_eq!(status, 422);
    assert!(detail.contains("every 15 minutes from 19:00"), "{detail}");
    let (_, _, detail) = refusal(&app, &booking(2, tomorrow_at(22))).await?;
    assert!(detail.contains("runs past closing at 23:00"), "{detail}");
    let (status, field, detail) = refusal(&app, &booking(41, tomorrow_at(19))).await?;
    assert_eq!((status, field.as_str()), (422, "party_size"));
    assert!(detail.contains("parties of up to 40"), "{detail}");
    let (_, field, detail) = refusal(&app, &booking(2, Utc::now() + TimeDelta::minutes(5))).await?;
    assert_eq!(field, "starts_at");
    assert!(detail.contains("at least 30 minutes ahead") || detail.contains("opening hours"), "{detail}");

    // An offset is accepted, and the start is stored and shown in UTC.
    let mut at_dinner = booking(2, tomorrow_at(19));
    let local = tomorrow_at(19).with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap_or_else(|| unreachable!()));
    at_dinner["starts_at"] = json!(local.to_rfc3339());
    assert!(at_dinner["starts_at"].as_str().unwrap_or_default().ends_with("+01:00"));
    let booked = app.book(&at_dinner).await?;
    assert_eq!(serde_json::from_value::<DateTime<Utc>>(booked["starts_at"].clone())?, tomorrow_at(19));
    assert!(booked["starts_at"].as_str().unwrap_or_default().ends_with('Z'), "{booked}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations").fetch_one(&app.db.pool).await?;
    assert_eq!(count, 1, "nothing refused was stored");
    Ok(())
}

async fn slots(app: &TestApp, date: NaiveDate, party: u16) -> anyhow::Result<Vec<(DateTime<Utc>, i64)>> {
    let body = app.anonymous().get_json(&format!("/api/v1/availability?date={date}&party_size={party}")).await?;
    body["slots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|slot| Ok((serde_json::from_value(slot["starts_at"].clone())?, slot["seats_left"].as_i64().unwrap_or(-1))))
        .collect()
}

#[tokio::test]
async fn the_availability_of_a_randomized_day_is_exactly_what_booking_accepts() -> TestResult {
    let app = lunch_and_dinner(12).await?;
    let day = tomorrow_at(0);
    // A pseudo-random day of bookings, seeded by the clock so that runs differ.
    let mut seed = u64::from(Utc::now().timestamp_subsec_nanos()) | 1;
    let mut next = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let grid: Vec<DateTime<Utc>> = (0..288).map(|n| day + TimeDelta::minutes(5 * n)).collect();
    for _ in 0..12 {
        let start = grid[usize::try_from(next(288)).unwrap_or(0)];
        let mut body = booking(u16::try_from(1 + next(5)).unwrap_or(1), start);
        body["duration_minutes"] = json!(30 + 15 * next(8));
        let _ = app.post("/api/v1/reservations", &body).await?;
    }
    let party = u16::try_from(2 + next(4)).unwrap_or(2);
    let offered = slots(&app, day.date_naive(), party).await?;
    assert!(offered.windows(2).all(|pair| pair[0].0 < pair[1].0), "slots in time order");
    for start in grid {
        let response = app.post("/api/v1/reservations", &booking(party, start)).await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        let offer = offered.iter().find(|(slot, _)| *slot == start);
        assert_eq!(status == 201, offer.is_some(), "{start}: booking answered {status} {body}, offered {offer:?}");
        if status == 201 {
            let path = format!("/api/v1/reservations/{}/cancel", body["id"].as_str().unwrap_or_default());
            app.patch(&path, &json!({"reason": "probe"})).await?;
        } else {
            assert!(status == 409 || status == 422, "{start}: {status} {body}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_availability_shows_the_seats_left_for_the_whole_stay() -> TestResult {
    let app = lunch_and_dinner(10).await?;
    let date = tomorrow_at(0).date_naive();
    let all = slots(&app, date, 1).await?;
    // Lunch 12:00–13:30 (7 slots of a 90-minute stay) and dinner 19:00–21:30 (11).
    assert_eq!(all.len(), 18);
    assert!(all.iter().all(|(_, left)| *left == 10));
    app.book(&booking(6, tomorrow_at(20))).await?;
    let after = slots(&app, date, 1).await?;
    let left = |at: DateTime<Utc>| after.iter().find(|(slot, _)| *slot == at).map(|(_, left)| *left);
    assert_eq!(left(tomorrow_at(19)), Some(4), "a stay 19:00–20:30 meets the party of 6 from 20:00");
    assert_eq!(left(tomorrow_at(21) + TimeDelta::minutes(15)), Some(4));
    assert_eq!(left(tomorrow_at(21) + TimeDelta::minutes(30)), Some(10), "21:30 starts as the party leaves");
    assert_eq!(left(tomorrow_at(12)), Some(10));
    // A party of 5 fits lunch and the last dinner slot only.
    assert_eq!(slots(&app, date, 5).await?.len(), 7 + 1);
    let refused = app.anonymous().get(&format!("/api/v1/availability?date={date}&party_size=11")).await?;
    assert_eq!(refused.status(), 422);
    Ok(())
}

fn rules_document(app_rules: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut document = app_rules.clone();
    change(&mut document);
    document
}

#[tokio::test]
async fn staff_change_the_rules_and_cannot_strand_bookings_silently() -> TestResult {
    let app = lunch_and_dinner(40).await?;
    let rules = app.anonymous().get("/api/v1/restaurant").await?;
    assert_eq!(rules.status(), 200);
    assert_eq!(rules.headers()["etag"], "\"1\"");
    let rules: Value = rules.json().await?;
    assert_eq!(rules["time_zone"], "UTC");
    assert_eq!(
        rules["weekly_hours"]["monday"],
        json!([{"opens": "12:00", "closes": "15:00"}, {"opens": "19:00", "closes": "23:00"}])
    );

    let anonymous = app.anonymous().put("/api/v1/restaurant", &rules).await?;
    assert_eq!(anonymous.status(), 401);
    let broken = rules_document(&rules, |d| d["weekly_hours"]["monday"][0]["opens"] = json!("12:07"));
    let invalid = app.put("/api/v1/restaurant", &broken).await?;
    assert_eq!(invalid.status(), 422);
    assert_eq!(invalid.json::<Value>().await?["field"], "weekly_hours.monday[0].opens");

    let dinner = app.book(&booking(30, tomorrow_at(19))).await?;
    let twenty = rules_document(&rules, |d| {
        d["seats"] = json!(20);
        d["max_party_size"] = json!(20);
    });
    let fewer = app.put("/api/v1/restaurant", &twenty).await?;
    assert_eq!(fewer.status(), 409, "30 seats are booked tomorrow at 19:00");
    let problem: Value = fewer.json().await?;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("30 seats are already booked"), "{problem}");
    assert_eq!(app.anonymous().get("/api/v1/restaurant").await?.headers()["etag"], "\"1\"", "nothing changed");

    // Lunch only, in Rome: the dinner booking is kept and reported.
    let lunch_only = rules_document(&rules, |d| {
        d["time_zone"] = json!("Europe/Rome");
        d["seats"] = json!(35);
        d["max_party_size"] = json!(35);
        for day in reservation_service::domain::rules::WEEKDAYS {
            d["weekly_hours"][day] = json!([{"opens": "12:00", "closes": "16:00"}]);
        }
    });
    let changed = app.put("/api/v1/restaurant", &lunch_only).await?;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.headers()["etag"], "\"2\"");
    let changed: Value = changed.json().await?;
    assert_eq!(changed["bookings_outside_hours"], json!([dinner["id"]]));
    let stale =
        app.client.put(app.url("/api/v1/restaurant")).header("if-match", "\"1\"").json(&lunch_only).send().await?;
    assert_eq!(stale.status(), 409);

    // 12:00 UTC is 13:00 in Rome in winter, a lunch slot now; 19:00 UTC is 20:00, after closing.
    app.book(&booking(35, tomorrow_at(12))).await?;
    let (status, _, detail) = refusal(&app, &booking(2, tomorrow_at(19))).await?;
    assert_eq!(status, 422, "{detail}");
    Ok(())
}

#[tokio::test]
async fn on_daylight_saving_days_skipped_times_are_not_slots_and_repeated_ones_are_two() -> TestResult {
    let app = restaurant(open_all_day()).await?;
    let rules = app.anonymous().get_json("/api/v1/restaurant").await?;
    let night = rules_document(&rules, |d| {
        d["time_zone"] = json!("Europe/Rome");
        d["horizon_days"] = json!(400);
        d["default_duration_minutes"] = json!(60);
        for day in reservation_service::domain::rules::WEEKDAYS {
            d["weekly_hours"][day] = json!([{"opens": "01:00", "closes": "04:00"}]);
        }
    });
    assert_eq!(app.put("/api/v1/restaurant", &night).await?.status(), 200);
    let wall_clock = |slots: &[(DateTime<Utc>, i64)]| -> Vec<String> {
        slots
            .iter()
            .map(|(slot, _)| slot.with_timezone(&chrono_tz::Europe::Rome).format("%H:%M%:z").to_string())
            .collect()
    };
    // 2027-03-28: Rome goes from 02:00 CET straight to 03:00 CEST.
    let forward = slots(&app, "2027-03-28".parse()?, 2).await?;
    assert_eq!(wall_clock(&forward), ["01:00+01:00", "01:15+01:00", "01:30+01:00", "01:45+01:00", "03:00+02:00"]);
    // 2027-10-31: 02:00–03:00 happens twice, first in CEST, then in CET.
    let back = wall_clock(&slots(&app, "2027-10-31".parse()?, 2).await?);
    assert!(back.contains(&"02:30+02:00".to_owned()) && back.contains(&"02:30+01:00".to_owned()), "{back:?}");
    assert_eq!(back.len(), 4 + 8 + 1, "01:00–01:45, 02:00–02:45 twice, and 03:00");
    for (start, _) in slots(&app, "2027-10-31".parse()?, 2)
        .await?
        .into_iter()
        .filter(|(slot, _)| slot.with_timezone(&chrono_tz::Europe::Rome).format("%H:%M").to_string() == "02:30")
    {
        app.book(&booking(40, start)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_guest_holds_at_most_the_configured_number_of_upcoming_bookings() -> TestResult {
    let app = restaurant(BookingSettings { max_upcoming_per_guest: 2, ..open_all_day() }).await?;
    let with_contact = |hour: u32, email: Option<&str>, phone: Option<&str>| {
        let mut body = booking(2, tomorrow_at(hour));
        body["guest_email"] = json!(email);
        body["guest_phone"] = json!(phone);
        body
    };
    app.book(&with_contact(10, Some("grace@example.com"), None)).await?;
    let second = app.book(&with_contact(11, None, Some("+1 555 0100 22"))).await?;
    let (status, _, detail) =
        refusal(&app, &with_contact(12, Some("Grace@EXAMPLE.com"), Some("+1 (555) 0100-22"))).await?;
    assert_eq!(status, 409);
    assert!(detail.contains("already holds 2 upcoming bookings"), "{detail}");
    // Cancelling one lets the guest book again.
    let path = format!("/api/v1/reservations/{}/cancel", second["id"].as_str().unwrap_or_default());
    app.patch(&path, &json!({"reason": "moved"})).await?;
    app.book(&with_contact(12, None, Some("+1 555 0100 22"))).await?;

    // Ten at once from a new guest: exactly two get through.
    let requests = (0..10).map(|n| {
        let body = with_contact(13 + n % 8, Some("hopper@example.com"), None);
        let app = &app;
        async move { anyhow::Ok(app.post("/api/v1/reservations", &body).await?.status().as_u16()) }
    });
    let statuses: Vec<u16> = join_all(requests).await.into_iter().collect::<anyhow::Result<_>>()?;
    assert_eq!(statuses.iter().filter(|status| **status == 201).count(), 2, "{statuses:?}");
    assert!(statuses.iter().all(|status| *status == 201 || *status == 409), "{statuses:?}");
    Ok(())
}
