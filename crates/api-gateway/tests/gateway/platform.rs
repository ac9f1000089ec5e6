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

/// [`service_settings`] with the streams in Redis database `redis_db`.
fn service_settings_on(db: &TestDb, stream_prefix: &str, redis_db: i64) -> Settings {
    let mut settings = service_settings(db, stream_prefix);
    settings.redis.redis_db = redis_db;
    settings
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
    services_on(0).await
}

/// The services with their streams in Redis database `redis_db`.
async fn services_on(redis_db: i64) -> anyhow::Result<Services> {
    let stream_prefix = testkit::unique("test-");
    let (menu_db, reservation_db, inventory_db, kitchen_db, order_db) =
        (TestDb::new().await?, TestDb::new().await?, TestDb::new().await?, TestDb::new().await?, TestDb::new().await?);
    let menu = menu_service::build(&service_settings_on(&menu_db, &stream_prefix, redis_db)).await?;
    let menu = Running::spawn(menu.port()?, |cancel| menu.run_until_stopped(cancel));
    let reservation = reservation_service::build(
        &service_settings_on(&reservation_db, &stream_prefix, redis_db),
        &reservation_service::BookingSettings::default(),
    )
    .await?;
    let reservation = Running::spawn(reservation.port()?, |cancel| reservation.run_until_stopped(cancel));
    let inventory = inventory_service::build(
        &service_settings_on(&inventory_db, &stream_prefix, redis_db),
        &inventory_service::InventorySettings::default(),
    )
    .await?;
    let inventory = Running::spawn(inventory.port()?, |cancel| inventory.run_until_stopped(cancel));
    let kitchen = kitchen_service::build(
        &service_settings_on(&kitchen_db, &stream_prefix, redis_db),
        &kitchen_service::KitchenSettings::default(),
    )
    .await?;
    let kitchen = Running::spawn(kitchen.port()?, |cancel| kitchen.run_until_stopped(cancel));
    let order = order_service::build(
        &service_settings_on(&order_db, &stream_prefix, redis_db),
        &order_service::OrderSettings::default(),
    )
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
    // Not database 0, so that the script must read the one the services use.
    const REDIS_DB: i64 = 3;
    let services = services_on(REDIS_DB).await?;
    let gateway = spawn_gateway(services.gateway_settings()).await?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-events.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .env("GATEWAY_URL", &gateway.base)
        .env("STREAM_PREFIX", &services.stream_prefix)
        .env("REDIS_DB", REDIS_DB.to_string())
        .env("STAFF_TOKEN", testkit::auth::staff_token()?)
        .output()
        .await?;
    // The sweep of stale test streams looks in database 0 only: remove this run's.
    let mut redis =
        redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}"))?.get_multiplexed_async_connection().await?;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*", services.stream_prefix)).query_async(&mut redis).await?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).query_async::<()>(&mut redis).await?;
    }
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

/// Every operation of an OpenAPI document: its path, method and object.
fn operations(document: &serde_json::Value) -> Vec<(String, String, &serde_json::Value)> {
    let paths = document["paths"].as_object().into_iter().flatten();
    paths
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .filter(|(method, _)| ["get", "put", "post", "delete", "patch"].contains(&method.as_str()))
                .map(move |(method, operation)| (path.clone(), method.clone(), operation))
        })
        .collect()
}

/// Whether the JSON pointer `pointer` can name something in a body of
/// `schema`: each segment a property, or an index into an array's items.
fn schema_has(document: &serde_json::Value, schema: &serde_json::Value, pointer: &str) -> bool {
    let resolve = |schema: &serde_json::Value| -> serde_json::Value {
        match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
            Some(at) => document.pointer(at).cloned().unwrap_or_default(),
            None => schema.clone(),
        }
    };
    let mut current = resolve(schema);
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        let next = if segment.parse::<usize>().is_ok() { &current["items"] } else { &current["properties"][segment] };
        if next.is_null() {
            return false;
        }
        current = resolve(next);
    }
    true
}

#[tokio::test]
async fn the_merged_openapi_document_is_valid_and_links_each_create_to_its_reads_and_changes() -> TestResult {
    let services = services().await?;
    let gateway = spawn_gateway(services.gateway_settings()).await?;
    let document = gateway.get_json("/api-docs/openapi.json").await?;
    assert!(document.get("x-unavailable-services").is_none(), "every service answered");
    let operations = operations(&document);
    let mut by_id = std::collections::BTreeMap::new();
    for (path, method, operation) in &operations {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has an operationId");
        assert!(by_id.insert(id, (path, method, *operation)).is_none(), "operationId {id} is used twice");
    }

    let mut links = std::collections::BTreeMap::new();
    for (path, method, operation) in &operations {
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let at = format!("link {name} of {method} {path} {status}");
                let target_id = link["operationId"].as_str().unwrap_or_default();
                let Some((target_path, _, target)) = by_id.get(target_id) else {
                    panic!("{at} names no operation: {target_id:?}");
                };
                let parameters = link["parameters"].as_object().cloned().unwrap_or_default();
                let declared: Vec<(String, String)> = target["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        (
                            p["in"].as_str().unwrap_or_default().to_owned(),
                            p["name"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                for (parameter, expression) in &parameters {
                    let (location, name) = parameter.split_once('.').unwrap_or(("", parameter));
                    assert!(
                        declared.iter().any(|(l, n)| n == name && (location.is_empty() || l == location)),
                        "{at}: {target_id} has no parameter {parameter}"
                    );
                    let expression = expression.as_str().unwrap_or_default();
                    if let Some(pointer) = expression.strip_prefix("$response.body#") {
                        let schema = &response["content"]["application/json"]["schema"];
                        assert!(schema_has(&document, schema, pointer), "{at}: the body has no {pointer}");
                    } else if let Some(header) = expression.strip_prefix("$response.header.") {
                        let headers = response["headers"].as_object().cloned().unwrap_or_default();
                        assert!(headers.keys().any(|h| h.eq_ignore_ascii_case(header)), "{at}: no {header} header");
                    } else {
                        panic!("{at}: {expression:?} is not an expression on the response");
                    }
                }
                for (location, name) in declared.iter().filter(|(location, _)| location == "path") {
                    assert!(
                        parameters.contains_key(&format!("{location}.{name}")),
                        "{at} fills {name} of {target_path}"
                    );
                }
                links
                    .entry(operation["operationId"].as_str().unwrap_or_default())
                    .or_insert_with(Vec::new)
                    .push(target_id);
            }
        }
    }
    for (create, reads) in [
        ("menus_create", &["menus_show", "menus_activate", "menus_add_item", "menus_set_availability"][..]),
        ("reservations_create", &["reservations_show", "reservations_confirm", "reservations_cancel"]),
        ("ingredients_create", &["ingredients_show", "ingredients_receive", "ingredients_movements"]),
        ("orders_create", &["orders_show", "orders_cancel"]),
    ] {
        let linked = links.get(create).cloned().unwrap_or_default();
        for read in reads {
            assert!(linked.contains(read), "{create} links to {read}: {linked:?}");
        }
    }

    // Spectral's OpenAPI rules, which include the OpenAPI 3.1 schema.
    let spectral = crate::documents::validator("spectral")?;
    let scratch = tempfile::tempdir()?;
    let (file, ruleset) = (scratch.path().join("openapi.json"), scratch.path().join("ruleset.yaml"));
    std::fs::write(&file, serde_json::to_vec(&document)?)?;
    std::fs::write(&ruleset, "extends: [\"spectral:oas\"]\n")?;
    let args = [
        "lint".as_ref(),
        file.as_os_str(),
        "--ruleset".as_ref(),
        ruleset.as_os_str(),
        "--fail-severity".as_ref(),
        "error".as_ref(),
    ];
    crate::documents::run_validator(&spectral, &args).await?;
    Ok(())
}

#[tokio::test]
async fn the_consumer_groups_of_a_running_platform_are_those_the_event_schemas_name() -> TestResult {
    let services = services().await?;
    let document: serde_json::Value = serde_json::from_str(events::asyncapi::COMMITTED)?;
    let mut connection = testkit::redis_client()?.get_multiplexed_async_connection().await?;
    for stream in events::Streams::default().all() {
        let named: std::collections::BTreeSet<String> = document["channels"][&stream]["x-consumer-groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|group| group.as_str().map(str::to_owned))
            .collect();
        let key = format!("{}{stream}", services.stream_prefix);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // A stream that does not exist yet has no groups.
            let info: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
                redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut connection).await;
            let created: std::collections::BTreeSet<String> =
                info.map(|info| info.groups.into_iter().map(|group| group.name).collect()).unwrap_or_default();
            if created == named {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{stream}: the event schemas name the groups {named:?}, the running platform made {created:?}; \
                 update `streams()` in crates/events/src/asyncapi.rs and regenerate the document"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
