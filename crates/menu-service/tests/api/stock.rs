//! The menu follows the stock: `MenuItemSoldOut` and `MenuItemBackInStock`
//! on `inventory-events` make an item unavailable and available again, as a
//! fact of its own beside the staff's switch.

use crate::helpers::*;
use events::{DomainEvent, EncodedEvent, InventoryEvent, Metadata};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::stream::Entry;
use uuid::Uuid;

impl TestApp {
    /// Appends `event` to this app's `inventory-events`, as the inventory's relay would.
    async fn publish_inventory(&self, event: &DomainEvent<InventoryEvent>) -> TestResult {
        let stream = format!("{}inventory-events", self.settings.stream_prefix);
        testkit::stream::append(&stream, &EncodedEvent::encode(event)?.into_fields()).await?;
        Ok(())
    }

    /// The item `index` of `menu` as the API shows it.
    async fn item(&self, menu: &str, index: usize) -> anyhow::Result<Value> {
        Ok(self.get_json(&format!("/api/v1/menus/{menu}")).await?["items"][index].clone())
    }

    /// Waits until the item's `(available, switched_on, in_stock)` are these.
    async fn item_becomes(&self, menu: &str, index: usize, facts: (bool, bool, bool)) -> TestResult {
        let wanted = json!([facts.0, facts.1, facts.2]);
        testkit::eventually(Duration::from_secs(5), &format!("item facts {wanted}"), || async {
            let item = self.item(menu, index).await?;
            Ok(json!([item["available"], item["switched_on"], item["in_stock"]]) == wanted)
        })
        .await
    }

    /// The entries on `menu-events` after the first `skip`, waiting for `count` in all.
    async fn entries_after(&self, skip: usize, count: usize) -> anyhow::Result<Vec<Entry>> {
        Ok(self.entries(skip + count).await?.into_iter().skip(skip).collect())
    }
}

fn stock_event(item: Uuid, version: i64, in_stock: bool) -> DomainEvent<InventoryEvent> {
    let payload = if in_stock {
        InventoryEvent::MenuItemBackInStock { menu_item_id: item.into(), portions_left: 3 }
    } else {
        InventoryEvent::MenuItemSoldOut { menu_item_id: item.into() }
    };
    DomainEvent::new(item, version, payload, Metadata::new("inventory-service", "req-stock"))
}

/// The lunch menu, created and activated: its id and its risotto's id.
async fn lunch_served(app: &TestApp) -> anyhow::Result<(String, Uuid)> {
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(app.post(&format!("/api/v1/menus/{id}/activate"), &json!({})).await?.status(), 200);
    let risotto: Uuid = menu["items"][1]["id"].as_str().unwrap_or_default().parse()?;
    Ok((id, risotto))
}

#[tokio::test]
async fn a_sold_out_item_is_unavailable_until_it_is_back_in_stock_and_each_change_is_published_with_its_cause()
-> TestResult {
    let app = spawn_app().await?;
    let (menu, risotto) = lunch_served(&app).await?;

    let sold_out = stock_event(risotto, 1, false);
    app.publish_inventory(&sold_out).await?;
    app.item_becomes(&menu, 1, (false, true, false)).await?;
    let entries = app.entries_after(2, 1).await?;
    assert_eq!(entries[0].event_type, "ItemAvailabilityChanged");
    assert_eq!(entries[0].data, json!({"item_id": risotto, "available": false, "cause": "stock"}));
    assert_eq!(entries[0].metadata["causation_id"], sold_out.id.to_string());
    assert_eq!(entries[0].metadata["correlation_id"], "req-stock");
    assert_eq!(entries[0].metadata["source"], "menu-service");

    app.publish_inventory(&stock_event(risotto, 2, true)).await?;
    app.item_becomes(&menu, 1, (true, true, true)).await?;
    let entries = app.entries_after(3, 1).await?;
    assert_eq!(entries[0].data, json!({"item_id": risotto, "available": true, "cause": "stock"}));
    assert_eq!(app.item(&menu, 0).await?["available"], true, "the other item is untouched");
    Ok(())
}

#[tokio::test]
async fn staff_switching_a_sold_out_item_on_does_not_make_it_orderable() -> TestResult {
    let app = spawn_app().await?;
    let (menu, risotto) = lunch_served(&app).await?;
    let switch = |on: bool| {
        let app = &app;
        let path = format!("/api/v1/menus/{menu}/items/{risotto}/availability");
        async move { app.patch(&path, &json!({"available": on})).await }
    };
    assert_eq!(switch(false).await?.status(), 200);
    app.publish_inventory(&stock_event(risotto, 1, false)).await?;
    app.item_becomes(&menu, 1, (false, false, false)).await?;

    let switched_on: Value = switch(true).await?.json().await?;
    assert_eq!(switched_on["items"][1]["available"], false, "sold out, whatever the switch says");
    assert_eq!(switched_on["items"][1]["switched_on"], true);
    // Off by staff (ItemAvailabilityChanged), sold out while off and switched
    // on while sold out (two MenuItemUpdated): guests saw no change in either.
    let entries = app.entries_after(2, 3).await?;
    let types: Vec<&str> = entries.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(types, ["ItemAvailabilityChanged", "MenuItemUpdated", "MenuItemUpdated"]);
    assert_eq!(entries[0].data["cause"], "staff");
    assert_eq!(entries[2].data["item"]["in_stock"], false);
    assert_eq!(entries[2].data["item"]["available"], false);

    app.publish_inventory(&stock_event(risotto, 2, true)).await?;
    app.item_becomes(&menu, 1, (true, true, true)).await?;
    let entries = app.entries_after(5, 1).await?;
    assert_eq!(entries[0].data, json!({"item_id": risotto, "available": true, "cause": "stock"}));
    Ok(())
}

#[tokio::test]
async fn a_stock_event_delivered_twice_or_late_changes_nothing_more() -> TestResult {
    let app = spawn_app().await?;
    let (menu, risotto) = lunch_served(&app).await?;
    let sold_out = stock_event(risotto, 3, false);
    app.publish_inventory(&sold_out).await?;
    app.publish_inventory(&sold_out).await?;
    // Older than the one applied: an out-of-order delivery.
    app.publish_inventory(&stock_event(risotto, 2, true)).await?;
    // An item no menu has, and an inventory event the menu does not follow.
    app.publish_inventory(&stock_event(Uuid::now_v7(), 1, false)).await?;
    let marker = stock_event(risotto, 4, true);
    app.publish_inventory(&marker).await?;
    app.item_becomes(&menu, 1, (true, true, true)).await?;

    let entries = app.entries_after(2, 2).await?;
    let changes: Vec<&Value> = entries.iter().map(|entry| &entry.data["available"]).collect();
    assert_eq!(changes, [&json!(false), &json!(true)], "{entries:?}");
    // The marker came after the others of its item, which were handled first.
    assert_eq!(app.entries(4).await?.len(), 4, "nothing else was published");
    Ok(())
}
