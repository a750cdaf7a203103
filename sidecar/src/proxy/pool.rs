//! One worker's keep-alive connections to the upstream, over hyper's bare HTTP/1 client
//! connections (`hyper::client::conn::http1`).
//!
//! Why not hyper-util's pooled client: each worker thread already owns its connections, so
//! the general pool's keying, checkout futures and cross-thread bookkeeping are pure cost on the
//! hot path. Here a checkout is a pop from a per-worker stack (a mutex nobody else takes), and a
//! connection goes back when its response body has been read to the end. A connection whose
//! response body was dropped half-read is not reused.
//!
//! Behaviour kept from the pooled client: `TCP_NODELAY` and `SO_KEEPALIVE` on, a connect
//! timeout, idle connections closed after `pool_idle_timeout`, and a request that a reused
//! connection refused before sending it (the upstream had just closed it) retried once on a new
//! connection.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::{body::Incoming, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpSocket, time::Instant};
use tracing::debug;

use crate::{
    body::{Body, BoxError},
    config::Upstream,
};

type Sender = http1::SendRequest<Body>;

/// Why a request got no response from the upstream.
#[derive(Debug)]
pub enum SendError {
    /// The TCP connect failed (refused, unreachable, name not resolved).
    Connect(io::Error),
    /// The TCP connect took longer than the connect timeout.
    ConnectTimeout,
    /// The HTTP exchange failed (reset, garbage, the client's body broke off).
    Http(hyper::Error),
}

/// A worker's connections to the upstream. Clones share the connections.
#[derive(Clone, Debug)]
pub struct Pool(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    host: String,
    port: u16,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    /// An empty pool for `upstream`. Must be called inside the worker's runtime: it spawns the
    /// task that closes idle connections, which ends with the pool.
    pub fn new(upstream: &Upstream, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        let (host, port) = upstream.host_port();
        let pool = Self(Arc::new(Inner {
            // `[::1]` is how an IPv6 host appears in a URL; the resolver wants it bare.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        }));
        tokio::spawn(reap(Arc::downgrade(&pool.0)));
        pool
    }

    /// Sends `request` on an idle connection or a new one, and returns the response whose body
    /// gives the connection back when it has been read to the end.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, SendError> {
        let (mut sender, reused) = match self.checkout() {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => match error.take_message() {
                // A reused connection that closed before the request went out: the request is
                // intact, so it is safe to send it once more on a fresh connection.
                Some(request) if reused => {
                    debug!(error = %error.error(), "pooled upstream connection was closed; retrying on a new one");
                    sender = self.connect().await?;
                    sender
                        .send_request(request)
                        .await
                        .map_err(SendError::Http)?
                }
                _ => return Err(SendError::Http(error.into_error())),
            },
        };
        let (parts, body) = response.into_parts();
        let body = if http_body::Body::is_end_stream(&body) {
            self.give_back(sender);
            crate::body::empty()
        } else {
            Body::new(PooledBody {
                inner: body,
                give_back: Some((sender, self.clone())),
                done: false,
            })
        };
        Ok(Response::from_parts(parts, body))
    }

    /// The most recently used idle connection that is still open and ready for a request.
    fn checkout(&self) -> Option<Sender> {
        loop {
            let Idle { sender, since } = self.lock().pop()?;
            if sender.is_closed() || since.elapsed() >= self.0.idle_timeout {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            self.give_back(sender);
        }
    }

    /// Back to the idle stack once ready for the next request. A connection still busy with
    /// its previous exchange (an upstream that answered before reading the whole request body,
    /// say) waits for it in a task of its own; no request waits for it.
    fn give_back(&self, mut sender: Sender) {
        if sender.is_ready() {
            self.lock().push(Idle {
                sender,
                since: Instant::now(),
            });
        } else if !sender.is_closed()
            // Outside a runtime (the worker is shutting down) the connection is just closed.
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let pool = self.clone();
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.give_back(sender);
                }
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The vector stays consistent whatever panicked while holding the lock.
        self.0
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let inner = &self.0;
        let stream = tokio::time::timeout(inner.connect_timeout, async {
            let mut last = None;
            for addr in tokio::net::lookup_host((inner.host.as_str(), inner.port))
                .await
                .map_err(SendError::Connect)?
            {
                match connect_one(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last = Some(error),
                }
            }
            Err(SendError::Connect(last.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the upstream's name resolved to no address",
                )
            })))
        })
        .await
        .map_err(|_elapsed| SendError::ConnectTimeout)??;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "upstream connection closed with an error");
            }
        });
        Ok(sender)
    }
}

async fn connect_one(addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Small requests and responses must not wait for Nagle's algorithm.
    socket.set_nodelay(true)?;
    socket.set_keepalive(true)?;
    socket.connect(addr).await
}

/// Closes idle connections past the idle timeout, until the pool is gone.
async fn reap(pool: Weak<Inner>) {
    let period = pool.upgrade().map_or(Duration::from_secs(1), |p| {
        (p.idle_timeout / 2).max(Duration::from_millis(100))
    });
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        let mut idle = inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|c| !c.sender.is_closed() && c.since.elapsed() < inner.idle_timeout);
    }
}

/// The upstream's response body: gives its connection back to the pool once read to the end.
struct PooledBody {
    inner: Incoming,
    give_back: Option<(Sender, Pool)>,
    done: bool,
}

impl PooledBody {
    fn finish(&mut self) {
        self.done = true;
        if let Some((sender, pool)) = self.give_back.take() {
            pool.give_back(sender);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Only a connection whose response was read whole can carry the next request.
        if self.done || http_body::Body::is_end_stream(&self.inner) {
            self.finish();
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if http_body::Body::is_end_stream(&this.inner) {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.give_back = None;
                Poll::Ready(Some(Err(error.into())))
            }
            None => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

#[cfg(test)]
mod tests;
