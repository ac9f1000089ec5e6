//! The reservation service's view of the menus, built from `menu-events`:
//! pre-orders are checked against it, and menu changes flag and clear
//! problems on upcoming reservations.

use crate::helpers::{TestApp, TestResult, booking, eventually, menu_event, spawn_app, spawn_platform, tomorrow_at};
use events::MenuEvent;
use events::menu::MenuItem;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

fn lunch() -> Value {
    json!({
        "name": "Lunch",
        "items": [
            {"name": "Tomato soup", "category": "starter", "price_cents": 650, "currency": "EUR"},
            {"name": "Risotto", "category": "main", "price_cents": 1450, "currency": "EUR"}
        ]
    })
}

fn with_pre_order(items: &[(Uuid, u32)]) -> Value {
    let mut body = booking(2, tomorrow_at(19));
    body["pre_order"] = items.iter().map(|(id, quantity)| json!({"menu_item_id": id, "quantity": quantity})).collect();
    body
}

async fn problems(app: &TestApp, reservation: &str) -> anyhow::Result<Vec<Value>> {
    let body = app.get_json(&format!("/api/v1/reservations/{reservation}")).await?;
    Ok(body["problems"].as_array().cloned().unwrap_or_default())
}

async fn item_known(app: &TestApp, item: Uuid, available: bool) -> anyhow::Result<bool> {
    let row: Option<bool> = sqlx::query_scalar(
        "SELECT i.available AND m.active FROM menu_items_seen i JOIN menus_seen m USING (menu_id) WHERE item_id = $1",
    )
    .bind(item)
    .fetch_optional(&app.db.pool)
    .await?;
    Ok(row == Some(available))
}

async fn pending_in_group(app: &TestApp) -> anyhow::Result<i64> {
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(app.stream("menu-events"))
        .arg("reservation-service")
        .query_async(&mut connection)
        .await?;
    match summary {
        redis::Value::Array(fields) => {
            Ok(redis::from_redis_value(fields.first().cloned().unwrap_or(redis::Value::Nil))?)
        }
        other => anyhow::bail!("unexpected XPENDING reply {other:?}"),
    }
}

#[tokio::test]
async fn menu_changes_flag_and_clear_problems_on_upcoming_reservations() -> TestResult {
    let platform = spawn_platform().await?;
    let (menus, app) = (&platform.menus, &platform.reservations);
    let created = menus.post("/api/v1/menus", &lunch()).await?;
    anyhow::ensure!(created.status() == 201, "menu create answered {}", created.status());
    let menu: Value = created.json().await?;
    let menu_id = menu["id"].as_str().unwrap_or_default().to_owned();
    let soup: Uuid = serde_json::from_value(menu["items"][0]["id"].clone())?;
    let risotto: Uuid = serde_json::from_value(menu["items"][1]["id"].clone())?;

    eventually(WAIT, "the draft menu reaches the view", || item_known(app, soup, false)).await?;
    let draft = app.post("/api/v1/reservations", &with_pre_order(&[(risotto, 1), (soup, 2)])).await?;
    assert_eq!(draft.status(), 422, "items of a draft menu cannot be pre-ordered");
    let problem: Value = draft.json().await?;
    assert_eq!(problem["field"], "pre_order[0].menu_item_id");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("not on an active menu"), "{problem}");

    menus.client.post(menus.url(&format!("/api/v1/menus/{menu_id}/activate"))).send().await?;
    eventually(WAIT, "the activation reaches the view", || item_known(app, soup, true)).await?;
    let reservation = app.book(&with_pre_order(&[(soup, 2), (risotto, 1)])).await?;
    let reservation = reservation["id"].as_str().unwrap_or_default().to_owned();

    let availability = format!("/api/v1/menus/{menu_id}/items/{soup}/availability");
    menus.patch(&availability, &json!({"available": false})).await?;
    eventually(WAIT, "the reservation is flagged", || async { Ok(!problems(app, &reservation).await?.is_empty()) })
        .await?;
    let flagged = problems(app, &reservation).await?;
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0]["menu_item_id"], json!(soup));
    assert_eq!(flagged[0]["reason"], "\"Tomato soup\" is no longer available");
    assert!(flagged[0]["detected_at"].is_string());

    let refused = app.post("/api/v1/reservations", &with_pre_order(&[(soup, 1)])).await?;
    assert_eq!(refused.status(), 422, "an unavailable item cannot be pre-ordered");

    menus.patch(&availability, &json!({"available": true})).await?;
    eventually(WAIT, "the problem clears", || async { Ok(problems(app, &reservation).await?.is_empty()) }).await?;

    menus.client.post(menus.url(&format!("/api/v1/menus/{menu_id}/deactivate"))).send().await?;
    eventually(WAIT, "deactivation flags both items", || async { Ok(problems(app, &reservation).await?.len() == 2) })
        .await?;
    let reasons: Vec<Value> = problems(app, &reservation).await?.into_iter().map(|p| p["reason"].clone()).collect();
    assert!(reasons.contains(&json!("\"Risotto\" is no longer on an active menu")), "{reasons:?}");

    menus.client.post(menus.url(&format!("/api/v1/menus/{menu_id}/activate"))).send().await?;
    eventually(WAIT, "reactivation clears them", || async { Ok(problems(app, &reservation).await?.is_empty()) })
        .await?;
    eventually(WAIT, "nothing is left pending in the group", || async { Ok(pending_in_group(app).await? == 0) })
        .await?;
    Ok(())
}

pub(crate) fn item(id: Uuid, name: &str, available: bool) -> MenuItem {
    MenuItem {
        id: id.into(),
        name: name.to_owned(),
        description: None,
        category: "main".to_owned(),
        price_cents: 1200,
        currency: "EUR".to_owned(),
        available,
        switched_on: available,
        in_stock: true,
    }
}

/// Publishes a menu with one item, active and available, and waits until the view has it.
pub(crate) async fn active_menu(app: &TestApp, menu: Uuid, dish: Uuid) -> anyhow::Result<()> {
    let items = vec![item(dish, "Pie", true)];
    app.publish(&menu_event(
        menu,
        1,
        MenuEvent::MenuCreated { name: "M".into(), description: None, items: items.clone() },
    ))
    .await?;
    app.publish(&menu_event(menu, 2, MenuEvent::MenuActivated { name: "M".into(), items })).await?;
    eventually(WAIT, "the menu is active in the view", || item_known(app, dish, true)).await
}

#[tokio::test]
async fn redelivered_and_out_of_order_events_do_not_corrupt_the_view() -> TestResult {
    let app = spawn_app().await?;
    let (menu, dish) = (Uuid::new_v4(), Uuid::new_v4());
    active_menu(&app, menu, dish).await?;
    let reservation = app.book(&with_pre_order(&[(dish, 1)])).await?;
    let reservation = reservation["id"].as_str().unwrap_or_default().to_owned();

    let unavailable = menu_event(
        menu,
        4,
        MenuEvent::ItemAvailabilityChanged {
            item_id: dish.into(),
            available: false,
            cause: events::menu::AvailabilityCause::Staff,
        },
    );
    let older = menu_event(
        menu,
        3,
        MenuEvent::ItemAvailabilityChanged {
            item_id: dish.into(),
            available: true,
            cause: events::menu::AvailabilityCause::Staff,
        },
    );
    app.publish(&unavailable).await?;
    app.publish(&unavailable).await?;
    app.publish(&older).await?;
    let renamed = menu_event(menu, 5, MenuEvent::MenuItemUpdated { item: item(dish, "Pie of the day", false) });
    app.publish(&renamed).await?;
    let stale_rename = menu_event(menu, 3, MenuEvent::MenuItemUpdated { item: item(dish, "Old pie", true) });
    app.publish(&stale_rename).await?;
    eventually(WAIT, "six distinct events are applied, the duplicate once", || async {
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events").fetch_one(&app.db.pool).await?;
        Ok(applied == 6)
    })
    .await?;
    let flagged = problems(&app, &reservation).await?;
    assert_eq!(flagged.len(), 1, "the older 'available' event must not clear the problem: {flagged:?}");
    assert_eq!(flagged[0]["reason"], "\"Pie of the day\" is no longer available");
    let (name, available): (String, bool) =
        sqlx::query_as("SELECT name, available FROM menu_items_seen WHERE item_id = $1")
            .bind(dish)
            .fetch_one(&app.db.pool)
            .await?;
    assert_eq!((name.as_str(), available), ("Pie of the day", false));

    app.publish(&menu_event(
        menu,
        6,
        MenuEvent::ItemAvailabilityChanged {
            item_id: dish.into(),
            available: true,
            cause: events::menu::AvailabilityCause::Staff,
        },
    ))
    .await?;
    eventually(WAIT, "the newer event clears it", || async { Ok(problems(&app, &reservation).await?.is_empty()) })
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_consumer_survives_a_handler_error_and_a_poison_entry() -> TestResult {
    let app = spawn_app().await?;
    app.publish_raw(&[("type", "MenuCreated"), ("data", "{not json")]).await?;
    let dead_letters = app.stream("menu-events.dlq");
    eventually(WAIT, "the poison entry is dead-lettered", || async {
        let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
        let length: i64 = redis::cmd("XLEN").arg(&dead_letters).query_async(&mut connection).await?;
        Ok(length == 1)
    })
    .await?;

    sqlx::query("ALTER TABLE menus_seen RENAME TO menus_seen_away").execute(&app.db.pool).await?;
    let (menu, dish) = (Uuid::new_v4(), Uuid::new_v4());
    let items = vec![item(dish, "Pie", true)];
    app.publish(&menu_event(menu, 1, MenuEvent::MenuActivated { name: "M".into(), items })).await?;
    tokio::time::sleep(Duration::from_millis(250)).await;
    sqlx::query("ALTER TABLE menus_seen_away RENAME TO menus_seen").execute(&app.db.pool).await?;

    eventually(WAIT, "the failed event is retried and applied", || item_known(&app, dish, true)).await?;
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    let length: i64 = redis::cmd("XLEN").arg(&dead_letters).query_async(&mut connection).await?;
    assert_eq!(length, 1, "only the poison entry is dead-lettered");
    app.book(&with_pre_order(&[(dish, 3)])).await?;
    Ok(())
}
