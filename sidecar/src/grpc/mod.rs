//! gRPC calls through the proxy: their own metric families ([`metrics`]), the sidecar's own
//! failures answered as gRPC errors ([`status`]), and `grpc-timeout` kept.
//!
//! A request is a gRPC call when its `content-type` is `application/grpc` (or `+proto`,
//! `+json`, ...). For those, [`Grpc`] (between the RED layer and the plugins):
//! - counts the call started, and each message as its body passes ([`messages`]);
//! - answers a sidecar-made failure (502/503/504) as gRPC clients expect it: HTTP 200,
//!   trailers-only, `grpc-status` 14 `UNAVAILABLE` or 4 `DEADLINE_EXCEEDED`, a `grpc-message`;
//! - gives up with `DEADLINE_EXCEEDED` when the call's `grpc-timeout` passes before the
//!   upstream's response headers (dropping the upstream stream cancels it there);
//! - reads `grpc-status` from the trailers (or a trailers-only response) and counts the call
//!   handled with it when the response ends, and hands the code to the RED layer through a
//!   [`CallStatus`] response extension, so a call that failed with HTTP 200 is an error there too.
//!   A plain HTTP answer without `grpc-status` (an error page) gets the code a gRPC client derives
//!   from its HTTP status (404 `Unimplemented`, 503 `Unavailable`, ...) and keeps its own status
//!   in the RED family.
//!
//! Other requests pass through untouched: one header lookup.
//!
//! The `grpc_service`/`grpc_method` label set: [`methods`]; with `grpc_reflection`, the methods
//! the upstream's server reflection lists ([`reflection`]).

mod call;
pub(crate) mod messages;
pub(crate) mod methods;
pub(crate) mod metrics;
pub(crate) mod reflection;
pub(crate) mod status;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::AtomicU64},
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response, header::CONTENT_TYPE};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::{body::Body, error::ProxyError};
pub(crate) use call::CallStatus;
use call::{Call, Counted};
use messages::MessageCounter;
use metrics::GrpcMetrics;
use status::Code;

/// Wraps a service in [`Grpc`].
#[derive(Clone, Debug)]
pub(crate) struct GrpcLayer {
    metrics: GrpcMetrics,
}

impl GrpcLayer {
    pub(crate) fn new(metrics: GrpcMetrics) -> Self {
        Self { metrics }
    }

    /// The families, for the method loader.
    pub(crate) fn metrics(&self) -> &GrpcMetrics {
        &self.metrics
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = Grpc<S>;
    fn layer(&self, inner: S) -> Grpc<S> {
        Grpc {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Grpc<S> {
    inner: S,
    metrics: GrpcMetrics,
}

/// Whether `headers` are a gRPC request's.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

impl<S> Service<Request<Body>> for Grpc<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if !is_grpc(request.headers()) {
            return ResponseFuture {
                inner: self.inner.call(request),
                call: None,
            };
        }
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| parse_timeout(v.as_bytes()))
            .map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        let call = Arc::new(Call {
            metrics: self.metrics.clone(),
            series: self.metrics.start(request.uri().path()),
            started: Instant::now(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            status: CallStatus::new(),
        });
        let request = request.map(|body| {
            Body::new(Counted {
                inner: body,
                counter: MessageCounter::default(),
                call: call.clone(),
                incoming: true,
                ended: false,
            })
        });
        ResponseFuture {
            inner: self.inner.call(request),
            call: Some((call, deadline)),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Grpc`]'s response future.
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<(Arc<Call>, Option<Pin<Box<Sleep>>>)>,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some((_, deadline)) = this.call.as_mut() else {
            return this.inner.poll(cx);
        };
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Pending => {
                if let Some(deadline) = deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    let timeout = ProxyError::ResponseTimeout.into_response();
                    let response = status::trailers_only(
                        Code::DEADLINE_EXCEEDED,
                        "the call's grpc-timeout passed before the upstream answered",
                        timeout,
                    );
                    let call = this.call.take().map(|(call, _)| call);
                    return Poll::Ready(Ok(respond(response, call)));
                }
                return Poll::Pending;
            }
        };
        let call = this.call.take().map(|(call, _)| call);
        let response = match response.extensions().get::<ProxyError>().copied() {
            Some(error) => {
                status::trailers_only(Code::for_error(error), &error.to_string(), response)
            }
            None => response,
        };
        Poll::Ready(Ok(respond(response, call)))
    }
}

/// The response with its body counted and its status handed over.
fn respond(mut response: Response<Body>, call: Option<Arc<Call>>) -> Response<Body> {
    let Some(call) = call else { return response };
    response.extensions_mut().insert(call.status.clone());
    if let Some(code) = Code::from_headers(response.headers()) {
        // Trailers-only: the status is in the headers, and no message follows.
        call.status.set(code);
    } else if response.status() != http::StatusCode::OK {
        // Not a gRPC answer (an error page): what a gRPC client makes of its status.
        call.status.set_derived(Code::from_http(response.status()));
    }
    response.map(|body| {
        Body::new(Counted {
            inner: body,
            counter: MessageCounter::default(),
            call,
            incoming: false,
            ended: false,
        })
    })
}

/// A `grpc-timeout` value: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"123456789S"), None);
        assert_eq!(parse_timeout(b"m"), None);
        assert_eq!(parse_timeout(b"10x"), None);
    }
}
