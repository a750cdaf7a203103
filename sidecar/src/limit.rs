//! The concurrency limit: at most `limits.max_concurrent_requests` requests in flight, counted
//! from the request until the end of its response body. Past it the sidecar answers 503
//! `overloaded` at once instead of queueing, so a stuck upstream can't pile up unbounded work.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::{
    body::{Body, BoxError},
    error::ProxyError,
};

/// Wraps a service in [`Limit`].
#[derive(Clone, Debug)]
pub(crate) struct LimitLayer {
    permits: Arc<Semaphore>,
}

impl LimitLayer {
    /// At most `max` requests in flight.
    pub(crate) fn new(max: usize) -> Self {
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
            permits: Arc::new(WorkerPermits(self.permits.clone())),
        }
    }
}

/// Answers 503 when too many requests are in flight.
#[derive(Clone, Debug)]
pub(crate) struct Limit<S> {
    inner: S,
    /// The shared semaphore behind one allocation per worker: the stack and each permit
    /// clone this, so the per-request counts stay on the worker's core (the semaphore's own
    /// state is the one thing the workers must share).
    permits: Arc<WorkerPermits>,
}

/// A worker's handle on the shared semaphore.
#[derive(Debug)]
struct WorkerPermits(Arc<Semaphore>);

/// One request's permit, given back when dropped.
struct Permit(Arc<WorkerPermits>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.0.add_permits(1);
    }
}

impl<S> Service<Request<Body>> for Limit<S>
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
        let Ok(permit) = self.permits.0.try_acquire() else {
            return ResponseFuture {
                state: State::Overloaded,
            };
        };
        permit.forget();
        let permit = Permit(self.permits.clone());
        ResponseFuture {
            state: State::Admitted {
                inner: self.inner.call(request),
                permit: Some(permit),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Limit`]: the inner one, whose body then holds the permit, or 503.
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Overloaded,
        Admitted {
            #[pin]
            inner: F,
            permit: Option<Permit>,
        },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Overloaded => Poll::Ready(Ok(ProxyError::Overloaded.into_response())),
            StateProj::Admitted { inner, permit } => {
                let Ok(response) = ready!(inner.poll(cx));
                let permit = permit.take();
                Poll::Ready(Ok(response.map(|inner| {
                    Body::new(Permitted {
                        inner,
                        _permit: permit,
                    })
                })))
            }
        }
    }
}

/// A response body that holds its request's permit until it is done with.
struct Permitted {
    inner: Body,
    _permit: Option<Permit>,
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
