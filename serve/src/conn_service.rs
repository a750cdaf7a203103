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
    task::{Context, Poll, Waker},
};

use futures_util::future::Either;
use hyper::{Request, body::Incoming};
use tower::{Service, ServiceExt, util::Oneshot};

use crate::Peer;

/// `service` serving one connection from `peer`; every request gets `peer` in its extensions.
pub(crate) struct ConnService<S> {
    service: RefCell<S>,
    peer: Peer,
}

impl<S> ConnService<S> {
    pub(crate) fn new(service: S, peer: Peer) -> Self {
        Self {
            service: RefCell::new(service),
            peer,
        }
    }
}

impl<S, R> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<Incoming>, Response = R, Error = Infallible> + Clone,
{
    type Response = R;
    type Error = Infallible;
    type Future = Either<S::Future, Oneshot<S, Request<Incoming>>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        // The borrow ends with this call: hyper never calls back into the service from it.
        let mut service = self.service.borrow_mut();
        match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Either::Left(service.call(request)),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => Either::Right(service.clone().oneshot(request)),
        }
    }
}
