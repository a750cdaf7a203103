//! The innermost service: forwards a request to the upstream over a pooled keep-alive client and
//! streams the response back. Failures become sidecar-made responses ([`ProxyError`]).
//!
//! What it does to a request:
//! - the URI becomes `http://<upstream>` + the original path and query;
//! - hop-by-hop headers are removed both ways (RFC 9110 §7.6.1: `connection` and every header it
//!   names, `keep-alive`, `proxy-connection`, `te`, `transfer-encoding`, `upgrade`); hyper
//!   re-frames bodies on each side. `trailer` is end to end (§6.6.2) and kept: an HTTP/1.1
//!   server only sends the trailers it announces;
//! - `x-forwarded-for` gets the client's IP appended, `x-forwarded-proto` is set to `http`;
//! - `Host` is passed through unchanged (like nginx's `proxy_set_header Host $host`), so the
//!   upstream sees the name the client used; a request without one (HTTP/1.0) gets the upstream's
//!   authority. An absolute-form target's authority wins over `Host` (RFC 9112 §3.2.2) and
//!   becomes the forwarded `Host`. What can't be forwarded unambiguously is refused before
//!   anything is sent: two `Host` fields, or an HTTP/1.1 request without one (400, RFC 9112
//!   §3.2), and a plain `CONNECT` (405: a reverse proxy opens no tunnels to arbitrary hosts).
//!
//! Bodies stream both ways; nothing is buffered whole. A request that asks for a protocol
//! switch (WebSocket: an HTTP/1.1 `Upgrade`, or an HTTP/2 extended `CONNECT`) is sent in the
//! upstream leg's own form ([`connect`]); if the upstream accepts, the two ends are joined
//! ([`tunnel`]).
//!
//! Which requests can be forwarded, and what happens to their header fields: [`headers`].
//!
//! Each worker forwards over its own [`pool::Pool`] of upstream connections, speaking HTTP/1.1
//! itself ([`conn`], [`head`], [`framing`]: see `conn` for why not hyper's client there), or
//! over one multiplexed HTTP/2 connection ([`h2`]) when `[protocols] upstream` says so. Over
//! HTTP/2, `Host` becomes `:authority`. On both legs `te: trailers` is kept (gRPC's, and how an
//! HTTP/1.1 upstream knows it may send trailers). The
//! pooled hyper-util client ([`client`]) serves the loaders that run outside the workers
//! (OpenAPI, `/readyz`).

mod conn;
mod connect;
mod framing;
mod h2;
mod head;
mod headers;
mod pool;
mod response_body;
mod tunnel;

pub(crate) use headers::strip_hop_by_hop;
pub(crate) use pool::Pool;
pub(crate) use response_body::BodyIdleTimeout;
pub(crate) use tunnel::Tunnels;

use std::{convert::Infallible, net::IpAddr, sync::Arc, task::Poll, time::Duration};

use futures_util::future::BoxFuture;
use http::{
    HeaderValue, Request, Response, Uri, Version,
    header::HOST,
    header::{CONNECTION, TE, UPGRADE},
    uri::PathAndQuery,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use serve::{Deadline, Deadlines};
use tracing::{debug, warn};

use crate::{
    body::{Body, caused_by_client},
    config::{LimitsConfig, Upstream, UpstreamProtocol},
    error::ProxyError,
};
use conn::ExchangeError;
use headers::{TE_TRAILERS, X_FORWARDED_FOR, X_FORWARDED_PROTO, forwardable, forwarded_for};
use pool::SendError;

/// The pooled client the OpenAPI loader and the reloader use.
pub(crate) type UpstreamClient = Client<HttpConnector, Body>;

/// Builds the upstream client: keep-alive pool, connect timeout, `TCP_NODELAY`.
pub(crate) fn client(limits: &LimitsConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(limits.connect_timeout));
    // Small requests and responses must not wait for Nagle's algorithm.
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(limits.pool_idle_timeout)
        .build(connector)
}

/// Forwards requests to one upstream.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    inner: Arc<Inner>,
    /// The last client address and its text for `x-forwarded-for`. Each connection has its own
    /// copy of the service, so this is that client's address, formatted once.
    forwarded_for: Option<(IpAddr, HeaderValue)>,
    /// This copy's response-header deadline, reused request after request (a connection's
    /// requests come one at a time); a call while it is still held leases another.
    deadline: Option<Arc<Deadline>>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    /// The HTTP/2 leg, when `[protocols] upstream` may use it.
    h2: Option<h2::H2Leg>,
    protocol: UpstreamProtocol,
    upstream: Upstream,
    /// `Host` for requests that came without one (HTTP/1.0).
    host: HeaderValue,
    response_header_timeout: Duration,
    response_body_idle_timeout: Duration,
    deadlines: Deadlines,
    tunnels: Arc<Tunnels>,
}

impl Proxy {
    /// Forwards to `upstream` over `pool`. Call it inside the runtime that will run the
    /// requests: the response-header timeouts tick there.
    pub(crate) fn new(
        pool: Pool,
        upstream: Upstream,
        limits: &LimitsConfig,
        protocol: UpstreamProtocol,
        tunnels: Arc<Tunnels>,
    ) -> Self {
        let h2 = (protocol != UpstreamProtocol::Http1)
            .then(|| h2::H2Leg::new(pool.clone(), upstream.authority.clone()));
        let host = HeaderValue::from_str(upstream.authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        let timeout = limits.response_header_timeout;
        Self {
            inner: Arc::new(Inner {
                pool,
                h2,
                protocol,
                upstream,
                host,
                response_header_timeout: timeout,
                response_body_idle_timeout: limits.response_body_idle_timeout,
                deadlines: Deadlines::start(Deadlines::resolution_for(timeout)),
                tunnels,
            }),
            forwarded_for: None,
            deadline: None,
        }
    }

    fn rewrite(
        &mut self,
        request: Request<Body>,
        switch: Option<connect::Switch>,
        over_h2: bool,
    ) -> (Request<Body>, Option<connect::Answer>) {
        let (mut parts, body) = request.into_parts();
        // The client takes trailers: so does the sidecar, on either leg (an HTTP/1.1 server
        // only sends them to a client that says so).
        let te_trailers = (parts.headers.get_all(TE).iter())
            .any(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
        // The upstream connection is already open: the request line takes the origin form
        // (path and query only), as any HTTP/1 client sends to a server. The target's
        // authority, if any, is the request's host (RFC 9112 §3.2.2).
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            if let Some(host) = (parts.uri.authority())
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
            {
                parts.headers.insert(HOST, host);
            }
            let path_and_query = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path_and_query);
        }
        // Upstream connections are always HTTP/1.1 keep-alive, whatever the client spoke.
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if te_trailers {
            parts.headers.insert(TE, TE_TRAILERS);
        }
        let answer = switch.map(|switch| connect::forward(switch, &mut parts, over_h2));
        // Room for what is added below, in one growth of the map rather than two.
        parts.headers.reserve(3);
        if !parts.headers.contains_key(HOST) {
            parts.headers.insert(HOST, self.inner.host.clone());
        }
        if let Some(peer) = parts.extensions.get::<serve::Peer>() {
            let ip = peer.remote.ip();
            let value = match parts.headers.get(X_FORWARDED_FOR) {
                Some(previous) => forwarded_for(Some(previous), ip),
                None => self.client_address(ip),
            };
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        (Request::from_parts(parts, body), answer)
    }

    /// `ip` as the value of a fresh `x-forwarded-for`, formatted once per client address.
    fn client_address(&mut self, ip: IpAddr) -> HeaderValue {
        match &self.forwarded_for {
            Some((cached, value)) if *cached == ip => value.clone(),
            _ => self
                .forwarded_for
                .insert((ip, forwarded_for(None, ip)))
                .1
                .clone(),
        }
    }
}

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let switch = connect::asked(&request);
        if let Err(refused) = forwardable(&request, switch.is_some()) {
            debug!(
                error_type = refused.error_type(),
                "request refused before forwarding"
            );
            return Box::pin(std::future::ready(Ok(refused.into_response())));
        }
        let over_h2 = match self.inner.protocol {
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::H2c => true,
            UpstreamProtocol::Auto => request.version() == Version::HTTP_2,
        };
        let on_upgrade = switch.is_some().then(|| hyper::upgrade::on(&mut request));
        let (request, answer) = self.rewrite(request, switch, over_h2);
        let deadline = match &self.deadline {
            Some(deadline) if Arc::strong_count(deadline) == 1 => Arc::clone(deadline),
            _ => Arc::clone(self.deadline.insert(Arc::new(self.inner.deadlines.lease()))),
        };
        deadline.arm_after(self.inner.response_header_timeout);
        let deadline = Armed(deadline);
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = inner.forward(request, &deadline.0, over_h2).await;
            drop(deadline);
            let response = match (response, answer, on_upgrade) {
                (Ok(response), Some(answer), Some(client)) => {
                    inner.switch(response, answer, client)
                }
                (response, ..) => response,
            };
            Ok(response.unwrap_or_else(ProxyError::into_response))
        })
    }
}

/// An armed deadline, disarmed when the request no longer waits on it.
struct Armed(Arc<Deadline>);

impl Drop for Armed {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

impl Inner {
    async fn forward(
        &self,
        request: Request<Body>,
        deadline: &Deadline,
        over_h2: bool,
    ) -> Result<Response<Body>, ProxyError> {
        let idle = (&self.deadlines, self.response_body_idle_timeout);
        let send = async {
            match (&self.h2, over_h2) {
                (Some(h2), true) => h2.send(request, idle).await,
                _ => self.pool.send(request, Some(idle)).await,
            }
        };
        let sent = tokio::select! {
            biased;
            sent = send => Ok(sent),
            () = deadline.due() => Err(()),
        };
        let mut response = match sent {
            Err(()) => {
                warn!(upstream = %self.upstream, timeout = ?self.response_header_timeout, "upstream response headers timed out");
                return Err(ProxyError::ResponseTimeout);
            }
            Ok(Err(error)) => return Err(self.classify(error)),
            Ok(Ok(response)) => response,
        };
        let switched = (response.status() == http::StatusCode::SWITCHING_PROTOCOLS)
            .then(|| response.headers().get(UPGRADE).cloned())
            .flatten();
        strip_hop_by_hop(response.headers_mut());
        if let Some(protocol) = switched {
            let headers = response.headers_mut();
            headers.insert(UPGRADE, protocol);
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
        Ok(response)
    }

    /// Turns the upstream's answer to a protocol switch into the client's, and joins the two
    /// ends when the switch was accepted.
    fn switch(
        &self,
        mut response: Response<Body>,
        answer: connect::Answer,
        client: hyper::upgrade::OnUpgrade,
    ) -> Result<Response<Body>, ProxyError> {
        let accepted = connect::answer(answer, &mut response).inspect_err(|_| {
            warn!(upstream = %self.upstream, "the upstream accepted a WebSocket with the wrong Sec-WebSocket-Accept");
        })?;
        if accepted && let Some(upstream) = tunnel::UpstreamEnd::take(&mut response) {
            self.tunnels.open(client, upstream);
        }
        Ok(response)
    }

    /// Maps a send error to the closed set, and logs it once here, where it is handled.
    fn classify(&self, error: SendError) -> ProxyError {
        let (kind, error, cause): (_, &dyn std::fmt::Display, _) = match &error {
            SendError::Connect(io) => {
                let kind = if io.kind() == std::io::ErrorKind::TimedOut {
                    ProxyError::ConnectTimeout
                } else {
                    ProxyError::ConnectRefused
                };
                (kind, io, String::new())
            }
            SendError::ConnectTimeout => (
                ProxyError::ConnectTimeout,
                &"connect timed out",
                String::new(),
            ),
            SendError::NoExtendedConnect => (
                ProxyError::ProtocolError,
                &"the upstream's HTTP/2 SETTINGS do not allow extended CONNECT (RFC 8441)",
                String::new(),
            ),
            SendError::Exchange(exchange) => {
                let kind = match exchange {
                    ExchangeError::RequestBody(body) if caused_by_client(body.as_ref()) => {
                        ProxyError::ClientBody
                    }
                    ExchangeError::Head(_) => ProxyError::ProtocolError,
                    // The same reasons as a body that breaks while a plugin buffers it.
                    ExchangeError::Body(body) => ProxyError::for_broken_body(body.as_ref()),
                    ExchangeError::Closed(_)
                    | ExchangeError::Io(_)
                    | ExchangeError::RequestBody(_) => ProxyError::UpstreamReset,
                };
                let cause = std::error::Error::source(exchange)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (kind, exchange, cause)
            }
            SendError::Http2(http2) => {
                let kind = if caused_by_client(http2.as_ref()) {
                    ProxyError::ClientBody
                } else if http2.is_parse() || http2.is_user() {
                    ProxyError::ProtocolError
                } else {
                    ProxyError::UpstreamReset
                };
                let cause = std::error::Error::source(http2.as_ref())
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (kind, http2.as_ref(), cause)
            }
        };
        if kind == ProxyError::ClientBody {
            debug!(%error, cause, "client request body failed while forwarding");
        } else {
            warn!(upstream = %self.upstream, error_type = kind.error_type(), %error, cause, "upstream request failed");
        }
        kind
    }
}
