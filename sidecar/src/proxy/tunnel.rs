//! Upgraded connections (WebSocket, and any other HTTP/1.1 `Upgrade` or HTTP/2 extended
//! `CONNECT`): once the upstream has accepted the switch and the client has received the answer,
//! bytes flow both ways between the two ends (a socket, or an HTTP/2 stream) until either
//! side closes.
//!
//! The RED family counts the 101 (an HTTP/2 client's too: `crate::h2_connect`) once and keeps
//! it out of the duration histograms (a long WebSocket would drown every percentile:
//! istio#17424); tunnels have their own families: the number open, their lifetimes, and the
//! bytes each way (counted as they pass). When either side closes, the other is told and given a second to finish, then both
//! are closed. Shutdown waits for open tunnels for what is left of the grace period, then the
//! worker's runtime closes them.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::FutureExt as _;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use serve::Socket;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::Notify,
    time::Instant,
};
use tracing::debug;

/// Lifetimes of upgraded connections: from seconds to hours.
const LIFETIME_BUCKETS: [f64; 10] = [
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0,
];

/// How long the other side may go on once one side of a tunnel has closed.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Copies `from` into `to`, counting bytes as they pass, and shuts `to`'s write side at the
/// end (or on an error).
async fn pipe(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, bytes: Counter) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                bytes.inc_by(n as u64);
            }
        }
    }
    let _ = to.shutdown().await;
}

/// The upstream's side of a 101, as the HTTP/1.1 leg hands it over in the response's
/// extensions: its socket and what it sent after the head.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamSide(Arc<Mutex<Option<(Socket, Bytes)>>>);

impl UpstreamSide {
    pub(crate) fn new(socket: Socket, early: Bytes) -> Self {
        Self(Arc::new(Mutex::new(Some((socket, early)))))
    }

    fn take(&self) -> Option<(Socket, Bytes)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The upstream's end of a tunnel.
pub(crate) enum UpstreamEnd {
    /// The HTTP/1.1 leg's socket after a 101, and what came after the head.
    Socket(Socket, Bytes),
    /// The HTTP/2 leg's stream after a 200 to an extended `CONNECT`.
    Stream(OnUpgrade),
}

impl UpstreamEnd {
    /// Taken out of the upstream's accepting answer.
    pub(crate) fn take<B>(response: &mut http::Response<B>) -> Option<Self> {
        let extensions = response.extensions_mut();
        if let Some(side) = extensions.remove::<UpstreamSide>() {
            return side
                .take()
                .map(|(socket, early)| Self::Socket(socket, early));
        }
        extensions.remove::<OnUpgrade>().map(Self::Stream)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

/// Every worker's tunnels: metrics, and the count shutdown waits on.
#[derive(Debug)]
pub(crate) struct Tunnels {
    open: Gauge,
    lifetime: Histogram,
    to_upstream: Counter,
    to_client: Counter,
    live: AtomicUsize,
    closed: Notify,
}

impl Tunnels {
    /// Registers the tunnel families (at 0 from start-up).
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
        let bytes = Family::<Direction, Counter>::default();
        // One statement each: the family's read guard lives to the end of the statement.
        let to_upstream = bytes
            .get_or_create(&Direction {
                direction: "client_to_upstream",
            })
            .clone();
        let to_client = bytes
            .get_or_create(&Direction {
                direction: "upstream_to_client",
            })
            .clone();
        let tunnels = Self {
            open: Gauge::default(),
            lifetime: Histogram::new(LIFETIME_BUCKETS),
            to_upstream,
            to_client,
            live: AtomicUsize::new(0),
            closed: Notify::new(),
        };
        registry.register(
            "sidecar_upgraded_connections",
            "Upgraded (101) connections open now, WebSocket included.",
            tunnels.open.clone(),
        );
        registry.register(
            "sidecar_upgraded_connection_duration_seconds",
            "Lifetimes of upgraded connections, from the 101 to the close of either side.",
            tunnels.lifetime.clone(),
        );
        registry.register(
            "sidecar_upgraded_bytes",
            "Bytes carried by upgraded connections, by direction.",
            bytes,
        );
        Arc::new(tunnels)
    }

    /// Carries bytes between the client (once hyper has sent it the answer) and the upstream,
    /// on a task of the current worker.
    pub(crate) fn open(self: &Arc<Self>, client: OnUpgrade, upstream: UpstreamEnd) {
        self.live.fetch_add(1, Ordering::AcqRel);
        self.open.inc();
        let tunnels = Arc::clone(self);
        tokio::spawn(async move {
            let started = Instant::now();
            match upstream {
                UpstreamEnd::Socket(socket, early) => tunnels.carry(client, socket, early).await,
                UpstreamEnd::Stream(stream) => match stream.await {
                    Ok(stream) => {
                        let stream = TokioIo::new(stream);
                        tunnels.carry(client, stream, Bytes::new()).await;
                    }
                    Err(error) => debug!(%error, "the upstream stream was not handed over"),
                },
            }
            tunnels.lifetime.observe(started.elapsed().as_secs_f64());
            tunnels.open.dec();
            if tunnels.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                tunnels.closed.notify_waiters();
            }
        });
    }

    async fn carry(&self, client: OnUpgrade, upstream: impl AsyncRead + AsyncWrite, early: Bytes) {
        let upgraded = match client.await {
            Ok(upgraded) => upgraded,
            Err(error) => return debug!(%error, "the client connection was not upgraded"),
        };
        let (client_read, mut client_write) = tokio::io::split(TokioIo::new(upgraded));
        if !early.is_empty() {
            if let Err(error) = client_write.write_all(&early).await {
                return debug!(%error, "upgraded client connection failed");
            }
            self.to_client.inc_by(early.len() as u64);
        }
        let (upstream_read, upstream_write) = tokio::io::split(upstream);
        let up = pipe(client_read, upstream_write, self.to_upstream.clone());
        let down = pipe(upstream_read, client_write, self.to_client.clone());
        tokio::pin!(up, down);
        // When one side closes, the other is told (its write side is shut) and given a moment
        // to finish what it is sending; then both close.
        let rest = tokio::select! {
            () = &mut up => down.as_mut().left_future(),
            () = &mut down => up.as_mut().right_future(),
        };
        let _ = tokio::time::timeout(CLOSE_LINGER, rest).await;
    }

    /// Waits until no tunnel is open, or `timeout`.
    pub(crate) async fn wait_closed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            loop {
                let closed = self.closed.notified();
                if self.live.load(Ordering::Acquire) == 0 {
                    return;
                }
                closed.await;
            }
        })
        .await;
    }
}
