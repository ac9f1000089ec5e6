//! What a client must do before it gets any of the gateway's upstream
//! capacity: send its request body in time, and not open too many
//! connections.
//!
//! Each worker has only `UPSTREAM_MAX_IN_FLIGHT` slots per service. A slot
//! taken before the body has arrived is held for as long as the client takes
//! to send it, so a handful of clients trickling a byte a second could take
//! every slot. Small bodies (up to `CLIENT_BODY_BUFFER_BYTES`, what nearly
//! every API request is) are therefore read in full, within
//! `CLIENT_BODY_TIMEOUT_MS`, before the slot is taken ([`read_body`]);
//! larger ones are streamed on, but each part must arrive within the same
//! timeout ([`ClientBody`]). A slow body is answered 408.
//!
//! Connections are capped per worker and per client address
//! ([`ConnectionLimits`]): a connection past either cap is closed at once,
//! before anything is read from it, which is what costs a flood least;
//! `gateway_connections_refused_total` counts them by cap.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The body did not arrive in time. HTTP 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Why a request body could not be read before forwarding.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Too slow. HTTP 408.
    #[error(transparent)]
    TimedOut(#[from] BodyTimedOut),
    /// Larger than the gateway forwards. HTTP 413.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
    /// The client broke off or sent a malformed body. HTTP 400.
    #[error("the request body could not be read")]
    Broken(#[source] hyper::Error),
}

/// How request bodies are read.
#[derive(Debug, Clone, Copy)]
pub struct BodyPolicy {
    /// Bodies up to this many bytes are read in full before forwarding.
    pub buffer_bytes: usize,
    /// Longest a small body may take in full, and each part of a large one.
    pub timeout: Duration,
    /// Largest body forwarded.
    pub max_bytes: u64,
}

/// A client's request body as sent upstream: what was read before
/// forwarding, then (for a large body) the rest as it arrives, each part
/// within the timeout.
#[derive(Debug)]
pub struct ClientBody {
    read: Option<Bytes>,
    rest: Option<Incoming>,
    timeout: Duration,
    silence: Option<Pin<Box<Sleep>>>,
}

impl ClientBody {
    fn complete(read: Bytes) -> Self {
        Self { read: (!read.is_empty()).then_some(read), rest: None, timeout: Duration::ZERO, silence: None }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(read) = this.read.take() {
            return Poll::Ready(Some(Ok(Frame::data(read))));
        }
        let Some(rest) = this.rest.as_mut() else { return Poll::Ready(None) };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() {
                    this.rest = None;
                }
                if let Some(silence) = this.silence.as_mut() {
                    silence.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let silence = this.silence.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match silence.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.rest = None;
                        Poll::Ready(Some(Err(BodyTimedOut(timeout).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_none() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read = self.read.as_ref().map_or(0, |read| read.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(read),
            Some(rest) => {
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}

/// Reads `body` before forwarding: in full, within the timeout, when it is
/// declared (or turns out) to be at most `policy.buffer_bytes`; else as far
/// as that, leaving the rest to stream with the per-part timeout.
///
/// # Errors
/// The body did not arrive in time, is larger than `policy.max_bytes`, or broke off.
pub async fn read_body(body: Incoming, headers: &HeaderMap, policy: &BodyPolicy) -> Result<ClientBody, BodyError> {
    if body.is_end_stream() {
        return Ok(ClientBody::complete(Bytes::new()));
    }
    let streaming =
        |read: Option<Bytes>, rest| ClientBody { read, rest: Some(rest), timeout: policy.timeout, silence: None };
    let declared = declared_length(headers);
    if declared.is_some_and(|length| length > policy.buffer_bytes as u64) {
        return Ok(streaming(None, body));
    }
    let mut body = body;
    let reading = async {
        let mut read = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BodyError::Broken)?;
            // Trailers of a small body are not forwarded.
            if let Ok(data) = frame.into_data() {
                read.extend_from_slice(&data);
            }
            if read.len() as u64 > policy.max_bytes {
                return Err(BodyError::TooLarge(policy.max_bytes));
            }
            if read.len() > policy.buffer_bytes {
                return Ok((read.freeze(), false));
            }
        }
        Ok((read.freeze(), true))
    };
    let (read, complete) =
        tokio::time::timeout(policy.timeout, reading).await.map_err(|_| BodyTimedOut(policy.timeout))??;
    Ok(if complete { ClientBody::complete(read) } else { streaming(Some(read), body) })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The worker has `MAX_CONNECTIONS_PER_WORKER` open.
    Worker,
    /// The client's address has `MAX_CONNECTIONS_PER_CLIENT` open on this worker.
    Client,
}

impl Refused {
    /// The label `gateway_connections_refused_total` counts it under.
    pub fn label(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Client => "client",
        }
    }
}

/// One worker's open client connections, in total and by address.
#[derive(Debug)]
pub struct ConnectionLimits {
    per_worker: usize,
    per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

impl ConnectionLimits {
    /// At most `per_worker` connections, `per_client` from one address.
    pub fn new(per_worker: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self { per_worker: per_worker.max(1), per_client: per_client.max(1), open: Mutex::default() })
    }

    /// Counts a new connection from `client`, until the returned guard is
    /// dropped; or says which cap it is past.
    ///
    /// # Errors
    /// The worker or the client already has its most connections open.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.open();
        if open.total >= self.per_worker {
            return Err(Refused::Worker);
        }
        let of_client = open.by_client.entry(client).or_insert(0);
        if *of_client >= self.per_client {
            return Err(Refused::Client);
        }
        *of_client += 1;
        open.total += 1;
        Ok(Admitted { limits: self.clone(), client })
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open connection, counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    client: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.limits.open();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_past_either_cap_are_refused_until_one_closes() {
        let limits = ConnectionLimits::new(3, 2);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let first = limits.admit(a);
        let _second = limits.admit(a);
        assert_eq!(limits.admit(a).err(), Some(Refused::Client));
        let _third = limits.admit(b);
        assert_eq!(limits.admit(b).err(), Some(Refused::Worker));
        drop(first);
        assert!(limits.admit(a).is_ok());
    }
}
