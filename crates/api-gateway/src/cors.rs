//! Cross-origin resource sharing, for browsers calling the API from another
//! origin. Requests without an `Origin` header (every non-browser client)
//! pass untouched, so the proxied path pays nothing for it.

use anyhow::Context;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

/// Which origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Any origin (`*`).
    AnyOrigin,
    /// Exactly these origins; none if empty.
    Origins(Vec<HeaderValue>),
}

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS");
const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("authorization, content-type, if-match, x-request-id");
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("etag, location, x-request-id");
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");

impl Cors {
    /// Parses `CORS_ALLOWED_ORIGINS`: `*`, a comma-separated list, or empty for none.
    ///
    /// # Errors
    /// An origin is not a valid header value.
    pub fn parse(origins: &str) -> anyhow::Result<Self> {
        if origins.trim() == "*" {
            return Ok(Self::AnyOrigin);
        }
        let origins = origins
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| HeaderValue::from_str(origin).with_context(|| format!("CORS origin {origin:?}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self::Origins(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            Self::AnyOrigin => Some(HeaderValue::from_static("*")),
            Self::Origins(origins) => origins.contains(origin).then(|| origin.clone()),
        }
    }

    /// The answer to a preflight request (`OPTIONS` with
    /// `Access-Control-Request-Method`) from an allowed origin, or `None` if
    /// `request` is not one: it then goes on to its route.
    pub fn preflight<B, R: Default>(&self, request: &Request<B>) -> Option<Response<R>> {
        let headers = request.headers();
        if request.method() != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let allowed = self.allow(headers.get(header::ORIGIN)?)?;
        let mut response = Response::new(R::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let answer = response.headers_mut();
        answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        answer.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
        answer.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        answer.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        answer.append(header::VARY, HeaderValue::from_static("origin"));
        Some(response)
    }

    /// Adds the CORS headers to the response to a request from `origin`.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Some(allowed) = origin.and_then(|origin| self.allow(origin)) else { return };
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        response.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight(cors: &Cors, origin: &'static str) -> Option<Response<String>> {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
            .body(())
            .ok()?;
        cors.preflight(&request)
    }

    #[test]
    fn listed_origins_are_allowed_and_echoed_others_get_nothing() -> anyhow::Result<()> {
        let cors = Cors::parse(" https://app.example , https://admin.example")?;
        let answer = preflight(&cors, "https://app.example").context("no preflight answer")?;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert_eq!(answer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert!(answer.headers()[header::ACCESS_CONTROL_ALLOW_METHODS].to_str()?.contains("PATCH"));
        assert!(preflight(&cors, "https://evil.example").is_none());

        let mut headers = HeaderMap::new();
        cors.decorate(Some(&HeaderValue::from_static("https://evil.example")), &mut headers);
        cors.decorate(None, &mut headers);
        assert!(headers.is_empty());
        cors.decorate(Some(&HeaderValue::from_static("https://admin.example")), &mut headers);
        assert_eq!(headers[header::ACCESS_CONTROL_EXPOSE_HEADERS], "etag, location, x-request-id");
        Ok(())
    }

    #[test]
    fn star_allows_any_origin_and_empty_allows_none() -> anyhow::Result<()> {
        assert!(preflight(&Cors::parse("*")?, "https://anything.example").is_some());
        assert_eq!(Cors::parse("")?, Cors::Origins(Vec::new()));
        assert!(preflight(&Cors::parse("")?, "https://anything.example").is_none());
        Ok(())
    }
}
