//! `inventory-commands` as the order saga sends them: each answered on
//! `inventory-events` with the order id, once per command however often it
//! is delivered, and compensations that may run blind.

use crate::helpers::*;
use chrono::{TimeDelta, Utc};
use events::{InventoryCommand, MenuItemId, OrderId};
use serde_json::{Value, json};

/// A service with one tracked item, "Risotto", stocked for `portions`
/// (100 g of rice and 1 egg a portion); returns the item and the rice.
async fn stocked(portions: i64) -> anyhow::Result<(TestApp, MenuItemId, Value, Value)> {
    let app = spawn_app().await?;
    let [risotto] = app.menu_with(&["Risotto"]).await?[..] else { anyhow::bail!("one item") };
    let rice = app.ingredient("Rice", "g", 0).await?;
    let eggs = app.ingredient("Eggs", "piece", 0).await?;
    app.receive(&rice["id"], 100 * portions).await?;
    app.receive(&eggs["id"], portions + 5).await?;
    app.recipe(risotto, &[(&rice["id"], 100), (&eggs["id"], 1)]).await?;
    Ok((app, risotto, rice, eggs))
}

async fn ingredient(app: &TestApp, id: &Value) -> anyhow::Result<Value> {
    app.get_json(&format!("/api/v1/ingredients/{}", text(id))).await
}

#[tokio::test]
async fn a_reservation_holds_every_line_and_is_answered_with_the_order_id_and_the_request_id() -> TestResult {
    let (app, risotto, rice, eggs) = stocked(5).await?;
    let untracked = MenuItemId::new();
    let order = OrderId::new();
    let sent = reserve(order, &[(risotto, 2), (untracked, 1)]);
    app.command(&sent).await?;
    let answers = app.answers(order, 1).await?;
    assert_eq!(answers[0].event_type, "StockReserved");
    assert_eq!(answers[0].data["order_id"], order.to_string());
    assert_eq!(answers[0].metadata["causation_id"], sent.id.to_string());
    assert_eq!(answers[0].metadata["correlation_id"], format!("req-{order}"));
    assert_eq!(ingredient(&app, &rice["id"]).await?["reserved"], 200);
    assert_eq!(ingredient(&app, &eggs["id"]).await?["reserved"], 2);
    assert_eq!(app.portions_left(risotto).await?, 3);
    let ledger = app.get_json(&format!("/api/v1/ingredients/{}/movements", text(&rice["id"]))).await?;
    let reserved = &ledger["movements"][1];
    assert_eq!((reserved["kind"].as_str(), reserved["quantity"].as_i64()), (Some("reserved"), Some(200)));
    assert_eq!(reserved["order_id"], order.to_string());
    assert_eq!(reserved["actor"], "order-service");
    Ok(())
}

#[tokio::test]
async fn a_reservation_beyond_the_stock_holds_nothing_and_names_each_shortage() -> TestResult {
    let (app, risotto, rice, _) = stocked(3).await?;
    let [soup] = app.menu_with(&["Soup"]).await?[..] else { anyhow::bail!("one item") };
    app.recipe(soup, &[(&rice["id"], 50)]).await?;
    let order = OrderId::new();
    app.command(&reserve(order, &[(risotto, 4), (soup, 1)])).await?;
    let answers = app.answers(order, 1).await?;
    assert_eq!(answers[0].event_type, "StockReservationRejected");
    // Both lines use the rice the order as a whole is short of; each says
    // how many portions the stock allows of it alone.
    let shortages = json!([
        {"menu_item_id": risotto, "requested": 4, "available": 3},
        {"menu_item_id": soup, "requested": 1, "available": 6},
    ]);
    assert_eq!(answers[0].data["shortages"], shortages);
    assert_eq!(ingredient(&app, &rice["id"]).await?["reserved"], 0, "nothing held");
    Ok(())
}

#[tokio::test]
async fn a_command_delivered_twice_has_one_effect_and_a_retry_gets_the_same_answer() -> TestResult {
    let (app, risotto, rice, _) = stocked(5).await?;
    let order = OrderId::new();
    let sent = reserve(order, &[(risotto, 2)]);
    app.command(&sent).await?;
    app.command(&sent).await?;
    // The saga's retry after a lost answer: a new command, the same order.
    let retry = reserve(order, &[(risotto, 2)]);
    app.command(&retry).await?;
    let answers = app.answers(order, 2).await?;
    assert!(answers.iter().all(|answer| answer.event_type == "StockReserved"), "{answers:?}");
    assert_eq!(answers[0].data, answers[1].data);
    let causes: Vec<String> =
        answers.iter().map(|a| a.metadata["causation_id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(causes, [sent.id.to_string(), retry.id.to_string()], "the duplicate delivery was not answered");
    assert_eq!(ingredient(&app, &rice["id"]).await?["reserved"], 200, "held once");
    Ok(())
}

#[tokio::test]
async fn commit_uses_the_stock_and_release_frees_it_each_once_and_both_may_run_blind() -> TestResult {
    let (app, risotto, rice, _) = stocked(5).await?;
    let (eaten, cancelled, never) = (OrderId::new(), OrderId::new(), OrderId::new());
    app.command(&reserve(eaten, &[(risotto, 1)])).await?;
    app.command(&reserve(cancelled, &[(risotto, 2)])).await?;
    app.answers(eaten, 1).await?;
    app.answers(cancelled, 1).await?;

    for _ in 0..2 {
        app.command(&command(eaten, InventoryCommand::CommitStock { order_id: eaten })).await?;
        app.command(&command(cancelled, InventoryCommand::ReleaseStock { order_id: cancelled })).await?;
    }
    app.command(&command(never, InventoryCommand::ReleaseStock { order_id: never })).await?;
    app.command(&command(never, InventoryCommand::CommitStock { order_id: never })).await?;

    let types = |answers: Vec<testkit::stream::Entry>| answers.into_iter().map(|a| a.event_type).collect::<Vec<_>>();
    assert_eq!(types(app.answers(eaten, 3).await?), ["StockReserved", "StockCommitted", "StockCommitted"]);
    assert_eq!(types(app.answers(cancelled, 3).await?), ["StockReserved", "StockReleased", "StockReleased"]);
    assert_eq!(types(app.answers(never, 2).await?), ["StockReleased", "StockCommitted"]);
    let rice = ingredient(&app, &rice["id"]).await?;
    assert_eq!((rice["on_hand"].as_i64(), rice["reserved"].as_i64()), (Some(400), Some(0)));
    // Releasing what was committed changes nothing and says how it is.
    app.command(&command(eaten, InventoryCommand::ReleaseStock { order_id: eaten })).await?;
    assert_eq!(app.answers(eaten, 4).await?[3].event_type, "StockCommitted");
    Ok(())
}

#[tokio::test]
async fn a_hold_nobody_decides_on_expires_and_frees_its_stock() -> TestResult {
    let (app, risotto, rice, _) = stocked(2).await?;
    let order = OrderId::new();
    app.command(&reserve(order, &[(risotto, 2)])).await?;
    let held = app.answers(order, 1).await?;
    let expires_at: chrono::DateTime<Utc> = serde_json::from_value(held[0].data["expires_at"].clone())?;
    let minutes = (expires_at - Utc::now()).num_minutes();
    assert!((14..=15).contains(&minutes), "held for the default 15 minutes, not {minutes}");
    assert_eq!(app.portions_left(risotto).await?, 0);

    // The clock of the sweep is the test's: a minute before, nothing lapses.
    let outbox = events::Outbox::new(app.settings.streams(), events::RelayWaker::default());
    let sweep = inventory_service::expiry::Sweep::new(app.db.pool.clone(), outbox);
    assert_eq!(sweep.expire_due(expires_at - TimeDelta::minutes(1)).await?, 0);
    assert_eq!(sweep.expire_due(expires_at + TimeDelta::seconds(1)).await?, 1);
    assert_eq!(sweep.expire_due(expires_at + TimeDelta::minutes(5)).await?, 0, "once");

    let answers = app.answers(order, 2).await?;
    assert_eq!(answers[1].event_type, "StockReservationExpired");
    assert_eq!(ingredient(&app, &rice["id"]).await?["reserved"], 0);
    assert_eq!(app.portions_left(risotto).await?, 2);
    let back = app.events(0).await?.into_iter().rev().find(|e| e.aggregate_id == risotto.to_string());
    assert_eq!(back.map(|e| e.event_type), Some("MenuItemBackInStock".to_owned()));
    // Committing an expired hold is answered with the hold as it is.
    app.command(&command(order, InventoryCommand::CommitStock { order_id: order })).await?;
    assert_eq!(app.answers(order, 3).await?[2].event_type, "StockReservationExpired");
    Ok(())
}
