//! Ingredients and their stock through the API, each change with its event
//! and its line in the ledger, and every error.

use crate::helpers::*;
use events::OrderId;
use serde_json::{Value, json};

#[tokio::test]
async fn an_ingredient_is_created_empty_with_location_etag_and_its_event() -> TestResult {
    let app = spawn_app().await?;
    let response = app.post("/api/v1/ingredients", &json!({"name": "Arborio rice", "unit": "g"})).await?;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"].to_str()?.to_owned();
    let body: Value = response.json().await?;
    assert_eq!(location, format!("/api/v1/ingredients/{}", text(&body["id"])));
    assert_eq!((body["on_hand"].as_i64(), body["reserved"].as_i64()), (Some(0), Some(0)));
    assert_eq!(body["low_stock_threshold"], 0);
    assert_eq!(app.get_json(&location).await?, body);

    let entries = app.events(1).await?;
    assert_eq!(entries[0].event_type, "IngredientCreated");
    assert_eq!(entries[0].aggregate_id, text(&body["id"]));
    assert_eq!(entries[0].data, json!({"name": "Arborio rice", "unit": "g", "low_stock_threshold": 0}));
    assert_eq!(entries[0].metadata["source"], "inventory-service");
    Ok(())
}

#[tokio::test]
async fn bad_ingredients_are_refused_naming_the_field_and_a_taken_name_whatever_its_case() -> TestResult {
    let app = spawn_app().await?;
    app.ingredient("Butter", "g", 0).await?;
    for (body, status, field) in [
        (json!({"name": "", "unit": "g"}), 422, "name"),
        (json!({"name": "Salt", "unit": "kg"}), 422, "unit"),
        (json!({"name": "Salt", "unit": "g", "low_stock_threshold": -1}), 422, "low_stock_threshold"),
        (json!({"name": "BUTTER", "unit": "g"}), 409, "name"),
    ] {
        let response = app.post("/api/v1/ingredients", &body).await?;
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await?;
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_eq!(app.post("/api/v1/ingredients", &json!({"name": "Salt"})).await?.status(), 422, "no unit");
    let unknown = app.get(&format!("/api/v1/ingredients/{}", uuid::Uuid::now_v7())).await?;
    assert_eq!(unknown.status(), 404);
    assert_eq!(app.get("/api/v1/ingredients/not-an-id").await?.status(), 400);
    Ok(())
}

#[tokio::test]
async fn receipts_counts_and_waste_move_the_stock_each_with_its_event_and_ledger_line() -> TestResult {
    let app = spawn_app().await?;
    let flour = app.ingredient("Flour", "g", 1000).await?;
    let id = text(&flour["id"]);
    let received = app.receive(&flour["id"], 5000).await?;
    assert_eq!((received["on_hand"].as_i64(), received["version"].as_i64()), (Some(5000), Some(2)));

    let counted =
        app.post(&format!("/api/v1/ingredients/{id}/counts"), &json!({"on_hand": 4800, "note": "Monday"})).await?;
    assert_eq!(counted.status(), 200);
    let wasted =
        app.post(&format!("/api/v1/ingredients/{id}/waste"), &json!({"quantity": 4000, "reason": "damp"})).await?;
    assert_eq!(wasted.status(), 200);
    let wasted: Value = wasted.json().await?;
    assert_eq!(wasted["on_hand"], 800);
    assert_eq!(wasted["low_stock"], true, "800 available is at or below the threshold of 1000");

    let entries = app.events(5).await?;
    let types: Vec<&str> = entries.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(types, ["IngredientCreated", "StockReceived", "StockCounted", "StockWasted", "IngredientLowStock"]);
    assert_eq!(entries[2].data, json!({"on_hand": 4800, "previous_on_hand": 5000, "note": "Monday"}));
    assert_eq!(entries[4].data["available"], 800);
    assert!(entries.windows(2).skip(1).all(|pair| pair[0].version < pair[1].version), "versions rise");

    let ledger = app.get_json(&format!("/api/v1/ingredients/{id}/movements")).await?;
    let kinds: Vec<&str> =
        ledger["movements"].as_array().into_iter().flatten().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["received", "counted", "wasted"]);
    let sum: i64 = ledger["movements"].as_array().into_iter().flatten().filter_map(|m| m["quantity"].as_i64()).sum();
    assert_eq!(sum, 800, "the ledger adds up to what is on hand");
    assert!(ledger["movements"].as_array().into_iter().flatten().all(|m| m["actor"] == "test-staff"), "{ledger}");
    assert_eq!(ledger["movements"][2]["reason"], "damp");

    let low = app.get_json("/api/v1/ingredients?low_stock=true").await?;
    assert_eq!(low["ingredients"].as_array().map(Vec::len), Some(1));
    app.ingredient("Salt", "g", 0).await?;
    let all = app.get_json("/api/v1/ingredients?limit=1&offset=1").await?;
    assert_eq!((all["limit"].as_i64(), all["offset"].as_i64()), (Some(1), Some(1)));
    assert_eq!(all["ingredients"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_count_or_waste_below_what_orders_hold_is_a_conflict_naming_the_holds_and_changes_nothing() -> TestResult {
    let app = spawn_app().await?;
    let [risotto] = app.menu_with(&["Risotto"]).await?[..] else { anyhow::bail!("one item") };
    let rice = app.ingredient("Rice", "g", 0).await?;
    app.receive(&rice["id"], 400).await?;
    app.recipe(risotto, &[(&rice["id"], 100)]).await?;
    let order = OrderId::new();
    app.command(&reserve(order, &[(risotto, 3)])).await?;
    assert_eq!(app.answers(order, 1).await?[0].event_type, "StockReserved");

    let id = text(&rice["id"]);
    for (path, body) in [("counts", json!({"on_hand": 250})), ("waste", json!({"quantity": 200, "reason": "spilt"}))] {
        let response = app.post(&format!("/api/v1/ingredients/{id}/{path}"), &body).await?;
        assert_eq!(response.status(), 409, "{path}");
        let problem: Value = response.json().await?;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&order.to_string()), "{path}: {detail}");
        assert!(detail.contains("300 is held"), "{path}: {detail}");
    }
    let rice = app.get_json(&format!("/api/v1/ingredients/{id}")).await?;
    assert_eq!((rice["on_hand"].as_i64(), rice["reserved"].as_i64()), (Some(400), Some(300)));
    let waste_within =
        app.post(&format!("/api/v1/ingredients/{id}/waste"), &json!({"quantity": 100, "reason": "x"})).await?;
    assert_eq!(waste_within.status(), 200, "what is not held may go");
    Ok(())
}

#[tokio::test]
async fn a_stale_if_match_is_a_conflict_and_a_receipt_sent_again_with_its_key_is_received_once() -> TestResult {
    let app = spawn_app().await?;
    let oil = app.ingredient("Olive oil", "ml", 0).await?;
    let id = text(&oil["id"]);
    let path = format!("/api/v1/ingredients/{id}/receipts");
    let stale =
        app.client.post(app.url(&path)).header("if-match", "\"7\"").json(&json!({"quantity": 5})).send().await?;
    assert_eq!(stale.status(), 409);

    let send =
        || app.client.post(app.url(&path)).header("idempotency-key", "delivery-42").json(&json!({"quantity": 750}));
    let first = send().send().await?;
    assert_eq!(first.status(), 200);
    let again = send().send().await?;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let oil = app.get_json(&format!("/api/v1/ingredients/{id}")).await?;
    assert_eq!(oil["on_hand"], 750, "received once");

    for (body, field) in [
        (json!({"quantity": 0}), "quantity"),
        (json!({"quantity": 1.5}), "quantity"),
        (json!({"quantity": 1, "note": "x".repeat(501)}), "note"),
    ] {
        let response = app.post(&path, &body).await?;
        assert!(response.status() == 422 || response.status() == 400, "{body}: {}", response.status());
        if response.status() == 422 {
            assert_eq!(response.json::<Value>().await?["field"], field);
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_route_needs_a_staff_token_with_inventory_manage() -> TestResult {
    let app = spawn_app().await?;
    let ingredient = app.ingredient("Eggs", "piece", 0).await?;
    let id = text(&ingredient["id"]);
    let item = uuid::Uuid::now_v7();
    let anonymous = app.anonymous();
    let menus_only = app.with_token(&testkit::auth::TestKeys::shared()?.token(&["menus:write"])?)?;
    for (method, path) in [
        ("POST", "/api/v1/ingredients".to_owned()),
        ("GET", "/api/v1/ingredients".to_owned()),
        ("GET", format!("/api/v1/ingredients/{id}")),
        ("POST", format!("/api/v1/ingredients/{id}/receipts")),
        ("POST", format!("/api/v1/ingredients/{id}/counts")),
        ("POST", format!("/api/v1/ingredients/{id}/waste")),
        ("GET", format!("/api/v1/ingredients/{id}/movements")),
        ("PUT", format!("/api/v1/recipes/{item}")),
        ("GET", format!("/api/v1/recipes/{item}")),
        ("GET", "/api/v1/portions".to_owned()),
    ] {
        let method: reqwest::Method = method.parse()?;
        let without = anonymous.client.request(method.clone(), app.url(&path)).json(&json!({})).send().await?;
        assert_eq!(without.status(), 401, "{method} {path}");
        assert!(without.headers().contains_key("www-authenticate"));
        let wrong = menus_only.client.request(method.clone(), app.url(&path)).json(&json!({})).send().await?;
        assert_eq!(wrong.status(), 403, "{method} {path}");
    }
    Ok(())
}
