//! The one body type of the proxy stack, and the error that marks a failure on the client's side.
//!
//! Every layer between the RED layer and the upstream client speaks `Request<Body>` /
//! `Response<Body>`, so a layer (the RED layer, the plugin host, the limit) can wrap or replace
//! a body without changing anyone else's types. Bodies stream: nothing here buffers.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// A boxed error, as `http-body` combinators want it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body. `Unsync` because hyper only needs `Send`, and it avoids forcing `Sync` on
/// every wrapper in the stack.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes` whole (for responses the sidecar makes itself).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Reading the client's request body failed: the client went away mid-body or sent a malformed
/// one. The proxy finds this in an upstream call's error chain and answers 400 instead of
/// blaming the upstream.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body failed")]
pub struct ClientBodyError(#[source] pub hyper::Error);

/// Whether `error`, or anything in its `source()` chain, is a [`ClientBodyError`].
pub fn caused_by_client(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<ClientBodyError>(error)
}

/// Whether `error`, or anything in its `source()` chain, is an `E`.
pub fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}
