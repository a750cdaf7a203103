//! The one body type of the proxy stack, and the error that marks a failure on the client's side.
//!
//! Every layer between the RED layer and the upstream client speaks `Request<Body>` /
//! `Response<Body>`, so a layer (the RED layer, the plugin host, the limit) can wrap or replace
//! a body without changing anyone else's types. Bodies stream: nothing here buffers.

/// The streaming body (`UnsyncBoxBody<Bytes, BoxError>`: `Unsync` because hyper only needs
/// `Send`, and it avoids forcing `Sync` on every wrapper in the stack), its error, and bodies
/// made whole ([`full`], for responses the sidecar makes itself) or [`empty`]. The plugin
/// host's own type, so its layer sits in the stack with no conversion.
pub(crate) use wasm_host::{Body, BoxError, empty, full};

/// Reading the client's request body failed: the client went away mid-body or sent a malformed
/// one. The proxy finds this in an upstream call's error chain and answers 400 instead of
/// blaming the upstream.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body failed")]
pub(crate) struct ClientBodyError(#[source] pub hyper::Error);

/// Whether `error`, or anything in its `source()` chain, is a [`ClientBodyError`].
pub(crate) fn caused_by_client(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<ClientBodyError>(error)
}

/// Whether `error`, or anything in its `source()` chain, is an `E`.
pub(crate) fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    find::<E>(error).is_some()
}

/// The first `E` in `error` and its `source()` chain.
pub(crate) fn find<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
