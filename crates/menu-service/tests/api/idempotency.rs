//! `Idempotency-Key` on menu creation: a retried create creates nothing twice.

use crate::helpers::*;
use serde_json::{Value, json};
use sqlx::Connection;

/// Creates the lunch menu with `key`, as a client retrying would.
async fn create_with_key(app: &TestApp, key: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
    Ok(app.client.post(app.url("/api/v1/menus")).header("Idempotency-Key", key).json(body).send().await?)
}

async fn menus_stored(app: &TestApp) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM menus").fetch_one(&app.db.pool).await?)
}

#[tokio::test]
async fn a_create_sent_again_with_its_key_replays_the_first_answer_and_publishes_one_event() -> TestResult {
    let app = spawn_app().await?;
    let first = create_with_key(&app, "lunch-1", &lunch()).await?;
    assert_eq!(first.status(), 201);
    let (location, etag) = (first.headers()["location"].clone(), first.headers()["etag"].clone());
    let first: Value = first.json().await?;

    let again = create_with_key(&app, "lunch-1", &lunch()).await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await?, first);

    assert_eq!(menus_stored(&app).await?, 1);
    let entries = app.entries(1).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.entries(1).await?.len(), 1, "one MenuCreated, not two: {entries:?}");
    Ok(())
}

#[tokio::test]
async fn a_key_used_again_for_another_body_is_a_422_and_creates_nothing() -> TestResult {
    let app = spawn_app().await?;
    assert_eq!(create_with_key(&app, "lunch-2", &lunch()).await?.status(), 201);
    let mut dinner = lunch();
    dinner["name"] = json!("Dinner");

    let reused = create_with_key(&app, "lunch-2", &dinner).await?;
    assert_eq!(reused.status(), 422);
    let problem: Value = reused.json().await?;
    assert_eq!(problem["field"], "Idempotency-Key");
    assert_eq!(menus_stored(&app).await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_duplicate_arriving_while_the_first_is_in_flight_is_a_409_at_once() -> TestResult {
    let app = spawn_app().await?;
    // Another transaction holds the key (the test staff token's subject's), as a
    // first request still running does.
    let mut first = sqlx::PgConnection::connect_with(&app.db.options).await?;
    let mut tx = sqlx::Connection::begin(&mut first).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('service_kit.idempotency'), hashtext('test-staff lunch-3'))")
        .execute(&mut *tx)
        .await?;

    let started = std::time::Instant::now();
    let duplicate = create_with_key(&app, "lunch-3", &lunch()).await?;
    assert_eq!(duplicate.status(), 409);
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "it waited for the first");
    assert_eq!(duplicate.headers()["retry-after"], "1");
    assert_eq!(menus_stored(&app).await?, 0);

    tx.rollback().await?;
    assert_eq!(create_with_key(&app, "lunch-3", &lunch()).await?.status(), 201, "the key is free again");
    Ok(())
}

#[tokio::test]
async fn an_empty_or_overlong_key_is_a_400_naming_the_header() -> TestResult {
    let app = spawn_app().await?;
    for key in [String::new(), "k".repeat(256)] {
        let response = create_with_key(&app, &key, &lunch()).await?;
        assert_eq!(response.status(), 400, "{key:?}");
        assert_eq!(response.json::<Value>().await?["field"], "Idempotency-Key");
    }
    assert_eq!(menus_stored(&app).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_failed_create_does_not_use_up_its_key() -> TestResult {
    let app = spawn_app().await?;
    let mut invalid = lunch();
    invalid["items"][0]["price_cents"] = json!(-1);
    assert_eq!(create_with_key(&app, "lunch-4", &invalid).await?.status(), 422);
    assert_eq!(create_with_key(&app, "lunch-4", &lunch()).await?.status(), 201);
    Ok(())
}

#[tokio::test]
async fn an_item_added_again_with_its_key_is_added_once() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let path = format!("/api/v1/menus/{}/items", menu["id"].as_str().unwrap_or_default());
    let item = json!({"name": "Tiramisu", "category": "dessert", "price_cents": 700, "currency": "EUR"});
    let add = || app.client.post(app.url(&path)).header("Idempotency-Key", "tiramisu").json(&item).send();

    let first = add().await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    let again = add().await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await?, first);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3), "two items of the lunch menu and one added");
    Ok(())
}
