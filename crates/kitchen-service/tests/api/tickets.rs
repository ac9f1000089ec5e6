//! The staff's API: the queue, a ticket, and each step of its life, each
//! publishing its event with the request id as correlation id; and what it
//! refuses.

use crate::helpers::*;
use chrono::{TimeDelta, Utc};
use events::{MenuItemId, OrderId};
use serde_json::{Value, json};

fn id(ticket: &Value) -> String {
    ticket["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_ticket_goes_from_acceptance_to_pick_up_each_step_published_with_its_request_id() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new(), MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", id(&ticket));
    let ready_by = (Utc::now() + TimeDelta::minutes(20)).to_rfc3339();
    let none = Value::Null;
    let steps: [(&str, Value, &str, &str); 7] = [
        ("accept", json!({"ready_by": ready_by}), "TicketAccepted", "accepted"),
        ("start", none.clone(), "TicketPreparationStarted", "preparing"),
        ("lines/1/done", none.clone(), "TicketLineDone", "preparing"),
        ("lines/1/recall", none.clone(), "TicketLineRecalled", "preparing"),
        ("lines/1/done", none.clone(), "TicketLineDone", "preparing"),
        ("ready", none.clone(), "TicketReady", "ready"),
        ("pick-up", none.clone(), "TicketPickedUp", "picked_up"),
    ];
    for (number, (step, body, event, status)) in steps.iter().enumerate() {
        let request_id = format!("req-step-{number}");
        let (code, answer) = app.act(&format!("{path}/{step}"), body, &request_id).await?;
        assert_eq!(code, 200, "{step}: {answer}");
        assert_eq!(answer["status"], *status, "{step}");
        assert_eq!(answer["version"], json!(number + 3), "{step}");
        let answers = app.answers(order, number + 3).await?;
        let published = &answers[number + 2];
        assert_eq!(published.event_type, *event, "{step}");
        assert_eq!(published.metadata["correlation_id"], request_id);
        assert_eq!(published.aggregate_id, id(&ticket));
    }
    let done = app.get_json(&path).await?;
    assert_eq!(done["lines"][0]["done"], true);
    assert_eq!(done["lines"][1]["done"], false);
    assert_eq!(done["ready_by"].as_str().map(|at| at.get(..19) == ready_by.get(..19)), Some(true));
    Ok(())
}

#[tokio::test]
async fn a_repeated_step_changes_and_publishes_nothing_and_a_stale_if_match_is_a_conflict() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", id(&ticket));
    let accept = json!({"ready_by": Utc::now() + TimeDelta::minutes(20)});
    let stale = app.client.post(app.url(&format!("{path}/accept"))).header("if-match", "\"1\"").json(&accept);
    let response = stale.send().await?;
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let fresh = app.client.post(app.url(&format!("{path}/accept"))).header("if-match", "\"2\"").json(&accept);
    let response = fresh.send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"3\"");
    let (code, again) = app.act(&format!("{path}/accept"), &accept, "req-again").await?;
    assert_eq!((code, &again["version"]), (200, &json!(3)));
    assert_eq!(app.answers(order, 3).await?.len(), 3, "no second TicketAccepted");
    Ok(())
}

#[tokio::test]
async fn steps_the_status_does_not_allow_are_conflicts_and_bad_values_are_named() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], false).await?;
    let path = format!("/api/v1/tickets/{}", id(&ticket));
    let none = Value::Null;
    for step in ["start", "ready", "pick-up", "lines/1/done"] {
        let (code, problem) = app.act(&format!("{path}/{step}"), &none, "req").await?;
        assert_eq!(code, 409, "{step} on a pending ticket: {problem}");
    }
    let (code, _) =
        app.act(&format!("{path}/accept"), &json!({"ready_by": Utc::now() + TimeDelta::minutes(5)}), "r").await?;
    assert_eq!(code, 409, "a pending ticket is not accepted");

    let waiting = app.ticket(OrderId::new(), &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", id(&waiting));
    let (code, problem) =
        app.act(&format!("{path}/accept"), &json!({"ready_by": Utc::now() - TimeDelta::minutes(1)}), "r").await?;
    assert_eq!((code, &problem["field"]), (422, &json!("ready_by")), "{problem}");
    let (code, problem) = app.act(&format!("{path}/reject"), &json!({"reason": "  "}), "r").await?;
    assert_eq!((code, &problem["field"]), (422, &json!("reason")), "{problem}");
    let (code, rejected) = app.act(&format!("{path}/reject"), &json!({"reason": "out of fish"}), "r").await?;
    assert_eq!(
        (code, &rejected["status"], &rejected["reject_reason"]),
        (200, &json!("rejected"), &json!("out of fish"))
    );

    let cooking = app.ticket(OrderId::new(), &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", id(&cooking));
    app.act(&format!("{path}/accept"), &json!({"ready_by": Utc::now() + TimeDelta::minutes(5)}), "r").await?;
    app.act(&format!("{path}/start"), &none, "r").await?;
    let (code, problem) = app.act(&format!("{path}/lines/2/done"), &none, "r").await?;
    assert_eq!(code, 404, "no line 2: {problem}");
    let (code, _) = app.act(&format!("/api/v1/tickets/{}/start", uuid::Uuid::now_v7()), &none, "r").await?;
    assert_eq!(code, 404, "no such ticket");
    assert_eq!(app.get(&format!("/api/v1/tickets/{}", uuid::Uuid::now_v7())).await?.status(), 404);
    Ok(())
}

#[tokio::test]
async fn the_queue_lists_active_tickets_oldest_first_by_status_and_station_with_the_stream_position() -> TestResult {
    let app = spawn_app().await?;
    let [steak, salad] = app.menu_with(&[("Steak", "steaks"), ("Salad", "salad")]).await?[..] else {
        anyhow::bail!("two items")
    };
    let empty = app.get_json("/api/v1/tickets").await?;
    assert_eq!(empty, json!({"tickets": [], "limit": 20, "offset": 0, "stream_position": "0-0"}));
    let first = app.ticket(OrderId::new(), &[steak], false).await?;
    let second = app.ticket(OrderId::new(), &[salad], true).await?;
    let cancelled_order = OrderId::new();
    app.ticket(cancelled_order, &[steak], false).await?;
    app.command(&command(cancelled_order, events::KitchenCommand::CancelTicket { order_id: cancelled_order })).await?;
    app.answers(cancelled_order, 2).await?;

    let ids = |page: &Value| -> Vec<String> {
        page["tickets"].as_array().map(|tickets| tickets.iter().map(id).collect()).unwrap_or_default()
    };
    let all = app.get_json("/api/v1/tickets").await?;
    assert_eq!(ids(&all), [id(&first), id(&second)]);
    let last = app.events().await?.last().map(|entry| entry.entry_id.clone());
    assert_eq!(all["stream_position"].as_str(), last.as_deref());
    let line = &all["tickets"][0]["lines"][0];
    assert_eq!(
        (&line["line"], &line["name"], &line["station"], &line["done"]),
        (&json!(1), &json!("Steak"), &json!("grill"), &json!(false))
    );
    for field in ["order_id", "status", "ready_by", "reject_reason", "overdue", "version", "created_at", "updated_at"] {
        assert!(all["tickets"][0].get(field).is_some(), "{field}");
    }
    assert_eq!(ids(&app.get_json("/api/v1/tickets?station=cold").await?), [id(&second)]);
    assert_eq!(ids(&app.get_json("/api/v1/tickets?status=awaiting_acceptance").await?), [id(&second)]);
    assert_eq!(app.get_json("/api/v1/tickets?status=cancelled").await?["tickets"].as_array().map(Vec::len), Some(1));
    assert_eq!(ids(&app.get_json("/api/v1/tickets?limit=1&offset=1").await?), [id(&second)]);
    let bad = app.get("/api/v1/tickets?status=cooking").await?;
    assert_eq!(bad.status(), 422);
    assert_eq!(bad.json::<Value>().await?["field"], "status");
    assert_eq!(app.get("/api/v1/tickets?limit=0").await?.status(), 422);
    Ok(())
}

#[tokio::test]
async fn every_route_needs_a_staff_token_with_kitchen_operate() -> TestResult {
    let app = spawn_app().await?;
    let ticket = app.ticket(OrderId::new(), &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", id(&ticket));
    let menus_only = app.with_token(&testkit::auth::TestKeys::shared()?.token(&["menus:write"])?)?;
    let anonymous = app.anonymous();
    let gets = ["/api/v1/tickets".to_owned(), path.clone(), "/api/v1/tickets/feed".to_owned()];
    let posts = ["accept", "reject", "start", "lines/1/done", "lines/1/recall", "ready", "pick-up"]
        .map(|step| format!("{path}/{step}"));
    for (client, expected) in [(&anonymous, 401), (&menus_only, 403)] {
        for route in &gets {
            let response = client.get(route).await?;
            assert_eq!(response.status(), expected, "GET {route}");
            assert_eq!(response.headers()["content-type"], "application/problem+json");
        }
        for route in &posts {
            assert_eq!(client.post(route, &json!({})).await?.status(), expected, "POST {route}");
        }
    }
    let unchanged = app.get_json(&path).await?;
    assert_eq!(unchanged["version"], 2);
    Ok(())
}
