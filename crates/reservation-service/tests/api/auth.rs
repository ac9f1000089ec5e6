//! Who may do what: anyone books; the guest manages their own booking with
//! the token it returned; staff with `reservations:manage` do the rest.

use crate::helpers::*;
use serde_json::{Value, json};
use testkit::auth::{TestKeys, now};

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap_or_default().to_owned()
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The stored status of reservation `id`.
async fn status_of(app: &TestApp, id: &str) -> anyhow::Result<String> {
    let id: uuid::Uuid = id.parse()?;
    Ok(sqlx::query_scalar("SELECT status FROM reservations WHERE id = $1").bind(id).fetch_one(&app.db.pool).await?)
}

/// Books anonymously at `hour` tomorrow; returns the body with its manage token.
async fn book_as_guest(app: &TestApp, hour: u32) -> anyhow::Result<Value> {
    let response = app.api.anonymous().post("/api/v1/reservations", &booking(2, tomorrow_at(hour))).await?;
    anyhow::ensure!(response.status() == 201, "booking answered {}", response.status());
    Ok(response.json().await?)
}

fn cancellation() -> Value {
    json!({"reason": "The guest is ill"})
}

#[tokio::test]
async fn an_anonymous_booking_returns_a_manage_token_once_and_stores_only_its_hash() -> TestResult {
    let app = spawn_app().await?;
    let booked = book_as_guest(&app, 19).await?;
    let token = booked["manage_token"].as_str().unwrap_or_default().to_owned();
    assert!(token.starts_with("rsv_") && token.len() >= 4 + 43, "token {token:?}");

    let fetched = app.get_json(&format!("/api/v1/reservations/{}", id_of(&booked))).await?;
    assert!(fetched.get("manage_token").is_none(), "never shown again: {fetched}");
    let listed = app.get_json("/api/v1/reservations").await?;
    assert!(listed["reservations"][0].get("manage_token").is_none());

    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT manage_token_hash FROM reservations").fetch_one(&app.db.pool).await?;
    assert_eq!(stored, reservation_service::manage_token::hash(&token));
    let row: String =
        sqlx::query_scalar("SELECT row_to_json(r)::text FROM reservations r").fetch_one(&app.db.pool).await?;
    assert!(!row.contains(&token[4..]), "the token itself is stored nowhere");
    Ok(())
}

#[tokio::test]
async fn the_manage_token_reads_and_cancels_its_own_booking() -> TestResult {
    let app = spawn_app().await?;
    let booked = book_as_guest(&app, 19).await?;
    let guest = app.api.with_token(booked["manage_token"].as_str().unwrap_or_default())?;
    let path = format!("/api/v1/reservations/{}", id_of(&booked));

    let read = guest.get(&path).await?;
    assert_eq!(read.status(), 200);
    let cancelled = guest.patch(&format!("{path}/cancel"), &cancellation()).await?;
    assert_eq!(cancelled.status(), 200);
    let body: Value = cancelled.json().await?;
    assert_eq!(body["status"], "cancelled");
    Ok(())
}

#[tokio::test]
async fn a_manage_token_used_on_another_booking_is_404_and_cancels_nothing() -> TestResult {
    let app = spawn_app().await?;
    let mine = book_as_guest(&app, 19).await?;
    let theirs = book_as_guest(&app, 20).await?;
    let guest = app.api.with_token(mine["manage_token"].as_str().unwrap_or_default())?;
    let path = format!("/api/v1/reservations/{}", id_of(&theirs));

    assert_eq!(guest.get(&path).await?.status(), 404);
    let cancel = guest.patch(&format!("{path}/cancel"), &cancellation()).await?;
    assert_eq!(cancel.status(), 404);
    let problem: Value = cancel.json().await?;
    assert_eq!(problem["detail"], format!("there is no reservation {}", id_of(&theirs)));
    assert_eq!(status_of(&app, &id_of(&theirs)).await?, "pending");

    let forged = app.api.with_token("rsv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")?;
    assert_eq!(forged.get(&path).await?.status(), 404, "a made-up manage token");
    Ok(())
}

#[tokio::test]
async fn a_manage_token_cannot_list_confirm_or_complete() -> TestResult {
    let app = spawn_app().await?;
    let booked = book_as_guest(&app, 19).await?;
    let guest = app.api.with_token(booked["manage_token"].as_str().unwrap_or_default())?;
    let path = format!("/api/v1/reservations/{}", id_of(&booked));

    for response in [
        guest.get("/api/v1/reservations").await?,
        guest.patch_empty(&format!("{path}/confirm")).await?,
        guest.patch_empty(&format!("{path}/complete")).await?,
    ] {
        assert_eq!(response.status(), 403);
        assert_eq!(challenge(&response), r#"Bearer error="insufficient_scope", scope="reservations:manage""#);
    }
    assert_eq!(status_of(&app, &id_of(&booked)).await?, "pending");
    Ok(())
}

#[tokio::test]
async fn listing_reservations_needs_a_staff_token_with_reservations_manage() -> TestResult {
    let app = spawn_app().await?;
    book_as_guest(&app, 19).await?;

    let anonymous = app.api.anonymous().get("/api/v1/reservations").await?;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(challenge(&anonymous), "Bearer");
    let chef = app.api.with_token(&TestKeys::shared()?.token(&["menus:write"])?)?;
    assert_eq!(chef.get("/api/v1/reservations").await?.status(), 403);
    let host = app.api.with_token(&TestKeys::shared()?.token(&["reservations:manage"])?)?;
    let listed: Value = host.get("/api/v1/reservations").await?.json().await?;
    assert_eq!(listed["reservations"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_token_scoped_for_menus_cannot_confirm_a_reservation() -> TestResult {
    let app = spawn_app().await?;
    let booked = book_as_guest(&app, 19).await?;
    let chef = app.api.with_token(&TestKeys::shared()?.token(&["menus:write"])?)?;
    let path = format!("/api/v1/reservations/{}", id_of(&booked));

    for response in [
        chef.patch_empty(&format!("{path}/confirm")).await?,
        chef.patch(&format!("{path}/cancel"), &cancellation()).await?,
    ] {
        assert_eq!(response.status(), 403);
        assert_eq!(challenge(&response), r#"Bearer error="insufficient_scope", scope="reservations:manage""#);
        let problem: Value = response.json().await?;
        assert_eq!(problem["detail"], "this operation needs a staff token with scope reservations:manage");
    }
    assert_eq!(chef.get(&path).await?.status(), 403);
    assert_eq!(status_of(&app, &id_of(&booked)).await?, "pending");
    Ok(())
}

#[tokio::test]
async fn reading_or_changing_a_booking_without_a_valid_token_is_401_and_changes_nothing() -> TestResult {
    let app = spawn_app().await?;
    let booked = book_as_guest(&app, 19).await?;
    let path = format!("/api/v1/reservations/{}", id_of(&booked));
    let anonymous = app.api.anonymous();

    for response in [
        anonymous.get(&path).await?,
        anonymous.patch(&format!("{path}/cancel"), &cancellation()).await?,
        anonymous.patch_empty(&format!("{path}/confirm")).await?,
        anonymous.patch_empty(&format!("{path}/complete")).await?,
    ] {
        assert_eq!(response.status(), 401);
        assert_eq!(challenge(&response), "Bearer");
    }
    let mut claims = TestKeys::claims(&["reservations:manage"]);
    claims["exp"] = json!(now() - 600);
    let expired = app.api.with_token(&TestKeys::shared()?.sign(&claims)?)?;
    let response = expired.patch_empty(&format!("{path}/confirm")).await?;
    assert_eq!(response.status(), 401);
    assert_eq!(challenge(&response), r#"Bearer error="invalid_token", error_description="the token has expired""#);
    assert_eq!(status_of(&app, &id_of(&booked)).await?, "pending");
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_declares_who_may_call_each_operation() -> TestResult {
    let app = spawn_app().await?;
    let document = app.get_json("/api-docs/openapi.json").await?;
    let paths = &document["paths"];

    assert!(paths["/api/v1/reservations"]["post"]["security"].is_null(), "booking is anonymous");
    assert_eq!(paths["/api/v1/reservations"]["get"]["security"], json!([{"bearer": ["reservations:manage"]}]));
    assert_eq!(
        paths["/api/v1/reservations/{reservation_id}"]["get"]["security"],
        json!([{"bearer": ["reservations:manage"]}, {"guest": []}])
    );
    assert_eq!(
        paths["/api/v1/reservations/{reservation_id}/confirm"]["patch"]["security"],
        json!([{"bearer": ["reservations:manage"]}])
    );
    assert!(document["components"]["securitySchemes"]["guest"].is_object());
    Ok(())
}
