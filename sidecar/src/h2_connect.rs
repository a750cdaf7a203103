//! HTTP/2 extended `CONNECT` (RFC 8441) in its HTTP/1.1 form, for everything past the listener:
//! an HTTP/2 client's `CONNECT` with `:protocol: websocket` becomes `GET` with `Upgrade:
//! websocket` and `Connection: upgrade` on the way in, and the `101` that accepts it becomes the
//! client's `200` on the way out. Envoy's codecs show filters the same form, so the RED and gRPC
//! families, traces and Proxy-Wasm plugins see one kind of protocol switch (`GET`, `101`)
//! whichever version the client spoke; the proxy then sends it in the upstream leg's own form
//! (`proxy::connect`), told by [`FromHttp2Connect`] what the client expects back.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{
    HeaderName, HeaderValue, Method, Request, Response, StatusCode,
    header::{CONNECTION, UPGRADE},
};
use hyper::ext::Protocol;
use tower::{Layer, Service};

/// On a request that arrived as an HTTP/2 extended `CONNECT`, now in its HTTP/1.1 form.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FromHttp2Connect;

const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// The outermost layer of the proxy's stack.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct H2ConnectLayer;

impl<S> Layer<S> for H2ConnectLayer {
    type Service = H2Connect<S>;

    fn layer(&self, inner: S) -> H2Connect<S> {
        H2Connect { inner }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct H2Connect<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for H2Connect<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let switched = to_http1(&mut request);
        ResponseFuture {
            inner: self.inner.call(request),
            switched,
        }
    }
}

/// Rewrites an extended `CONNECT` into `GET` + `Upgrade`. A plain `CONNECT`, or a `:protocol`
/// that can't be a header value, stays as it is (the proxy refuses it).
fn to_http1<B>(request: &mut Request<B>) -> bool {
    if request.method() != Method::CONNECT {
        return false;
    }
    let Some(protocol) = (request.extensions().get::<Protocol>())
        .and_then(|protocol| HeaderValue::from_str(protocol.as_str()).ok())
    else {
        return false;
    };
    request.extensions_mut().remove::<Protocol>();
    request.extensions_mut().insert(FromHttp2Connect);
    *request.method_mut() = Method::GET;
    let headers = request.headers_mut();
    headers.insert(UPGRADE, protocol);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    true
}

/// The client's answer: a `101` is its `200`, without the HTTP/1.1 fields (which HTTP/2
/// forbids, or which belong to WebSocket's HTTP/1.1 handshake). Other answers pass as they are.
fn to_http2<R>(response: &mut Response<R>) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.remove(UPGRADE);
    headers.remove(CONNECTION);
    headers.remove(SEC_WEBSOCKET_ACCEPT);
}

pin_project_lite::pin_project! {
    /// Response future of [`H2Connect`].
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        switched: bool,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if *this.switched {
            to_http2(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extended_connect(protocol: &str) -> Request<()> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .version(http::Version::HTTP_2)
            .uri("http://example.com/chat")
            .body(())
            .unwrap();
        request.extensions_mut().insert(Protocol::from(protocol));
        request
    }

    #[test]
    fn an_extended_connect_becomes_get_with_upgrade_and_its_101_a_200() {
        let mut request = extended_connect("websocket");
        assert!(to_http1(&mut request));
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.headers()[UPGRADE], "websocket");
        assert_eq!(request.headers()[CONNECTION], "upgrade");
        assert!(request.extensions().get::<Protocol>().is_none());
        assert!(request.extensions().get::<FromHttp2Connect>().is_some());

        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "upgrade")
            .header(SEC_WEBSOCKET_ACCEPT, "x")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap();
        to_http2(&mut response);
        assert_eq!(response.status(), StatusCode::OK);
        let names: Vec<_> = response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["sec-websocket-protocol"]);
    }

    #[test]
    fn a_plain_connect_and_other_answers_stay_as_they_are() {
        let mut plain = extended_connect("websocket");
        plain.extensions_mut().remove::<Protocol>();
        assert!(!to_http1(&mut plain));
        assert_eq!(plain.method(), Method::CONNECT);

        let mut refused = Response::builder()
            .status(StatusCode::FORBIDDEN)
            .body(())
            .unwrap();
        to_http2(&mut refused);
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
}
