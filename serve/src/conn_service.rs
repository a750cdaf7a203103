//! The tower service of one connection, as hyper calls it.
//!
//! hyper calls services through `&self`; tower's take `&mut self`. hyper-util's adapter bridges
//! the two by cloning the whole service for every request and driving the clone through
//! `poll_ready` and `call`. A connection's requests are called one at a time, so here the
//! connection owns its service outright (hyper polls the connection from one task) and calls it
//! in place: no clone and no reference counts touched per request. A service that is not ready
//! at once still gets the clone-and-wait treatment, so tower's contract holds either way.

use std::{
    cell::RefCell,
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};

use futures_util::future::Either;
use hyper::{Request, Response, body::Incoming};
use pin_project_lite::pin_project;
use tower::{Service, ServiceExt, util::Oneshot};

use crate::{
    Peer,
    head_timeout::{ConnBody, HeadClock},
};

/// `service` serving one connection from `peer`; every request gets `peer` in its extensions,
/// and every call and response body tell the connection's [`HeadClock`].
pub(crate) struct ConnService<S> {
    service: RefCell<S>,
    peer: Peer,
    clock: HeadClock,
}

impl<S> ConnService<S> {
    pub(crate) fn new(service: S, peer: Peer, clock: HeadClock) -> Self {
        Self {
            service: RefCell::new(service),
            peer,
            clock,
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone,
{
    type Response = Response<ConnBody<B>>;
    type Error = Infallible;
    type Future = ResponseFuture<Either<S::Future, Oneshot<S, Request<Incoming>>>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.clock.head_arrived();
        request.extensions_mut().insert(self.peer);
        // The borrow ends with this call: hyper never calls back into the service from it.
        let mut service = self.service.borrow_mut();
        let inner = match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Either::Left(service.call(request)),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => Either::Right(service.clone().oneshot(request)),
        };
        ResponseFuture {
            inner,
            clock: Some(self.clock.clone()),
        }
    }
}

pin_project! {
    /// The service's response, its body wrapped to tell the clock when it is done with.
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        clock: Option<HeadClock>,
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<ConnBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let clock = this
            .clock
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(Ok(response.map(|body| ConnBody::new(body, clock))))
    }
}
