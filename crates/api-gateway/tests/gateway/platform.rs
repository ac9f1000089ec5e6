//! The gateway in front of the real services.

use crate::helpers::{TestResult, spawn_gateway};
use api_gateway::GatewaySettings;
use serde_json::json;
use service_kit::Settings;
use std::time::Duration;
use testkit::{Running, TestDb};

/// Settings for a service on a fresh schema, sharing `stream_prefix`.
fn service_settings(db: &TestDb, stream_prefix: &str) -> Settings {
    Settings::ephemeral("platform_test", &db.schema, stream_prefix)
}

/// The services of the catalog on their own schemas and one stream prefix.
struct Services {
    menu: Running,
    reservation: Running,
    inventory: Running,
    kitchen: Running,
    order: Running,
    stream_prefix: String,
    _databases: (TestDb, TestDb, TestDb, TestDb, TestDb),
}

impl Services {
    fn gateway_settings(&self) -> GatewaySettings {
        GatewaySettings::for_upstreams(&self.menu.base, &self.reservation.base)
            .with_upstream(service_kit::catalog::INVENTORY.name, &self.inventory.base)
            .with_upstream(service_kit::catalog::KITCHEN.name, &self.kitchen.base)
            .with_upstream(service_kit::catalog::ORDER.name, &self.order.base)
    }
}

async fn services() -> anyhow::Result<Services> {
    let stream_prefix = testkit::unique("test-");
    let (menu_db, reservation_db, inventory_db, kitchen_db, order_db) =
        (TestDb::new().await?, TestDb::new().await?, TestDb::new().await?, TestDb::new().await?, TestDb::new().await?);
    let menu = menu_service::build(&service_settings(&menu_db, &stream_prefix)).await?;
    let menu = Running::spawn(menu.port()?, |cancel| menu.run_until_stopped(cancel));
    let reservation = reservation_service::build(
        &service_settings(&reservation_db, &stream_prefix),
        &reservation_service::BookingSettings::default(),
    )
    .await?;
    let reservation = Running::spawn(reservation.port()?, |cancel| reservation.run_until_stopped(cancel));
    let inventory = inventory_service::build(
        &service_settings(&inventory_db, &stream_prefix),
        &inventory_service::InventorySettings::default(),
    )
    .await?;
    let inventory = Running::spawn(inventory.port()?, |cancel| inventory.run_until_stopped(cancel));
    let kitchen = kitchen_service::build(
        &service_settings(&kitchen_db, &stream_prefix),
        &kitchen_service::KitchenSettings::default(),
    )
    .await?;
    let kitchen = Running::spawn(kitchen.port()?, |cancel| kitchen.run_until_stopped(cancel));
    let order =
        order_service::build(&service_settings(&order_db, &stream_prefix), &order_service::OrderSettings::default())
            .await?;
    let order = Running::spawn(order.port()?, |cancel| order.run_until_stopped(cancel));
    Ok(Services {
        menu,
        reservation,
        inventory,
        kitchen,
        order,
        stream_prefix,
        _databases: (menu_db, reservation_db, inventory_db, kitchen_db, order_db),
    })
}

#[tokio::test]
async fn the_request_id_becomes_the_events_correlation_id() -> TestResult {
    let services = services().await?;
    let gateway = spawn_gateway(services.gateway_settings()).await?;
    let menu = json!({"name": "Lunch", "items": [{"name": "Soup", "category": "starter", "price_cents": 650, "currency": "EUR"}]});

    let given = gateway
        .client
        .post(gateway.url("/api/v1/menus"))
        .header("x-request-id", "e2e-given-1")
        .json(&menu)
        .send()
        .await?;
    assert_eq!(given.status(), 201);
    assert_eq!(given.headers()["x-request-id"], "e2e-given-1");
    let made = gateway.post("/api/v1/menus", &menu).await?;
    assert_eq!(made.status(), 201);
    let made_id = made.headers()["x-request-id"].to_str()?.to_owned();

    let stream = format!("{}menu-events", services.stream_prefix);
    let entries = testkit::stream::entries(&stream, 2, Duration::from_secs(3)).await?;
    let correlation: Vec<String> =
        entries.iter().map(|entry| entry.metadata["correlation_id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(correlation, ["e2e-given-1".to_owned(), made_id]);
    Ok(())
}

#[tokio::test]
async fn one_openapi_document_describes_every_service_and_swagger_ui_loads_it() -> TestResult {
    let services = services().await?;
    let gateway = spawn_gateway(services.gateway_settings()).await?;
    let document = gateway.get_json("/api-docs/openapi.json").await?;
    for path in [
        "/api/v1/menus",
        "/api/v1/menus/{menu_id}/items/{item_id}/availability",
        "/api/v1/reservations",
        "/api/v1/reservations/{reservation_id}/cancel",
        "/api/v1/ingredients/{ingredient_id}/receipts",
        "/api/v1/portions",
        "/health",
        "/ready",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
    for schema in ["Menu", "Reservation", "Ingredient", "Problem"] {
        assert!(document["components"]["schemas"].get(schema).is_some(), "{schema} missing");
    }
    assert!(document.get("x-unavailable-services").is_none());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object(), "Swagger UI can send a token");
    let status = gateway.get_json("/status").await?;
    assert_eq!(status["services"]["reservation-service"]["status"], "up");

    let docs = gateway.get("/docs/").await?;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await?.contains("swagger"), "Swagger UI is served");
    let config = gateway.get("/docs/swagger-initializer.js").await?.text().await?;
    assert!(config.contains("/api-docs/openapi.json"), "{config}");
    Ok(())
}

#[tokio::test]
async fn test_events_sh_passes_against_a_platform_it_starts() -> TestResult {
    let services = services().await?;
    let gateway = spawn_gateway(services.gateway_settings()).await?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-events.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .env("GATEWAY_URL", &gateway.base)
        .env("STREAM_PREFIX", &services.stream_prefix)
        .env("STAFF_TOKEN", testkit::auth::staff_token()?)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "test-events.sh failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert_eq!(stdout.matches("    ok:").count(), 35, "every check ran:\n{stdout}");
    Ok(())
}

#[tokio::test]
async fn a_service_with_redis_unreachable_stays_ready_and_says_redis_is_down() -> TestResult {
    let db = TestDb::new().await?;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let mut settings = service_settings(&db, &testkit::unique("test-"));
    settings.redis.redis_port = closed;
    let menu = menu_service::build(&settings).await?;
    let menu = Running::spawn(menu.port()?, |cancel| menu.run_until_stopped(cancel));
    for _ in 0..2 {
        let ready = menu.get("/ready").await?;
        assert_eq!(ready.status(), 200, "Redis down does not make the service unready");
        let body: serde_json::Value = ready.json().await?;
        assert_eq!(body["checks"], json!({"postgres": "up", "redis": "down"}), "{body}");
    }
    let metrics = menu.get("/metrics").await?.text().await?;
    assert!(metrics.contains("dependency_up{dependency=\"redis\"} 0"), "{metrics}");
    Ok(())
}
