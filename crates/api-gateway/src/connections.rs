//! Keep-alive HTTP/1.1 connections to one upstream.
//!
//! A connection is made when no idle one is ready, used for one exchange at
//! a time, and put back only once its response body has been read to the
//! end: a response cut short leaves bytes on the wire, and that connection
//! is closed instead. Idle connections are reused most recent first, so a
//! steady load keeps reusing the same few warm ones. They stay open until
//! the upstream closes them; at most as many are kept as the gateway may
//! have requests in flight to the upstream, more are never needed at once.
//!
//! This is the part of an HTTP client a gateway needs, and no more: the
//! request goes straight to the connection's task, with no per-request pool
//! look-up by host, no task spawned to return the connection, and no second
//! parse of the URI.

use crate::proxy::UpstreamBody;
use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long a connection may be silent before TCP checks that the upstream
/// is still there, so that one whose host vanished is found dead while idle.
const KEEPALIVE_PROBES_AFTER: Duration = Duration::from_secs(60);

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No connection could be made: refused, unreachable or too slow.
    #[error("connecting failed")]
    Connect(#[source] std::io::Error),
    /// The upstream broke the exchange, or the request body failed.
    #[error("the exchange failed")]
    Exchange(#[source] hyper::Error),
}

/// The connections of one worker to one upstream.
#[derive(Debug)]
pub struct Connections {
    host: String,
    port: u16,
    connect_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<SendRequest<UpstreamBody>>>,
}

impl Connections {
    /// Connections to `authority` (port 80 unless it names one), made within
    /// `connect_timeout`, keeping at most `max_idle` idle ones.
    pub fn new(authority: &Authority, connect_timeout: Duration, max_idle: usize) -> Self {
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(80);
        Self { host, port, connect_timeout, max_idle, idle: Mutex::new(Vec::new()) }
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection or
    /// a new one, and returns the response head with its body streaming.
    ///
    /// A request that an idle connection could not even begin to send,
    /// because the upstream had closed it, is sent again on another.
    ///
    /// # Errors
    /// No connection could be made, or the exchange failed.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(idle) => (idle, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let connection = Some(Returning { sender, home: self.clone() });
                    return Ok(response.map(|body| ResponseBody { body, finished: false, connection }));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(ExchangeError::Exchange(failed.into_error())),
                },
            }
        }
    }

    /// The most recently idle connection that can take a request; those the
    /// upstream has closed meanwhile are dropped.
    fn checkout(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.idle();
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, ExchangeError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out")))
            .map_err(ExchangeError::Connect)?;
        stream.set_nodelay(true).map_err(ExchangeError::Connect)?;
        let probe_when_idle = socket2::TcpKeepalive::new().with_time(KEEPALIVE_PROBES_AFTER);
        socket2::SockRef::from(&stream).set_tcp_keepalive(&probe_when_idle).map_err(ExchangeError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(ExchangeError::Exchange)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection closed with an error");
            }
        });
        Ok(sender)
    }

    /// Takes back a connection whose exchange is over: at once if it can
    /// take the next request, else once it can (its request body may still
    /// be on its way), unless it closes first.
    fn put_back(self: Arc<Self>, mut sender: SendRequest<UpstreamBody>) {
        if sender.is_ready() {
            self.keep(sender);
        } else if !sender.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    self.keep(sender);
                }
            });
        }
    }

    fn keep(&self, sender: SendRequest<UpstreamBody>) {
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<SendRequest<UpstreamBody>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection on its way back to its pool.
#[derive(Debug)]
struct Returning {
    sender: SendRequest<UpstreamBody>,
    home: Arc<Connections>,
}

/// An upstream response body that, once read to the end, gives its
/// connection back for the next request.
#[derive(Debug)]
pub struct ResponseBody {
    body: Incoming,
    /// Whether the body said it had no more frames (a chunked body's length
    /// is not known, so `is_end_stream` alone would not tell).
    finished: bool,
    connection: Option<Returning>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.is_end_stream()
            && let Some(Returning { sender, home }) = self.connection.take()
        {
            home.put_back(sender);
        }
    }
}
