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

use crate::problem::Problem;
use std::collections::BTreeMap;
use utoipa::OpenApi;
use utoipa::openapi::content::Content;
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
        }
    }
    document
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
