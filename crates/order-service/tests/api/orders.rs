//! Placing, reading, listing, cancelling and completing orders over HTTP,
//! and everything the API refuses.

use crate::helpers::*;
use events::{MenuEvent, MenuItemId, OrderId};
use serde_json::{Value, json};

#[tokio::test]
async fn placing_answers_202_with_location_etag_prices_from_the_view_and_publishes_order_placed() -> TestResult {
    let app = spawn_app().await?;
    let (steak, soup) = (menu_item("Steak frites", 1450, "EUR"), menu_item("Soup", 650, "EUR"));
    app.active_menu(&[steak.clone(), soup.clone()]).await?;
    let body = json!({"kind": "dine_in", "table": "12", "lines": [
        {"menu_item_id": steak.id, "quantity": 2, "notes": "medium rare"}, line(soup.id, 1)]});
    let (status, headers, order) = app.post_as(&app.api, "/api/v1/orders", &body).await?;
    assert_eq!(status, 202, "{order}");
    assert_eq!(headers["location"], format!("/api/v1/orders/{}", id(&order)).as_str());
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(order["status"], "approval_pending");
    assert_eq!((order["currency"].clone(), order["total_cents"].clone()), (json!("EUR"), json!(2 * 1450 + 650)));
    assert_eq!(order["lines"][0]["name"], "Steak frites");
    assert_eq!(order["lines"][0]["unit_price_cents"], 1450);
    assert_eq!(order["lines"][0]["notes"], "medium rare");
    assert!(order.get("manage_token").is_none(), "staff get no manage token");
    let events = app.events_of(&id(&order), 1).await?;
    assert_eq!(events[0].event_type, "OrderPlaced");
    assert_eq!(events[0].metadata["correlation_id"], "req-test");
    assert_eq!(events[0].data["total_cents"], 2 * 1450 + 650);
    assert_eq!(events[0].data["kind"], "dine_in");
    assert_eq!(app.get_json(&format!("/api/v1/orders/{}", id(&order))).await?["version"], 1);
    Ok(())
}

#[tokio::test]
async fn a_line_that_cannot_be_ordered_is_a_422_naming_it() -> TestResult {
    let app = spawn_app().await?;
    let (ok, unavailable, elsewhere, dollars) = (
        menu_item("Soup", 650, "EUR"),
        menu_item("Oysters", 2400, "EUR"),
        menu_item("Brunch eggs", 900, "EUR"),
        menu_item("Burger", 1500, "USD"),
    );
    let menu = app.active_menu(&[ok.clone(), unavailable.clone(), dollars.clone()]).await?;
    app.publish(
        menu,
        3,
        MenuEvent::ItemAvailabilityChanged { item_id: unavailable.id, available: false, cause: Default::default() },
    )
    .await?;
    let inactive = uuid::Uuid::now_v7();
    app.publish(
        inactive,
        1,
        MenuEvent::MenuCreated { name: "Brunch".to_owned(), description: None, items: vec![elsewhere.clone()] },
    )
    .await?;
    app.until_view("the changes learnt", &format!(
        "SELECT (SELECT NOT available FROM menu_items_seen WHERE item_id = '{}') AND EXISTS (SELECT 1 FROM menus_seen WHERE menu_id = '{inactive}')",
        unavailable.id
    ))
    .await?;
    for (bad, detail) in [
        (MenuItemId::new(), "no menu offers it"),
        (unavailable.id, "not available"),
        (elsewhere.id, "not on an active menu"),
        (dollars.id, "USD"),
    ] {
        let (status, _, problem) =
            app.post_as(&app.api, "/api/v1/orders", &takeaway(&[line(ok.id, 1), line(bad, 1)])).await?;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(field(&problem), "lines[1].menu_item_id", "{problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(detail)), "{problem}");
    }
    Ok(())
}

#[tokio::test]
async fn malformed_lines_and_kinds_are_refused_with_the_field_named() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let many: Vec<Value> = (0..51).map(|_| line(MenuItemId::new(), 1)).collect();
    let cases = [
        (takeaway(&[]), "lines"),
        (takeaway(&many), "lines"),
        (takeaway(&[line(item, 0)]), "lines[0].quantity"),
        (takeaway(&[line(item, 101)]), "lines[0].quantity"),
        (takeaway(&[line(item, 1), line(item, 2)]), "lines[1].menu_item_id"),
        (takeaway(&[json!({"menu_item_id": item, "quantity": 1, "notes": "x".repeat(201)})]), "lines[0].notes"),
        (json!({"kind": "dine_in", "lines": [line(item, 1)]}), "table"),
        (json!({"kind": "takeaway", "table": "4", "lines": [line(item, 1)]}), "table"),
    ];
    for (body, expected) in cases {
        let (status, _, problem) = app.post_as(&app.api, "/api/v1/orders", &body).await?;
        assert_eq!((status, field(&problem)), (422, expected), "{problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (status, _, _) = app.post_as(&app.api, "/api/v1/orders", &json!({"kind": "delivery", "lines": []})).await?;
    assert!(status == 400 || status == 422, "{status}");
    Ok(())
}

#[tokio::test]
async fn guests_place_takeaways_only_and_manage_just_their_own_order_with_its_token() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let guest = app.anonymous();
    let (status, headers, problem) = app
        .post_as(&guest, "/api/v1/orders", &json!({"kind": "dine_in", "table": "3", "lines": [line(item, 1)]}))
        .await?;
    assert_eq!(status, 401, "{problem}");
    assert!(headers["www-authenticate"].to_str()?.starts_with("Bearer"));

    let (status, _, order) = app.post_as(&guest, "/api/v1/orders", &takeaway(&[line(item, 2)])).await?;
    assert_eq!(status, 202, "{order}");
    let token = order["manage_token"].as_str().unwrap_or_default().to_owned();
    assert!(token.starts_with("ord_"), "{order}");
    let (_, _, other) = app.post_as(&guest, "/api/v1/orders", &takeaway(&[line(item, 1)])).await?;
    let path = format!("/api/v1/orders/{}", id(&order));

    let owner = app.with(&token)?;
    let shown = owner.get(&path).await?;
    assert_eq!(shown.status(), 200);
    let shown: Value = shown.json().await?;
    assert_eq!(shown["id"], order["id"]);
    assert!(shown.get("manage_token").is_none(), "the token is shown once");
    assert_eq!(owner.get(&format!("/api/v1/orders/{}", id(&other))).await?.status(), 404);
    assert_eq!(owner.get(&format!("/api/v1/orders/{}", OrderId::new())).await?.status(), 404);
    assert_eq!(app.with("ord_forged")?.get(&path).await?.status(), 404);
    assert_eq!(guest.get(&path).await?.status(), 401);
    assert_eq!(owner.get("/api/v1/orders").await?.status(), 403, "listing is for staff");
    let (status, _, problem) = app.post_as(&owner, &format!("{path}/cancel"), &Value::Null).await?;
    assert_eq!(status, 409, "an order awaiting approval cannot be cancelled yet: {problem}");
    let (status, _, _) = app.post_as(&owner, &format!("{path}/complete"), &Value::Null).await?;
    assert_eq!(status, 403, "completing is for staff");
    Ok(())
}

#[tokio::test]
async fn a_staff_token_without_orders_manage_is_a_403() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let order = app.place(&takeaway(&[line(item, 1)])).await?;
    let cook = app.with(&testkit::auth::TestKeys::shared()?.token(&["kitchen:operate"])?)?;
    let (status, headers, _) = app.post_as(&cook, "/api/v1/orders", &takeaway(&[line(item, 1)])).await?;
    assert_eq!(status, 403);
    assert!(headers["www-authenticate"].to_str()?.contains("insufficient_scope"));
    assert_eq!(cook.get(&format!("/api/v1/orders/{}", id(&order))).await?.status(), 403);
    assert_eq!(cook.get("/api/v1/orders").await?.status(), 403);
    Ok(())
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_answer_and_publishes_once() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let body = takeaway(&[line(item, 1)]);
    let send = |body: Value| {
        app.api.client.post(app.url("/api/v1/orders")).header("idempotency-key", "order-once").json(&body).send()
    };
    let first = send(body.clone()).await?;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await?;
    let again = send(body.clone()).await?;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await?, first);
    let other = send(takeaway(&[line(item, 2)])).await?;
    assert_eq!(other.status(), 422, "the key with another body");
    let placed: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.db.pool).await?;
    assert_eq!(placed, 1);
    let events = app.events_of(&id(&first), 1).await?;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(events.len(), 1);
    Ok(())
}

#[tokio::test]
async fn staff_list_orders_by_status_a_page_at_a_time() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id(&app.place(&takeaway(&[line(item, 1)])).await?));
    }
    let mut tx = app.db.pool.begin().await?;
    let meta = events::Metadata::new("order-service", "req-saga");
    order_service::service::approve(&mut tx, ids[1].parse::<uuid::Uuid>()?.into(), &meta).await?;
    tx.commit().await?;
    let page = app.get_json("/api/v1/orders?limit=2").await?;
    let listed: Vec<String> = page["orders"].as_array().map(|o| o.iter().map(id).collect()).unwrap_or_default();
    assert_eq!(listed, ids[..2].to_vec());
    assert_eq!((page["limit"].clone(), page["offset"].clone()), (json!(2), json!(0)));
    let rest = app.get_json("/api/v1/orders?limit=2&offset=2").await?;
    assert_eq!(rest["orders"].as_array().map(|o| o.iter().map(id).collect::<Vec<_>>()), Some(vec![ids[2].clone()]));
    let pending = app.get_json("/api/v1/orders?status=approval_pending").await?;
    assert_eq!(pending["orders"].as_array().map(Vec::len), Some(2));
    let approved = app.get_json("/api/v1/orders?status=approved").await?;
    assert_eq!(approved["orders"][0]["id"], ids[1].as_str());
    for bad in ["status=shipped", "limit=0", "limit=101"] {
        assert_eq!(app.get(&format!("/api/v1/orders?{bad}")).await?.status(), 422, "{bad}");
    }
    Ok(())
}
