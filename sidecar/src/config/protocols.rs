//! The `[protocols]` section: what the proxy port accepts and what it speaks to the upstream.
//!
//! ```toml
//! [protocols]
//! http2 = true                # HTTP/2 cleartext (prior knowledge) from clients, next to HTTP/1.1
//! upstream = "auto"           # "http1" (default), "h2c", or "auto": the client's own version
//! http2_max_concurrent_streams = 256
//! ```
//!
//! gRPC needs HTTP/2 end to end (its status travels in trailers, which HTTP/1.1 upstream
//! connections here do not carry): use `h2c` or `auto` in front of a gRPC service.

use serde::Deserialize;

/// `[protocols]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ProtocolsConfig {
    /// Accept HTTP/2 with prior knowledge on the proxy port (detected from a connection's first
    /// bytes; HTTP/1.1 connections are served as before).
    pub http2: bool,
    /// What the sidecar speaks to its upstream.
    pub upstream: UpstreamProtocol,
    /// Streams one client connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// Streams a client may open and reset before the server accepts them (the rapid-reset
    /// guard); past it the connection is closed.
    pub http2_max_pending_accept_reset_streams: usize,
}

impl Default for ProtocolsConfig {
    fn default() -> Self {
        let http2 = serve::Http2::default();
        Self {
            http2: true,
            upstream: UpstreamProtocol::Http1,
            http2_max_concurrent_streams: http2.max_concurrent_streams,
            http2_max_pending_accept_reset_streams: http2.max_pending_accept_reset_streams,
        }
    }
}

impl ProtocolsConfig {
    /// The HTTP/2 settings of the proxy port, `None` when HTTP/2 is off.
    pub(crate) fn server_http2(&self) -> Option<serve::Http2> {
        self.http2.then(|| serve::Http2 {
            max_concurrent_streams: self.http2_max_concurrent_streams,
            max_pending_accept_reset_streams: self.http2_max_pending_accept_reset_streams,
            ..serve::Http2::default()
        })
    }
}

/// The upstream leg's protocol.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UpstreamProtocol {
    /// HTTP/1.1 over the worker's keep-alive pool, whatever the client spoke.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, streams multiplexed on one connection per worker.
    H2c,
    /// The client's own version: HTTP/2 requests go over h2c, HTTP/1 ones over HTTP/1.1.
    Auto,
}
