//! Who may do what: anyone reads menus, only staff with `menus:write` change them.

use crate::helpers::*;
use serde_json::{Value, json};
use service_kit::Settings;
use service_kit::auth::AuthSettings;
use testkit::Api;
use testkit::auth::TestKeys;

/// How many menus the service holds.
async fn menus(app: &TestApp) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM menus").fetch_one(&app.db.pool).await?)
}

/// Every write of the menu API, as (method, path, body), on `menu` and its first item.
fn writes(menu: &Value) -> Vec<(reqwest::Method, String, Value)> {
    let id = menu["id"].as_str().unwrap_or_default();
    let item = menu["items"][0]["id"].as_str().unwrap_or_default();
    let new_item = json!({"name": "Tiramisu", "category": "dessert", "price_cents": 700, "currency": "EUR"});
    vec![
        (reqwest::Method::POST, "/api/v1/menus".to_owned(), lunch()),
        (reqwest::Method::POST, format!("/api/v1/menus/{id}/activate"), json!({})),
        (reqwest::Method::POST, format!("/api/v1/menus/{id}/deactivate"), json!({})),
        (reqwest::Method::POST, format!("/api/v1/menus/{id}/items"), new_item.clone()),
        (reqwest::Method::PATCH, format!("/api/v1/menus/{id}/items/{item}"), json!({"price_cents": 1})),
        (reqwest::Method::PUT, format!("/api/v1/menus/{id}/items/{item}"), new_item),
        (reqwest::Method::PATCH, format!("/api/v1/menus/{id}/items/{item}/availability"), json!({"available": false})),
    ]
}

async fn send(api: &Api, method: &reqwest::Method, path: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
    Ok(api.client.request(method.clone(), api.url(path)).json(body).send().await?)
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn anyone_may_read_menus_without_a_token() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let anonymous = app.api.anonymous();

    let list = anonymous.get("/api/v1/menus").await?;
    assert_eq!(list.status(), 200);
    let one = anonymous.get(&format!("/api/v1/menus/{}", menu["id"].as_str().unwrap_or_default())).await?;
    assert_eq!(one.status(), 200);
    Ok(())
}

#[tokio::test]
async fn every_write_without_a_token_is_401_with_a_bearer_challenge_and_changes_nothing() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let anonymous = app.api.anonymous();

    for (method, path, body) in writes(&menu) {
        let response = send(&anonymous, &method, &path, &body).await?;
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_eq!(challenge(&response), "Bearer", "{method} {path}");
        assert_eq!(content_type(&response), "application/problem+json");
    }
    assert_eq!(menus(&app).await?, 1);
    let stored: Value = app.get_json(&format!("/api/v1/menus/{}", menu["id"].as_str().unwrap_or_default())).await?;
    assert_eq!(stored["version"], 1);
    Ok(())
}

#[tokio::test]
async fn every_write_with_a_token_without_menus_write_is_403_naming_the_scope() -> TestResult {
    let app = spawn_app().await?;
    let menu = app.create_lunch().await?;
    let waiter = app.api.with_token(&TestKeys::shared()?.token(&["reservations:manage", "orders:manage"])?)?;

    for (method, path, body) in writes(&menu) {
        let response = send(&waiter, &method, &path, &body).await?;
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_eq!(challenge(&response), r#"Bearer error="insufficient_scope", scope="menus:write""#);
        let problem: Value = response.json().await?;
        assert_eq!(problem["detail"], "this operation needs a staff token with scope menus:write");
    }
    assert_eq!(menus(&app).await?, 1);
    let stored: Value = app.get_json(&format!("/api/v1/menus/{}", menu["id"].as_str().unwrap_or_default())).await?;
    assert_eq!(stored["version"], 1);
    Ok(())
}

#[tokio::test]
async fn a_token_with_menus_write_may_create_a_menu() -> TestResult {
    let app = spawn_app().await?;
    let chef = app.api.with_token(&TestKeys::shared()?.token(&["menus:write"])?)?;
    let response = chef.post("/api/v1/menus", &lunch()).await?;
    assert_eq!(response.status(), 201);
    Ok(())
}

#[tokio::test]
async fn bad_tokens_get_401_invalid_token_saying_why_and_create_nothing() -> TestResult {
    let app = spawn_app().await?;
    for testkit::auth::BadToken { case, token, reason } in testkit::auth::bad_tokens()? {
        let response = app.api.with_token(&token)?.post("/api/v1/menus", &lunch()).await?;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(
            challenge(&response),
            format!(r#"Bearer error="invalid_token", error_description="{reason}""#),
            "{case}"
        );
        assert_eq!(content_type(&response), "application/problem+json", "{case}");
        let problem: Value = response.json().await?;
        assert_eq!(problem["detail"], reason, "{case}");
    }
    assert_eq!(menus(&app).await?, 0);
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_declares_the_bearer_scheme_and_each_writes_scope() -> TestResult {
    let app = spawn_app().await?;
    let document = app.get_json("/api-docs/openapi.json").await?;

    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    assert_eq!(scheme["bearerFormat"], "JWT");
    let create = &document["paths"]["/api/v1/menus"]["post"];
    assert_eq!(create["security"], json!([{"bearer": ["menus:write"]}]));
    assert!(create["responses"]["401"].is_object() && create["responses"]["403"].is_object());
    let availability = &document["paths"]["/api/v1/menus/{menu_id}/items/{item_id}/availability"]["patch"];
    assert_eq!(availability["security"], json!([{"bearer": ["menus:write"]}]));
    let list = &document["paths"]["/api/v1/menus"]["get"];
    assert!(list["security"].is_null(), "reading is anonymous: {}", list["security"]);
    assert!(list["responses"]["401"].is_null());
    Ok(())
}

#[tokio::test]
async fn a_service_without_a_key_to_verify_tokens_with_refuses_to_start() -> TestResult {
    let (settings, _db) = test_settings().await?;
    let settings = Settings { auth: AuthSettings { public_key_pem: None, ..settings.auth }, ..settings };
    let Err(error) = menu_service::build(&settings).await else { anyhow::bail!("the service started without a key") };
    assert!(error.to_string().contains("set AUTH_PUBLIC_KEY_FILE"), "{error}");
    Ok(())
}

#[tokio::test]
async fn with_auth_public_key_file_only_tokens_of_that_key_are_accepted() -> TestResult {
    let keys = TestKeys::new()?;
    let (settings, db) = test_settings().await?;
    let auth = AuthSettings { public_key_pem: None, public_key_file: Some(keys.public_key_file()), ..settings.auth };
    let app = spawn_with(Settings { auth, ..settings }, db).await?;

    let ours = app.api.with_token(&keys.token(&["menus:write"])?)?.post("/api/v1/menus", &lunch()).await?;
    assert_eq!(ours.status(), 201);
    let test_key = app.api.with_token(&TestKeys::shared()?.token(&["menus:write"])?)?;
    assert_eq!(test_key.post("/api/v1/menus", &lunch()).await?.status(), 401);
    Ok(())
}
