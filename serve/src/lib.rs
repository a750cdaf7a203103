//! The one piece of runtime code the api and the sidecar share: an HTTP/1 and HTTP/2 (cleartext)
//! accept loop with graceful shutdown, and the process signal that starts it.
//!
//! - [`serve`] accepts connections until `shutdown` completes, then stops accepting, asks every
//!   open connection to finish its in-flight request, and waits for them at most `grace`.
//! - [`accept`]: where connections come from: a listening socket, or a [`Spreader`] that deals
//!   one socket's connections out to several single-threaded runtimes.
//! - [`signal`] completes on SIGINT or SIGTERM.
//! - [`Limits`] bounds what a slow or hostile client can hold: header read time and size, and
//!   [`Http2`]'s stream limits. `sniff` tells an HTTP/2 connection from an HTTP/1 one by its
//!   first bytes; `http2` serves the former.
//! - [`deadlines`]: coarse timeouts that cost an atomic store per request; `head_timeout`, the
//!   slowloris guard, runs on them. `conn_service` calls a connection's tower service in place;
//!   `drain` tells connections to finish when shutdown starts.
//! - [`Socket`]: a TCP stream that sends without glibc's per-call cancellation bookkeeping.
//! - `linger`: a connection closed right after an answer drains what the client still sends
//!   (bounded) before closing, so the client reads the answer instead of a reset.

pub mod accept;
mod conn_service;
pub mod deadlines;
mod drain;
mod head_timeout;
mod http2;
pub mod linger;
mod sniff;
pub mod socket;

pub use accept::{Accept, Handoff, Spreader};
pub use deadlines::{Deadline, Deadlines};
pub use http2::Http2;
pub use socket::Socket;

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::pin, time::Duration};

use bytes::Bytes;
use hyper::{Request, Response, body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tracing::{Instrument, debug, debug_span, info, warn};

use head_timeout::HeadClock;
use sniff::Protocol;

/// Per-connection limits against slow or oversized clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's headers, counted from when the connection
    /// opens or its previous response is done (slowloris guard; also how long an idle
    /// keep-alive connection stays open). Past it the connection is closed, without an answer.
    pub header_read_timeout: Duration,
    /// Largest request head hyper accepts (request line plus headers), in bytes; past it, 431.
    pub max_header_bytes: usize,
    /// Most header fields a request may have; past it, 431. `None` keeps hyper's 100, parsed
    /// on the stack; any other value costs a heap allocation per request (hyper's docs: about
    /// 5 % of its parsing), so only a server behind a proxy that adds headers should raise it.
    pub max_headers: Option<usize>,
    /// HTTP/2 with prior knowledge on the same port (a connection that opens with the HTTP/2
    /// preface gets an HTTP/2 server). `None`: HTTP/1 only, and no first-bytes peek.
    pub http2: Option<Http2>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: None,
            http2: Some(Http2::default()),
        }
    }
}

/// The peer address of the connection a request arrived on, inserted into every request's
/// extensions so services can see who is calling without a second argument.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// Our own address for this connection.
    pub local: SocketAddr,
    /// A process-unique number for the connection, counting from 1.
    pub connection_id: u64,
}

/// Serves `service` on the connections `listener` yields until `shutdown` completes (or the
/// listener has no more), then drains for at most `grace`.
///
/// Each connection gets a clone of `service`. Connection-level errors (a peer that resets, a
/// malformed request hyper has already answered) are ordinary and logged at `debug`.
pub async fn serve<S, B>(
    mut listener: impl Accept,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let drain = drain::Drain::new();
    let deadlines = Deadlines::start(Deadlines::resolution_for(limits.header_read_timeout));
    let mut shutdown = pin!(shutdown);
    let local = listener.local_addr();
    let mut next_connection_id = 0u64;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Some(Ok(conn)) => conn,
                Some(Err(error)) => { accept::backoff(error).await; continue; }
                None => break,
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        next_connection_id += 1;
        let peer = Peer {
            remote,
            local: stream.local_addr().unwrap_or(remote),
            connection_id: next_connection_id,
        };
        let (service, watcher, deadlines) = (service.clone(), drain.watcher(), deadlines.clone());
        tokio::spawn(
            async move {
                let protocol = match limits.http2 {
                    None => Protocol::Http1,
                    Some(_) => {
                        match tokio::time::timeout(
                            limits.header_read_timeout,
                            sniff::protocol(&stream),
                        )
                        .await
                        {
                            Ok(Ok(protocol)) => protocol,
                            Ok(Err(error)) => {
                                return debug!(%error, "connection failed before its first byte");
                            }
                            Err(_) => return debug!("no request in time; closing"),
                        }
                    }
                };
                match (protocol, limits.http2) {
                    (Protocol::Http2, Some(settings)) => {
                        let socket = Socket::new(stream);
                        http2::serve(
                            socket,
                            service,
                            peer,
                            settings,
                            limits.max_header_bytes,
                            watcher,
                        )
                        .await;
                    }
                    _ => serve_http1(stream, service, peer, &limits, &deadlines, watcher).await,
                }
            }
            .instrument(debug_span!("conn", %remote)),
        );
    }
    drop(listener);
    info!(?local, "stopped accepting; draining connections");
    if tokio::time::timeout(grace, drain.shutdown()).await.is_err() {
        warn!(?grace, "connections still open after the grace period");
    }
}

/// Serves one HTTP/1 connection until it closes or the drain ends it.
async fn serve_http1<S, B>(
    stream: tokio::net::TcpStream,
    service: S,
    peer: Peer,
    limits: &Limits,
    deadlines: &Deadlines,
    watcher: drain::Watcher,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let clock = HeadClock::start(deadlines.lease(), limits.header_read_timeout);
    // No timer for hyper: the header-read timeout is ours (`head_timeout`).
    let mut builder = http1::Builder::new();
    if let Some(max_headers) = limits.max_headers {
        builder.max_headers(max_headers);
    }
    // max_buf_size alone lets a head through when one read brings it in whole past the
    // cap; max_header_size holds every head to it.
    let conn = builder
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // Responses here are mostly small: one copy into the head's buffer and a plain
        // write are cheaper than a vectored write of several pieces.
        .writev(false)
        .serve_connection(
            TokioIo::new(linger::Lingering::new(Socket::new(stream), clock.clone())),
            conn_service::ConnService::new(service, peer, clock.clone()),
        )
        // A 101 answer hands the connection to the service (`hyper::upgrade::on`): WebSocket
        // through the sidecar. Until then nothing changes.
        .with_upgrades();
    if let Err(error) = head_timeout::Guarded::new(watcher.watch(conn), clock).await {
        debug!(%error, "connection closed with an error");
    }
}

/// Completes when the process receives SIGINT or SIGTERM, and logs which one.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; only the process's death will stop it");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal = name, "shutting down");
}
