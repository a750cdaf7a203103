//! HTTP/2 cleartext connections: hyper's HTTP/2 server, bounded against the floods HTTP/2
//! allows, calling the same tower service as HTTP/1 connections.
//!
//! Streams run concurrently, so each request calls its own clone of the service (tower's
//! contract for concurrent calls); the connection-level [`Peer`] goes into every request's
//! extensions as on HTTP/1. The request head limit is the HTTP/1 one, applied to the decoded
//! header list (`SETTINGS_MAX_HEADER_LIST_SIZE`); a header block that exceeds it, however many
//! `CONTINUATION` frames carry it, ends the stream (the h2 crate bounds the buffering, which
//! closed the CONTINUATION flood of CVE-2024-27316's family). Extended CONNECT (RFC 8441) is
//! offered, so WebSocket clients can open a stream the service may turn into a tunnel.

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use hyper::{Request, Response, body::Incoming, server::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::{Service, ServiceExt, util::Oneshot};
use tracing::debug;

use crate::{Peer, Socket, drain::Watcher};

/// HTTP/2 settings for the connections that open with its preface.
#[derive(Clone, Copy, Debug)]
pub struct Http2 {
    /// Streams a client may have open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Streams a client may open and reset before the server has accepted them; past it the
    /// connection is closed with `ENHANCE_YOUR_CALM` (the rapid-reset attack, CVE-2023-44487).
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server may reset for a client's protocol errors before it closes the connection.
    pub max_local_error_reset_streams: usize,
    /// How often an idle connection is pinged; a peer that does not answer within the same time
    /// is gone and its connection closed. `None`: never.
    pub keep_alive_interval: Option<Duration>,
}

impl Default for Http2 {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            keep_alive_interval: Some(Duration::from_secs(30)),
        }
    }
}

/// Serves one HTTP/2 connection until it closes or the drain ends it.
pub(crate) async fn serve<S, B>(
    socket: Socket,
    service: S,
    peer: Peer,
    settings: Http2,
    max_header_bytes: usize,
    watcher: Watcher,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(settings.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(settings.max_local_error_reset_streams)
        .keep_alive_interval(settings.keep_alive_interval)
        // Extended CONNECT (RFC 8441): WebSocket over an HTTP/2 stream. The request reaches the
        // service as `CONNECT` with a `hyper::ext::Protocol`; a 2xx answer hands the stream over.
        .enable_connect_protocol();
    if let Some(interval) = settings.keep_alive_interval {
        builder.keep_alive_timeout(interval);
    }
    let conn = builder.serve_connection(TokioIo::new(socket), PerStream { service, peer });
    if let Err(error) = watcher.watch(conn).await {
        debug!(%error, "HTTP/2 connection closed with an error");
    }
}

/// The service as hyper's HTTP/2 server calls it: a clone per stream.
struct PerStream<S> {
    service: S,
    peer: Peer,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for PerStream<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Oneshot<S, Request<Incoming>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        self.service.clone().oneshot(request)
    }
}
