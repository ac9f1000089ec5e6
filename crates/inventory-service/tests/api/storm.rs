//! A reserve storm: 200 orders racing for stock for 40 portions, taken by two
//! instances of the service at once. Never more held than there is, every
//! refusal names its shortage, and the books balance.

use crate::helpers::*;
use events::OrderId;
use inventory_service::InventorySettings;
use rand::Rng;
use std::collections::HashMap;
use testkit::Running;

const ORDERS: usize = 200;
const PORTIONS: i64 = 40;

#[tokio::test]
async fn two_hundred_orders_on_two_instances_never_hold_more_than_the_stock_for_forty_portions() -> TestResult {
    let app = spawn_app().await?;
    let second = inventory_service::build(&app.settings, &InventorySettings::default()).await?;
    let _second = Running::spawn(second.port()?, |cancel| second.run_until_stopped(cancel));
    let [pasta] = app.menu_with(&["Pasta"]).await?[..] else { anyhow::bail!("one item") };
    let flour = app.ingredient("Flour", "g", 0).await?;
    let eggs = app.ingredient("Eggs", "piece", 0).await?;
    let cheese = app.ingredient("Cheese", "g", 0).await?;
    let recipe = [(&flour, 100), (&eggs, 1), (&cheese, 30)];
    for (ingredient, per_portion) in recipe {
        app.receive(&ingredient["id"], per_portion * PORTIONS).await?;
    }
    app.recipe(pasta, &recipe.map(|(ingredient, quantity)| (&ingredient["id"], quantity))).await?;

    let mut asked: HashMap<String, i64> = HashMap::new();
    let mut rng = rand::rng();
    for _ in 0..ORDERS {
        let (order, portions) = (OrderId::new(), rng.random_range(1..=3));
        asked.insert(order.to_string(), portions);
        app.command(&reserve(order, &[(pasta, portions)])).await?;
    }

    let found = std::cell::RefCell::new(Vec::new());
    testkit::eventually(std::time::Duration::from_secs(60), "an answer for every order", || async {
        let entries = testkit::stream::entries(&app.stream("inventory-events"), 0, std::time::Duration::ZERO).await?;
        found.replace(entries.into_iter().filter(|entry| asked.contains_key(&entry.aggregate_id)).collect());
        Ok(found.borrow().len() >= ORDERS)
    })
    .await?;
    let answers = found.into_inner();
    assert_eq!(answers.len(), ORDERS, "one answer per order");

    let mut held = 0;
    for answer in &answers {
        let portions = asked[&answer.aggregate_id];
        match answer.event_type.as_str() {
            "StockReserved" => held += portions,
            "StockReservationRejected" => {
                let shortage = &answer.data["shortages"][0];
                assert_eq!(shortage["menu_item_id"], pasta.to_string());
                assert_eq!(shortage["requested"], portions);
                assert!(shortage["available"].as_i64().is_some_and(|available| available < portions), "{shortage}");
            }
            other => anyhow::bail!("unexpected answer {other}"),
        }
    }
    assert!(held <= PORTIONS, "{held} portions held of {PORTIONS}");
    assert!(held > PORTIONS - 3, "the stock was used up to the last order that fits: {held}");
    let left = app.portions_left(pasta).await?;
    assert_eq!(left, PORTIONS - held);

    for (ingredient, per_portion) in recipe {
        let id = text(&ingredient["id"]);
        let now = app.get_json(&format!("/api/v1/ingredients/{id}")).await?;
        assert_eq!(now["reserved"], held * per_portion, "{}", now["name"]);
        assert_eq!(now["on_hand"], PORTIONS * per_portion);
        let ledger = app.get_json(&format!("/api/v1/ingredients/{id}/movements?limit=100")).await?;
        let mut page = ledger["movements"].as_array().cloned().unwrap_or_default();
        for offset in (100..).step_by(100) {
            let more = app.get_json(&format!("/api/v1/ingredients/{id}/movements?limit=100&offset={offset}")).await?;
            let more = more["movements"].as_array().cloned().unwrap_or_default();
            if more.is_empty() {
                break;
            }
            page.extend(more);
        }
        let sum = |kinds: &[&str]| -> i64 {
            page.iter()
                .filter(|m| kinds.contains(&m["kind"].as_str().unwrap_or_default()))
                .filter_map(|m| m["quantity"].as_i64())
                .sum()
        };
        assert_eq!(
            sum(&["received", "counted", "wasted", "consumed"]),
            PORTIONS * per_portion,
            "on hand from the ledger"
        );
        assert_eq!(sum(&["reserved", "released"]), held * per_portion, "reserved from the ledger");
    }
    Ok(())
}
