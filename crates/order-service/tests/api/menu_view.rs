//! The menu view: every field takes its value from the newest event that
//! set it, whatever order the events arrive in, and orders are priced from it.

use crate::helpers::*;
use events::MenuEvent;
use serde_json::json;

#[tokio::test]
async fn older_events_arriving_late_change_nothing_and_new_prices_apply_to_new_orders_only() -> TestResult {
    let app = spawn_app().await?;
    let item = menu_item("Soup", 650, "EUR");
    let menu = app.active_menu(std::slice::from_ref(&item)).await?;
    let first = app.place(&takeaway(&[line(item.id, 1)])).await?;
    let dearer = menu_item("Soup of the day", 700, "EUR");
    let dearer = events::menu::MenuItem { id: item.id, ..dearer };
    app.publish(menu, 5, MenuEvent::MenuItemUpdated { item: dearer }).await?;
    // Late: an older update (version 3) and an older deactivation (version 4).
    app.publish(
        menu,
        3,
        MenuEvent::MenuItemUpdated { item: events::menu::MenuItem { available: false, ..item.clone() } },
    )
    .await?;
    app.publish(menu, 4, MenuEvent::MenuDeactivated {}).await?;
    app.until_view(
        "the newest price",
        &format!(
            "SELECT price_cents = 700 AND name = 'Soup of the day' FROM menu_items_seen WHERE item_id = '{}'",
            item.id
        ),
    )
    .await?;
    app.until_view(
        "the late events applied",
        &format!("SELECT count(*) = 0 FROM menus_seen WHERE menu_id = '{menu}' AND status_version < 4"),
    )
    .await?;
    let (status, _, problem) = app.post_as(&app.api, "/api/v1/orders", &takeaway(&[line(item.id, 1)])).await?;
    assert_eq!(status, 422, "the deactivation (version 4) is newer than the activation (2): {problem}");
    app.publish(menu, 6, MenuEvent::MenuActivated { name: "Dinner".to_owned(), items: vec![] }).await?;
    app.until_view("reactivated", &format!("SELECT active FROM menus_seen WHERE menu_id = '{menu}'")).await?;
    let second = app.place(&takeaway(&[line(item.id, 2)])).await?;
    assert_eq!(
        (second["lines"][0]["name"].clone(), second["total_cents"].clone()),
        (json!("Soup of the day"), json!(1400))
    );
    assert!(second["lines"][0]["unit_price_cents"] == 700, "the version-3 update (available: false) was older");
    let kept = app.get_json(&format!("/api/v1/orders/{}", id(&first))).await?;
    assert_eq!((kept["lines"][0]["unit_price_cents"].clone(), kept["total_cents"].clone()), (json!(650), json!(650)));
    Ok(())
}
