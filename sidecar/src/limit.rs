//! The concurrency limit: at most `limits.max_concurrent_requests` requests in flight, counted
//! from the request until the end of its response body. Past it the sidecar answers 503
//! `overloaded` at once instead of queueing, so a stuck upstream can't pile up unbounded work.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::{
    body::{Body, BoxError},
    error::ProxyError,
};

/// Wraps a service in [`Limit`].
#[derive(Clone, Debug)]
pub struct LimitLayer {
    permits: Arc<Semaphore>,
}

impl LimitLayer {
    /// At most `max` requests in flight.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
        }
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;
    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            permits: self.permits.clone(),
        }
    }
}

/// Answers 503 when too many requests are in flight.
#[derive(Clone, Debug)]
pub struct Limit<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> Service<Request<Body>> for Limit<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return std::future::ready(Ok(ProxyError::Overloaded.into_response())).boxed();
        };
        self.inner
            .call(request)
            .map(|result| {
                result.map(|response| {
                    response.map(|inner| {
                        Body::new(Permitted {
                            inner,
                            _permit: permit,
                        })
                    })
                })
            })
            .boxed()
    }
}

/// A response body that holds its request's permit until it is done with.
struct Permitted {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Permitted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
