//! `kitchen-commands` as the order saga sends them: each answered on
//! `kitchen-events` with the order id, once per command however often it is
//! delivered, and a cancellation that may run blind.

use crate::helpers::*;
use events::{KitchenCommand, MenuItemId, OrderId};
use serde_json::json;

#[tokio::test]
async fn a_ticket_is_created_with_the_names_and_stations_of_the_menu_and_unknown_items_taken_all_the_same() -> TestResult
{
    let app = spawn_app().await?;
    let [steak, cake] = app.menu_with(&[("Steak frites", "Mains"), ("Cheesecake", "dessert")]).await?[..] else {
        anyhow::bail!("two items")
    };
    let mystery = MenuItemId::new();
    let order = OrderId::new();
    let sent = create(order, &[steak, cake, mystery]);
    app.command(&sent).await?;
    let answers = app.answers(order, 1).await?;
    let created = &answers[0];
    assert_eq!(created.event_type, "TicketCreated");
    assert_eq!(created.metadata["causation_id"], sent.id.to_string());
    assert_eq!(created.metadata["correlation_id"], format!("req-{order}"));
    let lines = &created.data["lines"];
    assert_eq!(
        (&lines[0]["name"], &lines[0]["station"], &lines[0]["known"]),
        (&json!("Steak frites"), &json!("grill"), &json!(true))
    );
    assert_eq!((&lines[1]["name"], &lines[1]["station"]), (&json!("Cheesecake"), &json!("cold")));
    assert_eq!(
        (&lines[2]["name"], &lines[2]["station"], &lines[2]["known"]),
        (&json!(null), &json!("pass"), &json!(false))
    );
    let ticket = app.get_json(&format!("/api/v1/tickets/{}", created.aggregate_id)).await?;
    assert_eq!((&ticket["status"], &ticket["order_id"]), (&json!("pending"), &json!(order)));
    Ok(())
}

#[tokio::test]
async fn a_command_delivered_twice_has_one_effect_and_a_repeated_create_is_answered_again() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let sent = create(order, &[MenuItemId::new()]);
    app.command(&sent).await?;
    app.command(&sent).await?;
    let retry = create(order, &[MenuItemId::new(), MenuItemId::new()]);
    app.command(&retry).await?;
    let answers = app.answers(order, 2).await?;
    assert_eq!(answers.len(), 2, "the redelivery is not answered: {answers:?}");
    assert!(answers.iter().all(|answer| answer.event_type == "TicketCreated"));
    assert_eq!(answers[0].aggregate_id, answers[1].aggregate_id, "the same ticket");
    assert_eq!(answers[1].data, answers[0].data, "answered as it was created");
    assert_eq!(answers[1].metadata["causation_id"], retry.id.to_string());
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.db.pool)
        .await?;
    assert_eq!(tickets, 1);
    Ok(())
}

#[tokio::test]
async fn a_confirmation_puts_the_ticket_before_the_kitchen_and_a_repeat_is_answered_the_same() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], true).await?;
    assert_eq!((&ticket["status"], &ticket["version"]), (&json!("awaiting_acceptance"), &json!(2)));
    app.command(&command(order, KitchenCommand::ConfirmTicket { order_id: order })).await?;
    let answers = app.answers(order, 3).await?;
    assert_eq!(
        answers.iter().map(|answer| answer.event_type.as_str()).collect::<Vec<_>>(),
        ["TicketCreated", "TicketConfirmed", "TicketConfirmed"]
    );
    let again = app.get_json(&format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap_or_default())).await?;
    assert_eq!(again["version"], 2, "nothing changed");
    Ok(())
}

#[tokio::test]
async fn a_cancellation_of_an_order_without_a_ticket_is_answered_cancelled() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    app.command(&command(order, KitchenCommand::CancelTicket { order_id: order })).await?;
    let answers = app.answers(order, 1).await?;
    assert_eq!(answers[0].event_type, "TicketCancelled");
    assert_eq!(answers[0].data["order_id"], order.to_string());
    Ok(())
}

#[tokio::test]
async fn a_pending_ticket_is_cancelled_once_and_a_confirmation_after_it_is_answered_cancelled() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], false).await?;
    app.command(&command(order, KitchenCommand::CancelTicket { order_id: order })).await?;
    app.command(&command(order, KitchenCommand::CancelTicket { order_id: order })).await?;
    app.command(&command(order, KitchenCommand::ConfirmTicket { order_id: order })).await?;
    let answers = app.answers(order, 4).await?;
    assert_eq!(
        answers.iter().map(|answer| answer.event_type.as_str()).collect::<Vec<_>>(),
        ["TicketCreated", "TicketCancelled", "TicketCancelled", "TicketCancelled"]
    );
    let now = app.get_json(&format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap_or_default())).await?;
    assert_eq!((&now["status"], &now["version"]), (&json!("cancelled"), &json!(2)));
    Ok(())
}

#[tokio::test]
async fn a_cancellation_once_cooking_began_is_refused_with_the_status_and_changes_nothing() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap_or_default());
    let ready_by = chrono::Utc::now() + chrono::TimeDelta::minutes(20);
    assert_eq!(app.act(&format!("{path}/accept"), &json!({"ready_by": ready_by}), "req-a").await?.0, 200);
    assert_eq!(app.act(&format!("{path}/start"), &serde_json::Value::Null, "req-s").await?.0, 200);
    let before = app.get_json(&path).await?;
    app.command(&command(order, KitchenCommand::CancelTicket { order_id: order })).await?;
    let answers = app.answers(order, 5).await?;
    assert_eq!(answers[4].event_type, "TicketCancellationRefused");
    assert_eq!(answers[4].data["status"], "preparing");
    let after = app.get_json(&path).await?;
    assert_eq!((&after["status"], &after["version"]), (&json!("preparing"), &before["version"]));
    Ok(())
}

#[tokio::test]
async fn commands_about_a_rejected_ticket_are_answered_with_the_rejection() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}/reject", ticket["id"].as_str().unwrap_or_default());
    let (code, rejected) = app.act(&path, &json!({"reason": "no gas"}), "req-r").await?;
    assert_eq!(code, 200, "{rejected}");
    app.command(&command(order, KitchenCommand::CancelTicket { order_id: order })).await?;
    app.command(&command(order, KitchenCommand::ConfirmTicket { order_id: order })).await?;
    let answers = app.answers(order, 5).await?;
    for answer in &answers[2..] {
        assert_eq!((answer.event_type.as_str(), &answer.data["reason"]), ("TicketRejected", &json!("no gas")));
    }
    Ok(())
}

#[tokio::test]
async fn a_confirmation_for_an_order_without_a_ticket_is_not_answered_and_blocks_nothing() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    app.command(&command(order, KitchenCommand::ConfirmTicket { order_id: order })).await?;
    app.command(&command(order, KitchenCommand::CancelTicket { order_id: order })).await?;
    let answers = app.answers(order, 1).await?;
    assert_eq!(answers.iter().map(|answer| answer.event_type.as_str()).collect::<Vec<_>>(), ["TicketCancelled"]);
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets").fetch_one(&app.db.pool).await?;
    assert_eq!(tickets, 0);
    Ok(())
}
