//! Extractors whose rejections are problem+json, never axum's plain text.

use crate::problem::Problem;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `If-Match`: the version of a resource the client last saw, from the `ETag`
/// it was sent (`"3"`, `W/"3"`, or leniently the bare `3`). `*` or no header
/// means any version. Anything else is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatch {
    /// The ETag of the version being changed, such as `"3"`; a stale one gets 409.
    #[param(rename = "If-Match", value_type = String, required = false, pattern = r#"^(\*|(W/)?("[0-9]{1,18}"|[0-9]{1,18}))$"#)]
    pub version: Option<i64>,
}

impl IfMatch {
    /// Checks that the client changes the version it saw, if it named one.
    ///
    /// # Errors
    /// [`StaleVersion`] when the stored version is another one.
    pub fn check(self, current: i64) -> Result<(), StaleVersion> {
        match self.version {
            Some(expected) if expected != current => Err(StaleVersion { expected, current }),
            _ => Ok(()),
        }
    }
}

/// `If-Match` names another version than the stored one: someone changed the
/// resource since the client read it. A version conflict, HTTP 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is at version {current}, not {expected}; reload it and try again")]
pub struct StaleVersion {
    /// The version the client had.
    pub expected: i64,
    /// The version stored.
    pub current: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else { return Ok(Self { version: None }) };
        let malformed = || {
            Problem::new(StatusCode::BAD_REQUEST, "If-Match must be an ETag this service sent, such as \"3\", or *")
                .with_field("If-Match")
        };
        let value = value.to_str().map_err(|_| malformed())?.trim();
        if value == "*" {
            return Ok(Self { version: None });
        }
        let tag = value.strip_prefix("W/").unwrap_or(value);
        let unquoted = tag.strip_prefix('"').and_then(|tag| tag.strip_suffix('"')).unwrap_or(tag);
        let version = unquoted.parse().ok().filter(|version: &i64| *version >= 0);
        version.map(|version| Self { version: Some(version) }).ok_or_else(malformed)
    }
}

/// The request id header, set on every request by [`crate::http::observe`].
pub const REQUEST_ID: &str = "x-request-id";

/// A JSON object body. A body that is not an object, or an object of the
/// wrong shape, is a 422 naming the field; a syntax error a 400; a missing
/// JSON content type a 415; an oversized body a 413. (serde would otherwise
/// read a struct from a JSON array, so `[]` could pass as "no fields".)
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_bytes(request, state).await?;
        json_body(&bytes).map(Self)
    }
}

/// The body of a request that says it is JSON: 415 if it does not, 413 if it
/// is over the limit.
pub(crate) async fn read_json_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<axum::body::Bytes, Problem> {
    if !is_json(request.headers()) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than this service accepts")
        } else {
            Problem::new(StatusCode::BAD_REQUEST, rejection.body_text())
        }
    })
}

/// `bytes` as a JSON object of type `T`, or the problem saying why not.
pub(crate) fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let starts_an_object = bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    if !starts_an_object && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the body must be a JSON object"));
    }
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => Err(json_problem(&rejection)),
    }
}

/// `application/json` or any `application/*+json`, parameters aside.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde_path_to_error puts the path first: "items[0].price_cents: invalid type …".
            let message = std::error::Error::source(error).map_or_else(|| error.body_text(), ToString::to_string);
            let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid request body: {message}"));
            match field_at_fault(&message) {
                Some(field) => problem.with_field(field),
                None => problem,
            }
        }
        JsonRejection::JsonSyntaxError(_) => {
            Problem::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {}", rejection.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than this service accepts")
        }
        _ => Problem::new(rejection.status(), rejection.body_text()),
    }
}

/// The field a deserialization error is about. serde_path_to_error writes
/// `items[0].price_cents: invalid type …`, or for a missing field the path of
/// its parent (none at the top) and ``missing field `name` ``.
fn field_at_fault(message: &str) -> Option<String> {
    let (path, rest) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (Some(path).filter(|path| *path != "."), rest),
        _ => (None, message),
    };
    let missing = rest.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
    match (path, missing) {
        (Some(path), Some(name)) => Some(format!("{path}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (Some(path), None) => Some(path.to_owned()),
        (None, None) => None,
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Reads a JSON number that is a whole number into an `i64`, accepting
/// `1800.0` as JSON Schema's `integer` does. Use with
/// `#[serde(deserialize_with = "whole_number")]`.
///
/// # Errors
/// The number has a fraction or is outside the range of `i64`.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_i64() {
        return Ok(whole);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, reason = "checked: whole and in range")]
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && float >= i64::MIN as f64 && float < i64::MAX as f64 => Ok(float as i64),
        _ => Err(serde::de::Error::custom(format!("{number} is not a whole number in range"))),
    }
}

/// [`whole_number`] for a field that may be left out but not sent as `null`;
/// use with `#[serde(default, deserialize_with = "optional_whole_number")]`.
///
/// # Errors
/// As [`whole_number`], and for `null`.
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    whole_number(deserializer).map(Some)
}

/// A field that may be left out (`None`) but, when sent, must not be `null`;
/// use with `#[serde(default, deserialize_with = "non_null")]`. Plain
/// `Option<T>` would read `null` as "left out".
///
/// # Errors
/// The value is `null` or not a `T`.
pub fn non_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Path parameters; a malformed one (not a UUID, say) is a 400.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(Problem::new(StatusCode::BAD_REQUEST, rejection.body_text()))
            }
            Err(rejection) => Err(Problem::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Query parameters; a malformed one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(Problem::new(StatusCode::BAD_REQUEST, format!("invalid query string: {}", error.body_text())))
            }
            Err(rejection) => Err(Problem::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// The request's id: the caller's well-formed `X-Request-Id` or one made here.
/// It becomes the `correlation_id` of the events the request causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_id(&parts.headers)))
    }
}

/// The header's value if it is a well-formed request id (1 to 128 visible
/// characters of `[A-Za-z0-9._:-]`), else a new UUID v7.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_well_formed(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// [`request_id`] as a header value, without copying a well-formed one.
pub fn request_id_header(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(value) if value.to_str().is_ok_and(is_well_formed) => value.clone(),
        _ => {
            let mut buffer = uuid::Uuid::encode_buffer();
            HeaderValue::from_str(uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer))
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        }
    }
}

fn is_well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// `id` as a header value.
pub(crate) fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_at_fault_is_read_from_serdes_message() {
        let cases = [
            (
                "items[0].price_cents: invalid type: string \"x\", expected i64 at line 1 column 9",
                Some("items[0].price_cents"),
            ),
            ("missing field `name` at line 1 column 13", Some("name")),
            ("items[1]: missing field `currency` at line 1 column 80", Some("items[1].currency")),
            ("invalid type: map, expected a string at line 1 column 1", None),
        ];
        for (message, field) in cases {
            assert_eq!(field_at_fault(message).as_deref(), field, "{message}");
        }
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        #[derive(Debug, serde::Deserialize)]
        struct Price {
            #[serde(deserialize_with = "whole_number")]
            cents: i64,
        }
        let parse = |json: &str| serde_json::from_str::<Price>(json).map(|price| price.cents).map_err(drop);
        assert_eq!(parse(r#"{"cents": 1800}"#), Ok(1800));
        assert_eq!(parse(r#"{"cents": 1800.0}"#), Ok(1800));
        assert_eq!(parse(r#"{"cents": -5}"#), Ok(-5));
        assert_eq!(parse(r#"{"cents": 1800.5}"#), Err(()));
        assert_eq!(parse(r#"{"cents": 1e30}"#), Err(()));
        assert_eq!(parse(r#"{"cents": "1800"}"#), Err(()));
    }

    #[test]
    fn an_optional_field_may_be_left_out_but_not_sent_as_null() {
        #[derive(Debug, serde::Deserialize)]
        struct Edit {
            #[serde(default, deserialize_with = "non_null")]
            name: Option<String>,
            #[serde(default, deserialize_with = "optional_whole_number")]
            cents: Option<i64>,
        }
        let parse = |json: &str| serde_json::from_str::<Edit>(json).map(|e| (e.name, e.cents)).map_err(drop);
        assert_eq!(parse("{}"), Ok((None, None)));
        assert_eq!(parse(r#"{"name": "Soup", "cents": 5.0}"#), Ok((Some("Soup".to_owned()), Some(5))));
        assert_eq!(parse(r#"{"name": null}"#), Err(()));
        assert_eq!(parse(r#"{"cents": null}"#), Err(()));
    }

    #[test]
    fn a_well_formed_request_id_is_kept_and_anything_else_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-42:a.b_c"));
        assert_eq!(request_id(&headers), "req-42:a.b_c");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            headers.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap_or(HeaderValue::from_static("a b")));
            let made = request_id(&headers);
            assert!(uuid::Uuid::parse_str(&made).is_ok(), "{bad:?} should have been replaced, got {made}");
        }
    }
}
