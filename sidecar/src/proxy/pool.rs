//! One worker's keep-alive connections to the upstream ([`Conn`]s).
//!
//! A checkout is a pop from a per-worker stack (a mutex nobody else takes), and a connection
//! goes back when its response body has been read to the end and both sides are in a known
//! state. A connection whose response body was dropped half-read is not reused.
//!
//! Behaviour: `TCP_NODELAY` and `SO_KEEPALIVE` on, a connect timeout, idle connections closed
//! after `pool_idle_timeout` (at the latest; at least 3/4 of it), and a request without a body that a reused connection failed
//! before any response byte (the upstream had just closed it) retried once on a new connection
//! when its method is idempotent (RFC 9110 §9.2.2), since it may have been received.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use http::{Method, Request, Response};
use tokio::net::TcpSocket;
use tracing::debug;

use super::{
    conn::{Conn, ExchangeError},
    response_body::{ConnHome, UpstreamBody},
};
use serve::Deadlines;

use crate::{body::Body, config::Upstream};

/// Why a request got no response from the upstream.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The TCP connect failed (refused, unreachable, name not resolved).
    Connect(io::Error),
    /// The TCP connect took longer than the connect timeout.
    ConnectTimeout,
    /// The exchange failed (reset, garbage, the client's body broke off).
    Exchange(ExchangeError),
    /// An HTTP/2 stream or connection to the upstream failed ([`super::h2`]).
    Http2(Box<hyper::Error>),
    /// An extended `CONNECT` for an upstream whose HTTP/2 SETTINGS do not allow it (RFC 8441
    /// §3): not sent.
    NoExtendedConnect,
}

/// A worker's connections to the upstream. Clones share the connections.
#[derive(Clone, Debug)]
pub(crate) struct Pool(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    host: String,
    port: u16,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    /// Ticks of the reaper, [`TICKS_PER_TIMEOUT`] per idle timeout: idle connections are
    /// stamped with it instead of reading the clock twice per request.
    tick: AtomicU64,
}

/// An idle connection is closed once this many reaper ticks have passed since it went idle,
/// that is after between 3/4 of the idle timeout and all of it.
const TICKS_PER_TIMEOUT: u64 = 4;

#[derive(Debug)]
struct Idle {
    conn: Conn,
    tick: u64,
}

impl Idle {
    fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.tick) >= TICKS_PER_TIMEOUT
    }
}

impl Pool {
    /// An empty pool for `upstream`. Must be called inside the worker's runtime: it spawns the
    /// task that closes idle connections, which ends with the pool.
    pub(crate) fn new(
        upstream: &Upstream,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
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
            tick: AtomicU64::new(0),
        }));
        tokio::spawn(reap(Arc::downgrade(&pool.0)));
        pool
    }

    /// Sends `request` on an idle connection or a new one, and returns the response whose body
    /// gives the connection back when it has been read to the end. With `idle`, a streamed
    /// response body fails after its timeout without a byte, on a deadline leased from its
    /// wheel (only then: most bodies come whole).
    pub(crate) async fn send(
        &self,
        request: Request<Body>,
        idle: Option<(&Deadlines, Duration)>,
    ) -> Result<Response<Body>, SendError> {
        let (parts, body) = request.into_parts();
        let bodiless = http_body::Body::is_end_stream(&body);
        let (mut conn, reused) = match self.checkout() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        let mut response = match conn.exchange(&parts, body).await {
            Ok(response) => response,
            Err(ExchangeError::Closed(error))
                if reused && bodiless && idempotent(&parts.method) =>
            {
                debug!(
                    ?error,
                    "pooled upstream connection was closed; retrying on a new one"
                );
                conn = self.connect().await?;
                conn.exchange(&parts, crate::body::empty())
                    .await
                    .map_err(SendError::Exchange)?
            }
            Err(error) => return Err(SendError::Exchange(error)),
        };
        if response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // The connection now belongs to the new protocol: handed over, never pooled.
            let (socket, early) = conn.into_tunnel();
            let mut switched = Response::new(crate::body::empty());
            *switched.status_mut() = response.status;
            *switched.version_mut() = response.version;
            *switched.headers_mut() = response.headers;
            switched
                .extensions_mut()
                .insert(super::tunnel::UpstreamSide::new(socket, early));
            return Ok(switched);
        }
        let body = if response.decoder.is_done() {
            self.give_back(conn);
            crate::body::empty()
        } else if let Some(whole) = conn.take_whole_body(&mut response.decoder) {
            // The usual small response arrived with its head: no body to stream.
            self.give_back(conn);
            crate::body::full(whole)
        } else {
            let idle = idle.map(|(wheel, timeout)| (wheel.lease(), timeout));
            let mut body = UpstreamBody::new(conn, self.clone(), response.decoder, idle);
            // Nothing has reached the client yet: a body that breaks now is a 502.
            body.read_ahead()
                .map_err(|error| SendError::Exchange(ExchangeError::Body(error)))?;
            Body::new(body)
        };
        let mut forwarded = Response::new(body);
        *forwarded.status_mut() = response.status;
        *forwarded.version_mut() = response.version;
        *forwarded.headers_mut() = response.headers;
        Ok(forwarded)
    }

    /// The most recently used idle connection that is still open.
    fn checkout(&self) -> Option<Conn> {
        loop {
            let mut idle = self.lock().pop()?;
            if !idle.expired(self.0.tick.load(Relaxed)) && idle.conn.is_usable() {
                return Some(idle.conn);
            }
        }
    }

    /// Back to the idle stack, if it can carry another request.
    fn give_back(&self, conn: Conn) {
        if conn.is_reusable() {
            self.lock().push(Idle {
                conn,
                tick: self.0.tick.load(Relaxed),
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

    async fn connect(&self) -> Result<Conn, SendError> {
        Ok(Conn::new(self.connect_stream().await?))
    }

    /// A new TCP connection to the upstream, within the connect timeout.
    pub(super) async fn connect_stream(&self) -> Result<tokio::net::TcpStream, SendError> {
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
        Ok(stream)
    }
}

impl ConnHome for Pool {
    fn give_back(&self, conn: Conn) {
        Pool::give_back(self, conn);
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

/// Ticks the pool's clock and closes idle connections past the idle timeout, until the pool
/// is gone.
async fn reap(pool: Weak<Inner>) {
    let period = pool.upgrade().map_or(Duration::from_secs(1), |p| {
        (p.idle_timeout / TICKS_PER_TIMEOUT as u32).max(Duration::from_millis(10))
    });
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        let now = inner.tick.fetch_add(1, Relaxed) + 1;
        let mut idle = inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|c| !c.expired(now));
    }
}

/// Methods whose request can be sent twice with the effect of once (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests;
