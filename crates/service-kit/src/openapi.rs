//! The OpenAPI 3.1 document each service serves: its own operations, the
//! operational endpoints, and the problem responses every operation can give.
//!
//! A service documents what is particular to each operation (its body, its
//! 404/409/412/422); [`complete`] adds what every operation shares, so no
//! handler repeats it and none can forget it.
//!
//! Authentication is declared once too: the document gets the security
//! schemes [`BEARER`] (a staff JWT) and [`GUEST`] (a guest's capability,
//! also sent as a bearer token), and every operation that names a scheme in
//! its `security` gets the 401 and 403 problems. An operation anyone may
//! call declares no `security`.
//!
//! So are the ids and links that let a client, or a fuzzer, walk from a
//! create to what it created: every `operationId` is its tag and handler
//! (`menus_show`), unique across the platform's merged document, and every
//! create (a `POST` answering 201 or 202 with a `Location`) links to each
//! operation under the path it created, with the new id from the body, the
//! ids of its parts from the body's lists (`items/0/id`), and its `ETag` as
//! `If-Match` ([`links`]).

use crate::problem::Problem;
use std::collections::BTreeMap;
use utoipa::OpenApi;
use utoipa::openapi::content::Content;
use utoipa::openapi::link::Link;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};

/// The security scheme of staff JWTs: `security(("bearer" = ["menus:write"]))`.
pub const BEARER: &str = "bearer";
/// The security scheme of guest capabilities (`rsv_…`): `security(("guest" = []))`.
pub const GUEST: &str = "guest";

#[derive(OpenApi)]
#[openapi(paths(crate::http::health, crate::http::ready, crate::http::render_metrics), components(schemas(Problem)))]
struct Operations;

/// `document` plus the operational endpoints, the `Problem` schema, and on
/// every operation: 400 (malformed path, query, header or body), 404 (when
/// its path names a resource), 409 (when it takes `If-Match`), 413, 415 and 422 (when it takes a body), 401 and
/// 403 (when it needs a token), 500 and 503; and the [`BEARER`] and [`GUEST`] security schemes, so that
/// Swagger UI can send a token.
pub fn complete(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    document.merge(Operations::openapi());
    let components = document.components.get_or_insert_with(Default::default);
    let mut staff = Http::new(HttpAuthScheme::Bearer);
    staff.bearer_format = Some("JWT".to_owned());
    staff.description = Some(
        "A staff token (EdDSA or ES256 JWT) whose `scope` claim carries the scopes the operation lists; \
         `platform-ctl token` mints one"
            .to_owned(),
    );
    components.add_security_scheme(BEARER, SecurityScheme::Http(staff));
    let mut guest = Http::new(HttpAuthScheme::Bearer);
    guest.description =
        Some("A guest's capability, such as the `manage_token` a booking returned once (`rsv_…`)".to_owned());
    components.add_security_scheme(GUEST, SecurityScheme::Http(guest));
    for item in document.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            add_shared_problems(operation);
            name_by_tag(operation);
        }
    }
    add_links(&mut document);
    document
}

/// Gives `operation` the id `<tag>_<handler>`: utoipa names an operation
/// after its handler, and `create` or `show` are handlers of every service.
fn name_by_tag(operation: &mut Operation) {
    let tag = operation.tags.iter().flatten().next();
    if let (Some(tag), Some(id)) = (tag, &operation.operation_id)
        && !id.starts_with(&format!("{tag}_"))
    {
        operation.operation_id = Some(format!("{tag}_{id}"));
    }
}

/// Adds [`links`] to the create responses of `document`.
fn add_links(document: &mut utoipa::openapi::OpenApi) {
    let Ok(view) = serde_json::to_value(&*document) else { return };
    for found in links(&view) {
        let response = document
            .paths
            .paths
            .get_mut(&found.path)
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.responses.responses.get_mut(&found.status));
        if let Some(RefOr::T(response)) = response {
            response.links.insert(found.name, RefOr::T(found.link));
        }
    }
}

/// A link to add to the `status` response of `POST path`.
struct FoundLink {
    path: String,
    status: String,
    name: String,
    link: Link,
}

/// The links from each create of `document` (its JSON form) to the
/// operations under the path it created (`POST /menus` → `/menus/{menu_id}`
/// and below). The new resource's path parameter is the body's `id`; a
/// further path parameter after a segment `s` is `$response.body#/s/0/id`
/// when the body has a list `s` of objects with an `id`; `If-Match` is the
/// response's `ETag`. An operation with a path parameter that cannot be
/// filled so is not linked.
fn links(document: &serde_json::Value) -> Vec<FoundLink> {
    let Some(paths) = document.get("paths").and_then(serde_json::Value::as_object) else { return Vec::new() };
    let mut found = Vec::new();
    for (path, item) in paths {
        let Some(create) = item.get("post") else { continue };
        for status in ["201", "202"] {
            let Some(response) = create.pointer(&format!("/responses/{status}")) else { continue };
            let headers = response.get("headers").and_then(serde_json::Value::as_object);
            let has = |name: &str| headers.is_some_and(|h| h.keys().any(|key| key.eq_ignore_ascii_case(name)));
            let Some(body) = response.pointer("/content/application~1json/schema").map(|s| resolve(document, s)) else {
                continue;
            };
            if !has("Location") || property(document, body, "id").is_none() {
                continue;
            }
            let below = format!("{path}/{{");
            for (target_path, target_item) in paths.iter().filter(|(target, _)| target.starts_with(&below)) {
                for (method, target) in target_item.as_object().into_iter().flatten() {
                    let Some(operation_id) = target.get("operationId").and_then(serde_json::Value::as_str) else {
                        continue;
                    };
                    let Some(parameters) = link_parameters(document, body, path, target_path, target, has("ETag"))
                    else {
                        continue;
                    };
                    let mut link = utoipa::openapi::link::LinkBuilder::new()
                        .operation_id(operation_id)
                        .description(format!("{} {target_path} of what this created", method.to_uppercase()));
                    for (name, value) in parameters {
                        link = link.parameter(name, value);
                    }
                    found.push(FoundLink {
                        path: path.clone(),
                        status: status.to_owned(),
                        name: operation_id.to_owned(),
                        link: link.build(),
                    });
                }
            }
        }
    }
    found
}

/// The parameters of a link from a create of `created` (whose response body
/// is `body`) to `target` at `target_path`, or `None` if a path parameter
/// cannot be filled from the response.
fn link_parameters(
    document: &serde_json::Value,
    body: &serde_json::Value,
    created: &str,
    target_path: &str,
    target: &serde_json::Value,
    has_etag: bool,
) -> Option<Vec<(String, String)>> {
    let mut parameters = Vec::new();
    let mut previous = None;
    for (index, segment) in target_path[created.len()..].split('/').filter(|s| !s.is_empty()).enumerate() {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let value = if index == 0 {
                "$response.body#/id".to_owned()
            } else {
                let list: &str = previous?;
                let element = property(document, body, list)?.get("items").map(|items| resolve(document, items))?;
                property(document, element, "id")?;
                format!("$response.body#/{list}/0/id")
            };
            parameters.push((format!("path.{name}"), value));
        }
        previous = Some(segment);
    }
    let takes_if_match = target
        .get("parameters")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .any(|parameter| parameter["in"] == "header" && parameter["name"] == "If-Match");
    if takes_if_match && has_etag {
        parameters.push(("header.If-Match".to_owned(), "$response.header.ETag".to_owned()));
    }
    Some(parameters)
}

/// `schema`, or what its local `$ref` names.
fn resolve<'a>(document: &'a serde_json::Value, schema: &'a serde_json::Value) -> &'a serde_json::Value {
    match schema.get("$ref").and_then(serde_json::Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => document.pointer(pointer).unwrap_or(schema),
        None => schema,
    }
}

/// The (resolved) schema of property `name` of the object schema `schema`.
fn property<'a>(
    document: &'a serde_json::Value,
    schema: &'a serde_json::Value,
    name: &str,
) -> Option<&'a serde_json::Value> {
    schema.get("properties")?.get(name).map(|property| resolve(document, property))
}

fn add_shared_problems(operation: &mut Operation) {
    let takes_body = operation.request_body.is_some();
    let parameters: Vec<&Parameter> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|parameter| match parameter {
            RefOr::T(parameter) => Some(parameter),
            RefOr::Ref(_) => None,
        })
        .collect();
    let takes_if_match = parameters.iter().any(|parameter| parameter.name == "If-Match");
    let names_a_resource = parameters.iter().any(|parameter| parameter.parameter_in == ParameterIn::Path);
    let needs_token = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|value| value.as_object().is_some_and(|names| !names.is_empty()))
    });
    let responses = &mut operation.responses.responses;
    if needs_token {
        add(responses, "401", "No bearer token, or one that does not verify; `WWW-Authenticate` says why");
        add(responses, "403", "The token lacks the scope this operation needs; `WWW-Authenticate` names it");
    }
    if names_a_resource {
        add(responses, "404", "Nothing is known by an id in the path");
    }
    if takes_if_match {
        add(responses, "409", "If-Match names a version other than the current one; reload and retry");
    }
    add(responses, "400", "Malformed request: a path, query or header value, or a body that is not JSON");
    if takes_body {
        add(responses, "413", "The body is larger than the service accepts");
        add(responses, "415", "The body is not sent as application/json");
        add(responses, "422", "The body is JSON of the wrong shape; `field` names the field");
    }
    add(responses, "500", "Unexpected failure; quote the X-Request-Id response header when reporting it");
    add(responses, "503", "A dependency (PostgreSQL or Redis) is unreachable");
}

fn add(responses: &mut BTreeMap<String, RefOr<Response>>, status: &str, description: &str) {
    responses.entry(status.to_owned()).or_insert_with(|| problem_response(description));
}

/// A response whose body is a [`Problem`], as `application/problem+json`.
pub fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", Content::new(Some(Ref::from_schema_name("Problem"))))
        .build()
        .into()
}

/// Text with some visible character and no control characters
/// (`char::is_control`): what a required, single-line `bounded_text!` accepts.
const SINGLE_LINE: &str =
    r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// The schema of a required single-line text of 1 to `max_length` characters.
pub fn single_line_text(max_length: usize, example: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_length))
        .pattern(Some(SINGLE_LINE))
        .examples([example])
        .build()
}

/// The schema of optional free text of up to `max_length` characters: no
/// control characters but newline and tab; `null` for none.
pub fn optional_multiline_text(max_length: usize) -> Object {
    ObjectBuilder::new()
        .schema_type([Type::String, Type::Null].into_iter().collect::<SchemaType>())
        .max_length(Some(max_length))
        .pattern(Some(r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A service's document in JSON: a create with `Location`, its reads and
    /// changes, and an add that answers 201 without a `Location`.
    fn document() -> serde_json::Value {
        let path = |name: &str| json!({"name": name, "in": "path", "required": true});
        let if_match = json!({"name": "If-Match", "in": "header", "required": false});
        let menu = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Menu"}}},
                          "headers": {"Location": {}, "ETag": {}}, "description": "Created"});
        json!({
            "paths": {
                "/menus": {"post": {"operationId": "menus_create", "responses": {"201": menu}},
                           "get": {"operationId": "menus_list"}},
                "/menus/{menu_id}": {"get": {"operationId": "menus_show", "parameters": [path("menu_id")]}},
                "/menus/{menu_id}/activate": {"post": {"operationId": "menus_activate",
                                                       "parameters": [path("menu_id"), if_match]}},
                "/menus/{menu_id}/items": {"post": {"operationId": "menus_add_item",
                    "responses": {"201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Menu"}}}}},
                    "parameters": [path("menu_id")]}},
                "/menus/{menu_id}/items/{item_id}": {"patch": {"operationId": "menus_edit_item",
                                                              "parameters": [path("menu_id"), path("item_id"), if_match]}},
                "/menus/{menu_id}/tags/{tag}": {"get": {"operationId": "menus_tag", "parameters": [path("menu_id"), path("tag")]}},
                "/menusx/{id}": {"get": {"operationId": "other"}},
            },
            "components": {"schemas": {
                "Menu": {"type": "object", "properties": {"id": {"type": "string"},
                         "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
                "Item": {"type": "object", "properties": {"id": {"type": "string"}}},
            }},
        })
    }

    #[test]
    fn a_create_links_to_every_operation_under_what_it_created_that_its_response_can_fill() {
        let found: Vec<(String, Vec<(String, serde_json::Value)>)> = links(&document())
            .into_iter()
            .map(|found| {
                assert_eq!((found.path.as_str(), found.status.as_str()), ("/menus", "201"));
                assert_eq!(found.link.operation_id, found.name);
                (found.name, found.link.parameters.into_iter().collect())
            })
            .collect();
        let id = || ("path.menu_id".to_owned(), json!("$response.body#/id"));
        let etag = || ("header.If-Match".to_owned(), json!("$response.header.ETag"));
        assert_eq!(
            found,
            vec![
                ("menus_show".to_owned(), vec![id()]),
                ("menus_activate".to_owned(), vec![etag(), id()]),
                ("menus_add_item".to_owned(), vec![id()]),
                (
                    "menus_edit_item".to_owned(),
                    vec![etag(), ("path.item_id".to_owned(), json!("$response.body#/items/0/id")), id()]
                ),
            ],
            "no link from the add (no Location), none to a path whose `tag` the body has no list of"
        );
    }

    #[test]
    fn operation_ids_are_prefixed_with_their_tag_once() {
        let mut operation = Operation::new();
        operation.tags = Some(vec!["menus".to_owned()]);
        operation.operation_id = Some("show".to_owned());
        name_by_tag(&mut operation);
        name_by_tag(&mut operation);
        assert_eq!(operation.operation_id.as_deref(), Some("menus_show"));
    }
}
