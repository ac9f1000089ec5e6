//! Errors as `application/problem+json` (RFC 9457).
//!
//! A 4xx problem says exactly what was wrong and, for validation, which field.
//! A 5xx problem is opaque: the cause is logged with the request's span (which
//! carries the request id) and the client is told to quote `X-Request-Id`.
//! A problem may carry response headers of its own, such as the
//! `Retry-After` of a database that was too busy to answer.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem details response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and title say what kind of problem it is.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    pub kind: &'static str,
    /// The status' reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly went wrong, for a person.
    pub detail: String,
    /// The request field at fault, for validation errors (`items[0].price_cents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Headers the response carries besides `Content-Type`, such as `Retry-After`.
    #[serde(skip)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// How long a client is told to wait before retrying a request the database was too busy for.
pub const BUSY_RETRY_AFTER_SECONDS: u32 = 1;

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(present, _)| *present != name);
        self.headers.push((name, value));
        self
    }

    /// The value of response header `name`, if the problem carries it.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(present, _)| present == name).map(|(_, value)| value)
    }

    /// Tells the client to retry after `seconds` (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(self, seconds: u32) -> Self {
        self.with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// Names the field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 404: nothing is known by that id or path.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the current state does not allow it.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: a well-formed request the domain rejects; `field` names what is wrong.
    pub fn unprocessable(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail).with_field(field)
    }

    /// 503: a dependency is unreachable. Logs `error` with its causes.
    pub fn unavailable(what: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "{what} is unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what} is unavailable; try again shortly"))
    }

    /// 500: logs `error` with its causes and tells the client nothing more
    /// than where to look.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred; quote the X-Request-Id response header when reporting it",
        )
    }

    /// 503 with `Retry-After`: `what` answered, but gave up on the request
    /// because of contention (a lock, a timeout, a conflicting transaction),
    /// so the same request may well work in a moment. Logs `error` with its causes.
    pub fn busy(what: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::warn!(error = %ErrorChain(error), "{what} was busy");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what} was busy; retry in {BUSY_RETRY_AFTER_SECONDS} s"))
            .with_retry_after(BUSY_RETRY_AFTER_SECONDS)
    }

    /// 503 if `cause` means the database is unreachable (so trying again
    /// later may work), 503 with `Retry-After` if it was too busy (see
    /// [`Problem::busy`]), else 500. `error` is what gets logged.
    pub fn database(what: &str, cause: &sqlx::Error, error: &(dyn std::error::Error + 'static)) -> Self {
        if database_unreachable(cause) {
            Self::unavailable(what, error)
        } else if database_busy(cause) {
            Self::busy(what, error)
        } else {
            Self::internal(error)
        }
    }

    /// The status as a `StatusCode`.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Whether `cause` says the database cannot be reached now: no connection
/// in time, a broken one, or the server going away under it (SQLSTATE class
/// 08, connection exception; 57P01–57P03, shut down or starting up), as a
/// pooled connection finds out after a restart of PostgreSQL.
fn database_unreachable(cause: &sqlx::Error) -> bool {
    match cause {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Whether `cause` is PostgreSQL giving up on a statement because of
/// contention: a lock not granted within `lock_timeout` (SQLSTATE 55P03), a
/// statement cancelled by `statement_timeout` (57014), a serialization
/// failure (40001) or a deadlock (40P01). Retrying the request may work.
fn database_busy(cause: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = cause else { return false };
    error.code().is_some_and(|code| matches!(code.as_ref(), "55P03" | "57014" | "40001" | "40P01"))
}

/// Shows an error and all its sources, `outer: inner: innermost`, for logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = self.status_code();
        let headers = std::mem::take(&mut self.headers);
        let mut response = (status, axum::Json(self)).into_response();
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("menu-service is unavailable")]
    struct Unavailable(#[source] std::io::Error);

    #[test]
    fn an_error_chain_shows_every_cause_outermost_first() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = Unavailable(refused);
        assert_eq!(ErrorChain(&error).to_string(), "menu-service is unavailable: connection refused");
        assert_eq!(ErrorChain(&error.0).to_string(), "connection refused");
    }

    #[test]
    fn a_busy_problem_is_a_503_telling_the_client_when_to_retry() {
        let refused = std::io::Error::other("lock timeout");
        let response = Problem::busy("the menu database", &refused).into_response();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER), Some(&HeaderValue::from_static("1")));
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/problem+json"))
        );
    }
}
