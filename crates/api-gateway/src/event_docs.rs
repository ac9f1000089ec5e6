//! The event schemas beside the OpenAPI document: the AsyncAPI document of
//! every stream at `/api-docs/asyncapi.json` (the committed copy the events
//! crate generates from its types), and a page for people at
//! `/docs/events`, rendered here from that document: no script, and nothing
//! loaded from anywhere else (like the console, it must work offline).

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};
use service_kit::Problem;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::LazyLock;

/// Only this origin's stylesheet: no script, image, frame or connection.
const POLICY: &str =
    "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const STYLESHEET: &str = include_str!("event_docs.css");

/// The page, rendered once per process from the committed document.
static PAGE: LazyLock<Result<String, String>> = LazyLock::new(|| {
    serde_json::from_str::<Value>(events::asyncapi::COMMITTED)
        .map(|document| render(&document))
        .map_err(|error| format!("the AsyncAPI document does not parse: {error}"))
});

/// The routes of the event schemas.
pub fn router() -> Router {
    Router::new()
        .route("/api-docs/asyncapi.json", get(|| async { respond("application/json", events::asyncapi::COMMITTED) }))
        .route("/docs/events", get(page))
        .route("/docs/events.css", get(|| async { respond("text/css; charset=utf-8", STYLESHEET) }))
}

async fn page() -> Response {
    match &*PAGE {
        Ok(page) => respond("text/html; charset=utf-8", page),
        Err(error) => {
            tracing::error!(%error, "cannot render the event schemas");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the event schemas cannot be shown").into_response()
        }
    }
}

fn respond(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// The page of an AsyncAPI 3.0 document: the envelope every entry has, each
/// channel with its publisher, consumer groups and messages (each payload as
/// a table of its fields), and the shared types.
fn render(document: &Value) -> String {
    let title = text(document, "/info/title");
    let channels = document.get("channels").and_then(Value::as_object).cloned().unwrap_or_default();
    let messages = document.pointer("/components/messages").and_then(Value::as_object).cloned().unwrap_or_default();
    let schemas = document.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/docs/events.css\">\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n\
         <p>AsyncAPI {asyncapi}, version {version} · <a href=\"/api-docs/asyncapi.json\">asyncapi.json</a> · \
         <a href=\"/docs/\">HTTP API</a></p>\n</header>\n",
        title = escape(title),
        asyncapi = escape(text(document, "/asyncapi")),
        version = escape(text(document, "/info/version")),
    );
    page.push_str("<nav>\n<h2>Streams</h2>\n<ul>\n");
    for (name, channel) in &channels {
        let address = channel.get("address").and_then(Value::as_str).unwrap_or(name);
        let _ = writeln!(
            page,
            "<li><a href=\"#channel-{id}\"><code>{}</code></a></li>",
            escape(address),
            id = anchor(name)
        );
    }
    page.push_str("</ul>\n<p><a href=\"#envelope\">The entry</a> · <a href=\"#types\">Types</a></p>\n</nav>\n<main>\n");
    let _ = write!(page, "<section id=\"about\">\n{}</section>\n", prose(text(document, "/info/description")));

    page.push_str("<section id=\"envelope\">\n<h2>The entry</h2>\n");
    let mut shown = BTreeSet::new();
    for name in ["Envelope", "Metadata"] {
        if let Some(schema) = schemas.get(name) {
            page.push_str(&schema_section(name, schema));
            shown.insert(name.to_owned());
        }
    }
    page.push_str("</section>\n");

    let mut rendered = BTreeSet::new();
    for (name, channel) in &channels {
        page.push_str(&channel_section(document, name, channel, &messages, &mut rendered));
    }

    page.push_str("<section id=\"types\">\n<h2>Types</h2>\n");
    for (name, schema) in schemas.iter().filter(|(name, _)| !shown.contains(*name)) {
        page.push_str(&schema_section(name, schema));
    }
    page.push_str("</section>\n</main>\n</body>\n</html>\n");
    page
}

fn channel_section(
    document: &Value,
    name: &str,
    channel: &Value,
    messages: &Map<String, Value>,
    rendered: &mut BTreeSet<String>,
) -> String {
    let address = channel.get("address").and_then(Value::as_str).unwrap_or(name);
    let mut section = String::new();
    let _ = write!(
        section,
        "<section class=\"channel\" id=\"channel-{}\">\n<h2><code>{}</code></h2>\n{}",
        anchor(name),
        escape(address),
        prose(text(channel, "/description"))
    );
    let reference = format!("#/channels/{name}");
    let operations = document.get("operations").and_then(Value::as_object);
    let on_channel: Vec<&Value> = operations
        .map(|operations| {
            operations.values().filter(|operation| text(operation, "/channel/$ref") == reference).collect()
        })
        .unwrap_or_default();
    section.push_str("<dl>\n");
    for operation in on_channel.iter().filter(|operation| operation["action"] == "send") {
        let _ = writeln!(section, "<dt>Written by</dt><dd>{}</dd>", code_spans(text(operation, "/summary")));
    }
    let groups: Vec<String> = on_channel
        .iter()
        .filter(|operation| operation["action"] == "receive")
        .map(|operation| format!("<code>{}</code>", escape(text(operation, "/x-consumer-group"))))
        .collect();
    if !groups.is_empty() {
        let _ = writeln!(section, "<dt>Consumer groups</dt><dd>{}</dd>", groups.join(", "));
    }
    section.push_str("</dl>\n");
    let listed = channel.get("messages").and_then(Value::as_object).cloned().unwrap_or_default();
    for message_ref in listed.values() {
        let Some(message_name) = schema_name(text(message_ref, "/$ref"), "#/components/messages/") else { continue };
        let Some(message) = messages.get(message_name) else { continue };
        if !rendered.insert(message_name.to_owned()) {
            let _ = writeln!(
                section,
                "<p>Messages: <a href=\"#message-{}\">{}</a>, as above.</p>",
                anchor(message_name),
                escape(message_name)
            );
            continue;
        }
        section.push_str(&message_article(message_name, message));
    }
    section.push_str("</section>\n");
    section
}

fn message_article(name: &str, message: &Value) -> String {
    let mut article = String::new();
    let _ = write!(
        article,
        "<article class=\"message\" id=\"message-{}\">\n<h3>{}</h3>\n{}",
        anchor(name),
        escape(name),
        prose(text(message, "/description"))
    );
    let headers = message.get("headers").unwrap_or(&Value::Null);
    let envelope = headers
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|parts| parts.first())
        .map_or_else(|| text(headers, "/$ref"), |first| text(first, "/$ref"));
    if let Some(envelope) = schema_name(envelope, "#/components/schemas/") {
        let _ = writeln!(
            article,
            "<p class=\"headers\">Headers: <a href=\"#schema-{}\">{}</a>{}.</p>",
            anchor(envelope),
            escape(envelope),
            if headers.get("allOf").is_some() {
                format!(" with <code>type</code> = <code>{}</code>", escape(name))
            } else {
                String::new()
            }
        );
    }
    article.push_str("<h4><code>data</code></h4>\n");
    article.push_str(&fields(message.get("payload").unwrap_or(&Value::Null)));
    article.push_str("</article>\n");
    article
}

fn schema_section(name: &str, schema: &Value) -> String {
    let mut section = String::new();
    let _ = write!(
        section,
        "<div class=\"schema\" id=\"schema-{}\">\n<h3>{}</h3>\n{}",
        anchor(name),
        escape(name),
        prose(text(schema, "/description"))
    );
    if schema.get("properties").is_some() {
        if let Some(base) = schema.get("allOf").and_then(Value::as_array) {
            let bases: Vec<String> = base.iter().map(type_of).collect();
            let _ = writeln!(section, "<p>Every field of {}, and:</p>", bases.join(", "));
        }
        section.push_str(&fields(schema));
    } else {
        let _ = writeln!(section, "<p>{}{}</p>", type_of(schema), constraints(schema));
        section.push_str(&variants(schema));
    }
    section.push_str("</div>\n");
    section
}

/// The documented values of an enum written as `oneOf` constants.
fn variants(schema: &Value) -> String {
    let Some(variants) = schema.get("oneOf").and_then(Value::as_array) else { return String::new() };
    let documented: Vec<String> = variants
        .iter()
        .filter_map(|variant| {
            let value = variant.get("const")?;
            Some(format!(
                "<li><code>{}</code>: {}</li>",
                escape(&value.to_string()),
                code_spans(text(variant, "/description"))
            ))
        })
        .collect();
    if documented.is_empty() { String::new() } else { format!("<ul>\n{}\n</ul>\n", documented.join("\n")) }
}

/// A table of an object schema's fields: name, type, whether required, description.
fn fields(schema: &Value) -> String {
    let Some(properties) = schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty()) else {
        return "<p class=\"empty\">No fields.</p>\n".to_owned();
    };
    let required: BTreeSet<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut table = String::from(
        "<table>\n<thead><tr><th>field</th><th>type</th><th></th><th>meaning</th></tr></thead>\n<tbody>\n",
    );
    for (name, property) in properties {
        let _ = writeln!(
            table,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            escape(name),
            type_of(property),
            if required.contains(name.as_str()) { "required" } else { "optional" },
            code_spans(text(property, "/description")),
            constraints(property),
        );
    }
    table.push_str("</tbody>\n</table>\n");
    table
}

/// A schema's type in words: `string (uuid)`, `array of MenuItem`, `integer or null`, …
fn type_of(schema: &Value) -> String {
    if let Some(name) = schema_name(text(schema, "/$ref"), "#/components/schemas/") {
        return format!("<a href=\"#schema-{}\">{}</a>", anchor(name), escape(name));
    }
    if let Some(value) = schema.get("const") {
        return format!("<code>{}</code>", escape(&value.to_string()));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> =
            values.iter().map(|value| format!("<code>{}</code>", escape(&value.to_string()))).collect();
        return format!("one of {}", values.join(", "));
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            let joiner = if combinator == "allOf" { " and " } else { " or " };
            let words: Vec<String> = parts.iter().map(type_of).collect();
            let all_constants = parts.iter().all(|part| part.get("const").is_some());
            return if all_constants { format!("one of {}", words.join(", ")) } else { words.join(joiner) };
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return "any JSON".to_owned();
    }
    let words: Vec<String> = types
        .iter()
        .map(|kind| match *kind {
            "array" => format!("array of {}", schema.get("items").map_or_else(|| "any JSON".to_owned(), type_of)),
            kind => match schema.get("format").and_then(Value::as_str) {
                Some(format) => format!("{} ({})", escape(kind), escape(format)),
                None => escape(kind),
            },
        })
        .collect();
    words.join(" or ")
}

/// The bounds and default of a schema, as a short note.
fn constraints(schema: &Value) -> String {
    let mut notes = Vec::new();
    for (keyword, word) in [
        ("minimum", "at least"),
        ("maximum", "at most"),
        ("minLength", "characters at least"),
        ("maxLength", "characters at most"),
        ("minItems", "items at least"),
        ("default", "default"),
    ] {
        if let Some(value) = schema.get(keyword) {
            notes.push(format!("{word} <code>{}</code>", escape(&value.to_string())));
        }
    }
    if notes.is_empty() { String::new() } else { format!(" <span class=\"note\">({})</span>", notes.join("; ")) }
}

/// The string at `pointer`, or nothing.
fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The name a local `$ref` gives after `prefix`.
fn schema_name<'a>(reference: &'a str, prefix: &str) -> Option<&'a str> {
    reference.strip_prefix(prefix).filter(|name| !name.is_empty())
}

/// An id attribute for `name`: letters, digits, `-`, `_` and `.` kept.
fn anchor(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect()
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `text` escaped, with its `backquoted` parts as code.
fn code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { format!("<code>{}</code>", escape(part)) } else { escape(part) })
        .collect()
}

/// `text` as paragraphs (split at blank lines), with code spans.
fn prose(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|paragraph| !paragraph.is_empty())
        .map(|paragraph| format!("<p>{}</p>\n", code_spans(paragraph)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_escaped_and_backquotes_become_code() {
        assert_eq!(prose("a <b> & `c<d>`\n\nnext"), "<p>a &lt;b&gt; &amp; <code>c&lt;d&gt;</code></p>\n<p>next</p>\n");
    }

    #[test]
    fn types_read_as_words_and_references_link_to_their_schema() {
        assert_eq!(type_of(&json!({"type": "string", "format": "uuid"})), "string (uuid)");
        assert_eq!(type_of(&json!({"type": ["string", "null"]})), "string or null");
        assert_eq!(
            type_of(&json!({"type": "array", "items": {"$ref": "#/components/schemas/MenuItem"}})),
            "array of <a href=\"#schema-MenuItem\">MenuItem</a>"
        );
        assert_eq!(
            type_of(&json!({"oneOf": [{"const": "g"}, {"const": "ml"}]})),
            "one of <code>&quot;g&quot;</code>, <code>&quot;ml&quot;</code>"
        );
        assert_eq!(type_of(&json!({})), "any JSON");
    }

    #[test]
    fn the_page_shows_every_stream_message_and_field_of_the_committed_document() -> Result<(), String> {
        let page = PAGE.as_ref()?;
        let document: Value = serde_json::from_str(events::asyncapi::COMMITTED).map_err(|e| e.to_string())?;
        let channels = document["channels"].as_object().ok_or("no channels")?;
        assert!(channels.len() >= 14, "seven streams and their dead-letter streams");
        for name in channels.keys() {
            assert!(page.contains(&format!("id=\"channel-{name}\"")), "{name} has a section");
        }
        for name in document["components"]["messages"].as_object().ok_or("no messages")?.keys() {
            assert!(page.contains(&format!("id=\"message-{name}\"")), "{name} is shown");
        }
        assert!(page.contains("<code>reservation-service</code>"), "consumer groups are named");
        assert!(page.contains("<code>price_cents</code>"), "fields of shared types are shown");
        assert!(!page.contains("http://") && !page.contains("https://"), "the page links nowhere else");
        Ok(())
    }
}
