//! The success paths, each with the stream entry it produced.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn creating_a_menu_returns_201_with_location_and_etag_and_publishes_menu_created() -> TestResult {
    let app = spawn_app().await?;
    let response = app.post("/api/v1/menus", &lunch()).await?;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str()?.to_owned();
    assert_eq!(response.headers()["etag"], "\"1\"");
    let menu: Value = response.json().await?;
    assert_eq!(location, format!("/api/v1/menus/{}", menu["id"].as_str().unwrap_or_default()));
    assert_eq!(menu["name"], "Lunch");
    assert_eq!(menu["status"], "draft");
    assert_eq!(menu["version"], 1);
    assert_eq!(menu["items"][1]["name"], "Risotto");
    assert_eq!(menu["items"][1]["price_cents"], 1450);
    assert_eq!(menu["items"][1]["currency"], "EUR");
    assert_eq!(menu["items"][1]["available"], true);

    let fetched: Value = app.get(&location).await?.json().await?;
    assert_eq!(fetched, menu);

    let entries = app.entries(1).await?;
    let [created] = &entries[..] else { anyhow::bail!("expected one entry, got {entries:?}") };
    assert_eq!(created.event_type, "MenuCreated");
    assert_eq!(created.aggregate_id, menu["id"].as_str().unwrap_or_default());
    assert_eq!(created.version, 1);
    assert_eq!(created.data["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(created.metadata["source"], "menu-service");
    Ok(())
}

#[tokio::test]
async fn the_seed_flow_publishes_created_activated_and_availability_changed_with_the_request_id() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();
    let item = menu["items"][0]["id"].as_str().unwrap_or_default();

    let activated = app
        .client
        .post(app.url(&format!("/api/v1/menus/{id}/activate")))
        .header("x-request-id", "req-activate-1")
        .send()
        .await?;
    assert_eq!(activated.status(), 200);
    assert_eq!(activated.headers()["x-request-id"], "req-activate-1");
    let body: Value = activated.json().await?;
    assert_eq!((body["status"].as_str(), body["version"].as_i64()), (Some("active"), Some(2)));

    let changed =
        app.patch(&format!("/api/v1/menus/{id}/items/{item}/availability"), &json!({"available": false})).await?;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await?;
    assert_eq!(body["items"][0]["available"], false);
    assert_eq!(body["version"], 3);

    let entries = app.entries(3).await?;
    let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["MenuCreated", "MenuActivated", "ItemAvailabilityChanged"]);
    assert_eq!(entries[1].metadata["correlation_id"], "req-activate-1");
    assert_eq!(entries[1].data["items"].as_array().map(Vec::len), Some(2), "MenuActivated carries every item");
    assert_eq!(entries[2].data, json!({"item_id": item, "available": false, "cause": "staff"}));
    assert_eq!(entries.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    Ok(())
}

#[tokio::test]
async fn repeating_a_change_that_is_already_true_publishes_nothing_more() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();
    let item = menu["items"][0]["id"].as_str().unwrap_or_default();
    for _ in 0..2 {
        assert_eq!(app.post(&format!("/api/v1/menus/{id}/activate"), &json!({})).await?.status(), 200);
        let path = format!("/api/v1/menus/{id}/items/{item}/availability");
        assert_eq!(app.patch(&path, &json!({"available": true})).await?.status(), 200);
    }
    let body: Value = app.get(&format!("/api/v1/menus/{id}")).await?.json().await?;
    assert_eq!(body["version"], 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let types: Vec<String> = app.entries(2).await?.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["MenuCreated", "MenuActivated"]);
    Ok(())
}

#[tokio::test]
async fn deactivating_publishes_menu_deactivated_and_a_draft_cannot_be_deactivated() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();

    let refused = app.post(&format!("/api/v1/menus/{id}/deactivate"), &json!({})).await?;
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await?;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("draft"), "{problem}");

    app.post(&format!("/api/v1/menus/{id}/activate"), &json!({})).await?;
    let deactivated: Value = app.post(&format!("/api/v1/menus/{id}/deactivate"), &json!({})).await?.json().await?;
    assert_eq!(deactivated["status"], "inactive");
    let types: Vec<String> = app.entries(3).await?.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["MenuCreated", "MenuActivated", "MenuDeactivated"]);
    Ok(())
}

#[tokio::test]
async fn adding_and_editing_items_publish_item_events() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();

    let added = app
        .post(
            &format!("/api/v1/menus/{id}/items"),
            &json!({"name": "Tiramisu", "category": "dessert", "price_cents": 700, "currency": "EUR"}),
        )
        .await?;
    assert_eq!(added.status(), 201);
    let body: Value = added.json().await?;
    let tiramisu = body["items"][2]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(body["items"][2]["available"], true);

    let edited = app
        .patch(
            &format!("/api/v1/menus/{id}/items/{tiramisu}"),
            &json!({"price_cents": 750, "currency": "EUR", "description": "Classic"}),
        )
        .await?;
    assert_eq!(edited.status(), 200);
    let body: Value = edited.json().await?;
    assert_eq!(
        (body["items"][2]["price_cents"].as_i64(), body["items"][2]["description"].as_str()),
        (Some(750), Some("Classic"))
    );

    let repriced: Value =
        app.patch(&format!("/api/v1/menus/{id}/items/{tiramisu}"), &json!({"price_cents": 800})).await?.json().await?;
    assert_eq!(
        (repriced["items"][2]["price_cents"].as_i64(), repriced["items"][2]["currency"].as_str()),
        (Some(800), Some("EUR"))
    );

    let removed: Value =
        app.patch(&format!("/api/v1/menus/{id}/items/{tiramisu}"), &json!({"description": null})).await?.json().await?;
    assert_eq!(removed["items"][2]["description"], Value::Null);

    let replaced = app
        .client
        .put(app.url(&format!("/api/v1/menus/{id}/items/{tiramisu}")))
        .json(&json!({"name": "Panna cotta", "category": "dessert", "price_cents": 650, "currency": "EUR"}))
        .send()
        .await?;
    assert_eq!(replaced.status(), 200);
    let body: Value = replaced.json().await?;
    assert_eq!(body["items"][2]["name"], "Panna cotta");
    assert_eq!(body["items"][2]["available"], true, "PUT keeps availability");

    let entries = app.entries(6).await?;
    let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["MenuCreated", "MenuItemAdded", "MenuItemUpdated", "MenuItemUpdated", "MenuItemUpdated", "MenuItemUpdated"]
    );
    assert_eq!(entries[2].data["item"]["price_cents"], 750);
    Ok(())
}

#[tokio::test]
async fn a_menu_reads_back_with_its_items_in_their_order_and_one_without_items_with_none() -> TestResult {
    let app = spawn_app().await?;
    let names = ["Zucchini fritters", "Anchovies", "Mussels", "Beef tartare", "Yoghurt", "Cheese board"];
    let items: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(n, name)| json!({"name": name, "category": "starter", "price_cents": 500 + n, "currency": "EUR"}))
        .collect();
    let tapas: Value = app.post("/api/v1/menus", &json!({"name": "Tapas", "items": items})).await?.json().await?;
    let empty = app.post("/api/v1/menus", &json!({"name": "Coming soon", "items": []})).await?;
    assert_eq!(empty.status(), 201);
    let empty: Value = empty.json().await?;

    let fetched: Value =
        app.get(&format!("/api/v1/menus/{}", tapas["id"].as_str().unwrap_or_default())).await?.json().await?;
    let fetched_names: Vec<&str> =
        fetched["items"].as_array().into_iter().flatten().filter_map(|item| item["name"].as_str()).collect();
    assert_eq!(fetched_names, names, "items come back in the order they were given");
    assert_eq!(fetched, tapas);
    let fetched: Value =
        app.get(&format!("/api/v1/menus/{}", empty["id"].as_str().unwrap_or_default())).await?.json().await?;
    assert_eq!(fetched["items"], json!([]));

    let listed: Value = app.get("/api/v1/menus").await?.json().await?;
    assert_eq!(listed["menus"], json!([tapas, empty]));
    Ok(())
}

#[tokio::test]
async fn concurrent_changes_of_one_menu_apply_one_after_another_each_on_the_one_before() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let items = format!("/api/v1/menus/{}/items", menu["id"].as_str().unwrap_or_default());
    let additions = (0..8).map(|n| {
        let (app, items) = (&app, &items);
        async move {
            let item =
                json!({"name": format!("Special {n}"), "category": "main", "price_cents": 900, "currency": "EUR"});
            let response = app.post(items, &item).await?;
            anyhow::ensure!(response.status() == 201, "adding special {n}: {}", response.status());
            anyhow::Ok(response.json::<Value>().await?)
        }
    });
    let bodies = futures::future::try_join_all(additions).await?;

    let mut versions: Vec<i64> = bodies.iter().filter_map(|body| body["version"].as_i64()).collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<_>>(), "every change got a version of its own");
    for body in &bodies {
        let (version, items) = (body["version"].as_i64(), body["items"].as_array().map(Vec::len));
        assert_eq!(
            items.and_then(|n| i64::try_from(n).ok()),
            version.map(|v| v + 1),
            "{body}: built on the one before"
        );
    }
    let entries = app.entries(9).await?;
    let mut added: Vec<i64> = entries.iter().filter(|e| e.event_type == "MenuItemAdded").map(|e| e.version).collect();
    added.sort_unstable();
    assert_eq!(added, (2..=9).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn menus_are_listed_by_status_a_page_at_a_time() -> TestResult {
    let app = spawn_app().await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.create_lunch().await?["id"].as_str().unwrap_or_default().to_owned());
    }
    app.post(&format!("/api/v1/menus/{}/activate", ids[1]), &json!({})).await?;

    let active: Value = app.get("/api/v1/menus?status=active").await?.json().await?;
    let active_ids: Vec<&str> =
        active["menus"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(active_ids, [ids[1].as_str()]);

    let first: Value = app.get("/api/v1/menus?limit=2").await?.json().await?;
    let second: Value = app.get("/api/v1/menus?limit=2&offset=2").await?.json().await?;
    let page = |page: &Value| {
        page["menus"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!([page(&first), page(&second)].concat(), ids);
    assert_eq!(first["limit"], 2);
    Ok(())
}

#[tokio::test]
async fn an_event_committed_while_no_relay_ran_is_published_when_the_service_starts() -> TestResult {
    // A crash right after commit leaves the event in the outbox; the next
    // start's relay publishes it.
    let (settings, db) = test_settings().await?;
    let first = menu_service::build(&settings).await?;
    drop(first); // migrated, never ran: no relay
    let nobody_listening = events::RelayWaker::default();
    let menus =
        menu_service::service::Menus::new(db.pool.clone(), events::Outbox::new(settings.streams(), nobody_listening));
    let name = menu_service::domain::MenuName::try_from("Committed before the crash".to_owned())?;
    let mut created = None;
    menus
        .create(name, None, Vec::new(), "req-crash", None, |menu| {
            created = Some(menu.id);
            service_kit::idempotency::Reply::json(axum::http::StatusCode::CREATED, &())
        })
        .await?;
    let menu_id = created.ok_or_else(|| anyhow::anyhow!("no menu created"))?;
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox").fetch_one(&db.pool).await?, 1);

    let app = spawn_with(settings, db).await?;
    let entries = app.entries(1).await?;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].aggregate_id, menu_id.to_string());
    assert_eq!(entries[0].metadata["correlation_id"], "req-crash");
    Ok(())
}

#[tokio::test]
async fn health_ready_and_metrics_answer() -> TestResult {
    let app = spawn_app().await?;
    assert_eq!(app.get("/health").await?.status(), 200);
    let ready: Value = app.get("/ready").await?.json().await?;
    assert_eq!(ready["checks"], json!({"postgres": "up", "redis": "up"}));
    app.create_lunch().await?;
    let metrics = app.get("/metrics").await?.text().await?;
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_declares_every_route_with_its_problem_responses_and_swagger_ui_is_served() -> TestResult {
    let app = spawn_app().await?;
    let document: Value = app.get("/api-docs/openapi.json").await?.json().await?;
    assert_eq!(document["openapi"], "3.1.0");
    let expected = [
        ("post", "/api/v1/menus"),
        ("get", "/api/v1/menus"),
        ("get", "/api/v1/menus/{menu_id}"),
        ("post", "/api/v1/menus/{menu_id}/activate"),
        ("post", "/api/v1/menus/{menu_id}/deactivate"),
        ("post", "/api/v1/menus/{menu_id}/items"),
        ("patch", "/api/v1/menus/{menu_id}/items/{item_id}"),
        ("put", "/api/v1/menus/{menu_id}/items/{item_id}"),
        ("patch", "/api/v1/menus/{menu_id}/items/{item_id}/availability"),
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
    ];
    for (method, path) in expected {
        let operation = &document["paths"][path][method];
        let responses =
            operation["responses"].as_object().ok_or_else(|| anyhow::anyhow!("{method} {path} is not documented"))?;
        let mut required = vec!["400", "500", "503"];
        if operation.get("requestBody").is_some() {
            required.extend(["413", "415", "422"]);
        }
        if path.contains('{') {
            required.push("404");
        }
        for status in required {
            let problem = &responses.get(status).ok_or_else(|| anyhow::anyhow!("{method} {path} lacks {status}"))?["content"]
                ["application/problem+json"]["schema"]["$ref"];
            assert_eq!(problem, "#/components/schemas/Problem", "{method} {path} {status}");
        }
    }
    let currencies = &document["components"]["schemas"]["ItemRequest"]["properties"]["currency"]["enum"];
    assert!(currencies.as_array().is_some_and(|codes| codes.contains(&json!("EUR")) && !codes.contains(&json!("XYZ"))));

    let docs = app.get("/docs/").await?;
    assert_eq!(docs.status(), 200);
    let page = docs.text().await?;
    assert!(
        page.contains("swagger-ui-bundle.js") && !page.contains("https://"),
        "Swagger UI must load nothing from outside"
    );
    assert_eq!(app.get("/docs/swagger-ui-bundle.js").await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn cancelling_the_service_stops_it_and_its_relay_cleanly() -> TestResult {
    let (settings, _db) = test_settings().await?;
    let application = menu_service::build(&settings).await?;
    let address = format!("http://127.0.0.1:{}", application.port()?);
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(application.run_until_stopped(cancel.clone()));
    assert_eq!(reqwest::get(format!("{address}/health")).await?.status(), 200);

    cancel.cancel();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), running).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "the service did not stop cleanly: {stopped:?}");
    assert!(reqwest::get(format!("{address}/health")).await.is_err(), "still answering after it stopped");
    Ok(())
}
