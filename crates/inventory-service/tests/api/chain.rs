//! The menu follows the stock, through the real services: waste that leaves
//! no portion of an item sells it out, the menu service makes it
//! unavailable, and the reservation that pre-ordered it shows the problem; a
//! receipt brings it back and clears the problem.

use crate::helpers::*;
use events::{MenuItemId, OrderId};
use serde_json::{Value, json};
use service_kit::Settings;
use std::time::Duration;
use testkit::{Running, TestDb};

const WAIT: Duration = Duration::from_secs(10);

/// The menu, reservation and inventory services on one set of streams.
struct Platform {
    menus: Running,
    reservations: Running,
    inventory: TestApp,
    _dbs: [TestDb; 2],
}

async fn spawn_platform() -> anyhow::Result<Platform> {
    let inventory = spawn_app().await?;
    let on_streams =
        |db: &TestDb| Settings { stream_prefix: inventory.settings.stream_prefix.clone(), ..test_settings(db) };
    let (menu_db, reservation_db) = (TestDb::new().await?, TestDb::new().await?);
    let menu = menu_service::build(&on_streams(&menu_db)).await?;
    let menus = Running::spawn(menu.port()?, |cancel| menu.run_until_stopped(cancel)).as_staff()?;
    let booking = reservation_service::BookingSettings::default();
    let reservation = reservation_service::build(&on_streams(&reservation_db), &booking).await?;
    let reservations =
        Running::spawn(reservation.port()?, |cancel| reservation.run_until_stopped(cancel)).as_staff()?;
    Ok(Platform { menus, reservations, inventory, _dbs: [menu_db, reservation_db] })
}

fn tomorrow_evening() -> chrono::DateTime<chrono::Utc> {
    use chrono::DurationRound;
    let day = chrono::TimeDelta::days(1);
    (chrono::Utc::now() + day).duration_trunc(day).unwrap_or_else(|_| chrono::Utc::now() + day)
        + chrono::TimeDelta::hours(19)
}

#[tokio::test]
async fn waste_to_zero_sells_the_item_out_on_the_menu_flags_the_pre_order_and_a_receipt_clears_both() -> TestResult {
    let Platform { menus, reservations, inventory, .. } = spawn_platform().await?;
    let lunch = json!({"name": "Lunch", "items": [
        {"name": "Risotto", "category": "main", "price_cents": 1450, "currency": "EUR"},
        {"name": "Soup", "category": "starter", "price_cents": 650, "currency": "EUR"}
    ]});
    let menu: Value = menus.post("/api/v1/menus", &lunch).await?.json().await?;
    let menu_id = text(&menu["id"]);
    assert_eq!(menus.post(&format!("/api/v1/menus/{menu_id}/activate"), &json!({})).await?.status(), 200);
    let risotto: MenuItemId = serde_json::from_value(menu["items"][0]["id"].clone())?;

    let rice = inventory.ingredient("Rice", "g", 0).await?;
    inventory.receive(&rice["id"], 300).await?;
    testkit::eventually(WAIT, "the inventory learns the menu", || async {
        Ok(inventory
            .put(
                &format!("/api/v1/recipes/{risotto}"),
                &json!({"lines": [{"ingredient_id": rice["id"], "quantity": 100}]}),
            )
            .await?
            .status()
            == 200)
    })
    .await?;
    assert_eq!(inventory.portions_left(risotto).await?, 3);

    let mut booking = json!({"guest_name": "Ada", "guest_email": "ada@example.com", "party_size": 2, "starts_at": tomorrow_evening()});
    booking["pre_order"] = json!([{"menu_item_id": risotto, "quantity": 1}]);
    let reservation = std::cell::RefCell::new(Value::Null);
    testkit::eventually(WAIT, "the pre-order is accepted", || async {
        let response = reservations.post("/api/v1/reservations", &booking).await?;
        if response.status() == 201 {
            reservation.replace(response.json::<Value>().await?);
        }
        Ok(!reservation.borrow().is_null())
    })
    .await?;
    let reservation_path = format!("/api/v1/reservations/{}", text(&reservation.into_inner()["id"]));

    let order = OrderId::new();
    inventory.command(&reserve(order, &[(risotto, 2)])).await?;
    assert_eq!(inventory.answers(order, 1).await?[0].event_type, "StockReserved");
    let rice_id = text(&rice["id"]);
    let wasted = inventory
        .post(&format!("/api/v1/ingredients/{rice_id}/waste"), &json!({"quantity": 100, "reason": "burnt"}))
        .await?;
    assert_eq!(wasted.status(), 200);
    assert_eq!(inventory.portions_left(risotto).await?, 0);

    let item = |menu: Value| menu["items"][0].clone();
    testkit::eventually(WAIT, "the menu shows it sold out", || async {
        Ok(item(menus.get_json(&format!("/api/v1/menus/{menu_id}")).await?)["available"] == false)
    })
    .await?;
    let sold_out = item(menus.get_json(&format!("/api/v1/menus/{menu_id}")).await?);
    assert_eq!((sold_out["switched_on"].as_bool(), sold_out["in_stock"].as_bool()), (Some(true), Some(false)));
    testkit::eventually(WAIT, "the reservation shows the problem", || async {
        Ok(reservations.get_json(&reservation_path).await?["problems"].as_array().is_some_and(|p| p.len() == 1))
    })
    .await?;
    let problems = reservations.get_json(&reservation_path).await?["problems"].clone();
    assert_eq!(problems[0]["menu_item_id"], risotto.to_string());

    inventory.receive(&rice["id"], 100).await?;
    testkit::eventually(WAIT, "the menu has it again", || async {
        Ok(item(menus.get_json(&format!("/api/v1/menus/{menu_id}")).await?)["available"] == true)
    })
    .await?;
    testkit::eventually(WAIT, "the problem clears", || async {
        Ok(reservations.get_json(&reservation_path).await?["problems"].as_array().is_some_and(Vec::is_empty))
    })
    .await?;
    Ok(())
}
