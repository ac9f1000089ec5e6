//! Bad input gets a clear 4xx problem+json, and nothing is stored or published.

use crate::helpers::*;
use serde_json::{Value, json};

async fn problem(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"), "status {status}");
    let body: Value = response.json().await?;
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    Ok((status, body))
}

#[tokio::test]
async fn every_invalid_field_is_a_422_naming_the_field_and_nothing_is_published() -> TestResult {
    let app = spawn_app().await?;
    let item = |patch: Value| {
        let mut item = json!({"name": "Soup", "category": "starter", "price_cents": 500, "currency": "EUR"});
        if let (Some(item), Some(patch)) = (item.as_object_mut(), patch.as_object()) {
            item.extend(patch.clone());
        }
        item
    };
    let cases = [
        (json!({"name": "", "items": []}), "name"),
        (json!({"name": "x".repeat(101), "items": []}), "name"),
        (json!({"name": "Lunch", "description": "d".repeat(1001)}), "description"),
        (json!({"name": "Lunch", "items": [item(json!({"name": "  "}))]}), "items[0].name"),
        (json!({"name": "Lunch", "items": [item(json!({"price_cents": -1}))]}), "items[0].price_cents"),
        (json!({"name": "Lunch", "items": [item(json!({"currency": "XYZ"}))]}), "items[0].currency"),
        (json!({"name": "Lunch", "items": [item(json!({"category": ""}))]}), "items[0].category"),
        (json!({"name": "Lunch", "items": [item(json!({})), item(json!({"name": "SOUP"}))]}), "items"),
        (json!({"name": "Lunch", "items": [item(json!({"price_cents": "cheap"}))]}), "items[0].price_cents"),
        (json!({"items": []}), "name"),
        (
            json!({"name": "Lunch", "items": [{"name": "Soup", "category": "starter", "price_cents": 500}]}),
            "items[0].currency",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = problem(app.post("/api/v1/menus", &body).await?).await?;
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["field"], field, "{body} → {problem}");
    }
    assert_eq!(app.outbox_rows().await?, 0);
    assert!(app.entries(0).await?.is_empty());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM menus").fetch_one(&app.db.pool).await?;
    assert_eq!(count, 0);
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_a_400_problem_and_never_axums_plain_text() -> TestResult {
    let app = spawn_app().await?;
    let response = app
        .client
        .post(app.url("/api/v1/menus"))
        .header("content-type", "application/json")
        .body("{\"name\": \"Lunch\",")
        .send()
        .await?;
    let (status, _) = problem(response).await?;
    assert_eq!(status, 400);

    let response = app.client.post(app.url("/api/v1/menus")).body("name=Lunch").send().await?;
    assert_eq!(problem(response).await?.0, 415);

    let menu = app.create_lunch().await?;
    let (id, item) = (menu["id"].as_str().unwrap_or_default(), menu["items"][0]["id"].as_str().unwrap_or_default());
    let (status, body) = problem(app.patch(&format!("/api/v1/menus/{id}/items/{item}"), &json!([])).await?).await?;
    assert_eq!(status, 422, "an array is not an edit: {body}");
    Ok(())
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() -> TestResult {
    let app = spawn_app().await?;
    let body = json!({"name": "Lunch", "description": "x".repeat(20 * 1024)});
    assert_eq!(problem(app.post("/api/v1/menus", &body).await?).await?.0, 413);
    Ok(())
}

#[tokio::test]
async fn unknown_ids_routes_and_malformed_ids_are_404_404_and_400() -> TestResult {
    let app = spawn_app().await?;
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(problem(app.get(&format!("/api/v1/menus/{unknown}")).await?).await?.0, 404);
    assert_eq!(problem(app.post(&format!("/api/v1/menus/{unknown}/activate"), &json!({})).await?).await?.0, 404);
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();
    let path = format!("/api/v1/menus/{id}/items/{unknown}/availability");
    assert_eq!(problem(app.patch(&path, &json!({"available": false})).await?).await?.0, 404);
    assert_eq!(problem(app.get("/api/v1/menus/not-a-uuid").await?).await?.0, 400);
    assert_eq!(problem(app.get("/api/v1/nothing-here").await?).await?.0, 404);
    assert_eq!(problem(app.get("/api/v1/menus?status=archived").await?).await?.0, 400);
    assert_eq!(problem(app.get("/api/v1/menus?limit=0").await?).await?.0, 422);
    Ok(())
}

#[tokio::test]
async fn a_write_with_a_stale_if_match_is_a_409_conflict_and_changes_nothing() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();
    let activate = |etag: &'static str| {
        app.client.post(app.url(&format!("/api/v1/menus/{id}/activate"))).header("if-match", etag).send()
    };

    let stale = activate("\"7\"").await?;
    assert_eq!(problem(stale).await?.0, 409);
    let malformed = activate("seven").await?;
    assert_eq!(problem(malformed).await?.0, 400);
    let current = activate("\"1\"").await?;
    assert_eq!(current.status(), 200);
    assert_eq!(current.headers()["etag"], "\"2\"");
    let types: Vec<String> = app.entries(2).await?.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["MenuCreated", "MenuActivated"]);
    Ok(())
}

#[tokio::test]
async fn an_item_name_the_menu_already_has_is_a_409_and_an_unquoted_if_match_is_understood() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let id = menu["id"].as_str().unwrap_or_default();
    let soup = json!({"name": "tomato SOUP", "category": "starter", "price_cents": 700, "currency": "EUR"});
    let (status, body) = problem(app.post(&format!("/api/v1/menus/{id}/items"), &soup).await?).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["field"], "name");

    let unquoted =
        app.client.post(app.url(&format!("/api/v1/menus/{id}/activate"))).header("if-match", "1").send().await?;
    assert_eq!(unquoted.status(), 200);

    let item = menu["items"][0]["id"].as_str().unwrap_or_default();
    let nulled = app.patch(&format!("/api/v1/menus/{id}/items/{item}"), &json!({"name": null})).await?;
    let (status, body) = problem(nulled).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("name")), "{body}");
    Ok(())
}
