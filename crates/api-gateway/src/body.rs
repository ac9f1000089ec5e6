//! [`GatewayBody`]: the one response body type, without boxing the
//! upstream's streamed body.

use crate::connections::ResponseBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The boxed error of a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream's body streamed through as it arrives, or one the gateway made.
#[derive(Debug)]
pub enum GatewayBody {
    /// Streamed from an upstream.
    Upstream(ResponseBody),
    /// Made by the gateway (problems, operational endpoints).
    Local(axum::body::Body),
}

impl Default for GatewayBody {
    fn default() -> Self {
        Self::Local(axum::body::Body::empty())
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Local(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(body) => body.is_end_stream(),
            Self::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(body) => body.size_hint(),
            Self::Local(body) => body.size_hint(),
        }
    }
}
