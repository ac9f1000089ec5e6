//! Forwarding one request to its upstream and the response back, streaming
//! both bodies, over pooled keep-alive connections ([`crate::connections`]).
//! A small request body is read in full before an upstream slot is taken,
//! so that a client sending slowly holds none ([`crate::admission`]).

use crate::admission::{BodyError, BodyPolicy, BodyTimedOut, ClientBody};
use crate::body::GatewayBody;
use crate::connections::ExchangeError;
use crate::routes::Route;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;
use service_kit::Problem;
use service_kit::telemetry;
use std::net::IpAddr;
use std::time::Duration;
use tracing::Instrument;

/// The request body as sent upstream: the client's, cut off past the limit.
pub type UpstreamBody = Limited<ClientBody>;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The body is larger than the limit. HTTP 413.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    /// The client did not send its body in time. HTTP 408.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// The client broke off its body or sent a malformed one. HTTP 400.
    #[error("the request body could not be read")]
    BodyBroken(#[source] hyper::Error),
    /// No connection to the upstream. HTTP 503.
    #[error("{0} is unavailable; try again shortly")]
    Unavailable(&'static str, #[source] std::io::Error),
    /// No response head in time. HTTP 504.
    #[error("{0} did not answer within {1:?}")]
    Timeout(&'static str, Duration),
    /// The upstream broke the exchange. HTTP 502.
    #[error("{0} failed to answer")]
    BadGateway(&'static str, #[source] hyper::Error),
}

impl ProxyError {
    /// The label `gateway_upstream_errors_total` counts it under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BodyTooLarge(_) => "body_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyBroken(_) => "body_broken",
            Self::Unavailable(..) => "unavailable",
            Self::Timeout(..) => "timeout",
            Self::BadGateway(..) => "bad_gateway",
        }
    }

    /// The problem the client gets.
    pub fn problem(&self) -> Problem {
        let status = match self {
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyBroken(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(..) => StatusCode::GATEWAY_TIMEOUT,
            Self::BadGateway(..) => StatusCode::BAD_GATEWAY,
        };
        Problem::new(status, self.to_string())
    }

    /// Whether the client is at fault, not the upstream.
    pub fn is_clients(&self) -> bool {
        matches!(self, Self::BodyTooLarge(_) | Self::BodyTimeout(_) | Self::BodyBroken(_))
    }
}

impl From<BodyError> for ProxyError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TimedOut(BodyTimedOut(timeout)) => Self::BodyTimeout(timeout),
            BodyError::TooLarge(limit) => Self::BodyTooLarge(limit),
            BodyError::Broken(error) => Self::BodyBroken(error),
        }
    }
}

/// The client at the other end of a connection, as `X-Forwarded-For` names
/// it: written once per connection, not once per request.
#[derive(Debug, Clone)]
pub struct Peer {
    ip: IpAddr,
    forwarded_for: HeaderValue,
}

impl Peer {
    /// The client at `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let forwarded_for =
            HeaderValue::try_from(ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self { ip, forwarded_for }
    }

    /// The client's address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// The forwarding half of the gateway: the limits. The connections are
/// each upstream's own ([`crate::routes::Upstream::connections`]).
#[derive(Debug, Clone)]
pub struct Proxy {
    timeout: Duration,
    max_body_bytes: u64,
    body: BodyPolicy,
}

impl Proxy {
    /// A proxy that waits `timeout` for response heads (connecting
    /// included), and reads request bodies as `body` says, refusing those
    /// over `body.max_bytes`.
    pub fn new(timeout: Duration, body: BodyPolicy) -> Self {
        Self { timeout, max_body_bytes: body.max_bytes, body }
    }

    /// Forwards `request` to `route`'s upstream and returns its response,
    /// with hop-by-hop headers dropped both ways, `Host`, `X-Forwarded-*`
    /// and `X-Request-Id` set, and both bodies streamed.
    ///
    /// # Errors
    /// The body is too large, too slow or broken, the upstream is
    /// unreachable, slow or broken.
    pub async fn forward(
        &self,
        route: &Route,
        request: Request<Incoming>,
        peer: &Peer,
        request_id: &HeaderValue,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        let upstream = &route.upstream;
        let (mut parts, body) = request.into_parts();
        if declared_length(&parts.headers).is_some_and(|length| length > self.max_body_bytes) {
            return Err(ProxyError::BodyTooLarge(self.max_body_bytes));
        }
        let path_and_query = parts.uri.into_parts().path_and_query;
        parts.uri = Uri::from(path_and_query.unwrap_or_else(|| PathAndQuery::from_static("/")));
        parts.version = Version::HTTP_11;
        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        let host = headers.insert(header::HOST, upstream.host.clone());
        set_forwarded(headers, peer, host);
        headers.insert(REQUEST_ID.clone(), request_id.clone());

        let body = crate::admission::read_body(body, &parts.headers, &self.body).await?;
        let body = Limited::new(body, usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX));
        // Traced, the exchange is a client span of the gateway's, whose
        // context replaces the caller's `traceparent`.
        let url = || format!("{}://{}{}", upstream.scheme, upstream.authority, parts.uri);
        let span = telemetry::calling(&parts.method, upstream.name, url, &mut parts.headers);
        let exchange = async {
            let _turn = upstream.in_flight.acquire().await;
            upstream.connections.send(Request::from_parts(parts, body)).await
        };
        let sent = tokio::time::timeout(self.timeout, exchange).instrument(span.clone()).await;
        match &sent {
            Ok(Ok(response)) => telemetry::answered(&span, response.status()),
            _ => telemetry::failed(&span),
        }
        let mut response = match sent {
            Err(_) => return Err(ProxyError::Timeout(upstream.name, self.timeout)),
            Ok(Err(ExchangeError::Connect(error))) => return Err(ProxyError::Unavailable(upstream.name, error)),
            Ok(Err(ExchangeError::Exchange(error))) if caused_by::<LengthLimitError>(&error) => {
                return Err(ProxyError::BodyTooLarge(self.max_body_bytes));
            }
            Ok(Err(ExchangeError::Exchange(error))) if caused_by::<BodyTimedOut>(&error) => {
                return Err(ProxyError::BodyTimeout(self.body.timeout));
            }
            Ok(Err(ExchangeError::Exchange(error))) => return Err(ProxyError::BadGateway(upstream.name, error)),
            Ok(Ok(response)) => response,
        };
        remove_hop_by_hop(response.headers_mut());
        response.headers_mut().insert(REQUEST_ID.clone(), request_id.clone());
        Ok(response.map(GatewayBody::Upstream))
    }
}

/// `X-Request-Id`.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers and those the `Connection` header names.
/// Most messages have none, which one pass over the names tells.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Appends the client to `X-Forwarded-For` and records the scheme and the host it asked for.
fn set_forwarded(headers: &mut HeaderMap, peer: &Peer, host: Option<HeaderValue>) {
    let client = &peer.forwarded_for;
    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        Some(earlier) => [earlier.as_bytes(), b", ", client.as_bytes()].concat().try_into().ok(),
        None => Some(client.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Whether sending failed because of a `T` while streaming the request body
/// (it passed the limit, or the client was too slow).
fn caused_by<T: std::error::Error + 'static>(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<T>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
            ("if-match", "\"3\""),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "if-match"]);
    }

    #[test]
    fn forwarded_headers_append_the_client_and_keep_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        let peer = Peer::new(IpAddr::from([10, 0, 0, 2]));
        set_forwarded(&mut headers, &peer, Some(HeaderValue::from_static("api.example.com")));
        assert_eq!(headers[&X_FORWARDED_FOR], "203.0.113.7, 10.0.0.2");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
        assert_eq!(headers[&X_FORWARDED_HOST], "api.example.com");
    }
}
