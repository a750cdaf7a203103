//! The innermost service: forwards a request to the upstream over a pooled keep-alive client and
//! streams the response back. Failures become sidecar-made responses ([`ProxyError`]).
//!
//! What it does to a request:
//! - the URI becomes `http://<upstream>` + the original path and query;
//! - hop-by-hop headers are removed both ways (RFC 9110 §7.6.1: `connection` and every header it
//!   names, `keep-alive`, `proxy-connection`, `te`, `trailer`, `transfer-encoding`, `upgrade`);
//!   hyper re-frames bodies on each side;
//! - `x-forwarded-for` gets the client's IP appended, `x-forwarded-proto` is set to `http`;
//! - `Host` is passed through unchanged (like nginx's `proxy_set_header Host $host`), so the
//!   upstream sees the name the client used; a request without one (HTTP/1.0) gets the upstream's
//!   authority, set by the client library.
//!
//! Bodies stream both ways; nothing is buffered whole. Upgrades (WebSocket) are not supported.

use std::{convert::Infallible, error::Error as _, sync::Arc, task::Poll, time::Duration};

use futures_util::future::BoxFuture;
use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, Version,
    header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE},
    uri::PathAndQuery,
};
use http_body_util::BodyExt;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use tracing::{debug, warn};

use crate::{
    body::{Body, caused_by_client},
    config::{LimitsConfig, Upstream},
    error::ProxyError,
};

/// The pooled client the proxy (and the OpenAPI loader) use.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// Builds the upstream client: keep-alive pool, connect timeout, `TCP_NODELAY`.
pub fn client(limits: &LimitsConfig) -> UpstreamClient {
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
pub struct Proxy(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    client: UpstreamClient,
    upstream: Upstream,
    response_header_timeout: Duration,
}

impl Proxy {
    /// Forwards to `upstream` over `client`.
    pub fn new(client: UpstreamClient, upstream: Upstream, limits: &LimitsConfig) -> Self {
        Self(Arc::new(Inner {
            client,
            upstream,
            response_header_timeout: limits.response_header_timeout,
        }))
    }
}

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            Ok(inner
                .forward(request)
                .await
                .unwrap_or_else(ProxyError::into_response))
        })
    }
}

impl Inner {
    async fn forward(&self, request: Request<Body>) -> Result<Response<Body>, ProxyError> {
        let request = self.rewrite(request);
        let response = match tokio::time::timeout(
            self.response_header_timeout,
            self.client.request(request),
        )
        .await
        {
            Err(_elapsed) => {
                warn!(upstream = %self.upstream, timeout = ?self.response_header_timeout, "upstream response headers timed out");
                return Err(ProxyError::ResponseTimeout);
            }
            Ok(Err(error)) => return Err(self.classify(&error)),
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed_unsync(),
        ))
    }

    fn rewrite(&self, request: Request<Body>) -> Request<Body> {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path_and_query);
        if let Ok(built) = std::mem::take(&mut uri).build() {
            parts.uri = built;
        }
        // Upstream connections are always HTTP/1.1 keep-alive, whatever the client spoke.
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if let Some(peer) = parts.extensions.get::<serve::Peer>() {
            append_forwarded_for(&mut parts.headers, peer.remote.ip());
        }
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        Request::from_parts(parts, body)
    }

    /// Maps a client error to the closed set, and logs it once here, where it is handled.
    fn classify(&self, error: &hyper_util::client::legacy::Error) -> ProxyError {
        let kind = if caused_by_client(error) {
            ProxyError::ClientBody
        } else if error.is_connect() {
            match find_io(error).map(std::io::Error::kind) {
                Some(std::io::ErrorKind::TimedOut) => ProxyError::ConnectTimeout,
                _ => ProxyError::ConnectRefused,
            }
        } else if let Some(hyper_error) = find::<hyper::Error>(error) {
            if hyper_error.is_parse() || hyper_error.is_parse_status() {
                ProxyError::ProtocolError
            } else {
                ProxyError::UpstreamReset
            }
        } else {
            ProxyError::UpstreamReset
        };
        let cause = error.source().map(ToString::to_string).unwrap_or_default();
        if kind == ProxyError::ClientBody {
            debug!(%error, cause, "client request body failed while forwarding");
        } else {
            warn!(upstream = %self.upstream, error_type = kind.error_type(), %error, cause, "upstream request failed");
        }
        kind
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers: those named by `Connection`, then the fixed list.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: std::net::IpAddr) {
    let value = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) if !previous.trim().is_empty() => format!("{previous}, {ip}"),
        _ => ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

fn find<'a, E: std::error::Error + 'static>(
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

fn find_io<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    find::<std::io::Error>(error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_and_fixed_hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("close, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut headers, "10.0.0.2".parse().unwrap());
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2");
    }
}
