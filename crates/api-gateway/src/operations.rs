//! The gateway's own endpoints: `/health`, `/ready`, `/status`, `/metrics`,
//! the merged OpenAPI document of all services and Swagger UI (the event
//! schemas beside it are [`event_docs`](crate::event_docs)'s).
//!
//! `/ready` is about the gateway alone: it answers, so it can serve. Were it
//! the services' readiness, one service down would take every gateway out
//! of its load balancer, and with them the routes of the services that are
//! up. The aggregated view, every service's `/ready` and the rate limits'
//! Redis, is `/status`. Its checks go over a pooled client that keeps its
//! connections to the services alive between checks.

use crate::rate_limit::RateLimiter;
use crate::routes::{Routes, Upstream};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use service_kit::Problem;
use std::sync::Arc;
use std::time::Duration;

/// How long a check of one upstream may take.
const CHECK_WITHIN: Duration = Duration::from_secs(2);

/// What the operational endpoints need: the upstreams and a client for them.
#[derive(Debug, Clone)]
struct Upstreams {
    upstreams: Vec<Arc<Upstream>>,
    client: Client<HttpConnector, Empty<Bytes>>,
    rate_limits: Option<Arc<RateLimiter>>,
}

/// The operational router, with the `operator` API and the console beside
/// it; `/docs` loads the merged document. `/status` reports the Redis link
/// of `rate_limits`, this worker's limiter.
pub fn router(routes: &Routes, rate_limits: Option<Arc<RateLimiter>>, operator: Router) -> Router {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CHECK_WITHIN));
    let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(300)).build(connector);
    let state = Upstreams { upstreams: routes.upstreams().to_vec(), client, rate_limits };
    let docs =
        utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::new(["/api-docs/openapi.json"]));
    Router::new()
        .route("/health", get(service_kit::http::health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(service_kit::http::render_metrics))
        .route("/api-docs/openapi.json", get(openapi))
        .with_state(state)
        .merge(docs)
        .merge(operator)
        .merge(crate::event_docs::router())
        .merge(crate::console::router())
        .fallback(|| async { Problem::not_found("no service serves this path") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not accept that method")
        })
        .layer(axum::middleware::from_fn(service_kit::http::observe))
}

/// `GET path` on `upstream`: the status and body, or why there is none.
async fn fetch(upstreams: &Upstreams, upstream: &Upstream, path: &str) -> Result<(StatusCode, Bytes), String> {
    let url = upstream.url(path).map_err(|error| error.to_string())?;
    let exchange = async {
        let response =
            upstreams.client.get(url).await.map_err(|error| {
                if error.is_connect() { "unreachable".to_owned() } else { format!("failed: {error}") }
            })?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|error| format!("failed: {error}"))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(CHECK_WITHIN, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_WITHIN:?}")))
}

/// The gateway serves: it answered this request.
async fn ready() -> Response {
    axum::Json(json!({ "status": "ready" })).into_response()
}

/// Every upstream's `/ready` (up when it answers 200 within two seconds)
/// and the rate limits' Redis; 200 with `status` `ok` when all are up,
/// `degraded` otherwise, so that a status page can always read it.
async fn status(State(upstreams): State<Upstreams>) -> Response {
    let checks = join_all(upstreams.upstreams.iter().map(|upstream| async {
        let outcome = fetch(&upstreams, upstream, "/ready").await;
        let check = match outcome {
            Ok((StatusCode::OK, _)) => json!({ "status": "up" }),
            Ok((status, _)) => json!({ "status": "down", "detail": format!("/ready answered {status}") }),
            Err(detail) => json!({ "status": "down", "detail": detail }),
        };
        (upstream.name.to_owned(), check)
    }))
    .await;
    let all_up = checks.iter().all(|(_, check)| check["status"] == "up");
    let services: Map<String, Value> = checks.into_iter().collect();
    let redis = upstreams.rate_limits.as_ref().map_or("disabled", |limiter| limiter.redis_state());
    let status = if all_up && redis != "down" { "ok" } else { "degraded" };
    axum::Json(json!({ "status": status, "services": services, "rate_limits": { "redis": redis } })).into_response()
}

/// The gateway's own document: the operational endpoints, described for the gateway.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "restaurant platform",
    description = "Every service of the platform behind the API gateway, in one document."
))]
struct GatewayDoc;

/// One OpenAPI document of every service, fetched from each on request, so
/// it is always the running services' own. A service that cannot be reached
/// is named in `x-unavailable-services`.
async fn openapi(State(upstreams): State<Upstreams>) -> Response {
    let mut own = <GatewayDoc as utoipa::OpenApi>::openapi();
    own.merge(<crate::operator::ApiDoc as utoipa::OpenApi>::openapi());
    let own = service_kit::openapi::complete(own);
    let mut document = serde_json::to_value(own).unwrap_or_else(|_| json!({}));
    if let Some(ready) = document.pointer_mut("/paths/~1ready/get") {
        ready["description"] = json!("The gateway serves; /status says which services behind it are ready.");
    }
    let fetched = join_all(upstreams.upstreams.iter().map(|upstream| async {
        let document = match fetch(&upstreams, upstream, "/api-docs/openapi.json").await {
            Ok((StatusCode::OK, body)) => serde_json::from_slice::<Value>(&body).ok(),
            _ => None,
        };
        (upstream.name, document)
    }))
    .await;
    let mut unavailable = Vec::new();
    for (name, service_document) in fetched {
        match service_document {
            Some(service_document) => merge(&mut document, &service_document),
            None => unavailable.push(name),
        }
    }
    if !unavailable.is_empty() {
        document["x-unavailable-services"] = json!(unavailable);
    }
    axum::Json(document).into_response()
}

/// Adds a service's paths, components and tags to `document`. The services'
/// own operational endpoints are left out: through the gateway those paths
/// are the gateway's. A component already present is kept. Each operation
/// gets the answers the gateway itself may give in front of it.
fn merge(document: &mut Value, service: &Value) {
    const OPERATIONAL: [&str; 3] = ["/health", "/ready", "/metrics"];
    if let (Some(paths), Some(service_paths)) =
        (object(document, "/paths"), service.pointer("/paths").and_then(Value::as_object))
    {
        for (path, item) in service_paths.iter().filter(|(path, _)| !OPERATIONAL.contains(&path.as_str())) {
            let mut item = item.clone();
            add_gateway_answers(&mut item);
            paths.insert(path.clone(), item);
        }
    }
    if let Some(service_components) = service.pointer("/components").and_then(Value::as_object) {
        for (section, entries) in service_components {
            let Some(entries) = entries.as_object() else { continue };
            if document.pointer("/components").is_none() {
                document["components"] = json!({});
            }
            let Some(components) = object(document, "/components") else { continue };
            let target = components.entry(section.clone()).or_insert_with(|| json!({}));
            if let Some(target) = target.as_object_mut() {
                for (name, entry) in entries {
                    target.entry(name.clone()).or_insert_with(|| entry.clone());
                }
            }
        }
    }
    if let Some(service_tags) = service.pointer("/tags").and_then(Value::as_array) {
        let tags = document.as_object_mut().map(|root| root.entry("tags").or_insert_with(|| json!([])));
        if let Some(Value::Array(tags)) = tags {
            for tag in service_tags {
                if !tags.iter().any(|known| known["name"] == tag["name"]) {
                    tags.push(tag.clone());
                }
            }
        }
    }
}

/// Adds to every operation of a path `item` the problems the gateway answers
/// in front of a service (unless the service documents them): 429 past the
/// client's rate limit, 502 and 504 when the service breaks the exchange or
/// is too slow, and 408 for a body that is not sent in time.
fn add_gateway_answers(item: &mut Value) {
    let answers = [
        ("429", "Past this client's rate limit for the route class (the gateway's); `Retry-After` says when to retry"),
        ("502", "The service broke the exchange (the gateway's answer)"),
        ("504", "The service did not answer in time (the gateway's answer)"),
    ];
    let Some(operations) = item.as_object_mut() else { return };
    for (_, operation) in operations.iter_mut().filter(|(method, _)| HTTP_METHODS.contains(&method.as_str())) {
        let takes_body = operation.get("requestBody").is_some();
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        let body_answer = takes_body.then_some(("408", "The body was not sent in time (the gateway's answer)"));
        for (status, description) in answers.into_iter().chain(body_answer) {
            responses.entry(status).or_insert_with(|| {
                json!({
                    "description": description,
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
                })
            });
        }
    }
}

/// The keys of a path item that are operations.
const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn object<'a>(document: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    document.pointer_mut(pointer).and_then(Value::as_object_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_service_paths_and_components_but_keeps_the_gateways_operations() {
        let mut document = json!({
            "paths": {"/health": {"get": {"description": "gateway"}}},
            "components": {"schemas": {"Problem": {"type": "object"}}}
        });
        let menu = json!({
            "paths": {"/api/v1/menus": {"post": {}}, "/health": {"get": {"description": "menu"}}},
            "components": {"schemas": {"Problem": {"type": "string"}, "Menu": {"type": "object"}}},
            "tags": [{"name": "menus"}]
        });
        let reservations = json!({
            "paths": {"/api/v1/reservations": {"get": {}}},
            "components": {"schemas": {"Reservation": {}}, "responses": {"NotFound": {}}},
            "tags": [{"name": "reservations"}, {"name": "menus"}]
        });
        merge(&mut document, &menu);
        merge(&mut document, &reservations);
        let mut paths: Vec<&String> = document["paths"].as_object().map(|p| p.keys().collect()).unwrap_or_default();
        paths.sort();
        assert_eq!(paths, ["/api/v1/menus", "/api/v1/reservations", "/health"]);
        assert_eq!(document["paths"]["/health"]["get"]["description"], "gateway");
        assert_eq!(document["components"]["schemas"]["Problem"]["type"], "object");
        assert!(document["components"]["schemas"]["Menu"].is_object());
        assert!(document["components"]["responses"]["NotFound"].is_object());
        assert_eq!(document["tags"], json!([{"name": "menus"}, {"name": "reservations"}]));
    }

    #[test]
    fn a_merged_operation_documents_the_gateways_own_answers() {
        let mut document = json!({"paths": {}});
        let menu = json!({"paths": {"/api/v1/menus": {
            "get": {"responses": {"200": {"description": "menus"}}},
            "post": {"requestBody": {}, "responses": {"201": {}, "429": {"description": "the service's own"}}},
        }}});
        merge(&mut document, &menu);
        let list = &document["paths"]["/api/v1/menus"]["get"]["responses"];
        for status in ["200", "429", "502", "504"] {
            assert!(list[status].is_object(), "{status} is documented");
        }
        assert!(list["408"].is_null(), "no body, no 408");
        let create = &document["paths"]["/api/v1/menus"]["post"]["responses"];
        assert_eq!(create["429"]["description"], "the service's own");
        assert_eq!(
            create["408"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
    }
}
